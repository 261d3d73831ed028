//! Full-text search on SQLite: FTS5 `MATCH`, ranked by bm25 through FTS5's own
//! `ORDER BY rank`, with the caller's scope and the filters applied in the same query.
//!
//! Ordering by `rank` lets FTS5 sort the matches itself and SQLite stop after the page,
//! and the sorter never carries every match's columns. Messages and documents are two such
//! queries, merged by score; snippets are made for the page's rows only, cut from their
//! highlighted text (FTS5's `snippet()` is quadratic in a row's matches).
//!
//! That ranks every match, which for words in most rows costs in proportion to the index:
//! such queries rank the caller's most recent matches instead (`recent.rs`).

mod recent;

use recent::Bounds;

use ceneca_domain::Value;
use ceneca_domain::schema::Kind;
use ceneca_domain::search::{Snippet, Term};
use rusqlite::{Connection, params_from_iter};
use uuid::Uuid;

use super::{SqliteDialect, map_error, parse_time};
use crate::search::{SearchHit, SearchQuery, bind, filters};
use crate::sql::Sql;
use crate::{Result, StoreError};
use ceneca_domain::scope::ScopeFilter;

/// The FTS5 query for `terms`: each term a quoted phrase (quotes doubled inside), all
/// required. FTS5 operators in a user's query are thereby searched as text.
fn fts5_query(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.text.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One kind of searchable row: its table, its index and how a hit is read from it.
struct Target {
    kind: &'static str,
    messages: bool,
    table: &'static str,
    alias: &'static str,
    fts: String,
}

impl Target {
    fn new(messages: bool) -> Self {
        let (kind, table, alias) = if messages {
            ("message", "messages", "m")
        } else {
            ("document", "documents", "d")
        };
        Target {
            kind,
            messages,
            table,
            alias,
            fts: format!("{table}_fts"),
        }
    }

    fn of_kind(kind: &str) -> Self {
        Self::new(kind == "message")
    }

    fn scope<'q>(&self, q: &'q SearchQuery) -> &'q ScopeFilter {
        if self.messages {
            &q.message_scope
        } else {
            &q.document_scope
        }
    }

    /// The indexed columns (messages: content; documents: title and body).
    fn columns(&self) -> usize {
        if self.messages { 1 } else { 2 }
    }

    /// `SELECT columns` over the caller's matches of `q` of this kind (`rows`, a condition
    /// on `{fts}.rowid` starting with `AND`, narrows them): the one `FROM` and `WHERE` every
    /// query of the search shares, the caller's scope and the filters included.
    fn select_matches(&self, q: &SearchQuery, columns: &str, rows: &str) -> Sql {
        let mut sql = Sql::default();
        let matcher = bind(
            &SqliteDialect,
            &mut sql,
            Value::Text(fts5_query(&q.terms)),
            Kind::Text { max: usize::MAX },
        );
        let Target {
            fts, table, alias, ..
        } = self;
        let scope = crate::sql::scope_condition(&SqliteDialect, &mut sql, self.scope(q));
        let mut text = format!(
            "SELECT {columns} FROM {fts} JOIN {table} {alias} ON {alias}.rowid = {fts}.rowid
             WHERE {fts} MATCH {matcher}{rows} AND {scope}"
        );
        filters(&SqliteDialect, &mut sql, alias, q, &mut text, self.messages);
        sql.text = text;
        sql
    }

    /// The indexed columns' names.
    fn column_names(&self) -> &'static [&'static str] {
        if self.messages {
            &["content"]
        } else {
            &["title", "body"]
        }
    }

    /// A row's size in bytes, read from the table's header of each value (octet_length
    /// loads no text).
    fn bytes(&self) -> &'static str {
        if self.messages {
            "coalesce(octet_length(m.content), octet_length(m.content_packed), 0)"
        } else {
            "coalesce(octet_length(d.title), 0) + coalesce(octet_length(d.body), 0)"
        }
    }

    /// A hit's first seven columns, read by [`hit_at`]: id, workspace, thread, project,
    /// title, creation time and the row's rowid.
    fn hit_columns(&self) -> String {
        let fts = &self.fts;
        if self.messages {
            format!("m.id, m.workspace_id, m.thread_id, NULL, NULL, m.created_at, {fts}.rowid")
        } else {
            format!("d.id, d.workspace_id, NULL, d.project_id, d.title, d.created_at, {fts}.rowid")
        }
    }
}

