//! Replication (DESIGN.md §3 rule 9): the change feed a client pulls or streams, the
//! changes a device pushes, and the conflicts merging recorded. Every node serves these
//! routes; the zero-sync edition has none of them.
//!
//! | File | Public methods |
//! |---|---|
//! | `pull.rs` | `pull`, `pull_from_now`, `change_signal` |
//! | `push.rs` | `push` |
//! | `conflicts.rs` | `list_conflicts` |
//! | `node.rs` | `node_status`, `sync_status` |
//! | `replica.rs` | `adopt_account`, `apply_upstream`, `pending_changes`, `count_pending` |

mod conflicts;
mod node;
mod pull;
mod push;
mod replica;

pub use node::{LocalNode, NodeStatusBoard};
pub use replica::UpstreamApplied;

use ceneca_domain::Edition;

use crate::Services;
use crate::error::{Result, ServiceError};

impl Services {
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
