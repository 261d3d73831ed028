//! What a client may store. With the reference scanner on (always in the zero-sync
//! edition; `network.reference_policy = "reject"` in the enterprise one), no string of any
//! write — any field of any entity, nested JSON (metadata, settings, flow definitions),
//! every item of a batch, a vector point's fields, a display name — may point outside the
//! network: such a write is refused whole (422), naming each field path and the host
//! found, and nothing is stored.
//!
//! Every client write reaches the store through a path that calls [`Services::screen`]
//! before building its `WriteBatch`: creates and batch items (`resources/create.rs`),
//! updates (`resources/update.rs`), vector points (`vectors/points.rs`) and accounts
//! (`auth/accounts.rs`). Rows the server writes itself (audit entries, sessions, the
//! change log) hold no client text.

use ceneca_domain::ValidationError;
use serde_json::{Map, Value as Json};

use crate::Services;
use crate::error::Result;

/// The most findings one refusal lists.
const MAX_FINDINGS: usize = 20;

impl Services {
    /// Refuses `object` if any string in it (keys included) refers outside the network;
    /// errors name fields under `prefix` (`items[3].`), or at the top when it is empty.
    pub(crate) fn screen(&self, prefix: &str, object: &Map<String, Json>) -> Result<()> {
        let Some(scanner) = &self.config.reference_scanner else {
            return Ok(());
        };
        let mut found = Vec::new();
        for (key, value) in object {
            let path = format!("{prefix}{key}");
            if let Some(reference) = scanner.scan(key) {
                found.push((path.clone(), reference));
            }
            scanner.scan_json(value, &path, MAX_FINDINGS, &mut found);
        }
        if found.is_empty() {
            return Ok(());
        }
        let mut errors = ValidationError::new();
        for (path, reference) in found {
            errors.add(path, reference.to_string());
        }
        Err(errors.into())
    }

    /// [`Self::screen`] for one string field.
    pub(crate) fn screen_text(&self, field: &str, text: &str) -> Result<()> {
        let Some(scanner) = &self.config.reference_scanner else {
            return Ok(());
        };
        match scanner.scan(text) {
            None => Ok(()),
            Some(reference) => {
                let mut errors = ValidationError::new();
                errors.add(field, reference.to_string());
                Err(errors.into())
            }
        }
    }
}
