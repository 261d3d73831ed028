//! Putting text in one spelling before it is scanned, so that obfuscation does not hide
//! a reference: Unicode NFKC (full-width `ｈｔｔｐｓ：／／`), invisible characters removed
//! (zero-width spaces and joiners, soft hyphens, bidirectional controls, variation
//! selectors and the other characters IDNA ignores), dot-, slash- and colon-like
//! characters made `.`, `/` and `:`, defanged dots (`[.]`, `(dot)`) restored, and escapes
//! decoded, up to three layers deep: percent-encoding (`%3A%2F%2F`), JSON, C and ES6
//! escapes (`https:\/\/`, `\u002f`, `\x2f`, `\u{2f}`) and HTML character references
//! (`&#47;`, `&#x2f`, `&sol;`, `&Tab;`). Every step is one pass over the text.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// The text as a client reads it, in one spelling: NFKC (full-width forms), invisible
/// characters removed, dot-, slash- and colon-like characters made `.`, `/` and `:`,
/// lower case. No escape is decoded (see [`decode_layers`]).
/// Text already in that spelling (ASCII without upper case, the common case) is returned
/// as it is, without a copy.
pub fn normalise_plain(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        if !text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Cow::Borrowed(text);
        }
        return Cow::Owned(text.to_ascii_lowercase());
    }
    if matches!(
        unicode_normalization::is_nfkc_quick(text.chars()),
        unicode_normalization::IsNormalized::Yes
    ) {
        // Already in NFKC (most text in any script): no need to run it.
        if text.chars().all(|c| {
            let mut lower = c.to_lowercase();
            !is_invisible(c)
                && canonical_char(c) == c
                && lower.next() == Some(c)
                && lower.next().is_none()
        }) {
            return Cow::Borrowed(text);
        }
        return Cow::Owned(
            text.chars()
                .filter(|c| !is_invisible(*c))
                .map(canonical_char)
                .collect::<String>()
                .to_lowercase(),
        );
    }
    Cow::Owned(
        text.nfkc()
            .filter(|c| !is_invisible(*c))
            .map(canonical_char)
            .collect::<String>()
            .to_lowercase(),
    )
}

/// `text` (already [`normalise_plain`]d) with its disguises removed: up to three layers
/// of escapes decoded, defanged dots (`[.]`, `(dot)`) restored, and normalised again.
/// ASCII text with nothing to decode or restore is returned as it is.
pub fn decode_layers(text: &str) -> Cow<'_, str> {
    if text.is_ascii()
        && !text
            .bytes()
            .any(|b| matches!(b, b'%' | b'\\' | b'&') || b.is_ascii_uppercase())
        && !DEFANGED.iter().any(|d| text.contains(d))
    {
        return Cow::Borrowed(text);
    }
    let mut s: Cow<str> = Cow::Borrowed(text);
    for _ in 0..3 {
        if !s.bytes().any(|b| matches!(b, b'%' | b'\\' | b'&')) {
            break;
        }
        let decoded = decode_escapes(&s);
        if decoded == *s {
            break;
        }
        s = Cow::Owned(decoded);
    }
    let mut out = s.into_owned();
    for defanged in DEFANGED {
        if out.contains(defanged) {
            out = out.replace(defanged, ".");
        }
    }
    // Decoding may have produced upper-case, full-width or invisible characters again.
    Cow::Owned(normalise_plain(&out).into_owned())
}

/// Dots written so that a link is not a link.
const DEFANGED: [&str; 5] = ["[.]", "(.)", "{.}", "[dot]", "(dot)"];

/// The text in one spelling with every disguise removed: [`normalise_plain`], then
/// [`decode_layers`].
pub fn normalise(text: &str) -> String {
    decode_layers(&normalise_plain(text)).into_owned()
}

fn canonical_char(c: char) -> char {
    if is_dot_like(c) {
        '.'
    } else if matches!(
        c,
        '\u{2215}' | '\u{2044}' | '\u{29F8}' | '\u{FF0F}' | '\u{2571}'
    ) {
        '/'
    } else if matches!(
        c,
        '\u{2236}' | '\u{A789}' | '\u{FF1A}' | '\u{0589}' | '\u{05C3}' | '\u{FE55}'
    ) {
        ':'
    } else {
        c
    }
}

