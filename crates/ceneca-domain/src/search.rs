//! Search queries as users type them, turned into terms no engine can choke on.
//!
//! Users write words and "quoted phrases". Engine query syntax (FTS5 operators, `tsquery`
//! symbols) is never passed through: each engine quotes every term in its own syntax (a quoted
//! FTS5 phrase on SQLite, `plainto_tsquery`/`phraseto_tsquery` on PostgreSQL), so quotes, operators, parentheses
//! and stray symbols in a query are searched as text, and a query can never be a syntax
//! error.

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;
/// The most terms one query may have.
pub const MAX_TERMS: usize = 32;
/// Words in one quoted phrase at most: matching a phrase costs a row's words times the
/// phrase's (a finding of the third attack: 23 s for a phrase of 499 words).
pub const MAX_PHRASE_WORDS: usize = 16;

/// One search term: a word or a phrase (several words in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    pub phrase: bool,
}

/// Splits a query into terms; all terms must match (AND). Explains what is wrong with an
/// empty or unusable query.
pub fn parse_query(query: &str) -> Result<Vec<Term>, String> {
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(format!("q must be at most {MAX_QUERY_CHARS} characters"));
    }
    if query.contains('\0') {
        return Err("q must not contain NUL characters".into());
    }
    let mut terms = Vec::new();
    for (i, part) in query.split('"').enumerate() {
        // Odd parts were inside quotes (an unbalanced quote runs to the end).
        if i % 2 == 1 {
            let words: Vec<&str> = part.split_whitespace().filter(|w| searchable(w)).collect();
            match words.len() {
                0 => {}
                1 => terms.push(Term {
                    text: words[0].to_owned(),
                    phrase: false,
                }),
                _ => terms.push(Term {
                    text: words.join(" "),
                    phrase: true,
                }),
            }
        } else {
            for word in part.split_whitespace().filter(|w| searchable(w)) {
                terms.push(Term {
                    text: word.to_owned(),
                    phrase: false,
                });
            }
        }
    }
    if terms.is_empty() {
        return Err("q must contain at least one word to search for".into());
    }
    // A repeated term matches no other rows, but each copy costs an engine another pass
    // over its matches, and PostgreSQL's planner counts each copy as making the query
    // rarer: "babe bebe" sixteen times took 30 s (a finding of the attack on bounded
    // search). The first of each is kept. Only the same text is the same term here: each
    // engine folds case and punctuation its own way (a capital sigma is not a small one to
    // PostgreSQL), and PostgreSQL drops what its parser reads the same (`postgres/search.rs`).
    let mut seen = std::collections::HashSet::new();
    terms.retain(|t| seen.insert((t.text.clone(), t.phrase)));
    if terms.len() > MAX_TERMS {
        return Err(format!("q may have at most {MAX_TERMS} words or phrases"));
    }
    if terms
        .iter()
        .any(|t| raw_words(&t.text).len() > MAX_PHRASE_WORDS)
    {
        return Err(format!(
            "a quoted phrase (or a word joined by punctuation) in q may have at most \
             {MAX_PHRASE_WORDS} words"
        ));
    }
    Ok(terms)
}

