//! Full-text search on PostgreSQL: generated `tsvector` columns with GIN indexes,
//! `ts_rank_cd` ranking of the caller's most recent matches ([`RANKED_MATCHES`]), and
//! snippets highlighted in Rust for the page of hits only (`crate::search::snippet_of`).

use std::fmt::Write as _;

use ceneca_domain::Value;
use ceneca_domain::schema::Kind;
use sqlx::Row;
use sqlx::postgres::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{PgDialect, backend, build, map_error};
use crate::Result;
use crate::search::{
    SNIPPET_SOURCE, SearchHit, SearchQuery, bind, filters, phrase_words, snippet_of,
};
use crate::sql::{Dialect as _, Sql};

/// The query as PostgreSQL's own parser reads it: what a row must match, with each term
/// once.
///
/// Terms are compared by the `tsquery` PostgreSQL makes of them, not by their text:
/// "babe", "Babe," and "(babe)" are one word to it, and each copy of a word made the
/// planner count the query rarer, so that it read every match through the GIN index
/// instead of walking the most recent rows (1.8 s for a phrase repeating two common words
/// behind punctuation, 30 s before ranking came after the limit; findings of the attack
/// on bounded search).
#[derive(Debug)]
struct Parsed {
    /// Each distinct term's `tsquery`, as PostgreSQL writes it (valid `tsquery` input).
    terms: Vec<String>,
    /// Whether a term is a phrase: the rows are then found by their words and the
    /// phrases checked among the most recent of them.
    phrases: bool,
    /// Every distinct word of the query, phrases taken apart, as one `tsquery`: the rows
    /// the query can match at all (and, without phrases, exactly those).
    words: String,
}

impl Parsed {
    async fn of(conn: &mut PgConnection, q: &SearchQuery) -> Result<Option<Parsed>> {
        let texts: Vec<&str> = q.terms.iter().map(|t| t.text.as_str()).collect();
        let phrases: Vec<bool> = q.terms.iter().map(|t| t.phrase).collect();
        let (terms, words): (Vec<String>, Vec<String>) = sqlx::query_as(
            "SELECT array(SELECT CASE WHEN u.p THEN phraseto_tsquery('simple', u.t)
                                      ELSE plainto_tsquery('simple', u.t) END::text
                          FROM unnest($1::text[], $2::bool[]) WITH ORDINALITY AS u(t, p, i)
                          ORDER BY u.i),
                    array(SELECT DISTINCT w FROM unnest($1::text[]) AS t,
                                 unnest(tsvector_to_array(to_tsvector('simple', t))) AS w
                          ORDER BY w)",
        )
        .bind(&texts)
        .bind(&phrases)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_error)?;
        let mut seen = std::collections::HashSet::new();
        let terms: Vec<String> = terms
            .into_iter()
            .filter(|t| !t.is_empty() && seen.insert(t.clone()))
            .collect();
        if terms.is_empty() || words.is_empty() {
            return Ok(None);
        }
        Ok(Some(Parsed {
            phrases: q.terms.iter().any(|t| t.phrase),
            words: words
                .iter()
                .map(|w| format!("'{}'", w.replace('\\', "\\\\").replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(" & "),
            terms,
        }))
    }

    /// The whole query as one `tsquery` expression, bound into `sql`.
    fn tsquery(&self, sql: &mut Sql) -> String {
        self.terms
            .iter()
            .map(|t| format!("{}::tsquery", bind_text(sql, t)))
            .collect::<Vec<_>>()
            .join(" && ")
    }

    /// Its words as one `tsquery`, bound into `sql`.
    fn words(&self, sql: &mut Sql) -> String {
        format!("{}::tsquery", bind_text(sql, &self.words))
    }
}

fn bind_text(sql: &mut Sql, text: &str) -> String {
    bind(
        &PgDialect,
        sql,
        Value::Text(text.to_owned()),
        Kind::Text { max: usize::MAX },
    )
}

