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

fn statement(q: &SearchQuery) -> Option<Sql> {
    let mut sql = Sql::default();
    let tsquery: Vec<String> = q
        .terms
        .iter()
        .map(|t| {
            let p = bind(
                &PgDialect,
                &mut sql,
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
                    q.q, 'StartSel=\"{MARK_START}\", StopSel=\"{MARK_END}\", MaxWords=24, MinWords=8, MaxFragments=1, FragmentDelimiter=\" … \"')
         FROM hits h, q ORDER BY h.score, h.id",
        tsquery.join(" && "),
        parts.join(" UNION ALL "),
        q.limit,
        q.offset
    );
    Some(sql)
}

pub(super) async fn search(conn: &mut PgConnection, q: &SearchQuery) -> Result<Vec<SearchHit>> {
    let Some(sql) = statement(q) else {
        return Ok(Vec::new());
    };
    let rows = build(&sql).fetch_all(conn).await.map_err(map_error)?;
    rows.iter()
        .map(|r| {
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
        })
        .collect()
}