/// A hit read from [`Target::hit_columns`], scored `score`, its snippet still to be made
/// from the row whose rowid it carries.
fn hit_at(row: &rusqlite::Row<'_>, kind: &'static str, score: f64) -> Result<Candidate> {
    let created: String = row.get(5).map_err(map_error)?;
    Ok(Candidate {
        hit: SearchHit {
            kind,
            id: uuid_at(row, 0)?.unwrap_or_default(),
            workspace_id: uuid_at(row, 1)?.unwrap_or_default(),
            thread_id: uuid_at(row, 2)?,
            project_id: uuid_at(row, 3)?,
            title: row.get(4).map_err(map_error)?,
            score,
            created_at: parse_time(&created)
                .ok_or_else(|| StoreError::Backend("bad created_at".into()))?,
            snippet: Snippet::default(),
        },
        snippet_of: Some(row.get(6).map_err(map_error)?),
        highlighted: None,
    })
}

/// A hit, the rowid whose snippet is still to be made (for the page's rows only, once the
/// kinds are merged), and its columns highlighted when the recent window read them.
struct Candidate {
    hit: SearchHit,
    snippet_of: Option<i64>,
    highlighted: Option<Vec<Snippet>>,
}

/// The best `offset + limit` hits of one kind, ranked by FTS5.
fn ranked(q: &SearchQuery, target: &Target) -> Sql {
    let fts = &target.fts;
    let columns = format!("{}, {fts}.rank", target.hit_columns());
    let mut sql = target.select_matches(q, &columns, "");
    sql.text = format!(
        "{} ORDER BY {fts}.rank LIMIT {}",
        sql.text,
        u64::from(q.limit) + u64::from(q.offset)
    );
    sql
}

fn uuid_at(row: &rusqlite::Row<'_>, i: usize) -> Result<Option<Uuid>> {
    let text: Option<String> = row.get(i).map_err(map_error)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|e| StoreError::Backend(e.to_string())))
        .transpose()
}

fn hits(conn: &Connection, sql: &Sql, kind: &'static str) -> Result<Vec<Candidate>> {
    let mut stmt = conn.prepare_cached(&sql.text).map_err(map_error)?;
    let mut rows = stmt
        .query(params_from_iter(sql.params.iter()))
        .map_err(map_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_error)? {
        out.push(hit_at(row, kind, row.get(7).map_err(map_error)?)?);
    }
    Ok(out)
}

/// The best `offset + limit` hits of one kind: ranked by FTS5 over every match, or over
/// the most recent ones when a term is very common (see `recent.rs`).
fn kind_hits(
    conn: &Connection,
    q: &SearchQuery,
    messages: bool,
    bounds: &Bounds,
) -> Result<Vec<Candidate>> {
    let target = Target::new(messages);
    match recent::very_common(conn, &target.fts, &q.terms, bounds)? {
        None => hits(conn, &ranked(q, &target), target.kind),
        Some(common) => recent::ranked(conn, q, &target, &common, bounds),
    }
}

pub(super) fn search(conn: &Connection, q: &SearchQuery) -> Result<Vec<SearchHit>> {
    bounded_search(conn, q, &Bounds::DEFAULT)
}

