//! Undoing the disguises a value can be written in before the patterns look at it, while
//! keeping the way back to the text as sent.
//!
//! A card number, an IBAN or a key typed with full-width characters (`４１１１…`,
//! `ｓｋ-…`), grouped with no-break, thin or ideographic spaces, broken by zero-width
//! characters or soft hyphens, or with a Unicode dash (`‐`, `—`, `−`) is the same value to
//! whoever reads it. Each character is folded on its own: one whose compatibility
//! decomposition is ASCII becomes that ASCII (full-width forms, mathematical digits,
//! ligatures), a space of another width becomes ` `, a dash `-`, and an invisible
//! character (the set the reference scanner ignores) is dropped. Other characters
//! (accented letters, other scripts) are kept as they are: the patterns are ASCII, and
//! keeping them keeps most non-ASCII text on the path without a copy.
//!
//! Findings are made in the folded text and mapped back, so a [`Finding`]'s range is in
//! the text as sent and [`super::redact`] removes the whole disguised value (invisible
//! characters inside it included).

use std::borrow::Cow;

use unicode_normalization::char::decompose_compatible;

use super::Finding;
use crate::network::references::{decimal_digit, is_invisible};

/// One character of the original that the folded text writes differently: it starts at
/// `from` in the folded text and takes `to_len` bytes there (0 when dropped); it started
/// at `at` in the original and took `len` bytes.
#[derive(Debug, Clone, Copy)]
struct Change {
    from: usize,
    to_len: usize,
    at: usize,
    len: usize,
}

impl Change {
    fn folded_end(&self) -> usize {
        self.from + self.to_len
    }
    fn original_end(&self) -> usize {
        self.at + self.len
    }
}

/// A text folded for detection, with the changes that lead back to the original.
pub(super) struct Folded<'a> {
    text: Cow<'a, str>,
    /// In order; empty when the text needed no change (then offsets are the same).
    changes: Vec<Change>,
}

/// What a character folds to.
enum Fold {
    Keep,
    Drop,
    Ascii(char),
    Decomposed,
}

fn fold_of(c: char) -> Fold {
    if c.is_ascii() {
        return Fold::Keep;
    }
    if is_invisible(c) {
        return Fold::Drop;
    }
    match c {
        // Spaces of other widths: no-break, en/em and the other typographic spaces, thin,
        // narrow no-break, medium mathematical, ideographic, Ogham.
        // Line and paragraph separators, the C1 next line, and the braille blank that
        // renders as a space.
        '\u{00A0}'
        | '\u{0085}'
        | '\u{1680}'
        | '\u{2000}'..='\u{200A}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{202F}'
        | '\u{205F}'
        | '\u{2800}'
        | '\u{3000}' => return Fold::Ascii(' '),
        // Every dash punctuation character (Unicode's Pd: hyphens, dashes, the Armenian,
        // Hebrew, Mongolian, Canadian syllabics and CJK ones, small and full-width forms),
        // the minus signs (plain, superscript, subscript, heavy, modifier) and what is
        // drawn as a horizontal line (the katakana prolonged sound mark, box drawing).
        '\u{058A}'
        | '\u{05BE}'
        | '\u{02D7}'
        | '\u{1400}'
        | '\u{1806}'
        | '\u{2010}'..='\u{2015}'
        | '\u{2043}'
        | '\u{207B}'
        | '\u{208B}'
        | '\u{2212}'
        | '\u{2500}'
        | '\u{2501}'
        | '\u{2796}'
        | '\u{2E17}'
        | '\u{2E1A}'
        | '\u{2E3A}'
        | '\u{2E3B}'
        | '\u{2E40}'
        | '\u{2E5D}'
        | '\u{301C}'
        | '\u{3030}'
        | '\u{30A0}'
        | '\u{30FC}'
        | '\u{FE31}'
        | '\u{FE32}'
        | '\u{FE58}'
        | '\u{FE63}'
        | '\u{FF0D}'
        | '\u{10EAD}' => return Fold::Ascii('-'),
        _ => {}
    }
    // Digits of other scripts (Arabic-Indic, Devanagari, …) are digits.
    if let Some(d) = decimal_digit(c) {
        return Fold::Ascii(char::from(b'0' + d as u8));
    }
    // A combining mark (an underline, a strike-through) drawn over a digit or a letter
    // does not change what is written.
    if unicode_normalization::char::is_combining_mark(c) {
        return Fold::Drop;
    }
    let mut ascii = true;
    let mut same = true;
    decompose_compatible(c, |d| {
        ascii &= d.is_ascii();
        same &= d == c;
    });
    if ascii && !same {
        Fold::Decomposed
    } else {
        Fold::Keep
    }
}

