//! What every crate's configuration section reports when a value cannot be used.
//!
//! Each crate owns the section of `ceneca.toml` that configures it (`[http]`, `[store]`,
//! …) and checks it; the error names the key the way the file spells it
//! (`section.key`), so the message points at the line to fix whichever layer (file,
//! environment, flag) set it.

/// A setting that parsed but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidSetting {
    /// `section.key`, as in `ceneca.toml`.
    pub key: String,
    pub reason: String,
}

impl InvalidSetting {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A list setting given as a list (`["a", "b"]` in a file) or as one comma-separated
/// string (`CENECA_INTERNAL_HOSTS=10.0.0.0/8,corp.example.com` in the environment).
pub fn list_or_csv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match <Form as serde::Deserialize>::deserialize(d)? {
        Form::List(items) => items,
        Form::Csv(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}
