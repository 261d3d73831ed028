//! The patterns, each with the proof a match must also pass.

use regex::{Regex, RegexSet};

use super::checks;
use super::{Finding, FindingKind};

/// One pattern: what it finds, the part of the match that is the value (a capture group,
/// or the whole match), and a check the value must pass.
struct Pattern {
    kind: FindingKind,
    regex: Regex,
    group: usize,
    check: fn(&str) -> bool,
}

/// The finder of secrets and personal data in text. Built once per server; a text that
/// holds none of the patterns costs one pass of a `RegexSet`.
pub struct Detector {
    set: RegexSet,
    patterns: Vec<Pattern>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

fn any(_: &str) -> bool {
    true
}

/// Random-looking: a key body has digits and letters of both cases, where words joined by
/// dashes (`sk-learn-pipeline-for-text`) do not.
fn random_looking(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit())
        && text.bytes().any(|b| b.is_ascii_uppercase())
        && text.bytes().any(|b| b.is_ascii_lowercase())
}

fn openai_key(text: &str) -> bool {
    !text.starts_with("sk-ant-") && random_looking(text)
}

fn has_digit_and_letter(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit()) && text.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Not a placeholder of documentation (`user:password@`, `:****@`, `:<secret>@`,
/// `:${PASSWORD}@`).
fn real_password(text: &str) -> bool {
    let lower: String = text
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .collect::<String>()
        .to_ascii_lowercase();
    let placeholder = text.bytes().all(|b| matches!(b, b'*' | b'x' | b'X' | b'.'))
        || (text.starts_with('<') && text.ends_with('>'))
        || text.starts_with("${")
        || text.starts_with("{{")
        || text.starts_with('$')
        || matches!(
            lower.as_str(),
            "password"
                | "pass"
                | "passwd"
                | "pwd"
                | "secret"
                | "changeme"
                | "yourpassword"
                | "mypassword"
                | "example"
                | "redacted"
        );
    !placeholder
}

/// A phone number has 8 to 15 digits (ITU-T E.164).
fn phone_digits(text: &str) -> bool {
    (8..=15).contains(&text.bytes().filter(u8::is_ascii_digit).count())
}

/// A pattern as written: what it finds, the regex, the group that is the value, the check.
type Spec = (FindingKind, &'static str, usize, fn(&str) -> bool);

/// The patterns, in priority order (a finding that overlaps an earlier-starting or longer
/// one is dropped). `\b` is the ASCII word boundary, which keeps every pattern on the
/// regex crate's fast automata even in non-ASCII text.
fn patterns(contact_details: bool) -> Vec<Spec> {
    use FindingKind::*;
    let mut list: Vec<Spec> = vec![
        (
            PrivateKey,
            // The header, the `Proc-Type:` and `DEK-Info:` lines of an encrypted key, the
            // base64 body and the END line when it follows. No lazy search for the END
            // line: where it is missing, that search would read to the end of the text
            // once per header (quadratic on a text of headers).
            r"(?i:-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----)(?:\r?\n(?:Proc-Type|DEK-Info):[^\r\n]*)*[A-Za-z0-9+/=\r\n]*(?i:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----)?",
            0,
            any,
        ),
        (
            AnthropicApiKey,
            r"\bsk-ant-[A-Za-z0-9_-]{20,}",
            0,
            random_looking,
        ),
        (
            OpenaiApiKey,
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
            0,
            openai_key,
        ),
        (GoogleApiKey, r"\bAIza[0-9A-Za-z_-]{35}", 0, any),
        (
            AwsAccessKeyId,
            r"\b(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[0-9A-Z]{16}\b",
            0,
            any,
        ),
        (
            AwsSecretAccessKey,
            r#"(?i:aws_?secret_?(?:access_?)?key)["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})\b"#,
            1,
            any,
        ),
        (
            GithubToken,
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
            0,
            any,
        ),
        (
            SlackToken,
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
            0,
            has_digit_and_letter,
        ),
        (StripeKey, r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}", 0, any),
        (HuggingfaceToken, r"\bhf_[A-Za-z0-9]{30,}", 0, any),
        (GroqApiKey, r"\bgsk_[A-Za-z0-9]{40,}", 0, any),
        (
            Jwt,
            r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
            0,
            any,
        ),
        (
            UrlPassword,
            r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s/?#@:]+:([^\s/?#@]+)@[^\s/?#@]",
            1,
            real_password,
        ),
        (
            Iban,
            r"\b[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)\b",
            0,
            checks::is_iban,
        ),
        (
            // Unbroken, or in the groupings cards are printed in (4-4-4-4, 4-6-5 for
            // American Express, 4-4-4-4-3), spaces or dashes. Not after `+` (a phone
            // number) nor inside a longer run of digits.
            PaymentCard,
            r"(?:^|[^+0-9])((?:[0-9]{13,19}|[0-9]{4}(?: [0-9]{4}){3}(?: [0-9]{3})?|[0-9]{4}(?:-[0-9]{4}){3}(?:-[0-9]{3})?|[0-9]{4} [0-9]{6} [0-9]{5}|[0-9]{4}-[0-9]{6}-[0-9]{5}))\b",
            1,
            checks::is_payment_card,
        ),
        (
            UsSocialSecurityNumber,
            r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
            0,
            checks::is_us_ssn,
        ),
        (
            UkNationalInsuranceNumber,
            r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
            0,
            checks::is_uk_nino,
        ),
    ];
    if contact_details {
        list.push((
            EmailAddress,
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
            0,
            any,
        ));
        list.push((
            PhoneNumber,
            r"(?:\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,5}|\([0-9]{3}\) ?[0-9]{3}-[0-9]{4}|\b[0-9]{3}([.-])[0-9]{3}[.-][0-9]{4})\b",
            0,
            phone_digits,
        ));
    }
    list
}

impl Detector {
    /// The detector of secrets and identity numbers; with `contact_details`, e-mail
    /// addresses and phone numbers too (off by default: most chat text holds them
    /// legitimately).
    pub fn new(contact_details: bool) -> Self {
        let list = patterns(contact_details);
        let ascii = |p: &str| p.replace(r"\b", r"(?-u:\b)");
        let set = RegexSet::new(list.iter().map(|(_, p, _, _)| ascii(p)))
            .expect("the DLP patterns are valid");
        let patterns = list
            .into_iter()
            .map(|(kind, pattern, group, check)| Pattern {
                kind,
                regex: Regex::new(&ascii(pattern)).expect("a DLP pattern is valid"),
                group,
                check,
            })
            .collect();
        Self { set, patterns }
    }

    /// The findings in `text`, sorted, without overlaps.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let matched = self.set.matches(text);
        if !matched.matched_any() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for index in matched.iter() {
            let pattern = &self.patterns[index];
            for captures in pattern.regex.captures_iter(text) {
                let Some(value) = captures.get(pattern.group) else {
                    continue;
                };
                if (pattern.check)(value.as_str()) {
                    found.push(Finding {
                        kind: pattern.kind,
                        start: value.start(),
                        end: value.end(),
                    });
                }
            }
        }
        // Earliest first; at one start, the longest; then drop what overlaps a kept one.
        found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
        for finding in found {
            if kept.last().is_none_or(|last| finding.start >= last.end) {
                kept.push(finding);
            }
        }
        kept
    }
}
