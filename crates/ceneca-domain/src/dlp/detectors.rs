//! The patterns, each with the proof a match must also pass.

use regex::{Regex, RegexSet};

use super::checks;
use super::fold::Folded;
use super::{Finding, FindingKind};

/// One pattern: what it finds, the part of the match that is the value (a capture group,
/// or the whole match), and a check the value must pass.
struct Pattern {
    kind: FindingKind,
    regex: Regex,
    group: usize,
    check: Check,
}

/// What a match must also pass: a check of the value alone, or of the value where it
/// stands (the text, the value's start and end).
#[derive(Clone, Copy)]
enum Check {
    Value(fn(&str) -> bool),
    InText(fn(&str, usize, usize) -> bool),
}

use Check::{InText, Value};

/// The finder of secrets and personal data in text. Built once per server; a text that
/// holds none of the patterns costs one pass of a `RegexSet`.
pub struct Detector {
    set: RegexSet,
    patterns: Vec<Pattern>,
    /// A JSON object key that labels an AWS secret access key (`aws_secret_access_key`,
    /// `prod_aws_secret_access_key`).
    aws_secret_key: Regex,
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

/// The label an AWS secret access key is written after, in the spellings of
/// configuration files, environment variables and code: `aws_secret_access_key`,
/// `AWS_SECRET_KEY`, `aws-secret-access-key`, `aws.secret.access.key`,
/// `awsSecretAccessKey` (matched without case).
macro_rules! aws_secret_label {
    () => {
        r"(?:aws[_ .-]?)?secret[_ .-]?access[_ .-]?key|aws[_ .-]?secret[_ .-]?key"
    };
}

/// A US social security number written with spaces (`123 45 6789`), which ordinary prose
/// has more often than the dashed form: quantities (`100 20 3000`), times and the groups
/// of a longer number (a phone number `+1 212 55 5019`, `0044 123 45 6789`, an account
/// number printed in groups). So the spaced form counts only
/// - standing alone: no digit or `+` next to it across spaces, nor a separator of numbers
///   (`.`, `,`, `:`, `/`, `-`) with a digit beyond it (`12:30 123 45 6789`,
///   `123 45 6789/2`); a label before it (`SSN: 123 45 6789`) or the end of a sentence
///   after it is fine;
/// - in the issued ranges ([`checks::is_us_ssn`]), and not round: an area or a serial
///   ending in `00` reads as a quantity (`100 20 3000`, `250 12 1500`). The SSNs this
///   misses are 2% of the issued ones, and their dashed form is still found.
fn ssn_stands_alone(text: &str, start: usize, end: usize) -> bool {
    let value = &text[start..end];
    let d: Vec<u8> = value.bytes().filter(u8::is_ascii_digit).collect();
    let round = |digits: &[u8]| digits.ends_with(b"00");
    if !checks::is_us_ssn(value) || round(&d[..3]) || round(&d[5..]) {
        return false;
    }
    let before = text[..start].trim_end_matches([' ', '\t']).chars().rev();
    let after = text[end..].trim_start_matches([' ', '\t']).chars();
    !number_next(before) && !number_next(after)
}

/// Whether the characters `side` (read away from a value) continue a number: a digit or
/// `+` first, or a separator of numbers (`.`, `,`, `:`, `/`, `-`) and then a digit.
fn number_next(mut side: impl Iterator<Item = char>) -> bool {
    match side.next() {
        Some(c) if c.is_ascii_digit() || c == '+' => true,
        Some('.' | ',' | ':' | '/' | '-') => side.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// A phone number has 8 to 15 digits (ITU-T E.164).
fn phone_digits(text: &str) -> bool {
    (8..=15).contains(&text.bytes().filter(u8::is_ascii_digit).count())
}

/// A pattern as written: what it finds, the regex, the group that is the value, the check.
type Spec = (FindingKind, &'static str, usize, Check);

/// The patterns. Where findings overlap, the earliest (at one start, the longest) is kept
/// and grows over the others ([`Detector::find`]). `\b` is the ASCII word boundary, which keeps every pattern on the
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
            Value(any),
        ),
        (
            AnthropicApiKey,
            r"\bsk-ant-[A-Za-z0-9_-]{20,}",
            0,
            Value(random_looking),
        ),
        (
            OpenaiApiKey,
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
            0,
            Value(openai_key),
        ),
        (GoogleApiKey, r"\bAIza[0-9A-Za-z_-]{35}", 0, Value(any)),
        (
            AwsAccessKeyId,
            r"\b(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[0-9A-Z]{16}\b",
            0,
            Value(any),
        ),
        (
            AwsSecretAccessKey,
            concat!(
                r"(?i:",
                aws_secret_label!(),
                r#")["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})\b"#
            ),
            1,
            Value(any),
        ),
        (
            GithubToken,
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
            0,
            Value(any),
        ),
        (
            SlackToken,
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
            0,
            Value(has_digit_and_letter),
        ),
        (
            StripeKey,
            r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
            0,
            Value(any),
        ),
        (HuggingfaceToken, r"\bhf_[A-Za-z0-9]{30,}", 0, Value(any)),
        (GroqApiKey, r"\bgsk_[A-Za-z0-9]{40,}", 0, Value(any)),
        (
            Jwt,
            r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
            0,
            Value(any),
        ),
        (
            UrlPassword,
            r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s/?#@:]+:([^\s/?#@]+)@[^\s/?#@]",
            1,
            Value(real_password),
        ),
        (
            Iban,
            // In any case (`gb82 west …` is read the same): the check upper-cases.
            r"\b[A-Za-z]{2}[0-9]{2}(?:[A-Za-z0-9]{11,30}|(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,4})?)\b",
            0,
            Value(checks::is_iban),
        ),
        (
            // Unbroken, or in the groupings cards are printed in (4-4-4-4, 4-6-5 for
            // American Express, 4-4-4-4-3), spaces or dashes; 4-4-4-4 with dots. Not after
            // `+` (a phone number) nor inside a longer run of digits.
            PaymentCard,
            r"(?:^|[^+0-9])((?:[0-9]{13,19}|[0-9]{4}(?: [0-9]{4}){3}(?: [0-9]{3})?|[0-9]{4}(?:-[0-9]{4}){3}(?:-[0-9]{3})?|[0-9]{4}(?:\.[0-9]{4}){3}|[0-9]{4} [0-9]{6} [0-9]{5}|[0-9]{4}-[0-9]{6}-[0-9]{5}))\b",
            1,
            Value(checks::is_payment_card),
        ),
        (
            UsSocialSecurityNumber,
            r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
            0,
            Value(checks::is_us_ssn),
        ),
        (
            // Spaced (`123 45 6789`): only standing alone, see [`ssn_stands_alone`].
            UsSocialSecurityNumber,
            r"\b[0-9]{3} [0-9]{2} [0-9]{4}\b",
            0,
            InText(ssn_stands_alone),
        ),
        (
            UkNationalInsuranceNumber,
            r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b",
            0,
            Value(checks::is_uk_nino),
        ),
    ];
    if contact_details {
        list.push((
            EmailAddress,
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
            0,
            Value(any),
        ));
        list.push((
            PhoneNumber,
            r"(?:\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,5}|\([0-9]{3}\) ?[0-9]{3}-[0-9]{4}|\b[0-9]{3}([.-])[0-9]{3}[.-][0-9]{4})\b",
            0,
            Value(phone_digits),
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
        let aws_secret_key = Regex::new(concat!(r"(?i:", aws_secret_label!(), r")"))
            .expect("the AWS label pattern is valid");
        Self {
            set,
            patterns,
            aws_secret_key,
        }
    }

    /// The findings in `text`, sorted, without overlaps. The text is read folded (see
    /// [`super::fold`]: full-width forms, odd spaces and dashes, invisible characters);
    /// the ranges are in `text` as given.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        self.find_except(text, None)
    }

    /// The findings in an e-mail address (an e-mail field): what it holds, such as a card
    /// number as its local part, but not the address itself — which, with contact details
    /// on, would otherwise cover (and hide) what is inside it.
    pub fn find_in_address(&self, text: &str) -> Vec<Finding> {
        self.find_except(text, Some(FindingKind::EmailAddress))
    }

    fn find_except(&self, text: &str, skip: Option<FindingKind>) -> Vec<Finding> {
        let folded = Folded::new(text);
        let mut found = self.find_folded(folded.text(), skip);
        folded.map_back(&mut found);
        found
    }

    /// The findings in `value`, a string stored under the JSON object key `key`: those of
    /// [`Self::find`], and the value itself when the key labels what it holds (an AWS
    /// secret access key under `"aws_secret_access_key"`, in the spellings the text
    /// pattern reads, invisible characters and full-width forms included).
    pub fn find_under_key(&self, key: &str, value: &str) -> Vec<Finding> {
        let mut found = self.find(value);
        let label = Folded::new(key);
        if !self.aws_secret_key.is_match(label.text()) {
            return found;
        }
        let folded = Folded::new(value);
        let text = folded.text();
        let trimmed = text.trim_start();
        let start = text.len() - trimmed.len();
        let trimmed = trimmed.trim_end();
        // A value written quoted (`"'wJalr…'"`, copied from a shell or a config file).
        let (start, trimmed) = match trimmed
            .strip_prefix(['"', '\''])
            .and_then(|t| t.strip_suffix(['"', '\'']))
        {
            Some(inner) => (start + 1, inner),
            None => (start, trimmed),
        };
        if trimmed.len() == 40
            && trimmed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'='))
        {
            let mut finding = vec![Finding {
                kind: FindingKind::AwsSecretAccessKey,
                start,
                end: start + trimmed.len(),
            }];
            folded.map_back(&mut finding);
            found.retain(|f| f.end <= finding[0].start || f.start >= finding[0].end);
            found.push(finding[0]);
            found.sort_by_key(|f| f.start);
        }
        found
    }

    fn find_folded(&self, text: &str, skip: Option<FindingKind>) -> Vec<Finding> {
        let matched = self.set.matches(text);
        if !matched.matched_any() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for index in matched.iter() {
            let pattern = &self.patterns[index];
            if Some(pattern.kind) == skip {
                continue;
            }
            for captures in pattern.regex.captures_iter(text) {
                let Some(value) = captures.get(pattern.group) else {
                    continue;
                };
                let passes = match pattern.check {
                    Value(check) => check(value.as_str()),
                    InText(check) => check(text, value.start(), value.end()),
                };
                if passes {
                    found.push(Finding {
                        kind: pattern.kind,
                        start: value.start(),
                        end: value.end(),
                    });
                }
            }
        }
        // Earliest first; at one start, the longest. A finding inside a kept one is part
        // of it; one that runs past its end (`sk-…-4111 1111 1111 1111`: a key whose
        // pattern took the card's first group) makes the kept one grow over it, so
        // redaction leaves nothing of either.
        found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
        for finding in found {
            match kept.last_mut() {
                Some(last) if finding.start < last.end => last.end = last.end.max(finding.end),
                _ => kept.push(finding),
            }
        }
        kept
    }
}
