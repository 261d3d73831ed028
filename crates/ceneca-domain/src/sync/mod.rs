//! Replication between Ceneca nodes (DESIGN.md §3 rule 9): what a change is, how a replica
//! decides which of its fields win, and the clock checks a pushed change must pass. The
//! same code decides on the upstream and on a local node, so replicas that have seen the
//! same changes hold the same rows whatever order the changes arrived in.

pub mod fields;
pub mod logged;
pub mod merge;
#[cfg(test)]
mod tests;

pub use fields::{
    entity_logged_as, entity_named, pushable, replicated, replicated_fields, secrets,
};
pub use logged::{logged_value, show_logged_values};
pub use merge::{
    Conflict, ConflictKind, Decision, Operation, RowClocks, Stamp, decide, refuse_future,
};