/// How many of the caller's matches of each kind are ranked: the most recent ones.
///
/// Ranking reads every ranked row's `tsvector`, so ranking all matches of a word in most
/// rows costs in proportion to the caller's data (0.7 s for a word in 90% of a million
/// messages). The newest matches are found by walking an index backwards — messages by
/// creation time (`messages__created_at__id`, or the thread's, workspace's or author's
/// index when the search names one), documents by id (UUIDv7, in creation order) — which
/// stops after this many when the words are common; the planner reads a rarer word's
/// matches from its GIN index instead, and ranks them all when there are fewer than this.
/// Ranking comes after the limit, whichever way the rows were found.
///
/// Messages are walked by time so that a date filter starts or ends the walk where its
/// dates are: the planner cannot know that ids and times go together, and walking the
/// ids read every newer row for `created_before` (a finding of the attack on bounded
/// search). The planner sees the words' frequency only when the `tsquery` is a constant
/// where the rows are matched, so the statement is planned for its own values every time
/// (never a generic plan).
pub(crate) const RANKED_MATCHES: u32 = 2_000;

/// How many of the caller's most recent rows holding every word of a query's phrases are
/// looked at for the phrases. The planner counts a phrase as common as its words are
/// together, so a phrase of common words that seldom stand side by side would have the
/// walk above read most rows (0.4 s for four common words, a million messages); the
/// phrases are checked in these rows only, and every match among them is ranked.
pub(crate) const PHRASE_CANDIDATES: u32 = 10_000;

/// The most threads a project filter names to the planner; a project with more is
/// matched by a subquery (its messages are then many, and walking them is what the
/// planner does anyway).
const PROJECT_THREADS: i64 = 1_000;

/// The caller's most recent matches among `table`'s rows (aliased `alias`), with
/// `columns` and the score, the filters applied: the [`RANKED_MATCHES`] most recent rows
/// with all the query's words, or for a query with phrases, those of the
/// [`PHRASE_CANDIDATES`] most recent such rows that hold the phrases. A message is in the project when its thread is one of
/// `project_threads`.
fn recent_matches(
    sql: &mut Sql,
    q: &SearchQuery,
    (tsquery, words, phrases): (&str, &str, bool),
    (table, alias): (&str, &str),
    columns: &str,
    project_threads: Option<&[Uuid]>,
) -> String {
    let messages = table == "messages";
    let scope = if messages {
        &q.message_scope
    } else {
        &q.document_scope
    };
    let scope = crate::sql::scope_condition(&PgDialect, sql, scope);
    let mut rows = format!("FROM {table} {alias} WHERE {alias}.search @@ {words}");
    write!(rows, " AND {scope}").ok();
    match project_threads.filter(|_| messages) {
        Some(threads) => {
            let q = SearchQuery {
                project_id: None,
                ..q.clone()
            };
            filters(&PgDialect, sql, alias, &q, &mut rows, messages);
            let p = bind(&PgDialect, sql, Value::IdSet(threads.to_vec()), Kind::Uuid);
            write!(
                rows,
                " AND {}",
                PgDialect.in_set(&format!("{alias}.thread_id"), &p)
            )
            .ok();
        }
        None => filters(&PgDialect, sql, alias, q, &mut rows, messages),
    }
    // Ranked after the limit, so that ranking costs the rows kept, whatever plan finds
    // them: the planner may read every match through the GIN index when it counts the
    // words as rarer than they are (a finding of the attack on bounded search: 30 s for a
    // query repeating two common words, every match ranked before the limit).
    let score = format!("(-ts_rank_cd({alias}.search, {tsquery}))::float8");
    let newest_first = if messages {
        format!("{alias}.created_at DESC, {alias}.id DESC")
    } else {
        format!("{alias}.id DESC")
    };
    // Without phrases, the words are the query.
    let (limit, phrases) = if phrases {
        (
            PHRASE_CANDIDATES,
            format!(" WHERE {alias}.search @@ ({tsquery})"),
        )
    } else {
        (RANKED_MATCHES, String::new())
    };
    format!(
        "SELECT {alias}.*, {score} AS score FROM (
             SELECT {columns}, {alias}.search {rows} ORDER BY {newest_first} LIMIT {limit}
         ) {alias}{phrases}"
    )
}

