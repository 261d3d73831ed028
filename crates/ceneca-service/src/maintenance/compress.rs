//! Retention's compression: message bodies nobody wrote to for
//! `retention.compress_after_days` are stored packed (zstd, `ceneca_store::packing`).
//!
//! A body's text does not change: readers get it back unpacked, text search finds it
//! with its snippets, and its `updated_at` and change log stay as they were. What changes
//! is what it stores, counted off the storage counters in the round's transaction. The
//! packing itself runs on the blocking pool, between the read of a round and its write,
//! so the writer is never held while zstd works; a body edited meanwhile is left alone by
//! the write.

use std::time::Instant;

use ceneca_domain::Value;
use ceneca_store::{Lease, PackCandidate, PackQuery, PackedBody, WriteBatch, WriteOp, packing};
use ceneca_wire::maintenance::MaintenanceReport;
use uuid::Uuid;

use crate::Services;
use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError};

/// Candidates read per page (their sizes, not their text).
const PAGE: u32 = 200;

/// Text read, packed and written per round, at most (one larger body is a round alone).
const ROUND_BYTES: i64 = 8 * 1024 * 1024;

impl Services {
    /// Packs the bodies written before the rule's cutoff, in rounds; a dry run packs them
    /// too, to report what would be saved, and writes nothing.
    pub(super) async fn compress_old_bodies(
        &self,
        lease: &mut dyn Lease,
        actor: Option<Uuid>,
        report: &mut MaintenanceReport,
        progress: &(dyn Fn(&MaintenanceReport) + Sync),
        stopping: &(dyn Fn() -> bool + Sync),
    ) -> Result<()> {
        let days = self.config.compress_after_days;
        report.compress_after_days = days;
        if days == 0 {
            return Ok(());
        }
        let written_before = ceneca_domain::clock::now() - time::Duration::days(i64::from(days));
        let mut after = None;
        while !stopping() {
            lease.check().await?;
            let query = PackQuery {
                written_before,
                after,
                limit: PAGE,
            };
            let candidates = self.store.pack_candidates(query).await?;
            let Some(last) = candidates.last() else {
                break;
            };
            after = Some((last.updated_at, last.message));
            let full = candidates.len() == PAGE as usize;
            for round in rounds(&candidates) {
                if stopping() {
                    break;
                }
                let ids = round.iter().map(|c| c.message).collect();
                let stored = self.store.message_bodies(ids).await?;
                let bodies = pack_bodies(stored).await?;
                if report.dry_run {
                    report.messages_compressed += bodies.len() as u64;
                    report.compressed_bytes_before +=
                        bodies.iter().map(|b| b.stored.len() as u64).sum::<u64>();
                    report.compressed_bytes_after +=
                        bodies.iter().map(|b| b.frame.len() as u64).sum::<u64>();
                } else if !bodies.is_empty() {
                    self.write_packed(bodies, written_before, actor, report)
                        .await?;
                }
                progress(report);
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Stores `bodies` packed in one transaction, audited with the round's counts.
    async fn write_packed(
        &self,
        bodies: Vec<PackedBody>,
        written_before: time::OffsetDateTime,
        actor: Option<Uuid>,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        let mut event = AuditEvent::new("maintenance.compress", "success");
        event.actor = actor;
        let (audit, chain) = self.audit_parts(event);
        let batch = WriteBatch::new(ceneca_store::Actor {
            user_id: actor,
            ..Default::default()
        })
        .push(WriteOp::Pack {
            bodies,
            written_before,
            audit,
            chain,
        });
        let writing = Instant::now();
        let rows = self.store.apply(batch).await?;
        report.database_us += writing.elapsed().as_micros() as u64;
        let details = match rows.first().and_then(|r| r.get("details")) {
            Some(Value::Json(details)) => details.clone(),
            _ => {
                return Err(ServiceError::Internal(
                    "a compression round returned no audit entry".into(),
                ));
            }
        };
        let count = |name: &str| details[name].as_u64().unwrap_or(0);
        report.messages_compressed += count("messages_compressed");
        report.compressed_bytes_before += count("bytes_before");
        report.compressed_bytes_after += count("bytes_after");
        Ok(())
    }
}

/// A page of candidates cut into rounds of at most [`ROUND_BYTES`] of text (a body larger
/// than that is a round of its own), so a round's memory stays bounded whatever the
/// bodies weigh.
fn rounds(candidates: &[PackCandidate]) -> Vec<&[PackCandidate]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0i64);
    for (i, c) in candidates.iter().enumerate() {
        if i > start && bytes + c.stored_bytes > ROUND_BYTES {
            out.push(&candidates[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += c.stored_bytes;
    }
    if start < candidates.len() {
        out.push(&candidates[start..]);
    }
    out
}

/// The bodies that shrink, packed on the blocking pool.
async fn pack_bodies(stored: Vec<(Uuid, String)>) -> Result<Vec<PackedBody>> {
    tokio::task::spawn_blocking(move || {
        stored
            .into_iter()
            .filter_map(|(message, stored)| {
                let frame = packing::pack(&stored)?;
                Some(PackedBody {
                    message,
                    stored,
                    frame,
                })
            })
            .collect()
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("packing message bodies failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(bytes: i64) -> PackCandidate {
        PackCandidate {
            message: Uuid::now_v7(),
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
            stored_bytes: bytes,
        }
    }

    /// Found by the attack: a round read 200 bodies of up to 4 MB at once.
    #[test]
    fn regression_a_round_is_bounded_by_bytes() {
        let mb = 1024 * 1024;
        let page: Vec<PackCandidate> = [3 * mb, 3 * mb, 3 * mb, 20 * mb, 1, 1]
            .into_iter()
            .map(candidate)
            .collect();
        let sizes: Vec<usize> = rounds(&page).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![2, 1, 1, 2]);
        assert!(rounds(&[]).is_empty());
        let small: Vec<PackCandidate> = (0..200).map(|_| candidate(500)).collect();
        assert_eq!(rounds(&small).len(), 1);
    }
}
