//! Full-text search requests and hits, shared by both engines (each engine's SQL is in its
//! own module).

use std::fmt::Write as _;

use ceneca_domain::Value;
use ceneca_domain::schema::Kind;
use ceneca_domain::search::Term;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::sql::{Dialect, Param, Sql};

/// What to search, already authorized: the scopes are the caller's read filters.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub terms: Vec<Term>,
    /// The caller's read scope for messages and for documents (roles and permission sets).
    pub message_scope: ceneca_domain::scope::ScopeFilter,
    pub document_scope: ceneca_domain::scope::ScopeFilter,
    pub messages: bool,
    pub documents: bool,
    pub workspace_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub thread_id: Option<Uuid>,
    pub author_id: Option<Uuid>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    pub include_deleted: bool,
    pub limit: u32,
    pub offset: u32,
}

/// One match. `score` is lower-is-better on both engines (FTS5 bm25, negated PostgreSQL
/// `ts_rank_cd`); scores compare within one engine only.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub kind: &'static str,
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub thread_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub title: Option<String>,
    /// The best passage, with the matched words highlighted.
    pub snippet: ceneca_domain::search::Snippet,
    pub score: f64,
    pub created_at: OffsetDateTime,
}

/// Binds a parameter; returns its placeholder.
pub(crate) fn bind(d: &dyn Dialect, sql: &mut Sql, value: Value, kind: Kind) -> String {
    sql.params.push(Param { value, kind });
    d.placeholder(sql.params.len())
}

/// The query's filters as SQL conditions on the row aliased `alias` (a message when
/// `messages`, else a document); the same on both engines.
pub(crate) fn filters(
    d: &dyn Dialect,
    sql: &mut Sql,
    alias: &str,
    q: &SearchQuery,
    text: &mut String,
    messages: bool,
) {
    if !q.include_deleted {
        write!(text, " AND {alias}.deleted_at IS NULL").ok();
    }
    if let Some(ws) = q.workspace_id {
        let p = bind(d, sql, Value::Id(ws), Kind::Uuid);
        write!(text, " AND {alias}.workspace_id = {p}").ok();
    }
    if let Some(project) = q.project_id {
        let p = bind(d, sql, Value::Id(project), Kind::Uuid);
        if messages {
            write!(
                text,
                " AND {alias}.thread_id IN (SELECT id FROM threads WHERE project_id = {p})"
            )
            .ok();
        } else {
            write!(text, " AND {alias}.project_id = {p}").ok();
        }
    }
    if messages {
        if let Some(thread) = q.thread_id {
            let p = bind(d, sql, Value::Id(thread), Kind::Uuid);
            write!(text, " AND {alias}.thread_id = {p}").ok();
        }
        if let Some(author) = q.author_id {
            let p = bind(d, sql, Value::Id(author), Kind::Uuid);
            write!(text, " AND {alias}.author_id = {p}").ok();
        }
    }
    if let Some(t) = q.created_after {
        let p = bind(d, sql, Value::Time(t), Kind::Time);
        write!(text, " AND {alias}.created_at > {p}").ok();
    }
    if let Some(t) = q.created_before {
        let p = bind(d, sql, Value::Time(t), Kind::Time);
        write!(text, " AND {alias}.created_at < {p}").ok();
    }
}
