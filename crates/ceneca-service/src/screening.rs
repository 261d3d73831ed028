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
use ceneca_domain::network::{ExternalReference, ReferenceScanner};
use serde_json::{Map, Value as Json};

use crate::Services;
use crate::dlp::{LARGE_SCAN_BYTES, scan_off_worker};
use crate::error::Result;

/// The most findings one refusal lists.
const MAX_FINDINGS: usize = 20;

impl Services {
    /// Refuses `object` if any string in it (keys included) refers outside the network;
    /// errors name fields under `prefix` (`items[3].`), or at the top when it is empty.
    /// An object of more than [`LARGE_SCAN_BYTES`] of text is scanned on the blocking
    /// pool (a copy of it), so that a multi-megabyte body does not hold an async worker.
    pub(crate) async fn screen(&self, prefix: &str, object: &Map<String, Json>) -> Result<()> {
        let Some(scanner) = &self.config.reference_scanner else {
            return Ok(());
        };
        let found = if object_text_len(object) > LARGE_SCAN_BYTES {
            let (scanner, prefix, object) = (scanner.clone(), prefix.to_owned(), object.clone());
            scan_off_worker("the reference scan", move || {
                scan_object(&scanner, &prefix, &object)
            })
            .await?
        } else {
            scan_object(scanner, prefix, object)
        };
        if found.is_empty() {
            return Ok(());
        }
        let mut errors = ValidationError::new();
        for (path, reference) in found {
            errors.add(path, reference.to_string());
        }
        Err(errors.into())
    }

    /// [`Self::screen`] for one string field: a name or an address, short enough to be
    /// scanned inline.
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

/// The references outside the network in `object` (keys included), at most
/// [`MAX_FINDINGS`], with their paths under `prefix`.
fn scan_object(
    scanner: &ReferenceScanner,
    prefix: &str,
    object: &Map<String, Json>,
) -> Vec<(String, ExternalReference)> {
    let mut found = Vec::new();
    for (key, value) in object {
        let path = format!("{prefix}{key}");
        if let Some(reference) = scanner.scan(key) {
            found.push((path.clone(), reference));
        }
        scanner.scan_json(value, &path, MAX_FINDINGS, &mut found);
    }
    found
}

/// The bytes of text in `object`: keys and strings, at any depth.
fn object_text_len(object: &Map<String, Json>) -> usize {
    fn len(value: &Json) -> usize {
        match value {
            Json::String(s) => s.len(),
            Json::Array(items) => items.iter().map(len).sum(),
            Json::Object(map) => object_text_len(map),
            _ => 0,
        }
    }
    object.iter().map(|(k, v)| k.len() + len(v)).sum()
}
