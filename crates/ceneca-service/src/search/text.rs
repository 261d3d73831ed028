//! `GET /search`: full-text search over the messages and documents the caller may read.
//! The caller's readable workspaces go into the query itself (DESIGN.md §3 rule 1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ceneca_domain::model;
use ceneca_domain::output::format_time;
use ceneca_domain::scope::Access;
use ceneca_domain::search::parse_query;
use ceneca_domain::validate::parse_time_str;
use ceneca_store::SearchQuery;
use serde_json::{Value as Json, json};
use uuid::Uuid;

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// Ranked results are paged by position; past this, refine the query instead.
pub const MAX_OFFSET: u32 = 1000;

fn id_param(name: &str, value: &str) -> Result<Uuid> {
    Uuid::parse_str(value)
        .map_err(|_| ServiceError::bad_request(name, format!("{name} must be a UUID")))
}

impl Services {
    /// Searches with query-string parameters: `q` (required), `kind` (`messages`,
    /// `documents` or `all`), `workspace_id`, `project_id`, `thread_id`, `author_id`,
    /// `created_after`, `created_before`, `deleted` (`exclude` or `include`), `limit`,
    /// `cursor`.
    pub async fn search(&self, caller: &Caller, pairs: &[(String, String)]) -> Result<Json> {
        let mut q: Option<&str> = None;
        let mut query = SearchQuery {
            terms: Vec::new(),
            message_scope: caller.filter(&model::MESSAGES, Access::Read),
            document_scope: caller.filter(&model::DOCUMENTS, Access::Read),
            messages: true,
            documents: true,
            workspace_id: None,
            project_id: None,
            thread_id: None,
            author_id: None,
            created_after: None,
            created_before: None,
            include_deleted: false,
            limit: DEFAULT_LIMIT,
            offset: 0,
        };
        for (name, value) in pairs {
            match name.as_str() {
                "q" => q = Some(value),
                "kind" => match value.as_str() {
                    "messages" => query.documents = false,
                    "documents" => query.messages = false,
                    "all" => {}
                    _ => {
                        return Err(ServiceError::bad_request(
                            "kind",
                            "kind must be messages, documents or all",
                        ));
                    }
                },
                "workspace_id" => query.workspace_id = Some(id_param(name, value)?),
                "project_id" => query.project_id = Some(id_param(name, value)?),
                "thread_id" => query.thread_id = Some(id_param(name, value)?),
                "author_id" => query.author_id = Some(id_param(name, value)?),
                "created_after" | "created_before" => {
                    let t = parse_time_str(value)
                        .map_err(|r| ServiceError::bad_request(name, format!("{name} {r}")))?;
                    if name == "created_after" {
                        query.created_after = Some(t);
                    } else {
                        query.created_before = Some(t);
                    }
                }
                "deleted" => match value.as_str() {
                    "exclude" => query.include_deleted = false,
                    "include" => query.include_deleted = true,
                    _ => {
                        return Err(ServiceError::bad_request(
                            "deleted",
                            "deleted must be exclude or include",
                        ));
                    }
                },
                "limit" => {
                    query.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ServiceError::bad_request(
                                "limit",
                                format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                            )
                        })?;
                }
                "cursor" => query.offset = decode_cursor(value)?,
                other => {
                    return Err(ServiceError::bad_request(
                        other,
                        format!(
                            "unknown parameter '{other}'; use q, kind, workspace_id, project_id, thread_id, author_id, created_after, created_before, deleted, limit, cursor"
                        ),
                    ));
                }
            }
        }
        let q = q.ok_or_else(|| {
            ServiceError::bad_request("q", "q is required: the words to search for")
        })?;
        query.terms = parse_query(q).map_err(|reason| ServiceError::bad_request("q", reason))?;
        let (limit, offset) = (query.limit, query.offset);
        let description = self.hashes_queries().then(|| format!("{query:?}"));
        let hits = if query.message_scope.is_nothing() && query.document_scope.is_nothing() {
            Vec::new()
        } else {
            self.store.search(query).await?
        };
        self.audit_read(
            caller,
            "search".into(),
            "messages,documents",
            None,
            description,
        )
        .await?;
        let next_cursor = (hits.len() as u32 == limit && offset + limit < MAX_OFFSET)
            .then(|| encode_cursor(offset + limit));
        let items: Vec<Json> = hits
            .iter()
            .map(|h| {
                json!({
                    "kind": h.kind,
                    "id": h.id.to_string(),
                    "workspace_id": h.workspace_id.to_string(),
                    "thread_id": h.thread_id.map(|t| t.to_string()),
                    "project_id": h.project_id.map(|t| t.to_string()),
                    "title": h.title,
                    // HTML: stored text escaped, matches in `<mark>` (the only tags).
                    "snippet": h.snippet.to_html(),
                    "relevance": -h.score,
                    "created_at": format_time(h.created_at),
                })
            })
            .collect();
        Ok(json!({ "items": items, "next_cursor": next_cursor }))
    }
}

fn encode_cursor(offset: u32) -> String {
    URL_SAFE_NO_PAD.encode(json!({ "offset": offset }).to_string())
}

fn decode_cursor(cursor: &str) -> Result<u32> {
    let bad = || {
        ServiceError::bad_request(
            "cursor",
            "cursor is not valid for this search; start again without it",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let value: Json = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    value["offset"]
        .as_u64()
        .filter(|o| *o < MAX_OFFSET as u64)
        .map(|o| o as u32)
        .ok_or_else(bad)
}
