//! Data-loss prevention on write: finding secrets (API keys of the major AI and cloud
//! providers, private keys, JWTs, passwords in URLs) and personal data (payment cards,
//! IBANs, national identity numbers, and e-mail addresses and phone numbers when asked)
//! in the text a client stores, and what a policy does about them.
//!
//! Detection is pattern plus proof where a proof exists — a card number must pass the Luhn
//! check and start with an issuer prefix, an IBAN must have its country's length and pass
//! the ISO 7064 mod-97 check, a US social security number must not use a number range the
//! SSA never issues — so ordinary numbers in prose (order ids, timestamps, phone-like
//! digit runs) are not flagged. All patterns run on the `regex` crate's automata:
//! linear in the text, whatever the text holds.
//!
//! The patterns read the text folded (`fold.rs`): full-width forms, spaces of other
//! widths, Unicode dashes and invisible characters are read as the ASCII a reader sees,
//! and findings are mapped back to the text as sent, so a disguised value is found and
//! redacted whole. ASCII text is read where it is, without a copy.
//!
//! A [`Finding`] carries the kind and where the value is, never the value: callers that
//! record findings (the audit trail) or refuse a write (a 422) cannot leak it.

mod checks;
mod detectors;
mod fold;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use detectors::Detector;

/// What a write holding a finding gets. Ordered from weakest to strictest: where several
/// levels set a policy (the server, an organization, a workspace), the strictest applies,
/// so a lower level can tighten the rule but never loosen it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DlpPolicy {
    /// Nothing is looked for.
    #[default]
    Off,
    /// The write is stored as sent; each finding is recorded in the audit trail (field and
    /// kind, never the value).
    Flag,
    /// Each finding is replaced by `[REDACTED:<kind>]` before storage, and recorded.
    Redact,
    /// The write is refused (422 naming the field and the kind), and the attempt recorded.
    Reject,
}

impl DlpPolicy {
    pub const ALL: &'static [&'static str] = &["off", "flag", "redact", "reject"];

    pub fn as_str(self) -> &'static str {
        match self {
            DlpPolicy::Off => "off",
            DlpPolicy::Flag => "flag",
            DlpPolicy::Redact => "redact",
            DlpPolicy::Reject => "reject",
        }
    }

    /// The policy stored in a `dlp_policy` column: unset (or a value no longer known)
    /// is `off`, which follows the levels above.
    pub fn from_column(column: Option<&str>) -> Self {
        column
            .and_then(|text| text.parse().ok())
            .unwrap_or_default()
    }
}

impl FromStr for DlpPolicy {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "off" => Ok(DlpPolicy::Off),
            "flag" => Ok(DlpPolicy::Flag),
            "redact" => Ok(DlpPolicy::Redact),
            "reject" => Ok(DlpPolicy::Reject),
            _ => Err(()),
        }
    }
}

impl fmt::Display for DlpPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was found. The names are stable: they appear in audit entries and in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    OpenaiApiKey,
    AnthropicApiKey,
    GoogleApiKey,
    AwsAccessKeyId,
    AwsSecretAccessKey,
    GithubToken,
    SlackToken,
    StripeKey,
    HuggingfaceToken,
    GroqApiKey,
    PrivateKey,
    Jwt,
    UrlPassword,
    PaymentCard,
    Iban,
    UsSocialSecurityNumber,
    UkNationalInsuranceNumber,
    EmailAddress,
    PhoneNumber,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::OpenaiApiKey => "openai_api_key",
            FindingKind::AnthropicApiKey => "anthropic_api_key",
            FindingKind::GoogleApiKey => "google_api_key",
            FindingKind::AwsAccessKeyId => "aws_access_key_id",
            FindingKind::AwsSecretAccessKey => "aws_secret_access_key",
            FindingKind::GithubToken => "github_token",
            FindingKind::SlackToken => "slack_token",
            FindingKind::StripeKey => "stripe_key",
            FindingKind::HuggingfaceToken => "huggingface_token",
            FindingKind::GroqApiKey => "groq_api_key",
            FindingKind::PrivateKey => "private_key",
            FindingKind::Jwt => "jwt",
            FindingKind::UrlPassword => "url_password",
            FindingKind::PaymentCard => "payment_card",
            FindingKind::Iban => "iban",
            FindingKind::UsSocialSecurityNumber => "us_social_security_number",
            FindingKind::UkNationalInsuranceNumber => "uk_national_insurance_number",
            FindingKind::EmailAddress => "email_address",
            FindingKind::PhoneNumber => "phone_number",
        }
    }

    /// How a refusal describes it.
    pub fn describe(self) -> &'static str {
        match self {
            FindingKind::OpenaiApiKey => "an OpenAI API key",
            FindingKind::AnthropicApiKey => "an Anthropic API key",
            FindingKind::GoogleApiKey => "a Google API key",
            FindingKind::AwsAccessKeyId => "an AWS access key id",
            FindingKind::AwsSecretAccessKey => "an AWS secret access key",
            FindingKind::GithubToken => "a GitHub token",
            FindingKind::SlackToken => "a Slack token",
            FindingKind::StripeKey => "a Stripe key",
            FindingKind::HuggingfaceToken => "a Hugging Face token",
            FindingKind::GroqApiKey => "a Groq API key",
            FindingKind::PrivateKey => "a private key",
            FindingKind::Jwt => "a JSON Web Token",
            FindingKind::UrlPassword => "a password in a URL",
            FindingKind::PaymentCard => "a payment card number",
            FindingKind::Iban => "an IBAN",
            FindingKind::UsSocialSecurityNumber => "a US social security number",
            FindingKind::UkNationalInsuranceNumber => "a UK national insurance number",
            FindingKind::EmailAddress => "an e-mail address",
            FindingKind::PhoneNumber => "a phone number",
        }
    }

    /// Secrets (credentials) as opposed to personal data.
    pub fn is_secret(self) -> bool {
        !matches!(
            self,
            FindingKind::PaymentCard
                | FindingKind::Iban
                | FindingKind::UsSocialSecurityNumber
                | FindingKind::UkNationalInsuranceNumber
                | FindingKind::EmailAddress
                | FindingKind::PhoneNumber
        )
    }

    /// What replaces a finding under [`DlpPolicy::Redact`].
    pub fn placeholder(self) -> String {
        format!("[REDACTED:{}]", self.as_str())
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding in a text: its kind and its byte range (the value itself is never kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub start: usize,
    pub end: usize,
}

/// Replaces each finding in `text` with its placeholder. `findings` are sorted and do not
/// overlap (as [`Detector::find`] returns them).
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for finding in findings {
        out.push_str(&text[at..finding.start]);
        out.push_str(&finding.kind.placeholder());
        at = finding.end;
    }
    out.push_str(&text[at..]);
    out
}
