//! Replication (DESIGN.md §3 rule 9): the change feed a client pulls or streams, the
//! changes a device pushes, and the conflicts merging recorded. Every node serves these
//! routes; the zero-sync edition has none of them.
//!
//! | File | Public methods |
//! |---|---|
//! | `pull.rs` | `pull`, `pull_from_now`, `change_signal` |
//! | `push.rs` | `push` |
//! | `snapshot.rs` | `snapshot` |
//! | `conflicts.rs` | `list_conflicts` |
//! | `compact.rs` | `compact_change_log`, `run_log_compaction` |
//! | `node.rs` | `node_status`, `sync_status` |
//! | `replica.rs` | `adopt_account`, `apply_upstream`, `keep_only`, `pending_changes`, `count_pending` |

mod compact;
mod conflicts;
mod node;
mod pull;
mod push;
mod replica;
#[cfg(test)]
mod replica_tests;
mod shared_feed;
mod snapshot;

pub use compact::Compacted;
pub use node::{LocalNode, NodeStatusBoard};
pub use replica::{Shown, UpstreamApplied};
pub use shared_feed::SharedFeed;

use ceneca_domain::Edition;

use crate::Services;
use crate::error::{Result, ServiceError};

/// How often a device's `last_seen_at` is written at most: its syncs every few seconds
/// must not each cost a write.
const SEEN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Services {
    /// Records that the caller's device synced (`devices.last_seen_at`), at most once a
    /// minute per device on this node. Not change-logged: it is the server's note.
    async fn note_device_seen(&self, caller: &crate::Caller) -> Result<()> {
        let Some(device) = caller.device_id else {
            return Ok(());
        };
        let now = std::time::Instant::now();
        {
            let mut seen = self.seen_devices.lock().unwrap_or_else(|e| e.into_inner());
            if seen
                .get(&device)
                .is_some_and(|at| now.duration_since(*at) < SEEN_EVERY)
            {
                return Ok(());
            }
            if seen.len() > 100_000 {
                seen.clear();
            }
            seen.insert(device, now);
        }
        let mut set = ceneca_domain::Record::new();
        set.set(
            "last_seen_at",
            ceneca_domain::Value::Time(ceneca_domain::clock::now()),
        );
        let batch =
            ceneca_store::WriteBatch::new(caller.actor()).push(ceneca_store::WriteOp::UpdateAll {
                entity: &ceneca_domain::model::DEVICES,
                // The caller's own device: its token's, or one `push` checked is theirs.
                filter: ceneca_domain::scope::ScopeFilter::AnyOf(vec![("id", vec![device])]),
                set,
            });
        self.store.apply(batch).await?;
        Ok(())
    }

    /// Refuses replication in the zero-sync edition, saying why.
    fn require_sync(&self) -> Result<()> {
        if self.config.edition == Edition::ZeroSync {
            return Err(ServiceError::NotInEdition(
                "sync does not exist in the zero-sync edition: this server keeps every \
                 byte where it is and replicates nothing"
                    .into(),
            ));
        }
        Ok(())
    }
}
