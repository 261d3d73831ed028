//! Search queries as users type them, turned into terms no engine can choke on.
//!
//! Users write words and "quoted phrases". Engine query syntax (FTS5 operators, `tsquery`
//! symbols) is never passed through: every term becomes a quoted phrase on SQLite and a
//! `plainto_tsquery`/`phraseto_tsquery` on PostgreSQL, so quotes, operators, parentheses
//! and stray symbols in a query are searched as text, and a query can never be a syntax
//! error.

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;
/// The most terms one query may have.
pub const MAX_TERMS: usize = 32;

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
    if terms.len() > MAX_TERMS {
        return Err(format!("q may have at most {MAX_TERMS} words or phrases"));
    }
    Ok(terms)
}

/// A term the tokenizers of both engines keep: it has a letter or digit.
fn searchable(word: &str) -> bool {
    word.chars().any(char::is_alphanumeric)
}

/// The FTS5 query for `terms`: each term a quoted phrase (quotes doubled inside), all
/// required.
pub fn fts5_query(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.text.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
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
        assert_eq!(
            fts5_query(&parse_query("say \"hi\"\"there\"").unwrap()),
            "\"say\" \"hi\" \"there\""
        );
        assert_eq!(
            fts5_query(&[Term {
                text: "a\"b".into(),
                phrase: false
            }]),
            "\"a\"\"b\""
        );
    }

    #[test]
    fn unusable_queries_are_explained() {
        assert!(parse_query("").is_err());
        assert!(parse_query("   ").is_err());
        assert!(parse_query("!!! ??? \"\"").is_err());
        assert!(parse_query(&"x ".repeat(600)).is_err());
        assert!(parse_query(&"w ".repeat(40)).is_err());
        assert!(parse_query("ünïcødé 日本語").is_ok());
    }
}
