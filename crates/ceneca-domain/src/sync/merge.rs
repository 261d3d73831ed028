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
    /// A field was set by two writers; the later stamp kept its value. Reported where the
    /// losing write arrives after the winner (at least on the winner's own node, when the
    /// two were concurrent). Hybrid clocks cannot tell a concurrent write from one its
    /// successor had seen, so a late arrival of an overwritten value is reported too.
    ConcurrentEdit,
    /// An update older than the row's deletion, arriving where the row is deleted: the row
    /// stays deleted, the update's values are written into the tombstone (where a restore
    /// shows them) and kept in the conflict record.
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
/// writes what it says, then [`RowClocks::absorb`]s the change with all its fields.
///
/// An update of a row this replica has never seen inserts nothing (its create has not
/// arrived: the caller keeps it pending and decides again once the create is absorbed, or
/// refuses it); it is reported with an empty decision and `insert == false`, so the caller
/// can tell from `clocks.exists`. Such a change must not be absorbed (nor folded into the
/// clocks from a log) before it is decided again: its registers would claim values the row
/// never received.
///
/// Edits never move the deletion register: an edit that reaches a tombstone is written into
/// it (so every replica holds the same values, which a later restore shows) and the row
/// stays deleted. When the delete is the later write, the edit is reported as
/// [`ConflictKind::EditLostToDelete`].
///
/// A replay is recognised when the change's stamp sits in one of its registers (stamps are
/// unique: the change id is part of them). A replay of a change every one of whose registers
/// has since been taken by later writes cannot be told from a late first arrival by the
/// registers alone: it writes nothing either way, but reports its lost fields again, so a
/// caller that logs changes by id should skip ids it has already applied.
pub fn decide(clocks: &RowClocks, operation: Operation, stamp: Stamp, fields: &[&str]) -> Decision {
    let mut decision = Decision::default();
    match operation {
        Operation::Create | Operation::Update => {
            if !clocks.exists && operation == Operation::Update {
                return decision;
            }
            // Absorbing a change takes every one of its registers to at least its stamp, and
            // only this change can have put exactly its stamp in one. So one register holding
            // it means the whole change was taken in before: nothing in it can win now, and
            // what it lost was reported when it first arrived. (Requiring *all* registers to
            // hold it, as the first cut did, reported a replay again as a concurrent edit
            // whenever a later write had since taken one of its fields.)
            if fields
                .iter()
                .any(|name| clocks.fields.get(*name) == Some(&stamp))
            {
                decision.duplicate = true;
                return decision;
            }
            decision.insert = !clocks.exists;
            if decision.insert && clocks.deleted() {
                // Its delete arrived first: the row comes into being as a tombstone.
                decision.set_deleted = Some(true);
            }
            let mut lost = Vec::new();
            let mut winner = None::<Stamp>;
            for name in fields {
                match clocks.fields.get(*name) {
                    Some(current) if *current > stamp => {
                        lost.push((*name).to_owned());
                        winner = winner.max(Some(*current));
                    }
                    _ => decision.apply.push((*name).to_owned()),
                }
            }
            if let Some(winner) = winner {
                decision.conflicts.push(Conflict {
                    kind: ConflictKind::ConcurrentEdit,
                    fields: lost,
                    winner,
                });
            }
            // Only an update can lose to a delete. A create older than the row's delete is
            // the history the deleter saw (a row is deleted after it was created): reporting
            // it, as the first cut did whenever the delete arrived first, recorded a conflict
            // nobody had.
            if operation == Operation::Update
                && let Some((true, deleted_at)) = clocks.deletion
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
/// a wrong clock would otherwise win every later edit until its time came). `Err` carries
/// how far ahead it was, in milliseconds; exactly `max_ahead_millis` ahead is accepted.
///
/// Check before observing: a refused stamp must not reach the clock. And take `now_hlc`
/// from the wall clock ([`HybridClock::physical_now`](crate::clock::HybridClock::physical_now)),
/// not from a tick: a tick has already taken in the stamps accepted before, so each
/// accepted change would move the bar forward for the next one.
pub fn refuse_future(hlc: u64, now_hlc: u64, max_ahead_millis: u64) -> Result<(), u64> {
    let ahead = crate::clock::HybridClock::millis(hlc)
        .saturating_sub(crate::clock::HybridClock::millis(now_hlc));
    if ahead > max_ahead_millis {
        Err(ahead)
    } else {
        Ok(())
    }
}
