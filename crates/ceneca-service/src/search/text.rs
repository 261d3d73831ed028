//! `GET /search`: full-text search over the messages and documents the caller may read.
//! The caller's readable workspaces go into the query itself (DESIGN.md §3 rule 1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ceneca_domain::model;
use ceneca_domain::output::format_time;
use ceneca_domain::scope::Access;
use ceneca_domain::search::parse_query;
use ceneca_store::SearchQuery;
use ceneca_wire::search::{SearchHit, SearchPage};
use ceneca_wire::{SearchKind, SearchParams};
use serde_json::{Value as Json, json};

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// Ranked results are paged by position; past this, refine the query instead.
pub const MAX_OFFSET: u32 = 1000;

impl Services {
    /// Searches the messages and documents the caller may read (the parameters are parsed
    /// and bounded by `ceneca_wire::SearchParams`).
    pub async fn search(&self, caller: &Caller, params: &SearchParams) -> Result<SearchPage> {
        let query = SearchQuery {
            terms: parse_query(&params.q)
                .map_err(|reason| ServiceError::bad_request("q", reason))?,
            message_scope: caller.filter(&model::MESSAGES, Access::Read),
            document_scope: caller.filter(&model::DOCUMENTS, Access::Read),
            messages: params.kind != SearchKind::Documents,
            documents: params.kind != SearchKind::Messages,
            workspace_id: params.workspace_id,
            project_id: params.project_id,
            thread_id: params.thread_id,
            author_id: params.author_id,
            created_after: params.created_after,
            created_before: params.created_before,
            include_deleted: params.include_deleted,
            limit: params.limit,
            offset: params
                .cursor
                .as_deref()
                .map(decode_cursor)
                .transpose()?
                .unwrap_or(0),
        };
        let (limit, offset) = (query.limit, query.offset);
        let description = self.hashes_queries().then(|| format!("{query:?}"));
        let hits = if query.message_scope.is_nothing() && query.document_scope.is_nothing() {
            Vec::new()
        } else {
            self.store.search(query).await.map_err(|e| match e {
                ceneca_store::StoreError::TimedOut => ServiceError::invalid(
                    "q",
                    "this search ran past the time this server gives one \
                     (store.pg_search_time_limit_ms) and was stopped; most often its words \
                     are in very many of the rows you may read but seldom together: add a \
                     rarer word, or narrow it with workspace_id, thread_id or created_after",
                ),
                e => e.into(),
            })?
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
        let items = hits
            .iter()
            .map(|h| SearchHit {
                kind: h.kind.to_string(),
                id: h.id,
                workspace_id: h.workspace_id,
                thread_id: h.thread_id,
                project_id: h.project_id,
                title: h.title.clone(),
                // HTML: stored text escaped, matches in `<mark>` (the only tags).
                snippet: h.snippet.to_html(),
                relevance: -h.score,
                created_at: format_time(h.created_at),
            })
            .collect();
        Ok(SearchPage { items, next_cursor })
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
