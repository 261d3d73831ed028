//! Field-level last-writer-wins: each row is a map of registers, one per field, plus one
//! register for "deleted". A register keeps the [`Stamp`] of the write that set it; a
//! write wins a register when its stamp is greater. Stamps are totally ordered (hybrid
//! logical clock, then change id), so the outcome does not depend on arrival order, and a
//! change applied twice decides nothing the second time.
//!
//! Conflicts are what a user would want to know was lost: a field value overwritten by a
//! concurrent write of the same field, an edit that landed on a row deleted after it, and
//! (decided by the store, which sees the rows) a unique key taken by another row. They are
//! recorded by the node that notices them; the rows themselves converge regardless.

use std::collections::BTreeMap;

use uuid::Uuid;

/// The order of writes across nodes: hybrid-logical-clock time, then the change id (a
/// UUIDv7, unique) as a deterministic tie-break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub hlc: u64,
    pub change: Uuid,
}

/// What a change does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// The row comes into being with these fields. Creating a row that exists is merging
    /// its fields (two replicas cannot invent the same UUIDv7, so this is a replay).
    Create,
    /// Sets these fields.
    Update,
    /// Sets the deletion register: the row is a tombstone.
    Delete,
    /// Clears the deletion register.
    Restore,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Restore => "restore",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "create" => Operation::Create,
            "update" => Operation::Update,
            "delete" => Operation::Delete,
            "restore" => Operation::Restore,
            _ => return None,
        })
    }
}

/// What a replica knows of one row's registers: the stamp of the write that last set each
/// field, and of the last delete or restore (`deleted` says which it was).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowClocks {
    /// Whether the row exists here (created, possibly deleted since).
    pub exists: bool,
    pub fields: BTreeMap<String, Stamp>,
    pub deletion: Option<(bool, Stamp)>,
}

impl RowClocks {
    /// Whether the row is a tombstone.
    pub fn deleted(&self) -> bool {
        matches!(self.deletion, Some((true, _)))
    }

    /// Takes a change the replica has applied (or logged) into the registers: the folding
    /// step that rebuilds a row's clocks from its change log, in any order.
    pub fn absorb(&mut self, operation: Operation, stamp: Stamp, fields: &[&str]) {
        match operation {
            Operation::Create | Operation::Update => {
                if operation == Operation::Create {
                    self.exists = true;
                }
                for name in fields {
                    let slot = self.fields.entry((*name).to_owned()).or_insert(stamp);
                    if stamp > *slot {
                        *slot = stamp;
                    }
                }
            }
            Operation::Delete | Operation::Restore => {
                let deleted = operation == Operation::Delete;
                if self.deletion.is_none_or(|(_, s)| stamp > s) {
                    self.deletion = Some((deleted, stamp));
                }
            }
        }
    }
}

/// Why a change did not simply apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConflictKind {
    /// A field was set by two writers; the later stamp kept its value.
    ConcurrentEdit,
    /// An edit older than the row's deletion: the row stays deleted, the edit's values are
    /// kept in the conflict record.
    EditLostToDelete,
    /// A unique key (a slug, an e-mail) is taken by another row; the earlier stamp keeps
    /// it.
    UniqueKey,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::ConcurrentEdit => "concurrent_edit",
            ConflictKind::EditLostToDelete => "edit_lost_to_delete",
            ConflictKind::UniqueKey => "unique_key",
        }
    }
}

/// One conflict a decision found: which fields of the incoming change lost, and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub kind: ConflictKind,
    /// The fields of the incoming change that did not win (empty for a whole-row loss).
    pub fields: Vec<String>,
    /// The stamp that won.
    pub winner: Stamp,
}

/// What to do with one incoming change on one row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The row does not exist here: insert it (with the fields in `apply`).
    pub insert: bool,
    /// Fields whose incoming values win and must be written.
    pub apply: Vec<String>,
    /// `Some(true)`: mark the row deleted; `Some(false)`: restore it.
    pub set_deleted: Option<bool>,
    /// Fields (or the deletion) that lost, to record; empty when nothing was lost.
    pub conflicts: Vec<Conflict>,
    /// The change was already fully absorbed (a replay): nothing to write, nothing to
    /// record.
    pub duplicate: bool,
}

impl Decision {
    /// Whether anything must be written.
    pub fn writes(&self) -> bool {
        self.insert || !self.apply.is_empty() || self.set_deleted.is_some()
    }
}

/// Decides what an incoming change does to a row with these registers. Pure: the caller
/// writes what it says, then [`RowClocks::absorb`]s the change.
///
/// An update of a row this replica has never seen inserts nothing (its create has not
/// arrived: the caller keeps it pending, or refuses it); it is reported with an empty
/// decision and `insert == false`, so the caller can tell from `clocks.exists`.
pub fn decide(clocks: &RowClocks, operation: Operation, stamp: Stamp, fields: &[&str]) -> Decision {
    let mut decision = Decision::default();
    match operation {
        Operation::Create | Operation::Update => {
            if !clocks.exists && operation == Operation::Update {
                return decision;
            }
            decision.insert = !clocks.exists;
            if decision.insert && clocks.deleted() {
                // Its delete arrived first: the row comes into being as a tombstone.
                decision.set_deleted = Some(true);
            }
            let mut lost = Vec::new();
            let mut winner = None::<Stamp>;
            let mut same = 0;
            for name in fields {
                match clocks.fields.get(*name) {
                    Some(current) if *current == stamp => same += 1,
                    Some(current) if *current > stamp => {
                        lost.push((*name).to_owned());
                        winner = winner.max(Some(*current));
                    }
                    _ => decision.apply.push((*name).to_owned()),
                }
            }
            if same == fields.len() && clocks.exists && !fields.is_empty() {
                decision.duplicate = true;
                return decision;
            }
            if let Some(winner) = winner {
                decision.conflicts.push(Conflict {
                    kind: ConflictKind::ConcurrentEdit,
                    fields: lost,
                    winner,
                });
            }
            if let Some((true, deleted_at)) = clocks.deletion
                && deleted_at > stamp
                && !decision.apply.is_empty()
            {
                decision.conflicts.push(Conflict {
                    kind: ConflictKind::EditLostToDelete,
                    fields: decision.apply.clone(),
                    winner: deleted_at,
                });
            }
        }
        Operation::Delete | Operation::Restore => {
            let deleted = operation == Operation::Delete;
            match clocks.deletion {
                Some((_, current)) if current == stamp => decision.duplicate = true,
                Some((_, current)) if current > stamp => {}
                // Without the row (its create has not arrived) there is nothing to mark:
                // the caller still absorbs the register, so the create, when it comes,
                // inserts a tombstone.
                _ if clocks.exists && clocks.deleted() != deleted => {
                    decision.set_deleted = Some(deleted);
                }
                _ => {}
            }
        }
    }
    decision
}

/// Refuses a change stamped further ahead of `now` than `max_ahead_millis` (a device with
/// a wrong clock would otherwise win every later edit until its time came).
pub fn refuse_future(hlc: u64, now_hlc: u64, max_ahead_millis: u64) -> Result<(), u64> {
    let ahead = crate::clock::HybridClock::millis(hlc)
        .saturating_sub(crate::clock::HybridClock::millis(now_hlc));
    if ahead > max_ahead_millis {
        Err(ahead)
    } else {
        Ok(())
    }
}
