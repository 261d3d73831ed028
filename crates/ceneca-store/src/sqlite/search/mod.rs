//! Full-text search on SQLite: FTS5 `MATCH`, ranked by bm25 through FTS5's own
//! `ORDER BY rank`, with the caller's scope and the filters applied in the same query.
//!
//! Ordering by `rank` lets FTS5 sort the matches itself and SQLite stop after the page:
//! `snippet()` then runs for the rows returned only, and the sorter never carries every
//! match's columns. Messages and documents are two such queries, merged by score.

use ceneca_domain::Value;
use ceneca_domain::schema::Kind;
use ceneca_domain::search::{MARK_END, MARK_START, Snippet, Term};
use rusqlite::{Connection, params_from_iter};
use uuid::Uuid;

use super::{SqliteDialect, map_error, parse_time};
use crate::search::{SearchHit, SearchQuery, bind, filters};
use crate::sql::Sql;
use crate::{Result, StoreError};

/// The FTS5 query for `terms`: each term a quoted phrase (quotes doubled inside), all
/// required. FTS5 operators in a user's query are thereby searched as text.
fn fts5_query(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.text.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The best `offset + limit` hits of one kind, with snippets.
fn ranked(q: &SearchQuery, messages: bool) -> Sql {
    let mut sql = Sql::default();
    let matcher = bind(
        &SqliteDialect,
        &mut sql,
        Value::Text(fts5_query(&q.terms)),
        Kind::Text { max: usize::MAX },
    );
    let (scope_filter, table, alias) = if messages {
        (&q.message_scope, "messages", "m")
    } else {
        (&q.document_scope, "documents", "d")
    };
    let scope = crate::sql::scope_condition(&SqliteDialect, &mut sql, scope_filter);
    let fts = format!("{table}_fts");
    // The snippet twice: with the markers, and with empty ones. Stored text may hold the
    // marker characters too; the plain one says which characters are text (see
    // `Snippet::from_marked_and_plain`). Both run for the page's rows only.
    let column = if messages { 0 } else { -1 };
    let snippet = format!(
        "snippet({fts}, {column}, '{MARK_START}', '{MARK_END}', '…', 24), \
         snippet({fts}, {column}, '', '', '…', 24)"
    );
    let columns = if messages {
        format!(
            "m.id, m.workspace_id, m.thread_id, NULL, NULL, {fts}.rank, m.created_at, {snippet}"
        )
    } else {
        format!(
            "d.id, d.workspace_id, NULL, d.project_id, d.title, {fts}.rank, d.created_at, {snippet}"
        )
    };
    let mut text = format!(
        "SELECT {columns} FROM {fts} JOIN {table} {alias} ON {alias}.rowid = {fts}.rowid
         WHERE {fts} MATCH {matcher} AND {scope}"
    );
    filters(&SqliteDialect, &mut sql, alias, q, &mut text, messages);
    sql.text = format!(
        "{text} ORDER BY {fts}.rank LIMIT {}",
        u64::from(q.limit) + u64::from(q.offset)
    );
    sql
}

fn uuid_at(row: &rusqlite::Row<'_>, i: usize) -> Result<Option<Uuid>> {
    let text: Option<String> = row.get(i).map_err(map_error)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|e| StoreError::Backend(e.to_string())))
        .transpose()
}

fn hits(conn: &Connection, sql: &Sql, kind: &'static str) -> Result<Vec<SearchHit>> {
    let mut stmt = conn.prepare_cached(&sql.text).map_err(map_error)?;
    let mut rows = stmt
        .query(params_from_iter(sql.params.iter()))
        .map_err(map_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_error)? {
        let created: String = row.get(6).map_err(map_error)?;
        out.push(SearchHit {
            kind,
            id: uuid_at(row, 0)?.unwrap_or_default(),
            workspace_id: uuid_at(row, 1)?.unwrap_or_default(),
            thread_id: uuid_at(row, 2)?,
            project_id: uuid_at(row, 3)?,
            title: row.get(4).map_err(map_error)?,
            score: row.get(5).map_err(map_error)?,
            created_at: parse_time(&created)
                .ok_or_else(|| StoreError::Backend("bad created_at".into()))?,
            snippet: Snippet::from_marked_and_plain(
                &row.get::<_, String>(7).map_err(map_error)?,
                &row.get::<_, String>(8).map_err(map_error)?,
            ),
        });
    }
    Ok(out)
}

pub(super) fn search(conn: &Connection, q: &SearchQuery) -> Result<Vec<SearchHit>> {
    let messages = if q.messages {
        hits(conn, &ranked(q, true), "message")?
    } else {
        Vec::new()
    };
    let documents = if q.documents && q.thread_id.is_none() && q.author_id.is_none() {
        hits(conn, &ranked(q, false), "document")?
    } else {
        Vec::new()
    };
    // Merge the two ranked lists, keeping each list's own order (FTS5's, the same on every
    // page), so that pages never overlap or skip a hit; messages first on equal scores.
    let mut merged = Vec::with_capacity(messages.len() + documents.len());
    let (mut m, mut d) = (
        messages.into_iter().peekable(),
        documents.into_iter().peekable(),
    );
    while let Some(next) = match (m.peek(), d.peek()) {
        (Some(a), Some(b)) if b.score < a.score => d.next(),
        (Some(_), _) => m.next(),
        (None, _) => d.next(),
    } {
        merged.push(next);
    }
    Ok(merged
        .into_iter()
        .skip(q.offset as usize)
        .take(q.limit as usize)
        .collect())
}

pub(super) fn reindex(conn: &Connection) -> Result<()> {
    // Bodies are read through `ceneca_unpack` once they may be packed (migration 0013).
    let packs: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('messages') WHERE name = 'content_packed'",
            [],
            |r| r.get(0),
        )
        .map_err(map_error)?;
    let body = if packs {
        "CASE WHEN content_packed IS NULL THEN content ELSE ceneca_unpack(content_packed) END"
    } else {
        "content"
    };
    conn.execute_batch(&format!(
        // Not FTS5's 'rebuild': before migration 0013 it would read sealed (encrypted)
        // content as text.
        "INSERT INTO messages_fts (messages_fts) VALUES ('delete-all');
         INSERT INTO messages_fts (rowid, content)
             SELECT rowid, CASE WHEN content_key_id IS NULL THEN {body} ELSE '' END FROM messages;
         INSERT INTO documents_fts (documents_fts) VALUES ('delete-all');
         INSERT INTO documents_fts (rowid, title, body)
             SELECT rowid, title, CASE WHEN body_key_id IS NULL THEN body ELSE '' END FROM documents;"
    ))
    .map_err(map_error)
}