/// A text's words as FTS5's `unicode61` tokenizer makes them: the runs of letters, digits
/// and private-use characters (general categories L, N and Co, with the combining
/// diacritics U+0300–U+036F inside a word; any other mark or character separates words),
/// each in lower case with its accents removed (as `remove_diacritics`), joined by one
/// space. It tells which of a query's phrases a
/// highlighted piece of text is, and which words of a query to count.
pub fn folded_words(text: &str) -> String {
    WORD.find_iter(text)
        .map(|word| fold(word.as_str()))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` with every instance of `phrases` (each its words as [`folded_words`] gives them)
/// highlighted, overlapping instances as one, and each phrase's count of instances.
///
/// Done here rather than by FTS5's `highlight()`, which rebuilds its whole output for
/// each piece it adds: quadratic in a row's matches (seconds for a message that repeats a
/// word a hundred thousand times); this is linear in the text.
pub fn highlight(text: &str, phrases: &[Vec<String>]) -> (Snippet, Vec<u32>) {
    let words: Vec<(usize, usize, String)> = WORD
        .find_iter(text)
        .map(|m| (m.start(), m.end(), fold(m.as_str())))
        .filter(|(_, _, w)| !w.is_empty())
        .collect();
    let mut counts = vec![0u32; phrases.len()];
    let mut spans: Vec<(usize, usize)> = Vec::new();
    // The phrases by their first word: one look-up per word of the text.
    let mut starting: std::collections::HashMap<&str, Vec<usize>> =
        std::collections::HashMap::new();
    for (p, phrase) in phrases.iter().enumerate() {
        if let Some(first) = phrase.first() {
            starting.entry(first.as_str()).or_default().push(p);
        }
    }
    for i in 0..words.len() {
        let Some(candidates) = starting.get(words[i].2.as_str()) else {
            continue;
        };
        for &p in candidates {
            let phrase = &phrases[p];
            let n = phrase.len();
            if i + n > words.len() {
                continue;
            }
            if words[i..i + n].iter().zip(phrase).all(|(w, p)| w.2 == *p) {
                counts[p] += 1;
                let (start, end) = (words[i].0, words[i + n - 1].1);
                match spans.last_mut() {
                    Some(last) if start <= last.1 => last.1 = last.1.max(end),
                    _ => spans.push((start, end)),
                }
            }
        }
    }
    let mut parts = Vec::with_capacity(2 * spans.len() + 1);
    let mut at = 0;
    for (start, end) in spans {
        if start > at {
            parts.push((false, text[at..start].to_owned()));
        }
        parts.push((true, text[start..end].to_owned()));
        at = end;
    }
    if at < text.len() {
        parts.push((false, text[at..].to_owned()));
    }
    (Snippet { parts }, counts)
}

static WORD: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"[\p{L}\p{N}\p{Co}\x{300}-\x{36F}]+").expect("a valid pattern")
});

/// A text's words as the tokenizer splits them, as written: counting them through FTS5
/// lets FTS5 fold them exactly as it folded what it indexed.
pub fn raw_words(text: &str) -> Vec<&str> {
    WORD.find_iter(text).map(|m| m.as_str()).collect()
}

/// The pieces of a text between any characters but ASCII letters and digits, folded: a
/// tokenizer built on older Unicode tables than this one may split a word where a newer
/// letter stands, and whoever counts words to bound a search must count those pieces too.
///
/// Both with accents removed first (so "lorém" gives "lorem") and without (so a mark
/// between two words still parts them).
pub fn ascii_pieces(text: &str) -> Vec<String> {
    let mut pieces: Vec<String> = [fold(text), text.to_lowercase()]
        .iter()
        .flat_map(|t| {
            t.split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    pieces.sort();
    pieces.dedup();
    pieces
}

/// Lower case, accents removed.
///
/// As FTS5 folds: a letter whose decomposition is a Latin letter and marks becomes the
/// letter ("é" to "e"), the combining diacritics are dropped, and nothing else is taken
/// apart (a Hangul syllable, "й" or "が" stay whole: decomposing them would name other
/// words); every sigma is "σ".
fn fold(text: &str) -> String {
    use unicode_normalization::char::{decompose_canonical, is_combining_mark};
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if COMBINING_DIACRITICS.contains(&c) {
            continue;
        }
        let mut parts = Vec::with_capacity(2);
        decompose_canonical(c, |d| parts.push(d));
        let base = match parts.split_first() {
            Some((&first, rest))
                if first.is_ascii_alphabetic() && rest.iter().all(|m| is_combining_mark(*m)) =>
            {
                first
            }
            _ => c,
        };
        for lower in base.to_lowercase() {
            out.push(if lower == 'ς' { 'σ' } else { lower });
        }
    }
    out
}

/// The marks FTS5's tokenizer keeps inside a word (and drops when it removes diacritics).
const COMBINING_DIACRITICS: std::ops::RangeInclusive<char> = '\u{300}'..='\u{36F}';

/// A term the tokenizers of both engines keep: it has a letter or digit.
fn searchable(word: &str) -> bool {
    word.chars().any(char::is_alphanumeric)
}

/// Where the engines mark the start of a matched word in a snippet: a private-use
/// character, so that engine output can be told apart from stored text (see [`Snippet`]).
pub const MARK_START: char = '\u{E000}';
/// Where the engines mark the end of a matched word.
pub const MARK_END: char = '\u{E001}';

/// A search snippet: stored text in pieces, each highlighted or not.
///
/// Engines return snippets as text with markers inserted around matches. If the markers
/// were `<mark>` tags, stored text could not be told apart from them: `<script>` in a
/// message would reach a client as markup next to Ceneca's own tags. So engines mark
/// with [`MARK_START`]/[`MARK_END`], the pieces are recovered here, and [`Snippet::to_html`]
/// escapes every piece of text and adds the only tags, `<mark>` and `</mark>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snippet {
    /// (highlighted, text), in order.
    pub parts: Vec<(bool, String)>,
}

impl Snippet {
    /// A snippet from an engine whose input could not contain the markers (they were
    /// removed from the text before highlighting), so every marker is the engine's.
    pub fn from_marked(marked: &str) -> Self {
        let mut b = Builder::default();
        for c in marked.chars() {
            b.push(c, true);
        }
        b.finish()
    }

    /// A snippet from the same engine call made twice, once with the markers (`marked`)
    /// and once with empty ones (`plain`). The text is `plain`, exactly, whatever it holds
    /// (markers included); a character of `marked` that is not the next one of `plain` is
    /// a marker the engine inserted. If the two do not line up (they always do), the
    /// plain text is returned unhighlighted.
    pub fn from_marked_and_plain(marked: &str, plain: &str) -> Self {
        let mut b = Builder::default();
        let mut text = plain.chars().peekable();
        for c in marked.chars() {
            if text.peek() == Some(&c) {
                text.next();
                b.push(c, false);
            } else if c == MARK_START || c == MARK_END {
                b.push(c, true);
            } else {
                return Self::unhighlighted(plain);
            }
        }
        if text.next().is_some() {
            return Self::unhighlighted(plain);
        }
        b.finish()
    }

    /// The stretch of the text around its highlighted words: at most `words` words, the
    /// first stretch that holds as many highlighted words as any (starting a few words
    /// before its first), with "…" where text was cut.
    ///
    /// Snippets are cut here from an engine's whole-text highlighting: FTS5's own
    /// `snippet()` takes time quadratic in a row's matches (minutes for a message that
    /// repeats a word a hundred thousand times), highlighting is linear.
    pub fn excerpt(&self, words: usize) -> Snippet {
        const LEAD: usize = 3;
        let words = words.max(1);
        // Tokens: a word with what follows it up to the next word (punctuation counts as a
        // separator, as it does for the engines), highlighted or not.
        let tokens: Vec<(bool, &str)> = self
            .parts
            .iter()
            .flat_map(|(marked, text)| word_pieces(text).map(move |piece| (*marked, piece)))
            .collect();
        // The tokens that are words (hold a letter or digit), and how many highlighted
        // words come before each.
        let word_at: Vec<usize> = (0..tokens.len())
            .filter(|&i| tokens[i].1.chars().any(char::is_alphanumeric))
            .collect();
        let mut marked_before = Vec::with_capacity(word_at.len() + 1);
        marked_before.push(0usize);
        for &i in &word_at {
            marked_before
                .push(marked_before.last().copied().unwrap_or(0) + usize::from(tokens[i].0));
        }
        let marked_in = |start: usize| {
            let end = (start + words).min(word_at.len());
            marked_before[end] - marked_before[start]
        };
        let mut start = 0;
        let mut best = 0;
        for (w, &i) in word_at.iter().enumerate() {
            if tokens[i].0 {
                let candidate = w.saturating_sub(LEAD);
                let found = marked_in(candidate);
                if found > best {
                    (start, best) = (candidate, found);
                }
            }
        }
        // A stretch near the end starts earlier, so that it holds `words` words if it can.
        let start = start.min(word_at.len().saturating_sub(words));
        let first = if start == 0 { 0 } else { word_at[start] };
        let last = match word_at.get(start + words) {
            Some(&next_word) => next_word,
            None => tokens.len(),
        };
        let mut out: Vec<(bool, String)> = Vec::new();
        if first > 0 {
            out.push((false, "…".to_owned()));
        }
        for &(marked, text) in &tokens[first..last] {
            let text = capped(text);
            match out.last_mut() {
                Some((m, t)) if *m == marked => t.push_str(&text),
                _ => out.push((marked, text)),
            }
        }
        if last < tokens.len() {
            if let Some((_, t)) = out.last_mut() {
                let kept = t.trim_end().len();
                t.truncate(kept);
            }
            match out.last_mut() {
                Some((false, t)) => t.push('…'),
                _ => out.push((false, "…".to_owned())),
            }
        }
        out.retain(|(_, t)| !t.is_empty());
        Snippet { parts: out }
    }

    /// How many highlighted pieces the snippet has.
    pub fn highlights(&self) -> usize {
        self.parts.iter().filter(|(marked, _)| *marked).count()
    }

    fn unhighlighted(text: &str) -> Self {
        Snippet {
            parts: vec![(false, text.to_owned())],
        }
    }

    /// The text without highlighting.
    pub fn text(&self) -> String {
        self.parts.iter().map(|(_, t)| t.as_str()).collect()
    }

    /// HTML: the text escaped, highlighted pieces in `<mark>` elements (the only tags).
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        for (highlighted, text) in &self.parts {
            if *highlighted {
                out.push_str("<mark>");
            }
            escape_html(text, &mut out);
            if *highlighted {
                out.push_str("</mark>");
            }
        }
        out
    }
}

