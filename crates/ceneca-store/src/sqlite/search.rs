//! Full-text search on SQLite: FTS5 `MATCH` with bm25 ranking, then snippets for the page
//! of hits only (`snippet()` is costly, and a sorter would otherwise compute it for every
//! match).

use std::collections::HashMap;

use ceneca_domain::Value;
use ceneca_domain::schema::Kind;
use ceneca_domain::search::fts5_query;
use rusqlite::{Connection, params_from_iter};
use uuid::Uuid;

use super::{SqliteDialect, map_error, parse_time};
use crate::search::{MARK_END, MARK_START, SearchHit, SearchQuery, bind, filters};
use crate::sql::Sql;
use crate::{Result, StoreError};

/// The ranked page of hits, without snippets.
fn ranked(q: &SearchQuery) -> Option<Sql> {
    let mut sql = Sql::default();
    let matcher = bind(
        &SqliteDialect,
        &mut sql,
        Value::Text(fts5_query(&q.terms)),
        Kind::Text { max: usize::MAX },
    );
    let mut parts = Vec::new();
    if q.messages {
        let scope = crate::sql::scope_condition(&SqliteDialect, &mut sql, &q.message_scope);
        let mut text = format!(
            "SELECT 'message' AS kind, m.rowid AS rid, m.id AS id, m.workspace_id, m.thread_id, NULL AS project_id, NULL AS title,
                    bm25(messages_fts) AS score, m.created_at
             FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid
             WHERE messages_fts MATCH {matcher} AND {scope}"
        );
        filters(&SqliteDialect, &mut sql, "m", q, &mut text, true);
        parts.push(text);
    }
    if q.documents && q.thread_id.is_none() && q.author_id.is_none() {
        let scope = crate::sql::scope_condition(&SqliteDialect, &mut sql, &q.document_scope);
        let mut text = format!(
            "SELECT 'document' AS kind, d.rowid AS rid, d.id AS id, d.workspace_id, NULL AS thread_id, d.project_id, d.title,
                    bm25(documents_fts) AS score, d.created_at
             FROM documents_fts JOIN documents d ON d.rowid = documents_fts.rowid
             WHERE documents_fts MATCH {matcher} AND {scope}"
        );
        filters(&SqliteDialect, &mut sql, "d", q, &mut text, false);
        parts.push(text);
    }
    if parts.is_empty() {
        return None;
    }
    sql.text = format!(
        "{} ORDER BY score, id LIMIT {} OFFSET {}",
        parts.join(" UNION ALL "),
        q.limit,
        q.offset
    );
    Some(sql)
}

fn uuid_at(row: &rusqlite::Row<'_>, i: usize) -> Result<Option<Uuid>> {
    let text: Option<String> = row.get(i).map_err(map_error)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|e| StoreError::Backend(e.to_string())))
        .transpose()
}

pub(super) fn search(conn: &Connection, q: &SearchQuery) -> Result<Vec<SearchHit>> {
    let Some(sql) = ranked(q) else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(&sql.text).map_err(map_error)?;
    let mut rows = stmt
        .query(params_from_iter(sql.params.iter()))
        .map_err(map_error)?;
    let mut hits = Vec::new();
    let mut rowids: HashMap<&'static str, Vec<i64>> = HashMap::new();
    while let Some(row) = rows.next().map_err(map_error)? {
        let kind: String = row.get(0).map_err(map_error)?;
        let kind: &'static str = if kind == "message" {
            "message"
        } else {
            "document"
        };
        let rowid: i64 = row.get(1).map_err(map_error)?;
        let created: String = row.get(8).map_err(map_error)?;
        rowids.entry(kind).or_default().push(rowid);
        hits.push((
            rowid,
            SearchHit {
                kind,
                id: uuid_at(row, 2)?.unwrap_or_default(),
                workspace_id: uuid_at(row, 3)?.unwrap_or_default(),
                thread_id: uuid_at(row, 4)?,
                project_id: uuid_at(row, 5)?,
                title: row.get(6).map_err(map_error)?,
                snippet: String::new(),
                score: row.get(7).map_err(map_error)?,
                created_at: parse_time(&created)
                    .ok_or_else(|| StoreError::Backend("bad created_at".into()))?,
            },
        ));
    }
    let matcher = fts5_query(&q.terms);
    let mut snippets: HashMap<(&'static str, i64), String> = HashMap::new();
    for (kind, ids) in rowids {
        let (table, column) = if kind == "message" {
            ("messages_fts", 0)
        } else {
            ("documents_fts", -1)
        };
        let text = format!(
            "SELECT rowid, snippet({table}, {column}, '{MARK_START}', '{MARK_END}', '…', 24) FROM {table}
             WHERE {table} MATCH ?1 AND rowid IN (SELECT value FROM json_each(?2))"
        );
        let ids_json = serde_json::Value::from(ids).to_string();
        let mut stmt = conn.prepare_cached(&text).map_err(map_error)?;
        let mut rows = stmt
            .query(rusqlite::params![matcher, ids_json])
            .map_err(map_error)?;
        while let Some(row) = rows.next().map_err(map_error)? {
            snippets.insert(
                (kind, row.get(0).map_err(map_error)?),
                row.get(1).map_err(map_error)?,
            );
        }
    }
    Ok(hits
        .into_iter()
        .map(|(rowid, mut hit)| {
            hit.snippet = snippets.remove(&(hit.kind, rowid)).unwrap_or_default();
            hit
        })
        .collect())
}

pub(super) fn reindex(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        // Not FTS5's 'rebuild': it would read sealed (encrypted) content as text.
        "INSERT INTO messages_fts (messages_fts) VALUES ('delete-all');
         INSERT INTO messages_fts (rowid, content)
             SELECT rowid, CASE WHEN content_key_id IS NULL THEN content ELSE '' END FROM messages;
         INSERT INTO documents_fts (documents_fts) VALUES ('delete-all');
         INSERT INTO documents_fts (rowid, title, body)
             SELECT rowid, title, CASE WHEN body_key_id IS NULL THEN body ELSE '' END FROM documents;",
    )
    .map_err(map_error)
}
