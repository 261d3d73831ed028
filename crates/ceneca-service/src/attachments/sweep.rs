//! The orphan sweep: blobs no attachment row references (as its file or its thumbnail), and temporary files a crash
//! left, removed once older than a grace period. On one node, an upload holds the blob
//! gate (shared) from keeping its blob to committing its row and the sweep holds it alone
//! to decide and remove, so the sweep never takes a blob a write is about to name; across
//! nodes sharing a volume, the grace period (and the time an upload renews on a blob it
//! found stored) covers that window.

use std::time::{Duration, SystemTime};

use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Value, model};
use ceneca_store::{BlobKey, ListQuery};

use crate::Services;
use crate::error::Result;

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub blobs_examined: usize,
    pub blobs_removed: usize,
    pub temporary_removed: usize,
}

/// How often the server sweeps, and the grace period it gives uploads.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);
pub const SWEEP_GRACE: Duration = Duration::from_secs(3600);

impl Services {
    /// Removes blobs no row references and temporary files, each older than `grace`.
    /// A maintenance path: it reads every tenant's rows (only to count references).
    pub async fn sweep_blobs(&self, grace: Duration) -> Result<SweepReport> {
        let blobs = self.blob_store()?.clone();
        let inventory = blobs.inventory().await.map_err(super::storage_error)?;
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = SweepReport::default();
        for (path, modified) in &inventory.temporary {
            if *modified < cutoff {
                blobs
                    .remove_temporary(path)
                    .await
                    .map_err(super::storage_error)?;
                report.temporary_removed += 1;
            }
        }
        for (key, modified) in &inventory.blobs {
            report.blobs_examined += 1;
            if *modified >= cutoff {
                continue;
            }
            if self.remove_blob_if_unnamed(key, None).await? {
                report.blobs_removed += 1;
            }
        }
        if report.blobs_removed + report.temporary_removed > 0 {
            tracing::info!(
                blobs = report.blobs_removed,
                temporary = report.temporary_removed,
                "swept attachment storage: files no row references"
            );
        }
        Ok(report)
    }

    /// Removes the blob `key` if no attachment row names it (as its file or its thumbnail), and (with `grace`) if it
    /// was last written longer ago than that; whether it did.
    pub(crate) async fn remove_blob_if_unnamed(
        &self,
        key: &BlobKey,
        grace: Option<Duration>,
    ) -> Result<bool> {
        let blobs = self.blob_store()?.clone();
        if let Some(grace) = grace {
            // Another process (the command line beside a server, nodes sharing a volume)
            // does not share the gate: an upload there may be about to name this blob,
            // whose time it renewed when it found it stored. The sweep takes it later.
            let Some(file) = blobs.open(key).await.map_err(super::storage_error)? else {
                return Ok(false);
            };
            let modified = file
                .metadata()
                .await
                .and_then(|m| m.modified())
                .map_err(super::storage_error)?;
            if modified.elapsed().unwrap_or_default() < grace {
                return Ok(false);
            }
        }
        // No upload is between keeping a blob and committing its row while this is held,
        // so "no row names it" stays true until the blob is gone. (Nodes sharing a volume
        // do not share the gate: the grace period covers them.)
        let _gate = self.blob_gate.write().await;
        // A backup being written may copy it yet (a row of its snapshot may name it):
        // the sweep takes it once no backup runs.
        if self.backup_in_progress() {
            return Ok(false);
        }
        // A blob is an attachment's file or an image's thumbnail.
        for column in ["storage_key", "thumbnail_key"] {
            let mut query = ListQuery::new(ScopeFilter::All, "id", false, 1);
            query.equals = vec![(column, Value::Text(key.as_str().to_owned()))];
            query.deleted = ceneca_store::Deleted::Include;
            if !self
                .store
                .list(&model::ATTACHMENTS, query)
                .await?
                .is_empty()
            {
                return Ok(false);
            }
        }
        blobs.remove(key).await.map_err(super::storage_error)?;
        Ok(true)
    }

    /// Sweeps every [`SWEEP_EVERY`] until the server stops (spawned by `serve`).
    pub async fn run_blob_sweep(self) {
        if self.blobs.is_none() {
            return;
        }
        let mut ticks = tokio::time::interval(SWEEP_EVERY);
        loop {
            ticks.tick().await;
            if let Err(e) = self.sweep_blobs(SWEEP_GRACE).await {
                tracing::warn!(error = %e, "the attachment sweep failed; it runs again later");
            }
        }
    }
}
