//! What an uploaded file is, read from its bytes: an attachment's type is sniffed from its
//! first bytes (magic numbers), never taken from the client, and checked against the
//! allowed types (`attachments.allowed_types`).

/// How many leading bytes [`sniff`] reads.
pub const SNIFF_BYTES: usize = 8192;

/// The type of content that starts with `head` (at most [`SNIFF_BYTES`] of it; `whole`
/// when `head` is the whole file). A known binary format by its signature; otherwise
/// `text/plain` when the bytes are UTF-8 text (printable, tabs and line ends; a character
/// cut by the end of `head` counts as text), else `application/octet-stream`.
pub fn sniff(head: &[u8], whole: bool) -> &'static str {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type();
    }
    let mut text = TextCheck::default();
    text.feed(head);
    // A multi-byte character cut by the end of the sample still counts as text.
    let is_text = if whole { text.finish() } else { !text.failed };
    if is_text {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}

/// Whether a whole stream is text as [`sniff`] means it (UTF-8; printable, tabs and line
/// ends), fed chunk by chunk: a multi-byte character may be cut between chunks.
#[derive(Debug, Default)]
pub struct TextCheck {
    carry: Vec<u8>,
    failed: bool,
}

impl TextCheck {
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(chunk);
        let valid = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(e) if e.error_len().is_none() => {
                let (text, rest) = bytes.split_at(e.valid_up_to());
                self.carry = rest.to_vec();
                std::str::from_utf8(text).unwrap_or_default()
            }
            Err(_) => {
                self.failed = true;
                return;
            }
        };
        if !valid
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
        {
            self.failed = true;
        }
    }

    /// Whether everything fed was text, ending on a whole character.
    pub fn finish(&self) -> bool {
        !self.failed && self.carry.is_empty()
    }
}

/// Unicode format characters that reorder or hide text (bidirectional overrides and
/// isolates, zero-width characters): in a file name, `x\u{202e}gnp.exe` shows as
/// `xexe.png`.
pub fn reorders_or_hides_text(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Whether `mime` is one of `allowed`: an exact type (`application/pdf`) or a family
/// ending in `*` (`image/*`, `application/vnd.openxmlformats-officedocument.*`).
pub fn allowed(mime: &str, allowed: &[String]) -> bool {
    allowed
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => mime.starts_with(prefix),
            None => mime == pattern,
        })
}

/// Whether `pattern` can name types: `type/subtype`, or a prefix of one ending in `*`
/// (`*` alone: every type).
pub fn is_type_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    let valid = |c: char| c.is_ascii_alphanumeric() || "!#$&^_.+-/".contains(c);
    !body.is_empty()
        && body.chars().all(valid)
        && body.matches('/').count() <= 1
        && (pattern.ends_with('*')
            || body
                .split_once('/')
                .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", true), "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n", true), "application/pdf");
        assert_eq!(sniff(b"hello,\tworld\r\n", true), "text/plain");
        assert_eq!(sniff("caf\u{e9}".as_bytes(), true), "text/plain");
        // A character cut by the end of the sample is still text; at the end of the
        // file it is not.
        assert_eq!(sniff(&"caf\u{e9}".as_bytes()[..4], false), "text/plain");
        assert_eq!(
            sniff(&"caf\u{e9}".as_bytes()[..4], true),
            "application/octet-stream"
        );
        assert_eq!(
            sniff(b"MZ\x90\0\x03\0\0\0", true),
            "application/vnd.microsoft.portable-executable"
        );
        assert_eq!(sniff(b"\0\x01\x02binary", true), "application/octet-stream");
        assert_eq!(sniff(b"plain\x1b[31m", true), "application/octet-stream");
        assert_eq!(sniff(b"#!/bin/sh\nrm -rf /\n", true), "text/x-shellscript");
    }

    #[test]
    fn text_is_checked_whole_across_chunks() {
        let mut check = TextCheck::default();
        let e_acute = "\u{e9}".as_bytes();
        check.feed(b"caf");
        check.feed(&e_acute[..1]);
        check.feed(&e_acute[1..]);
        check.feed(b" au lait\n");
        assert!(check.finish());
        let mut padded = TextCheck::default();
        padded.feed(&[b'#'; 8192]);
        padded.feed(b"MZ\x90\0\x03");
        assert!(!padded.finish());
        let mut cut = TextCheck::default();
        cut.feed(&e_acute[..1]);
        assert!(!cut.finish());
    }

    #[test]
    fn allowed_types_match_exactly_or_by_family() {
        let list = vec!["image/*".to_owned(), "application/pdf".to_owned()];
        assert!(allowed("image/png", &list));
        assert!(allowed("application/pdf", &list));
        assert!(!allowed("application/pdfx", &list));
        assert!(!allowed("text/plain", &list));
        for good in [
            "image/*",
            "application/pdf",
            "application/vnd.oasis.opendocument.*",
            "*",
        ] {
            assert!(is_type_pattern(good), "{good}");
        }
        for bad in [
            "",
            "image",
            "image/",
            "/png",
            "a/b/c",
            "image/png; charset=x",
            "te xt/plain",
        ] {
            assert!(!is_type_pattern(bad), "{bad}");
        }
    }
}
