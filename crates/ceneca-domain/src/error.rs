use std::collections::BTreeMap;

/// Input that breaks the model's rules, by field, so clients can show each message where
/// it belongs. Maps to `422 validation_failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("validation failed: {}", self.summary())]
pub struct ValidationError {
    pub fields: BTreeMap<String, String>,
}

/// The most characters of one object key a field path shows: a client's key can be a
/// megabyte long (and is echoed in errors), the path only has to point at it.
pub const MAX_PATH_KEY_CHARS: usize = 64;

/// Appends `key` to a field path (`metadata` → `metadata.links`), shortened to
/// [`MAX_PATH_KEY_CHARS`] characters and `…` when longer. Walks over JSON push and
/// truncate one `String` rather than formatting a path per item: a long key above a
/// long list would otherwise be copied once per item (quadratic).
pub fn push_path_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    match key.char_indices().nth(MAX_PATH_KEY_CHARS) {
        None => path.push_str(key),
        Some((cut, _)) => {
            path.push_str(&key[..cut]);
            path.push('…');
        }
    }
}

/// Appends a list index to a field path (`links` → `links[2]`).
pub fn push_path_index(path: &mut String, index: usize) {
    use std::fmt::Write;
    let _ = write!(path, "[{index}]");
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

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn paths_show_keys_shortened_and_indexes() {
        let mut path = String::new();
        push_path_key(&mut path, "metadata");
        push_path_index(&mut path, 3);
        push_path_key(&mut path, &"é".repeat(100));
        assert_eq!(
            path,
            format!("metadata[3].{}…", "é".repeat(MAX_PATH_KEY_CHARS))
        );
    }
}
