//! Full-text search on PostgreSQL: generated `tsvector` columns with GIN indexes,
//! `ts_rank_cd` ranking, and `ts_headline` snippets computed for the page of hits only.

use ceneca_domain::Value;
use ceneca_domain::schema::Kind;
use ceneca_domain::search::{MARK_END, MARK_START, Snippet};
use sqlx::Row;
use sqlx::postgres::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{PgDialect, backend, build, map_error};
use crate::Result;
use crate::search::{SearchHit, SearchQuery, bind, filters};
use crate::sql::Sql;

/// `ts_headline`'s options: one fragment of 8 to 24 words between the markers.
fn headline_options() -> String {
    format!(
        "'StartSel=\"{MARK_START}\", StopSel=\"{MARK_END}\", MaxWords=24, MinWords=8, MaxFragments=1, FragmentDelimiter=\" … \"'"
    )
}

/// The query's terms as one `tsquery` expression, bound into `sql`.
fn tsquery(sql: &mut Sql, q: &SearchQuery) -> String {
    let terms: Vec<String> = q
        .terms
        .iter()
        .map(|t| {
            let p = bind(
                &PgDialect,
                sql,
                Value::Text(t.text.clone()),
                Kind::Text { max: usize::MAX },
            );
            let function = if t.phrase {
                "phraseto_tsquery"
            } else {
                "plainto_tsquery"
            };
            format!("{function}('simple', {p})")
        })
        .collect();
    terms.join(" && ")
}

/// A snippet of `text` (a compressed body, unpacked) made as the search makes the others.
fn headline(q: &SearchQuery, text: String) -> Sql {
    let mut sql = Sql::default();
    let tsquery = tsquery(&mut sql, q);
    let text = bind(
        &PgDialect,
        &mut sql,
        Value::Text(text),
        Kind::Text { max: usize::MAX },
    );
    sql.text = format!(
        "SELECT ts_headline('simple', translate(left({text}, 100000), '{MARK_START}{MARK_END}', ''), {tsquery}, {})",
        headline_options()
    );
    sql
}

fn statement(q: &SearchQuery) -> Option<Sql> {
    let mut sql = Sql::default();
    let tsquery = tsquery(&mut sql, q);
    let mut parts = Vec::new();
    if q.messages {
        let scope = crate::sql::scope_condition(&PgDialect, &mut sql, &q.message_scope);
        let mut text = format!(
            "SELECT 'message'::text AS kind, m.id, m.workspace_id, m.thread_id, NULL::uuid AS project_id, NULL::text AS title,
                    (-ts_rank_cd(m.search, q.q))::float8 AS score, m.created_at
             FROM messages m, q WHERE m.search @@ q.q AND {scope}"
        );
        filters(&PgDialect, &mut sql, "m", q, &mut text, true);
        parts.push(text);
    }
    if q.documents && q.thread_id.is_none() && q.author_id.is_none() {
        let scope = crate::sql::scope_condition(&PgDialect, &mut sql, &q.document_scope);
        let mut text = format!(
            "SELECT 'document'::text AS kind, d.id, d.workspace_id, NULL::uuid AS thread_id, d.project_id, d.title,
                    (-ts_rank_cd(d.search, q.q))::float8 AS score, d.created_at
             FROM documents d, q WHERE d.search @@ q.q AND {scope}"
        );
        filters(&PgDialect, &mut sql, "d", q, &mut text, false);
        parts.push(text);
    }
    if parts.is_empty() {
        return None;
    }
    // The marker characters are removed from the text before highlighting, so every
    // marker in the answer is ts_headline's own (see `Snippet::from_marked`).
    sql.text = format!(
        "WITH q AS (SELECT {} AS q),
         hits AS ({} ORDER BY score, id LIMIT {} OFFSET {})
         SELECT h.kind, h.id, h.workspace_id, h.thread_id, h.project_id, h.title, h.score, h.created_at,
                ts_headline('simple',
                    translate(
                        CASE WHEN h.kind = 'message' THEN (SELECT left(content, 100000) FROM messages WHERE id = h.id)
                             ELSE (SELECT title || CASE WHEN body_key_id IS NULL THEN ' ' || left(body, 100000) ELSE '' END FROM documents WHERE id = h.id) END,
                        '{MARK_START}{MARK_END}', ''),
                    q.q, {}),
                CASE WHEN h.kind = 'message' THEN (SELECT content_packed FROM messages WHERE id = h.id) END
         FROM hits h, q ORDER BY h.score, h.id",
        tsquery,
        parts.join(" UNION ALL "),
        q.limit,
        q.offset,
        headline_options(),
    );
    Some(sql)
}

pub(super) async fn search(conn: &mut PgConnection, q: &SearchQuery) -> Result<Vec<SearchHit>> {
    let Some(sql) = statement(q) else {
        return Ok(Vec::new());
    };
    let rows = build(&sql).fetch_all(&mut *conn).await.map_err(map_error)?;
    let mut hits = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut hit = hit(r)?;
        // A compressed body's words are indexed, but its text is not in `content`: its
        // snippet is made from the unpacked text, with the same function and options.
        if let Some(frame) = r.try_get::<Option<Vec<u8>>, _>(9).map_err(backend)? {
            let text = crate::packing::unpack(&frame)
                .map_err(|e| crate::StoreError::Backend(e.to_string()))?;
            let marked: Option<String> = build(&headline(q, text))
                .fetch_one(&mut *conn)
                .await
                .map_err(map_error)?
                .try_get(0)
                .map_err(backend)?;
            hit.snippet = Snippet::from_marked(&marked.unwrap_or_default());
        }
        hits.push(hit);
    }
    Ok(hits)
}

/// One hit as the statement answers it.
fn hit(r: &sqlx::postgres::PgRow) -> Result<SearchHit> {
    let kind: String = r.try_get(0).map_err(backend)?;
    Ok(SearchHit {
        kind: if kind == "message" {
            "message"
        } else {
            "document"
        },
        id: r.try_get::<Uuid, _>(1).map_err(backend)?,
        workspace_id: r.try_get::<Uuid, _>(2).map_err(backend)?,
        thread_id: r.try_get(3).map_err(backend)?,
        project_id: r.try_get(4).map_err(backend)?,
        title: r.try_get(5).map_err(backend)?,
        score: r.try_get(6).map_err(backend)?,
        created_at: r.try_get::<OffsetDateTime, _>(7).map_err(backend)?,
        snippet: Snippet::from_marked(
            &r.try_get::<Option<String>, _>(8)
                .map_err(backend)?
                .unwrap_or_default(),
        ),
    })
}