/// One layer of percent-encoding, JSON/C escapes (`\/`, `\u002f`, `\x2f`) and HTML
/// character references (`&#47;`, `&#x2f;`, `&sol;`, `&colon;`, `&period;`).
fn decode_escapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |s: &[u8]| -> Option<u32> {
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| u32::from_str_radix(s, 16).ok())
    };
    let push_char = |out: &mut Vec<u8>, c: u32| -> bool {
        match char::from_u32(c) {
            Some(c) => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                true
            }
            None => false,
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = hex(&bytes[i + 1..i + 3])
        {
            out.push(v as u8);
            i += 3;
            continue;
        }
        if b == b'\\' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'/' | b'\\' | b':' | b'.' | b'@' => {
                    out.push(bytes[i + 1]);
                    i += 2;
                    continue;
                }
                // ES6 `\u{2f}`.
                b'u' if bytes.get(i + 2) == Some(&b'{') => {
                    let close = bytes[i + 3..bytes.len().min(i + 12)]
                        .iter()
                        .position(|&c| c == b'}');
                    if let Some(close) = close
                        && let Some(v) = hex(&bytes[i + 3..i + 3 + close])
                        && push_char(&mut out, v)
                    {
                        i += close + 4;
                        continue;
                    }
                }
                b'u' if i + 6 <= bytes.len() => {
                    if let Some(v) = hex(&bytes[i + 2..i + 6])
                        && push_char(&mut out, v)
                    {
                        i += 6;
                        continue;
                    }
                }
                b'x' if i + 4 <= bytes.len() => {
                    if let Some(v) = hex(&bytes[i + 2..i + 4])
                        && push_char(&mut out, v)
                    {
                        i += 4;
                        continue;
                    }
                }
                _ => {}
            }
        }
        if b == b'&' {
            // A character reference: named, or numeric with any number of leading zeros,
            // with or without its semicolon (HTML parsers take both).
            let tail = &bytes[i + 1..bytes.len().min(i + 40)];
            // `&#47`, `&#x2f`: a numeric reference ends with its digits.
            let name_len = if tail.first() == Some(&b'#') {
                let hexadecimal = matches!(tail.get(1), Some(b'x' | b'X'));
                let start = if hexadecimal { 2 } else { 1 };
                start
                    + tail[start.min(tail.len())..]
                        .iter()
                        .take_while(|c| {
                            if hexadecimal {
                                c.is_ascii_hexdigit()
                            } else {
                                c.is_ascii_digit()
                            }
                        })
                        .count()
            } else {
                tail.iter()
                    .position(|c| !c.is_ascii_alphanumeric())
                    .unwrap_or(tail.len())
            };
            let name = &tail[..name_len];
            let semicolon = tail.get(name_len) == Some(&b';');
            let lower = name.to_ascii_lowercase();
            let decoded = match lower.as_slice() {
                b"sol" => Some('/' as u32),
                b"bsol" => Some('\\' as u32),
                b"colon" => Some(':' as u32),
                b"period" => Some('.' as u32),
                b"commat" => Some('@' as u32),
                b"quest" => Some('?' as u32),
                b"num" => Some('#' as u32),
                b"tab" => Some('\t' as u32),
                b"newline" => Some('\n' as u32),
                _ if lower.first() == Some(&b'#') => {
                    let digits = &lower[1..];
                    if digits.first() == Some(&b'x') {
                        hex(&digits[1..])
                    } else {
                        std::str::from_utf8(digits)
                            .ok()
                            .and_then(|d| d.parse().ok())
                    }
                }
                _ => None,
            };
            if let Some(v) = decoded
                && (semicolon || lower.first() == Some(&b'#'))
                && push_char(&mut out, v)
            {
                i += 1 + name_len + usize::from(semicolon);
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Characters that render as nothing: zero-width spaces and joiners, soft hyphens,
/// bidirectional controls, variation selectors, tags.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Characters a reader (or an IDNA mapping) takes for a dot.
fn is_dot_like(c: char) -> bool {
    matches!(
        c,
        '\u{3002}' | '\u{FF0E}' | '\u{FF61}' | '\u{FE52}' | '\u{2024}' | '\u{0701}' | '\u{0702}'
    )
}
