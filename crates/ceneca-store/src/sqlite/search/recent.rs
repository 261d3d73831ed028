//! Full-text ranking bounded in the worst case: queries of very common words rank the most
//! recent matches only.
//!
//! FTS5's `bm25()` weighs each phrase of a query by how many rows contain it, and counts
//! them by reading every such row of the index; `ORDER BY rank` then scores every match. A
//! query of words that are in most messages therefore costs in proportion to the index, not
//! to the page (on a million messages: 830 ms for a word in 91% of them, 190 ms for a phrase
//! of two such words), and every tenant of the server pays it on the whole index.
//!
//! So each word of the query is first counted, most recent rows first, up to
//! `very_common` (the count stops there: a bounded read; a phrase counts as its rarest
//! word). If no phrase reaches it, FTS5 ranks all matches as before (exact): every phrase
//! then has a word in fewer rows than that, which bounds what FTS5 reads. Otherwise the
//! caller's `window` most recent matches (up to `tokens` tokens of text) are ranked here,
//! looked for among the index's `very_common` most recent matches within its `recent_rows`
//! most recent rows (see [`Bounds`]), with the same bm25 as FTS5's (k1 = 1.2, b = 0.75),
//! computed from what FTS5 keeps per row: the instances of each phrase (from
//! `highlight()`), the row's length in tokens (`_docsize`) and the index's row count and
//! total length (its averages record). A very common word's row count is estimated from
//! how far back its `very_common`-th most recent match lies; the others' are counted.
//!
//! The trade-off: for such a query, a match older than the window is not found, however
//! relevant — for a caller whose rows are few among the index's recent ones, other
//! tenants' writes push theirs out of it. A rarer word beside the common one narrows the
//! matches and finds them all. `ceneca bench text` measures both paths beside raw FTS5.

use ceneca_domain::search::{Term, ascii_pieces, folded_words, highlight, raw_words};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{Candidate, Target, fts5_query, hit_at, map_error};
use crate::Result;
use crate::search::{SNIPPET_SOURCE, SearchQuery, best_excerpt, phrase_words};
use crate::sql::Sql;

/// How far a query of very common words reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// A word in this many rows or more is very common; and a query with one looks for
    /// the caller's matches among the index's this many most recent matches...
    pub very_common: u64,
    /// ... within its this many most recent rows (a phrase of very common words that
    /// seldom stand together would otherwise make FTS5 read their whole lists).
    pub recent_rows: u64,
    /// How many of the caller's most recent matches are ranked: as deep as pages go, and
    /// the same for every page, so that pages never overlap...
    pub window: u64,
    /// ... and how many tokens and bytes of text they may hold at most (scoring reads
    /// each row's text, so long rows make a smaller window; the newest match is always
    /// ranked).
    pub tokens: u64,
    pub bytes: u64,
}

impl Bounds {
    pub(super) const DEFAULT: Bounds = Bounds {
        very_common: 10_000,
        recent_rows: 50_000,
        window: 1_100,
        tokens: 100_000,
        bytes: 2 << 20,
    };
}

/// FTS5's bm25 parameters.
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// A query with a very common word: each phrase's words (as [`highlight`] finds them) and
/// weight in bm25 (from how many rows contain it), the index's totals, and the oldest of
/// the index's `very_common` most recent matches when the query is that one word (`None`
/// when it is not known yet).
#[derive(Debug, Clone)]
pub(super) struct Common {
    words: Vec<Vec<String>>,
    weights: Vec<f64>,
    totals: Totals,
    floor: Option<i64>,
}

/// The index's row count and its rows' mean length in tokens, and its rowid range.
#[derive(Debug, Clone, Copy)]
struct Totals {
    rows: f64,
    mean_length: f64,
    first: i64,
    last: i64,
}