fn bounded_search(conn: &Connection, q: &SearchQuery, bounds: &Bounds) -> Result<Vec<SearchHit>> {
    let messages = if q.messages {
        kind_hits(conn, q, true, bounds)?
    } else {
        Vec::new()
    };
    let documents = if q.documents && q.thread_id.is_none() && q.author_id.is_none() {
        kind_hits(conn, q, false, bounds)?
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
        (Some(a), Some(b)) if b.hit.score < a.hit.score => d.next(),
        (Some(_), _) => m.next(),
        (None, _) => d.next(),
    } {
        merged.push(next);
    }
    let mut page: Vec<Candidate> = merged
        .into_iter()
        .skip(q.offset as usize)
        .take(q.limit as usize)
        .collect();
    recent::fill_snippets(conn, q, &mut page)?;
    Ok(page.into_iter().map(|c| c.hit).collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;
    use crate::sqlite::{SqliteStore, format_time, register_functions};
    use ceneca_domain::scope::ScopeFilter;
    use rusqlite::params;

    /// Small bounds, so that a few dozen rows take every path.
    const SMALL: Bounds = Bounds {
        very_common: 20,
        recent_rows: 1_000,
        window: 10,
        tokens: 1_000_000,
        bytes: 1 << 30,
    };

    struct World {
        _dir: tempfile::TempDir,
        conn: Connection,
        alice: Uuid,
        bob: Uuid,
    }

    /// Alice's workspace and Bob's, in one index: Bob's five "common" messages first, then
    /// Alice's best match (the word four times), sixty ordinary ones, and one recent one
    /// that says it twice.
    async fn world() -> (World, Vec<Uuid>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path, &StoreOptions::new("")).unwrap();
        crate::Store::migrate_up(&store).await.unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        register_functions(&conn).unwrap();
        let at = format_time(ceneca_domain::clock::now());
        let (alice, bob) = (ceneca_domain::new_id(), ceneca_domain::new_id());
        for ws in [alice, bob] {
            let user = ceneca_domain::new_id();
            let thread = ceneca_domain::new_id();
            conn.execute(
                "INSERT INTO users (id, created_at, updated_at, email, display_name, password_hash)
                 VALUES (?1, ?2, ?2, ?1 || '@example.com', 'u', 'x')",
                params![user.to_string(), at],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO workspaces (id, created_at, updated_at, name, owner_user_id)
                 VALUES (?1, ?2, ?2, 'w', ?3)",
                params![ws.to_string(), at, user.to_string()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO threads (id, created_at, updated_at, workspace_id, last_message_at)
                 VALUES (?1, ?2, ?2, ?3, ?2)",
                params![thread.to_string(), at, ws.to_string()],
            )
            .unwrap();
        }
        let w = World {
            _dir: dir,
            conn,
            alice,
            bob,
        };
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(add(&w, bob, &format!("common bob note {i}")));
        }
        ids.push(add(&w, alice, "common common common common zebra"));
        for i in 0..60 {
            // Lengths differ, so that scores do.
            let more = " more".repeat(i % 7);
            ids.push(add(&w, alice, &format!("common filler{i}{more}")));
        }
        ids.push(add(&w, alice, "common common recent"));
        (w, ids)
    }

    fn query(ws: Uuid, q: &str, limit: u32) -> SearchQuery {
        query_in(
            ScopeFilter::AnyOf(vec![("workspace_id", vec![ws])]),
            q,
            limit,
        )
    }

    fn query_in(scope: ScopeFilter, q: &str, limit: u32) -> SearchQuery {
        SearchQuery {
            terms: ceneca_domain::search::parse_query(q).unwrap(),
            message_scope: scope.clone(),
            document_scope: scope,
            messages: true,
            documents: false,
            workspace_id: None,
            project_id: None,
            thread_id: None,
            author_id: None,
            created_after: None,
            created_before: None,
            include_deleted: false,
            limit,
            offset: 0,
        }
    }

    #[tokio::test]
    async fn very_common_words_rank_the_callers_most_recent_matches_as_fts5_would() {
        let (w, ids) = world().await;
        let zebra = ids[5];
        let recent = *ids.last().unwrap();
        let hits = bounded_search(&w.conn, &query(w.alice, "common", 5), &SMALL).unwrap();
        assert_eq!(hits.len(), 5);
        assert_eq!(hits[0].id, recent, "the best of the ten most recent");
        // Only the window is ranked: the best match of all is older.
        assert!(hits.iter().all(|h| h.id != zebra));
        let window = &ids[ids.len() - 10..];
        assert!(hits.iter().all(|h| window.contains(&h.id)));
        assert!(hits.iter().all(|h| h.workspace_id == w.alice));
        assert!(hits[0].snippet.parts.contains(&(true, "common".into())));
        // In FTS5's own order over the same rows.
        let bm25 = |id: Uuid| -> f64 {
            w.conn
                .query_row(
                    "SELECT bm25(messages_fts) FROM messages_fts JOIN messages m
                         ON m.rowid = messages_fts.rowid
                     WHERE messages_fts MATCH 'common' AND m.id = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .unwrap()
        };
        let theirs: Vec<f64> = hits.iter().map(|h| bm25(h.id)).collect();
        assert!(
            theirs.windows(2).all(|p| p[0] <= p[1] + 1e-12),
            "{theirs:?}"
        );
        // Long rows make a smaller window: here the newest rows up to 10 tokens.
        let short = Bounds {
            tokens: 10,
            ..SMALL
        };
        let hits = bounded_search(&w.conn, &query(w.alice, "common", 5), &short).unwrap();
        assert!(!hits.is_empty() && hits.len() < 4, "{hits:?}");
        assert_eq!(hits[0].id, recent);
        assert!(hits.iter().all(|h| ids[ids.len() - 4..].contains(&h.id)));
        // Long rows make a smaller window by their bytes too (found by the second attack:
        // rows of a megabyte and two tokens were all read).
        let few_bytes = Bounds { bytes: 40, ..SMALL };
        let hits = bounded_search(&w.conn, &query(w.alice, "common", 5), &few_bytes).unwrap();
        assert!(!hits.is_empty() && hits.len() < 4, "{hits:?}");
        assert_eq!(hits[0].id, recent);
        // Without a very common word, FTS5 ranks every match: the best of all comes first.
        let exact =
            bounded_search(&w.conn, &query(w.alice, "common", 5), &Bounds::DEFAULT).unwrap();
        assert_eq!(exact[0].id, zebra);
    }

    #[tokio::test]
    async fn a_rare_word_beside_a_very_common_one_is_found_however_old() {
        let (w, ids) = world().await;
        let hits = bounded_search(&w.conn, &query(w.alice, "zebra common", 20), &SMALL).unwrap();
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![ids[5]]);
    }

    /// The trade-off, shown: a caller whose matches of a very common word all lie before
    /// the index's most recent matches finds none of them; a rarer word beside it finds
    /// them all.
    #[tokio::test]
    async fn a_caller_whose_matches_are_all_older_finds_them_with_a_rarer_word() {
        let (w, ids) = world().await;
        let bob = |q: &str| {
            let mut found: Vec<Uuid> = bounded_search(&w.conn, &query(w.bob, q, 20), &SMALL)
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            found.sort();
            found
        };
        assert!(bob("common").is_empty());
        assert_eq!(bob("common bob"), ids[..5].to_vec());
        // With no very common word, every match is ranked.
        assert_eq!(
            bounded_search(&w.conn, &query(w.bob, "common", 20), &Bounds::DEFAULT)
                .unwrap()
                .len(),
            5
        );
    }

    /// A phrase of very common words that seldom stand together takes the bounded path:
    /// counted as its rarest word, and looked for in the index's most recent rows only.
    #[tokio::test]
    async fn a_phrase_of_common_words_is_looked_for_in_recent_rows() {
        let (w, ids) = world().await;
        let hits = bounded_search(
            &w.conn,
            &query(w.alice, "\"common common recent\"", 5),
            &SMALL,
        )
        .unwrap();
        assert_eq!(
            hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![*ids.last().unwrap()]
        );
        // Only the index's `recent_rows` most recent rows: here the last three.
        let narrow = Bounds {
            recent_rows: 3,
            ..SMALL
        };
        let hits =
            bounded_search(&w.conn, &query(w.alice, "\"common common\"", 5), &narrow).unwrap();
        assert_eq!(
            hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![*ids.last().unwrap()]
        );
    }

    /// Adds a message to the thread of `ws`'s workspace in `w`; its id.
    fn add(w: &World, ws: Uuid, content: &str) -> Uuid {
        let (thread, author): (String, String) = w
            .conn
            .query_row(
                "SELECT t.id, wk.owner_user_id FROM threads t JOIN workspaces wk
                     ON wk.id = t.workspace_id WHERE t.workspace_id = ?1",
                [ws.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let id = ceneca_domain::new_id();
        w.conn
            .execute(
                "INSERT INTO messages (id, created_at, updated_at, thread_id, workspace_id, role,
                     author_id, content, token_count, metadata, compressed)
                 VALUES (?1, ?2, ?2, ?3, ?4, 'user', ?5, ?6, 1, '{}', 0)",
                params![
                    id.to_string(),
                    format_time(ceneca_domain::clock::now()),
                    thread,
                    ws.to_string(),
                    author,
                    content
                ],
            )
            .unwrap();
        id
    }

    /// Found by attack: a permission rule on one message put `id IN (…)` in the query,
    /// ambiguous beside the index's size table joined in: every search for a common word
    /// answered 500.
    #[tokio::test]
    async fn regression_a_permission_rule_on_one_item_does_not_break_the_search() {
        let (w, ids) = world().await;
        let denied = *ids.last().unwrap();
        let inner = ScopeFilter::AnyOf(vec![("workspace_id", vec![w.alice])]);
        let except = ScopeFilter::Except(
            Box::new(inner.clone()),
            vec![ceneca_domain::scope::ResourcesIn {
                workspace_id: w.alice,
                ids: vec![denied],
            }],
        );
        let hits = bounded_search(&w.conn, &query_in(except, "common", 5), &SMALL).unwrap();
        assert_eq!(hits.len(), 5);
        assert!(hits.iter().all(|h| h.id != denied));
        // A grant of one of Alice's messages to Bob: he reads it beside his own.
        let plus = ScopeFilter::Plus(
            Box::new(ScopeFilter::AnyOf(vec![("workspace_id", vec![w.bob])])),
            vec![ceneca_domain::scope::ResourcesIn {
                workspace_id: w.alice,
                ids: vec![denied],
            }],
        );
        let hits = bounded_search(&w.conn, &query_in(plus, "common", 20), &SMALL).unwrap();
        assert!(hits.iter().any(|h| h.id == denied), "{hits:?}");
        assert!(
            hits.iter()
                .all(|h| h.workspace_id == w.bob || h.id == denied)
        );
    }

    /// Found by attack: the window grew with the page asked for, so the last pages ranked
    /// more rows than the first and hits came back twice.
    #[tokio::test]
    async fn regression_pages_never_repeat_a_hit() {
        let (w, _) = world().await;
        for limit in [3, 4, 7] {
            let mut seen = std::collections::HashSet::new();
            let mut offset = 0;
            loop {
                let mut q = query(w.alice, "common", limit);
                q.offset = offset;
                let page = bounded_search(&w.conn, &q, &SMALL).unwrap();
                for hit in &page {
                    assert!(seen.insert(hit.id), "limit {limit}: {} twice", hit.id);
                }
                if page.len() < limit as usize {
                    break;
                }
                offset += limit;
            }
            assert_eq!(seen.len(), SMALL.window as usize, "limit {limit}");
        }
    }

    /// Found by attack: rows were charged against the window's token budget whether
    /// they matched or not, so one long message without the word hid every match of it.
    #[tokio::test]
    async fn regression_a_long_row_without_the_word_hides_no_match() {
        let (w, ids) = world().await;
        add(&w, w.alice, &"filler ".repeat(500));
        let tight = Bounds {
            tokens: 100,
            ..SMALL
        };
        let hits = bounded_search(&w.conn, &query(w.alice, "common", 20), &tight).unwrap();
        assert!(
            hits.iter().any(|h| h.id == *ids.last().unwrap()),
            "{hits:?}"
        );
    }

    /// Found by attack: FTS5's `snippet()` is quadratic in a row's matches (minutes for a
    /// message of one word repeated); snippets are now cut from the highlighted text.
    #[tokio::test]
    async fn regression_a_row_of_one_word_repeated_gets_a_short_snippet() {
        let (w, _) = world().await;
        let long = add(&w, w.alice, &"common ".repeat(20_000));
        for bounds in [SMALL, Bounds::DEFAULT] {
            let hits = bounded_search(&w.conn, &query(w.alice, "common", 5), &bounds).unwrap();
            let top = hits
                .iter()
                .find(|h| h.id == long)
                .expect("the long row ranks");
            assert_eq!(top.snippet.highlights(), 24, "{:?}", top.snippet);
        }
    }

    /// Found by attack: a word whose accents FTS5 folds ("café" for "cafe") counted for
    /// the first phrase of the query instead of its own.
    #[tokio::test]
    async fn regression_accents_count_for_their_own_phrase() {
        let (w, _) = world().await;
        let cafe = add(&w, w.alice, "Café common naïve");
        let plain = bounded_search(&w.conn, &query(w.alice, "common cafe", 5), &SMALL).unwrap();
        let accented = bounded_search(&w.conn, &query(w.alice, "common café", 5), &SMALL).unwrap();
        let score = |hits: &[SearchHit]| hits.iter().find(|h| h.id == cafe).unwrap().score;
        assert!((score(&plain) - score(&accented)).abs() < 1e-9);
        assert!(
            score(&plain) < -1.0,
            "cafe weighs as a rare word: {}",
            score(&plain)
        );
    }

    /// Found by the second attack: a combining mark between two common words made them one
    /// rare word to the count, while FTS5 searched the two common words and ranked every
    /// match (time growing with the index).
    #[tokio::test]
    async fn regression_a_mark_between_common_words_takes_the_bounded_path() {
        let (w, ids) = world().await;
        let recent = *ids.last().unwrap();
        // The last three rows only: the bounded path finds the recent row alone; FTS5
        // ranking every match would put the zebra row (three such pairs) first.
        let narrow = Bounds {
            recent_rows: 3,
            ..SMALL
        };
        for q in ["common\u{651}common", "commonⓐcommon"] {
            let hits = bounded_search(&w.conn, &query(w.alice, q, 5), &narrow).unwrap();
            assert_eq!(
                hits.iter().map(|h| h.id).collect::<Vec<_>>(),
                vec![recent],
                "{q}"
            );
        }
    }

    /// Found by the third attack: words were counted as decomposed ("мой" as "мои", a
    /// Hangul syllable as its letters), words no row holds, so common words in those
    /// scripts took the unbounded path.
    #[tokio::test]
    async fn regression_words_in_any_script_are_counted_as_fts5_folds_them() {
        let (w, _) = world().await;
        let mut added = Vec::new();
        for i in 0..25 {
            added.push(add(&w, w.alice, &format!("мой 안녕 がっこう {i}")));
        }
        let narrow = Bounds {
            recent_rows: 3,
            ..SMALL
        };
        for q in ["мой", "안녕", "がっこう"] {
            let hits = bounded_search(&w.conn, &query(w.alice, q, 5), &narrow).unwrap();
            assert!(!hits.is_empty(), "{q}");
            assert!(
                hits.iter()
                    .all(|h| added[added.len() - 3..].contains(&h.id)),
                "{q}: the bounded path ranks the last three rows only: {hits:?}"
            );
            assert!(
                hits[0].snippet.highlights() >= 1,
                "{q}: {:?}",
                hits[0].snippet
            );
        }
    }
}
