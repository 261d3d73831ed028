use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ContentAuth, QueryPairs};
use crate::openapi::op::{self, Op};
use ceneca_wire::SearchParams;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};

pub(crate) fn doc() -> Op {
    let uuid = || op::string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
    let time = || op::string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
    op::get("search", "Full-text search over messages and documents")
        .tag("search")
        .describe(
            "Ranked hits with highlighted snippets, only from what the caller may read. The \
             words are searched as words: no input is a syntax error. On the embedded \
             database, a query with a word in 10,000 rows or more ranks the caller's 1,100 \
             most recent matches (as deep as pages go; fewer when they are long) among the \
             index's 10,000 most recent matches in its 50,000 most recent rows, so that its \
             cost does not grow with the index: older matches of such a query are not \
             returned, and a caller with few recent rows may find none for such a word \
             alone. A rarer word beside it narrows the matches, and they are all found. On \
             PostgreSQL, a query ranks the caller's 2,000 most recent matches of each kind \
             (all of them when there are fewer), and looks for a quoted phrase among the \
             caller's 10,000 most recent rows holding its words; a search that runs past \
             `store.pg_search_time_limit_ms` there (3 s; many common words that seldom stand \
             together) is stopped and answered 422 on `q`, and one that waits for a lock \
             held by maintenance is answered 503 with `Retry-After`. A word or phrase \
             repeated in `q` is searched once.",
        )
        .params([
            op::required_query(
                "q",
                "The words to search for: at most 32 words or quoted phrases, each phrase \
                 (or word joined by punctuation) at most 16 words.",
                op::string(),
            ),
            op::query(
                "kind",
                "What to search (all).",
                op::string().enum_values(Some(["messages", "documents", "all"])),
            ),
            op::query("workspace_id", "Only this workspace.", uuid()),
            op::query("project_id", "Only this project.", uuid()),
            op::query("thread_id", "Only this thread.", uuid()),
            op::query("author_id", "Only messages by this user.", uuid()),
            op::query("created_after", "RFC 3339.", time()),
            op::query("created_before", "RFC 3339.", time()),
            op::query(
                "deleted",
                "Also deleted rows (`include`).",
                op::string().enum_values(Some(["exclude", "include"])),
            ),
            op::query(
                "limit",
                "Hits per page, 1 to 100 (20).",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(ceneca_wire::params::SEARCH_MAX_LIMIT)),
            ),
            op::query("cursor", "The previous page's `next_cursor`.", op::string()),
        ])
        .answers_of::<ceneca_wire::search::SearchPage>(200, "A page of hits.")
}

/// `GET /search?q=...`: ranked full-text hits with highlighted snippets.
pub async fn search(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let params = SearchParams::from_pairs(pairs)?;
    Ok(Json(state.services.search(&caller, &params).await?).into_response())
}