/// `text` in pieces, each a word (letters and digits) with what follows it up to the next.
fn word_pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut starts = Vec::new();
    let mut previous_in_word = false;
    for (i, c) in text.char_indices() {
        let in_word = c.is_alphanumeric();
        if in_word && !previous_in_word && i > 0 {
            starts.push(i);
        }
        previous_in_word = in_word;
    }
    starts.push(text.len());
    let mut from = 0;
    starts.into_iter().map(move |to| {
        let piece = &text[from..to];
        from = to;
        piece
    })
}

/// A piece with its word cut to 64 characters and what follows it to 32: a snippet holds
/// words, not a megabyte of punctuation, nor one word of 65,536 characters (a finding of
/// the third attack on bounded search: 5.9 MB of snippets for one page).
fn capped(piece: &str) -> String {
    const MAX_WORD: usize = 64;
    const MAX_BETWEEN: usize = 32;
    let word_end = piece
        .char_indices()
        .find(|(_, c)| !c.is_alphanumeric())
        .map_or(piece.len(), |(i, _)| i);
    let (word, between) = piece.split_at(word_end);
    let cut = |text: &str, max: usize| match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    };
    format!("{}{}", cut(word, MAX_WORD), cut(between, MAX_BETWEEN))
}

/// Builds a snippet's parts; markers that do not pair up are dropped, so highlighted
/// pieces never nest or stay open.
#[derive(Default)]
struct Builder {
    parts: Vec<(bool, String)>,
    current: String,
    inside: bool,
}