/// The query's phrases with their weights when one of them may be very common (each of its
/// words is): rank the recent window. `None` when none is (let FTS5 rank every match: each
/// phrase then has a word in fewer than `very_common` rows, which bounds what FTS5 reads),
/// or when the index's totals cannot be read (FTS5 then ranks too: slower, never wrong).
///
/// Words are counted, not phrases: a word's rows are read in rowid order and the count
/// stops at `very_common`, while a phrase of common words that seldom stand together would
/// be read to its end. A phrase is counted as its rarest word (at most as common).
pub(super) fn very_common(
    conn: &Connection,
    fts: &str,
    terms: &[Term],
    bounds: &Bounds,
) -> Result<Option<Common>> {
    let mut words: std::collections::HashMap<String, (i64, Option<i64>)> =
        std::collections::HashMap::new();
    let mut probe = conn
        .prepare_cached(&format!(
            "SELECT count(*), min(r) FROM (SELECT rowid AS r FROM {fts} WHERE {fts} MATCH ?1
             ORDER BY rowid DESC LIMIT ?2)"
        ))
        .map_err(map_error)?;
    let mut count_of = |word: &str| -> Result<(i64, Option<i64>)> {
        if let Some(counted) = words.get(word) {
            return Ok(*counted);
        }
        let term = Term {
            text: word.to_owned(),
            phrase: false,
        };
        let counted = probe
            .query_row(
                params![fts5_query(&[term]), bounds.very_common as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(map_error)?;
        words.insert(word.to_owned(), counted);
        Ok(counted)
    };
    // A phrase's count: its rarest word's (with the rowid of that word's oldest counted
    // match). A term with characters beyond ASCII is also as common as its most common
    // ASCII piece: should FTS5's tables split a word where this tokenizer does not, the
    // bound still holds (at worst the window ranks a query FTS5 could have ranked).
    let mut counted: Vec<(String, i64, Option<i64>)> = Vec::with_capacity(terms.len());
    for term in terms {
        let folded = folded_words(&term.text);
        let mut rarest: Option<(i64, Option<i64>)> = None;
        // Counted as written: FTS5 folds the word as it folded what it indexed.
        for word in raw_words(&term.text) {
            let c = count_of(&word.to_lowercase())?;
            if rarest.is_none_or(|r| c.0 < r.0) {
                rarest = Some(c);
            }
        }
        let (mut count, mut oldest) = rarest.unwrap_or((0, None));
        if !term.text.is_ascii() {
            for piece in ascii_pieces(&term.text) {
                let c = count_of(&piece)?;
                if c.0 > count {
                    (count, oldest) = c;
                }
            }
        }
        counted.push((folded, count, oldest));
    }
    if !counted
        .iter()
        .any(|(_, count, _)| *count as u64 >= bounds.very_common)
    {
        return Ok(None);
    }
    let Some(totals) = totals(conn, fts)? else {
        return Ok(None);
    };
    // One ASCII word alone: its probe found the oldest of its most recent matches already.
    let floor = match (counted.as_slice(), terms) {
        ([(folded, _, oldest)], [term]) if !folded.contains(' ') && term.text.is_ascii() => *oldest,
        _ => None,
    };
    let (words, weights) = counted
        .into_iter()
        .map(|(folded, count, oldest)| {
            let rows = match oldest {
                Some(oldest) if count as u64 >= bounds.very_common => {
                    estimated_rows(count, oldest, totals)
                }
                _ => count as f64,
            };
            let words = folded
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_owned);
            (words.collect(), weight(rows, totals.rows))
        })
        .unzip();
    Ok(Some(Common {
        words,
        weights,
        totals,
        floor,
    }))
}

/// The rows of the index holding a phrase whose `count`-th most recent match is at rowid
/// `oldest`: the matches' share of the rows after it, over the whole index (rowids grow
/// with time, so they stand for time).
///
/// At most a third of the rows: a burst of recent writes (one tenant's) makes a word look
/// more common than it is, and past half the rows bm25 would weigh it nothing at all.
fn estimated_rows(count: i64, oldest: i64, t: Totals) -> f64 {
    let span = (t.last - t.first + 1).max(1) as f64;
    let recent = (t.last - oldest + 1).clamp(1, t.last - t.first + 1) as f64;
    (count as f64 * span / recent).clamp(count as f64, (t.rows / 3.0).max(count as f64))
}

