//! Full-text search requests and hits, shared by both engines (each engine's SQL is in its
//! own module).

use ceneca_domain::search::Term;
use time::OffsetDateTime;
use uuid::Uuid;

/// What to search, already authorized: `workspaces` is the caller's readable scope.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub terms: Vec<Term>,
    pub workspaces: Vec<Uuid>,
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
    pub snippet: String,
    pub score: f64,
    pub created_at: OffsetDateTime,
}

/// Highlight markers around matched words in snippets. The text between them is not
/// escaped: clients rendering HTML must escape the snippet and then turn the markers into
/// tags.
pub const MARK_START: &str = "<mark>";
pub const MARK_END: &str = "</mark>";