impl Builder {
    /// Adds a character; `marker_ok` says whether it may be one of the engine's markers.
    fn push(&mut self, c: char, marker_ok: bool) {
        match c {
            MARK_START if marker_ok => {
                if !self.inside {
                    self.flush();
                    self.inside = true;
                }
            }
            MARK_END if marker_ok => {
                if self.inside {
                    self.flush();
                    self.inside = false;
                }
            }
            _ => self.current.push(c),
        }
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            let text = std::mem::take(&mut self.current);
            self.parts.push((self.inside, text));
        }
    }

    fn finish(mut self) -> Snippet {
        self.flush();
        Snippet { parts: self.parts }
    }
}

/// Appends `text` with the five HTML-significant characters escaped, so it is inert in
/// element content and in quoted attribute values.
pub fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(q: &str) -> Vec<(String, bool)> {
        parse_query(q)
            .unwrap()
            .into_iter()
            .map(|t| (t.text, t.phrase))
            .collect()
    }

    #[test]
    fn words_and_phrases() {
        assert_eq!(
            texts("launch  plan"),
            vec![("launch".into(), false), ("plan".into(), false)]
        );
        assert_eq!(
            texts("\"launch plan\" dawn"),
            vec![("launch plan".into(), true), ("dawn".into(), false)]
        );
        assert_eq!(
            texts("\"unbalanced quote"),
            vec![("unbalanced quote".into(), true)]
        );
    }

    #[test]
    fn operators_are_just_text() {
        assert_eq!(
            texts("a AND b OR NOT c NEAR(d) *e -f"),
            vec![
                ("a".into(), false),
                ("AND".into(), false),
                ("b".into(), false),
                ("OR".into(), false),
                ("NOT".into(), false),
                ("c".into(), false),
                ("NEAR(d)".into(), false),
                ("*e".into(), false),
                ("-f".into(), false),
            ]
        );
    }

    #[test]
    fn regression_a_snippet_cuts_a_very_long_word() {
        let long = Snippet {
            parts: vec![
                (true, "longneedle".to_owned()),
                (false, format!(" {} tail", "日".repeat(65_000))),
            ],
        };
        let text = long.excerpt(24).text();
        assert!(text.starts_with("longneedle 日"), "{text}");
        assert!(
            text.chars().count() < 100,
            "{} characters",
            text.chars().count()
        );
        // Words of ordinary length are kept whole.
        let plain = snippet(&[(true, "needle"), (false, " in a haystack")]);
        assert_eq!(plain.excerpt(24).text(), "needle in a haystack");
    }

    #[test]
    fn regression_repeated_terms_are_searched_once() {
        assert_eq!(
            texts(&"babe bebe ".repeat(40)),
            vec![("babe".to_owned(), false), ("bebe".to_owned(), false)]
        );
        assert_eq!(
            texts(&"\"babe bebe\" \"Babe BEBE\" babe ".repeat(16)),
            vec![
                ("babe bebe".to_owned(), true),
                ("Babe BEBE".to_owned(), true),
                ("babe".to_owned(), false)
            ]
        );
        // Words in another order are another phrase.
        assert_eq!(texts("\"a b\" \"b a\"").len(), 2);
    }

    #[test]
    fn unusable_queries_are_explained() {
        assert!(parse_query("").is_err());
        assert!(parse_query("   ").is_err());
        assert!(parse_query("!!! ??? \"\"").is_err());
        assert!(parse_query(&"x ".repeat(600)).is_err());
        assert!(parse_query(&(0..33).map(|i| format!("w{i} ")).collect::<String>()).is_err());
        // Found by the third attack: a phrase of 499 words took 23 s to match.
        assert!(parse_query(&format!("\"{}\"", "w ".repeat(17))).is_err());
        assert!(parse_query(&"w-".repeat(17)).is_err());
        assert!(parse_query(&format!("\"{}\"", "w ".repeat(16))).is_ok());
        assert!(parse_query("ünïcødé 日本語").is_ok());
    }

    #[test]
    fn snippets_escape_stored_text_and_keep_only_their_own_marks() {
        let (s, e) = (MARK_START, MARK_END);
        let plain = "<script>alert(1)</script> &amp; rocket";
        let marked = format!("<script>alert(1)</script> &amp; {s}rocket{e}");
        let snippet = Snippet::from_marked_and_plain(&marked, plain);
        assert_eq!(
            snippet.to_html(),
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp;amp; <mark>rocket</mark>"
        );
        assert_eq!(snippet.text(), plain);
        // Markers that were in the stored text stay text (escaped as such: no tags).
        let plain = format!("a{s}b{e} rocket");
        let marked = format!("a{s}b{e} {s}rocket{e}");
        let snippet = Snippet::from_marked_and_plain(&marked, &plain);
        assert_eq!(snippet.text(), plain);
        assert_eq!(snippet.to_html().matches("<mark>").count(), 1);
        assert!(snippet.to_html().ends_with("<mark>rocket</mark>"));
        // Output that does not line up is shown unhighlighted, still escaped.
        let snippet = Snippet::from_marked_and_plain("x<b>", "<b>");
        assert_eq!(snippet.to_html(), "&lt;b&gt;");
        // Unbalanced markers never leave an element open.
        let html = Snippet::from_marked(&format!("{e}a{s}b{s}c")).to_html();
        assert_eq!(html, "a<mark>bc</mark>");
        assert_eq!(
            Snippet::from_marked(&format!("\"q\" {s}'w'{e}")).to_html(),
            "&quot;q&quot; <mark>&#39;w&#39;</mark>"
        );
    }

    fn snippet(parts: &[(bool, &str)]) -> Snippet {
        Snippet {
            parts: parts.iter().map(|&(m, t)| (m, t.to_owned())).collect(),
        }
    }

    #[test]
    fn an_excerpt_is_cut_around_the_most_highlighted_stretch() {
        let text = snippet(&[
            (false, "one two three four five six seven "),
            (true, "red"),
            (false, " eight nine ten eleven twelve "),
            (true, "red"),
            (false, " fox "),
            (true, "red"),
            (false, " thirteen fourteen fifteen"),
        ]);
        // Eight words: the stretch with two highlighted words, from three words before.
        assert_eq!(
            text.excerpt(8),
            snippet(&[
                (false, "…ten eleven twelve "),
                (true, "red"),
                (false, " fox "),
                (true, "red"),
                (false, " thirteen fourteen…"),
            ])
        );
        // Room for everything: nothing cut.
        assert_eq!(text.excerpt(100), text);
        // Nothing highlighted: the start.
        assert_eq!(
            snippet(&[(false, "a b c d")]).excerpt(2),
            snippet(&[(false, "a b…")])
        );
        assert_eq!(text.highlights(), 3);
    }

    #[test]
    fn words_are_folded_as_the_tokenizer_folds_them() {
        assert_eq!(folded_words("Café  NAÏVE-fox!"), "cafe naive fox");
        assert_eq!(folded_words("Dög"), folded_words("dog"));
        // A combining mark separates words, as in FTS5 (a finding of the second attack:
        // "lorem\u{651}ipsum" was counted as one rare word, FTS5 searched two common ones).
        assert_eq!(folded_words("lorem\u{651}ipsum"), "lorem ipsum");
        // Found by the third attack: decomposing named other words ("мой" is not "мои").
        assert_eq!(folded_words("Мой 안녕 がっこう"), "мой 안녕 がっこう");
        assert_eq!(folded_words("lorem\u{301}ipsum"), "loremipsum");
        assert_eq!(folded_words("ΟΔΟΣ οδος"), "οδοσ οδοσ");
        assert_eq!(folded_words("loremⓐipsum"), "lorem ipsum");
        assert_eq!(
            ascii_pieces("Lorém·ipsum"),
            vec!["ipsum", "lor", "lorem", "m"]
        );
        assert_eq!(ascii_pieces("a\u{651}b"), vec!["a", "b"]);
    }

    /// Found by the second attack: words joined by punctuation counted as one, and a
    /// snippet of a row of 400,000 commas came back whole (800 KB).
    #[test]
    fn regression_an_excerpt_counts_words_between_punctuation_and_cuts_long_runs() {
        let mut text = "x,".repeat(200_000);
        text.push_str("commatag");
        text.push_str(&",y".repeat(200_000));
        let cut = snippet(&[(false, &text)]).excerpt(24);
        assert!(cut.text().len() < 200, "{} bytes", cut.text().len());
        let long = format!("word {}", "<".repeat(100_000));
        let cut = snippet(&[(true, "word"), (false, &long[4..])]).excerpt(24);
        assert!(cut.text().len() < 100, "{} bytes", cut.text().len());
        assert_eq!(cut.highlights(), 1);
    }

    #[test]
    fn phrases_are_highlighted_and_counted_linearly() {
        let phrases = vec![
            vec!["red".to_owned(), "fox".to_owned()],
            vec!["fox".to_owned()],
            vec!["cafe".to_owned()],
        ];
        let (marked, counts) = highlight("The Red fox, a FOX and Café.", &phrases);
        assert_eq!(counts, vec![1, 2, 1]);
        assert_eq!(
            marked,
            snippet(&[
                (false, "The "),
                (true, "Red fox"),
                (false, ", a "),
                (true, "FOX"),
                (false, " and "),
                (true, "Café"),
                (false, "."),
            ])
        );
        // Found by the second attack: FTS5's highlight() took 13 s for a row of one word
        // repeated 280,000 times; this is linear.
        let (marked, counts) = highlight(&"k ".repeat(280_000), &[vec!["k".to_owned()]]);
        assert_eq!(counts, vec![280_000]);
        assert_eq!(marked.highlights(), 280_000);
    }

    #[test]
    fn an_excerpt_of_a_hundred_thousand_matches_is_quick() {
        let mut parts = Vec::new();
        for _ in 0..100_000 {
            parts.push((true, "word".to_owned()));
            parts.push((false, " ".to_owned()));
        }
        let cut = Snippet { parts }.excerpt(24);
        assert_eq!(cut.highlights(), 24);
    }
}
