//! Full-text search on PostgreSQL: generated `tsvector` columns with GIN indexes,
//! `ts_rank_cd` ranking of the caller's most recent matches ([`RANKED_MATCHES`]), and
//! `ts_headline` snippets computed for the page of hits only.

use std::fmt::Write as _;

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
    tsquery_of(sql, q, true)
}

/// The same, each phrase relaxed to its words (`None` when the query has no phrase): the
/// rows it matches are those a phrase can match at all.
fn words_tsquery(sql: &mut Sql, q: &SearchQuery) -> Option<String> {
    q.terms
        .iter()
        .any(|t| t.phrase)
        .then(|| tsquery_of(sql, q, false))
}

fn tsquery_of(sql: &mut Sql, q: &SearchQuery, phrases: bool) -> String {
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
            let function = if t.phrase && phrases {
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

/// How many of the caller's matches of each kind are ranked: the most recent ones.
///
/// Ranking reads every ranked row's `tsvector`, so ranking all matches of a word in most
/// rows costs in proportion to the caller's data (0.7 s for a word in 90% of a million
/// messages). The newest matches are found by walking the primary key backwards (ids are
/// UUIDv7, in creation order), which stops after this many when the word is common; the
/// planner reads a rarer word's matches from its GIN index instead, and ranks them all
/// when there are fewer than this. It sees the word's frequency only when the `tsquery`
/// is a constant where the rows are matched, so the statement is planned for its own
/// values every time (never a generic plan) and the `tsquery` is written inline there.
pub(crate) const RANKED_MATCHES: u32 = 2_000;

/// How many of the caller's most recent rows holding every word of a query's phrases are
/// looked at for the phrases. The planner counts a phrase as common as its words are
/// together, so a phrase of common words that seldom stand side by side would have the
/// walk above read most rows (0.4 s for four common words, a million messages); the
/// phrases are checked in these rows only, and every match among them is ranked.
pub(crate) const PHRASE_CANDIDATES: u32 = 10_000;

/// The caller's most recent matches among `table`'s rows (aliased `alias`), with
/// `columns` and the score, the filters applied: the [`RANKED_MATCHES`] most recent, or
/// for a query with phrases, those among the [`PHRASE_CANDIDATES`] most recent rows with
/// all its words.
fn recent_matches(
    sql: &mut Sql,
    q: &SearchQuery,
    (tsquery, words): (&str, Option<&str>),
    (table, alias): (&str, &str),
    columns: &str,
    messages: bool,
) -> String {
    let scope = if messages {
        &q.message_scope
    } else {
        &q.document_scope
    };
    let scope = crate::sql::scope_condition(&PgDialect, sql, scope);
    let mut rows = format!(
        "FROM {table} {alias} WHERE {alias}.search @@ ({})",
        words.unwrap_or(tsquery)
    );
    write!(rows, " AND {scope}").ok();
    filters(&PgDialect, sql, alias, q, &mut rows, messages);
    let score = format!("(-ts_rank_cd({alias}.search, {tsquery}))::float8");
    match words {
        None => format!(
            "SELECT {columns}, {score} AS score {rows} ORDER BY {alias}.id DESC LIMIT {RANKED_MATCHES}"
        ),
        // The phrase is checked and scored in the same projection, computed once per
        // candidate and before any sort, so no `tsvector` is carried through one.
        Some(_) => format!(
            "SELECT * FROM (
                 SELECT {columns}, {alias}.search @@ ({tsquery}) AS hit,
                        CASE WHEN {alias}.search @@ ({tsquery}) THEN {score} END AS score
                 {rows} ORDER BY {alias}.id DESC LIMIT {PHRASE_CANDIDATES}
             ) {alias} WHERE {alias}.hit"
        ),
    }
}

fn statement(q: &SearchQuery) -> Option<Sql> {
    let mut sql = Sql::default();
    let tsquery = tsquery(&mut sql, q);
    let words = words_tsquery(&mut sql, q);
    let matching = (tsquery.as_str(), words.as_deref());
    let mut parts = Vec::new();
    if q.messages {
        let recent = recent_matches(
            &mut sql,
            q,
            matching,
            ("messages", "m"),
            "m.id, m.workspace_id, m.thread_id, m.created_at",
            true,
        );
        parts.push(format!(
            "SELECT 'message'::text AS kind, m.id, m.workspace_id, m.thread_id, NULL::uuid AS project_id,
                    NULL::text AS title, m.score, m.created_at
             FROM ({recent}) m"
        ));
    }
    if q.documents && q.thread_id.is_none() && q.author_id.is_none() {
        let recent = recent_matches(
            &mut sql,
            q,
            matching,
            ("documents", "d"),
            "d.id, d.workspace_id, d.project_id, d.title, d.created_at",
            false,
        );
        parts.push(format!(
            "SELECT 'document'::text AS kind, d.id, d.workspace_id, NULL::uuid AS thread_id, d.project_id,
                    d.title, d.score, d.created_at
             FROM ({recent}) d"
        ));
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
    // Not kept as a prepared statement: a kept one may be given a generic plan, which
    // cannot tell a common word from a rare one (see [`RANKED_MATCHES`]).
    let rows = build(&sql)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_error)?;
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