impl<'a> Folded<'a> {
    /// `text` folded. ASCII text, and text with nothing to fold, is borrowed as it is.
    pub(super) fn new(text: &'a str) -> Self {
        let unchanged = Folded {
            text: Cow::Borrowed(text),
            changes: Vec::new(),
        };
        if text.is_ascii() {
            return unchanged;
        }
        let Some(first) = text
            .char_indices()
            .find(|(_, c)| !matches!(fold_of(*c), Fold::Keep))
            .map(|(i, _)| i)
        else {
            return unchanged;
        };
        let mut out = String::with_capacity(text.len());
        out.push_str(&text[..first]);
        let mut changes = Vec::new();
        for (at, c) in text[first..].char_indices() {
            let at = first + at;
            let from = out.len();
            match fold_of(c) {
                Fold::Keep => {
                    out.push(c);
                    continue;
                }
                Fold::Drop => {}
                Fold::Ascii(a) => out.push(a),
                Fold::Decomposed => decompose_compatible(c, |d| out.push(d)),
            }
            changes.push(Change {
                from,
                to_len: out.len() - from,
                at,
                len: c.len_utf8(),
            });
        }
        Folded {
            text: Cow::Owned(out),
            changes,
        }
    }

    /// The folded text.
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// Where the folded byte `offset` came from in the original: the start of the
    /// character that became it.
    fn original_start(&self, offset: usize) -> usize {
        // The changes wholly before `offset` (dropped characters at `offset` included:
        // what starts at `offset` starts after them).
        let k = self.changes.partition_point(|c| c.folded_end() <= offset);
        match self.changes.get(k) {
            Some(c) if c.from <= offset => c.at,
            _ => self.after(k, offset),
        }
    }

    /// Where the folded range ending (exclusive) at `offset` ends in the original: the end
    /// of the character that became its last byte.
    fn original_end(&self, offset: usize) -> usize {
        let last = offset - 1;
        let k = self.changes.partition_point(|c| c.folded_end() <= last);
        match self.changes.get(k) {
            Some(c) if c.from <= last => c.original_end(),
            _ => self.after(k, last) + 1,
        }
    }

    /// The original offset of folded byte `offset` in an unchanged run, the first `k`
    /// changes lying before it.
    fn after(&self, k: usize, offset: usize) -> usize {
        match k.checked_sub(1).map(|i| self.changes[i]) {
            Some(c) => c.original_end() + (offset - c.folded_end()),
            None => offset,
        }
    }

    /// `findings`, made in the folded text (sorted, without overlaps), moved to the
    /// original's offsets. A character folded into several (`ﬁ` into `fi`) is covered
    /// whole by a finding that covers part of it; should two findings meet inside one
    /// such character, the later one is merged into the earlier, so they still do not
    /// overlap.
    pub(super) fn map_back(&self, findings: &mut Vec<Finding>) {
        if self.changes.is_empty() {
            return;
        }
        for finding in findings.iter_mut() {
            let (start, end) = (finding.start, finding.end);
            finding.start = self.original_start(start);
            finding.end = if end > start {
                self.original_end(end)
            } else {
                finding.start
            };
        }
        findings.dedup_by(|later, earlier| {
            let overlaps = later.start < earlier.end;
            if overlaps {
                earlier.end = earlier.end.max(later.end);
            }
            overlaps
        });
    }

    /// Whether the text needed a copy (tests).
    #[cfg(test)]
    pub(super) fn is_borrowed(&self) -> bool {
        matches!(self.text, Cow::Borrowed(_))
    }
}