/// The index's totals: its averages record (row count, then each column's total tokens,
/// SQLite varints) and the first and last rowid of its size table.
fn totals(conn: &Connection, fts: &str) -> Result<Option<Totals>> {
    let block: Option<Vec<u8>> = conn
        .prepare_cached(&format!("SELECT block FROM {fts}_data WHERE id = 1"))
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(map_error)?;
    let Some(block) = block else { return Ok(None) };
    let mut values = Varints(&block);
    let Some(rows) = values.next().filter(|n| *n > 0) else {
        return Ok(None);
    };
    let tokens: u64 = values.sum();
    let (first, last): (Option<i64>, Option<i64>) = conn
        // Two subqueries: `min` and `max` in one select would scan the table.
        .prepare_cached(&format!(
            "SELECT (SELECT min(id) FROM {fts}_docsize), (SELECT max(id) FROM {fts}_docsize)"
        ))
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(map_error)?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(None);
    };
    Ok(Some(Totals {
        rows: rows as f64,
        mean_length: (tokens as f64 / rows as f64).max(1.0),
        first,
        last,
    }))
}

/// SQLite's variable-length integers, one after another (FTS5 writes its sizes so).
struct Varints<'a>(&'a [u8]);

impl Iterator for Varints<'_> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        let mut value: u64 = 0;
        for i in 0..9 {
            let byte = *self.0.get(i)?;
            if i == 8 {
                self.0 = &self.0[9..];
                return Some((value << 8) | u64::from(byte));
            }
            value = (value << 7) | u64::from(byte & 0x7f);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }
}

/// The best `offset + limit` of the caller's most recent matches of one kind, scored by
/// bm25; their snippets are made later, for the page's rows only.
pub(super) fn ranked(
    conn: &Connection,
    q: &SearchQuery,
    target: &Target,
    common: &Common,
    bounds: &Bounds,
) -> Result<Vec<Candidate>> {
    let wanted = u64::from(q.offset) + u64::from(q.limit);
    let Some(oldest) = window(conn, q, target, common, bounds)? else {
        return Ok(Vec::new());
    };
    let sql = window_rows(q, target, oldest);
    let mut stmt = conn.prepare_cached(&sql.text).map_err(map_error)?;
    let mut rows = stmt
        .query(params_from_iter(sql.params.iter()))
        .map_err(map_error)?;
    let mut scored = Vec::new();
    let columns = target.columns();
    while let Some(row) = rows.next().map_err(map_error)? {
        let sizes: Option<Vec<u8>> = row.get(7).map_err(map_error)?;
        let length: u64 = sizes.map_or(0, |s| Varints(&s).sum());
        let mut instances = vec![0u32; common.words.len()];
        let mut highlighted = Vec::with_capacity(columns);
        for c in 0..columns {
            let text: Option<String> = row.get(8 + c).map_err(map_error)?;
            let (column, counts) = highlight(text.as_deref().unwrap_or(""), &common.words);
            for (total, n) in instances.iter_mut().zip(counts) {
                *total += n;
            }
            highlighted.push(column);
        }
        let score = bm25(
            &instances,
            &common.weights,
            length as f64,
            common.totals.mean_length,
        );
        let mut candidate = hit_at(row, target.kind, -score)?;
        candidate.highlighted = Some(highlighted);
        scored.push(candidate);
    }
    // Best first, as FTS5's `rank`; the more recent first on equal scores, so pages agree.
    scored.sort_by(|a, b| {
        a.hit
            .score
            .total_cmp(&b.hit.score)
            .then_with(|| b.snippet_of.cmp(&a.snippet_of))
    });
    scored.truncate(wanted as usize);
    Ok(scored)
}

