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
use crate::dlp::{LARGE_SCAN_BYTES, json_text_len, scan_off_worker};
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
        let found = if object
            .iter()
            .map(|(k, v)| k.len() + json_text_len(v))
            .sum::<usize>()
            > LARGE_SCAN_BYTES
        {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ceneca_domain::Edition;
    use ceneca_domain::dlp::DlpPolicy;
    use ceneca_domain::{Record, Value, model};
    use serde_json::json;

    use crate::ServiceConfig;
    use crate::testing::{services_with, sign_up};

    /// A task that counts how often it runs, yielding in between: on a runtime with one
    /// thread it runs only while every other task waits.
    fn ticker() -> Arc<AtomicUsize> {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counter = ticks.clone();
        tokio::spawn(async move {
            loop {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        ticks
    }

    /// Runs `scan` and answers how often the ticker ran meanwhile.
    async fn ticks_during<F: std::future::Future>(ticks: &AtomicUsize, scan: F) -> usize {
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        let _ = scan.await;
        ticks.load(Ordering::Relaxed) - before
    }

    /// Gap 7: a large write is scanned (by the reference scanner and by DLP) on the
    /// blocking pool, so the one worker of this runtime runs other tasks meanwhile; a
    /// small one is scanned inline, where no other task can run.
    #[tokio::test(flavor = "current_thread")]
    async fn regression_large_texts_are_scanned_off_the_worker() {
        let t = services_with(ServiceConfig {
            edition: Edition::ZeroSync,
            dlp_policy: DlpPolicy::Flag,
            ..Default::default()
        })
        .await;
        let (caller, _) = sign_up(&t.svc, "ann@example.com").await;
        let ticks = ticker();
        let large = "see docs.internal/page and 4111 1111 1111 1112 ".repeat(4_000);
        assert!(large.len() > super::LARGE_SCAN_BYTES);
        for (text, off_worker) in [(large.as_str(), true), ("a short message", false)] {
            let object = json!({ "content": text });
            let object = object.as_object().unwrap();
            let ran = ticks_during(&ticks, t.svc.screen("", object)).await;
            assert_eq!(ran > 0, off_worker, "screen: {} bytes", text.len());
            let mut record = Record::new();
            record.set("content", Value::Text(text.to_owned()));
            let mut ops = Vec::new();
            let apply = t.svc.apply_dlp(
                &caller,
                &model::MESSAGES,
                ["content"].into_iter(),
                &mut record,
                None,
                &mut ops,
            );
            let ran = ticks_during(&ticks, apply).await;
            assert_eq!(ran > 0, off_worker, "DLP: {} bytes", text.len());
        }
    }
}
