//! Full-text search requests and hits, shared by both engines (each engine's SQL is in its
//! own module).

use std::fmt::Write as _;

use ceneca_domain::Value;
use ceneca_domain::schema::Kind;
use ceneca_domain::search::{Snippet, Term, folded_words, highlight};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::sql::{Dialect, Param, Sql};

/// How long one search may run on an engine that can stop it (PostgreSQL's
/// `statement_timeout`) unless configured otherwise (`store.pg_search_time_limit_ms`),
/// after which it is cancelled and answered as too costly.
///
/// A bound, not a target: searches are built to finish in milliseconds (most recent
/// matches ranked, repeated terms dropped), but a query of many common words that seldom
/// stand together still makes the engine read their whole posting lists, and a server
/// shared by tenants must not give one of them its cores for seconds.
pub const SEARCH_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// How long one search may wait for a lock (PostgreSQL's `lock_timeout`): only
/// maintenance (`ceneca reindex --text`, a migration) holds one that a search waits for,
/// and the search is then answered as unavailable, to be retried.
pub const SEARCH_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

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

/// How much of a hit's text its snippet is cut from (characters).
pub(crate) const SNIPPET_SOURCE: usize = 65_536;

/// Each phrase's words, as [`highlight`] takes them.
///
/// Hits are highlighted here, in Rust, on both engines, in time linear in their text:
/// FTS5's `snippet()` and `highlight()` take time quadratic in a row's matches, and
/// PostgreSQL's `ts_headline` with a phrase takes memory in proportion to a row's matches
/// times the phrase's words (2.7 GB in one database process for a 100 KB message
/// repeating a phrase's two words, a finding of the attack on bounded search).
pub(crate) fn phrase_words<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<Vec<String>> {
    texts
        .map(|t| {
            folded_words(t)
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The words a snippet holds at most (as FTS5's `snippet()` was asked for).
const SNIPPET_WORDS: usize = 24;

/// The snippet of a row: cut from the column with the most highlighted words (the first,
/// a document's title, on equal counts, as FTS5's `snippet()` chose).
pub(crate) fn best_excerpt(columns: Vec<Snippet>) -> Snippet {
    columns
        .into_iter()
        .rev()
        .max_by_key(Snippet::highlights)
        .map(|column| column.excerpt(SNIPPET_WORDS))
        .unwrap_or_default()
}

/// Highlights `texts` (a row's columns, each cut to [`SNIPPET_SOURCE`] characters) for
/// the `phrases` and makes the row's snippet.
pub(crate) fn snippet_of(texts: &[Option<&str>], phrases: &[Vec<String>]) -> Snippet {
    best_excerpt(
        texts
            .iter()
            .map(|text| {
                let text = text.unwrap_or("");
                let cut = text
                    .char_indices()
                    .nth(SNIPPET_SOURCE)
                    .map_or(text, |(at, _)| &text[..at]);
                highlight(cut, phrases).0
            })
            .collect(),
    )
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
