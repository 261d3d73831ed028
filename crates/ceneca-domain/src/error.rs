use std::collections::BTreeMap;

/// Input that breaks the model's rules, by field, so clients can show each message where
/// it belongs. Maps to `422 validation_failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("validation failed: {}", self.summary())]
pub struct ValidationError {
    pub fields: BTreeMap<String, String>,
}

impl ValidationError {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn field(name: impl Into<String>, reason: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(name, reason);
        e
    }
    /// Records a reason; the first reason for a field wins.
    pub fn add(&mut self, name: impl Into<String>, reason: impl Into<String>) {
        self.fields
            .entry(name.into())
            .or_insert_with(|| reason.into());
    }
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
    pub fn summary(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}