/// The oldest row to rank: of the caller's `bounds.window` most recent matches (fewer if
/// they hold more than `bounds.tokens` tokens) among the index's `bounds.very_common` most
/// recent matches in its `bounds.recent_rows` most recent rows. `None`: no match there.
fn window(
    conn: &Connection,
    q: &SearchQuery,
    target: &Target,
    common: &Common,
    bounds: &Bounds,
) -> Result<Option<i64>> {
    let fts = &target.fts;
    let recent = (common.totals.last - bounds.recent_rows as i64 + 1).max(common.totals.first);
    // The oldest of the index's most recent matches there: read in rowid order from the
    // index alone, stopping at it (the probe read it already for one word).
    let floor = match common.floor {
        Some(floor) => Some(floor),
        None => conn
            .prepare_cached(&format!(
                "SELECT rowid FROM {fts} WHERE {fts} MATCH ?1 AND rowid >= ?2
                 ORDER BY rowid DESC LIMIT 1 OFFSET ?3"
            ))
            .and_then(|mut s| {
                s.query_row(
                    params![fts5_query(&q.terms), recent, bounds.very_common as i64 - 1],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(map_error)?,
    }
    .map_or(recent, |floor: i64| floor.max(recent));
    // FTS5 gives the matches newest first, and reading stops at the window's end.
    let mut sql = target.select_matches(
        q,
        &format!(
            "{fts}.rowid, {}, {}",
            sizes_of(fts, &format!("{fts}.rowid")),
            target.bytes()
        ),
        &format!(" AND {fts}.rowid >= {floor}"),
    );
    sql.text = format!(
        "{} ORDER BY {fts}.rowid DESC LIMIT {}",
        sql.text, bounds.window
    );
    Ok(rows_within(conn, &sql, bounds)?.last().copied())
}

/// A row's sizes from the index's size table, as a subquery: a join would bring an `id`
/// column of its own, which the tenant filter's unqualified `id` would then be ambiguous
/// with.
fn sizes_of(fts: &str, rowid: &str) -> String {
    format!("(SELECT sz FROM {fts}_docsize WHERE {fts}_docsize.id = {rowid})")
}

/// The rowids `sql` selects (with each row's sizes and bytes), until their tokens or bytes
/// reach the bounds (the row that reaches them included).
fn rows_within(conn: &Connection, sql: &Sql, bounds: &Bounds) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(&sql.text).map_err(map_error)?;
    let mut rows = stmt
        .query(params_from_iter(sql.params.iter()))
        .map_err(map_error)?;
    let (mut out, mut tokens, mut bytes) = (Vec::new(), 0u64, 0u64);
    while let Some(row) = rows.next().map_err(map_error)? {
        out.push(row.get::<_, i64>(0).map_err(map_error)?);
        let sizes: Option<Vec<u8>> = row.get(1).map_err(map_error)?;
        tokens += sizes.map_or(0, |s| Varints(&s).sum::<u64>());
        bytes += row
            .get::<_, Option<i64>>(2)
            .map_err(map_error)?
            .unwrap_or(0)
            .max(0) as u64;
        if tokens >= bounds.tokens || bytes >= bounds.bytes {
            break;
        }
    }
    Ok(out)
}

/// The caller's matches from rowid `oldest` on, with what scoring them needs: the row's
/// sizes and the text of each column.
fn window_rows(q: &SearchQuery, target: &Target, oldest: i64) -> Sql {
    let fts = &target.fts;
    let texts: Vec<String> = target
        .column_names()
        .iter()
        .map(|c| format!("{fts}.{c}"))
        .collect();
    let columns = format!(
        "{}, {}, {}",
        target.hit_columns(),
        sizes_of(fts, &format!("{fts}.rowid")),
        texts.join(", ")
    );
    target.select_matches(q, &columns, &format!(" AND {fts}.rowid >= {oldest}"))
}

/// A phrase's weight in bm25 (its inverse document frequency), as FTS5 computes it.
fn weight(rows_with_it: f64, rows: f64) -> f64 {
    let idf = ((rows - rows_with_it + 0.5) / (rows_with_it + 0.5)).ln();
    if idf <= 0.0 { 1e-6 } else { idf }
}

/// bm25 of a row (higher is better), as FTS5's `bm25()` computes it with every column's
/// weight 1.
fn bm25(instances: &[u32], weights: &[f64], length: f64, mean_length: f64) -> f64 {
    let norm = K1 * (1.0 - B + B * length / mean_length);
    instances
        .iter()
        .zip(weights)
        .map(|(&tf, &idf)| {
            let tf = f64::from(tf);
            idf * tf * (K1 + 1.0) / (tf + norm)
        })
        .sum()
}

/// The snippets of the rows in `page`: cut from the highlighting the window already made,
/// or (FTS5 ranked the row) from the row's text, read by its rowid (no index lookup) up to
/// [`SNIPPET_SOURCE`] characters and highlighted here.
pub(super) fn fill_snippets(
    conn: &Connection,
    q: &SearchQuery,
    page: &mut [Candidate],
) -> Result<()> {
    let words = phrase_words(q.terms.iter().map(|t| t.text.as_str()));
    for candidate in page.iter_mut() {
        let Some(rowid) = candidate.snippet_of.take() else {
            continue;
        };
        let columns = match candidate.highlighted.take() {
            Some(columns) => columns,
            None => {
                let target = Target::of_kind(candidate.hit.kind);
                let fts = &target.fts;
                let texts: Vec<String> = target
                    .column_names()
                    .iter()
                    .map(|c| format!("substr({fts}.{c}, 1, {SNIPPET_SOURCE})"))
                    .collect();
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {} FROM {fts} WHERE rowid = ?1",
                        texts.join(", ")
                    ))
                    .map_err(map_error)?;
                let n = texts.len();
                let found: Option<Vec<Option<String>>> = stmt
                    .query_row([rowid], |r| (0..n).map(|c| r.get(c)).collect())
                    .optional()
                    .map_err(map_error)?;
                found
                    .unwrap_or_default()
                    .into_iter()
                    .map(|text| highlight(text.as_deref().unwrap_or(""), &words).0)
                    .collect()
            }
        };
        candidate.hit.snippet = best_excerpt(columns);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_read_as_sqlite_writes_them() {
        // 1, 127, 128 (0x81 0x00), 16384 (0x81 0x80 0x00), and a nine-byte one.
        let bytes = [
            0x01, 0x7f, 0x81, 0x00, 0x81, 0x80, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff,
        ];
        let values: Vec<u64> = Varints(&bytes).collect();
        assert_eq!(values, vec![1, 127, 128, 16384, u64::MAX]);
        // A truncated one ends the sequence.
        assert_eq!(Varints(&[0x05, 0x81]).collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn bm25_agrees_with_fts5() {
        // A table where FTS5's own bm25 can be read beside the one computed here.
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(body);
             INSERT INTO t (body) VALUES ('apple banana apple'), ('banana cherry'),
                 ('apple'), ('cherry cherry cherry banana apple'), ('date');",
        )
        .unwrap();
        let totals = totals(&conn, "t").unwrap().unwrap();
        assert_eq!(totals.rows, 5.0);
        assert_eq!((totals.first, totals.last), (1, 5));
        // "apple" is in 3 rows, "banana" in 3.
        let weights = [weight(3.0, 5.0), weight(3.0, 5.0)];
        let mut stmt = conn
            .prepare("SELECT rowid, bm25(t) FROM t WHERE t MATCH 'apple banana'")
            .unwrap();
        let theirs: Vec<(i64, f64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let lengths = [3.0, 2.0, 1.0, 5.0, 1.0];
        let instances = [[2, 1], [0, 1], [1, 0], [1, 1], [0, 0]];
        for (rowid, fts5) in theirs {
            let i = (rowid - 1) as usize;
            let ours = -bm25(&instances[i], &weights, lengths[i], totals.mean_length);
            assert!(
                (ours - fts5).abs() < 1e-9,
                "row {rowid}: ours {ours}, FTS5 {fts5}"
            );
        }
    }

    #[test]
    fn a_very_common_phrase_is_estimated_from_how_far_back_its_matches_go() {
        let t = Totals {
            rows: 1_000_000.0,
            mean_length: 24.0,
            first: 1,
            last: 1_000_000,
        };
        // 10,001 matches in the last 200,000 rows: about 5% of the rows.
        let n = estimated_rows(10_001, 800_001, t);
        assert!((n - 50_005.0).abs() < 1.0, "{n}");
        // Never more than a third of the rows, nor fewer than were counted.
        assert!((estimated_rows(10_001, 999_999, t) - 333_333.3).abs() < 1.0);
        let few = Totals {
            rows: 12_000.0,
            ..t
        };
        assert_eq!(estimated_rows(10_001, 999_999, few), 10_001.0);
    }
}