/// The search's statement; `project_threads` are the threads of the project it is
/// confined to, if it is and they are few.
fn statement(q: &SearchQuery, parsed: &Parsed, project_threads: Option<&[Uuid]>) -> Option<Sql> {
    let mut sql = Sql::default();
    let tsquery = parsed.tsquery(&mut sql);
    let words = parsed.words(&mut sql);
    let matching = (tsquery.as_str(), words.as_str(), parsed.phrases);
    let mut parts = Vec::new();
    if q.messages {
        let recent = recent_matches(
            &mut sql,
            q,
            matching,
            ("messages", "m"),
            "m.id, m.workspace_id, m.thread_id, m.created_at",
            project_threads,
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
            None,
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
    // The page's texts, cut, to be highlighted in Rust: a message's content (or its
    // packed body, unpacked there), a document's title and its body when stored plain.
    sql.text = format!(
        "WITH hits AS ({} ORDER BY score, id LIMIT {} OFFSET {})
         SELECT h.kind, h.id, h.workspace_id, h.thread_id, h.project_id, h.title, h.score, h.created_at,
                CASE WHEN h.kind = 'message' THEN (SELECT left(content, {SNIPPET_SOURCE}) FROM messages WHERE id = h.id)
                     ELSE h.title END,
                CASE WHEN h.kind = 'document' THEN (SELECT CASE WHEN body_key_id IS NULL THEN left(body, {SNIPPET_SOURCE}) END FROM documents WHERE id = h.id) END,
                CASE WHEN h.kind = 'message' THEN (SELECT content_packed FROM messages WHERE id = h.id) END
         FROM hits h ORDER BY h.score, h.id",
        parts.join(" UNION ALL "),
        q.limit,
        q.offset,
    );
    Some(sql)
}

pub(super) async fn search(conn: &mut PgConnection, q: &SearchQuery) -> Result<Vec<SearchHit>> {
    let Some(parsed) = Parsed::of(&mut *conn, q).await? else {
        return Ok(Vec::new());
    };
    // A project's messages are those of its threads. Named to the planner as the threads
    // themselves, it weighs how many rows they hold; as a subquery it cannot, and walks
    // every row of the caller's for a small or empty project (a finding of the attack on
    // bounded search: 0.3 s on a million messages).
    let project_threads: Option<Vec<Uuid>> = match q.project_id {
        Some(project) if q.messages => {
            let threads: Vec<Uuid> =
                sqlx::query_scalar("SELECT id FROM threads WHERE project_id = $1 LIMIT $2")
                    .bind(project)
                    .bind(PROJECT_THREADS + 1)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(map_error)?;
            (threads.len() as i64 <= PROJECT_THREADS).then_some(threads)
        }
        _ => None,
    };
    let Some(sql) = statement(q, &parsed, project_threads.as_deref()) else {
        return Ok(Vec::new());
    };
    // Not kept as a prepared statement: a kept one may be given a generic plan, which
    // cannot tell a common word from a rare one (see [`RANKED_MATCHES`]).
    let rows = build(&sql)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_error)?;
    let phrases = phrase_words(q.terms.iter().map(|t| t.text.as_str()));
    rows.iter().map(|r| hit(r, &phrases)).collect()
}

/// One hit as the statement answers it, its snippet highlighted for `phrases`.
fn hit(r: &sqlx::postgres::PgRow, phrases: &[Vec<String>]) -> Result<SearchHit> {
    let kind: String = r.try_get(0).map_err(backend)?;
    let first: Option<String> = r.try_get(8).map_err(backend)?;
    let second: Option<String> = r.try_get(9).map_err(backend)?;
    // A packed body's words are indexed, but its text is not in `content`.
    let unpacked = match r.try_get::<Option<Vec<u8>>, _>(10).map_err(backend)? {
        Some(frame) => Some(
            crate::packing::unpack(&frame)
                .map_err(|e| crate::StoreError::Backend(e.to_string()))?,
        ),
        None => None,
    };
    let texts = match kind.as_str() {
        "message" => vec![unpacked.as_deref().or(first.as_deref())],
        _ => vec![first.as_deref(), second.as_deref()],
    };
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
        snippet: snippet_of(&texts, phrases),
    })
}
