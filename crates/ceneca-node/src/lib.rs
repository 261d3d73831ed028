//! # ceneca-node
//!
//! The local node: the same server on a device, serving the local app from its own store
//! and replicating with an **upstream** Ceneca on the company network (issue 12).
//!
//! - `policy.rs`: where an upstream may be (never in the zero-sync edition; an internal
//!   host or an explicitly allowed one; TLS unless on loopback), resolved once and pinned.
//! - `upstream.rs`: the HTTP client of the upstream's API (log-in, devices, pull, push, the
//!   change stream), with the private CA and the client certificate of the enrolment.
//! - `credentials.rs`: what enrolment keeps in the data folder, sealed with the key ring,
//!   and the replication cursors beside it.
//! - `enroll.rs`: `ceneca device enroll`.
//! - `replicator.rs`: the sync loop `serve` runs on a local node.

mod credentials;
mod enroll;
mod policy;
mod replicator;
mod upstream;

pub use credentials::{Credentials, NodeFiles, SyncCursors};
pub use enroll::{EnrollRequest, Enrolled, enroll};
pub use policy::{CheckedUpstream, check_upstream};
pub use replicator::Replicator;
pub use upstream::{Upstream, UpstreamError};

/// Why the node cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The upstream setting breaks the edition's or the network's rules.
    #[error("{0}")]
    Policy(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The data folder holds no enrolment, or one for another upstream.
    #[error("{0}")]
    NotEnrolled(String),
    #[error("{0}")]
    Files(String),
    #[error(transparent)]
    Service(#[from] ceneca_service::ServiceError),
}
