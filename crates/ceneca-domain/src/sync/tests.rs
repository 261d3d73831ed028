//! The merge's rules one at a time, then the property they exist for (DESIGN.md §3 rule 9):
//! replicas with skewed clocks that exchange changes reordered, duplicated, delayed, refused
//! as too far ahead and dropped-then-resent end holding the same rows — and, counted from
//! the rows, the same counters and message order — which are the rows the rules name (an
//! oracle folded from the whole change set), and the writes concurrent writers lost are
//! recorded as conflicts.
//!
//! A [`Replica`] does with a decision what the store does: insert, write the winning
//! fields, set the deletion flag, absorb the change with all its fields; keep an update
//! whose create has not arrived pending; refuse a change too far ahead of its wall clock and
//! observe the stamps it accepts. Every decision it takes is checked against the rules on
//! the way ([`check_decision`]), so a wrong decision fails where it happens, not only when
//! states are compared at the end.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;

use super::merge::{
    Conflict, ConflictKind, Decision, Operation, RowClocks, Stamp, decide, refuse_future,
};
use crate::clock::HybridClock;
use crate::model;
use crate::schema::{Entity, Input};

/// How far ahead of a receiver's wall clock a change may be stamped (ms). Smaller than the
/// skews the property draws, so refusals (and their retries) happen.
const MAX_AHEAD: u64 = 1_000;
/// Wall clocks start around here (ms); skews move them up to 1.5 s either way.
const EPOCH: u64 = 1_700_000_000_000;

// ---- The model's part -----------------------------------------------------------------

/// Every entity whose writes go to the change log, so to other replicas.
fn synced() -> Vec<&'static Entity> {
    model::ALL.iter().copied().filter(|e| e.changelog).collect()
}

/// The fields updates touch: a few a client may change (PATCH), by their real names.
fn editable(entity: &Entity) -> Vec<&'static str> {
    entity
        .fields
        .iter()
        .filter(|f| f.patch && f.stored && f.input != Input::Server)
        .map(|f| f.name)
        .take(3)
        .collect()
}

/// The fields a create carries: the editable ones, one a client sets only on create (so
/// entities without editable fields carry something), and the parent a counter counts by.
fn create_fields(entity: &Entity) -> Vec<&'static str> {
    let mut names = editable(entity);
    if let Some(f) = entity
        .fields
        .iter()
        .find(|f| !f.patch && f.stored && f.input != Input::Server)
    {
        names.push(f.name);
    }
    if let Some(c) = entity.counter
        && !names.contains(&c.field)
    {
        names.push(c.field);
    }
    names
}

/// Columns kept by counting other rows (a thread's `message_count`, `last_message_at`).
/// No change may carry them: each replica recounts them from the rows it holds.
fn counter_columns() -> BTreeSet<(&'static str, &'static str)> {
    let mut columns = BTreeSet::new();
    for e in model::ALL {
        if let Some(c) = e.counter {
            columns.insert((c.table, c.count_column));
            if let Some(touch) = c.touch_column {
                columns.insert((c.table, touch));
            }
        }
    }
    columns
}

// ---- Changes, rows, replicas -----------------------------------------------------------

#[derive(Clone)]
struct Change {
    entity: &'static Entity,
    row: Uuid,
    operation: Operation,
    stamp: Stamp,
    /// Fields and their values (creates and updates). Values are unique per write, so a
    /// wrong winner cannot pass for the right one.
    values: Vec<(&'static str, String)>,
    /// The originator's wall clock when it wrote: a created row's `created_at`.
    created_at: u64,
    origin: usize,
    /// The changes the originator had absorbed when it wrote this one: what it had seen,
    /// so which writes were concurrent with it.
    seen: BTreeSet<Uuid>,
}

/// Short enough to read in a failure: the table, not the whole entity; not what was seen.
impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} of {} {} at {:#x}/{} by replica {} {:?}",
            self.operation.as_str(),
            self.id(),
            self.entity.table,
            self.row,
            self.stamp.hlc,
            self.stamp.change,
            self.origin,
            self.values
        )
    }
}

impl Change {
    fn id(&self) -> Uuid {
        self.stamp.change
    }
    fn fields(&self) -> Vec<&str> {
        self.values.iter().map(|(name, _)| *name).collect()
    }
    fn value(&self, name: &str) -> (&'static str, &str) {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, v)| (*n, v.as_str()))
            .unwrap_or_else(|| panic!("{name} is not a field of {self:?}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    table: &'static str,
    values: BTreeMap<&'static str, String>,
    deleted: bool,
    created_at: u64,
}

#[derive(Debug, Clone, Default)]
struct Replica {
    /// Wall-clock milliseconds: simulated, skewed per replica, moved only by the test.
    wall: u64,
    /// The last hybrid timestamp issued or observed.
    last: u64,
    rows: BTreeMap<Uuid, Row>,
    clocks: BTreeMap<Uuid, RowClocks>,
    /// Updates whose create has not arrived.
    pending: Vec<Change>,
    /// Ids of the changes taken into the clocks.
    absorbed: BTreeSet<Uuid>,
    /// Conflicts recorded, by the id of the change that lost.
    conflicts: Vec<(Uuid, Conflict)>,
}

impl Replica {
    fn at(wall: u64) -> Self {
        Replica {
            wall,
            ..Replica::default()
        }
    }

    /// `HybridClock::advance` without real time: greater than the wall clock, than every
    /// timestamp issued, and than the remote one observed.
    fn advance(&mut self, remote: u64) -> u64 {
        let next = HybridClock::from_millis(self.wall)
            .max(self.last + 1)
            .max(remote + 1);
        self.last = next;
        next
    }

    /// Takes a change from another replica: the bar first (a refused stamp must not reach
    /// the clock; the sender keeps the change and sends it again), then the clock, then the
    /// merge. `false` when refused.
    fn receive(&mut self, change: &Change) -> bool {
        if refuse_future(
            change.stamp.hlc,
            HybridClock::from_millis(self.wall),
            MAX_AHEAD,
        )
        .is_err()
        {
            return false;
        }
        self.advance(change.stamp.hlc);
        self.apply(change);
        true
    }

    /// Decides a change and does what the decision says, as the store does.
    fn apply(&mut self, change: &Change) -> Decision {
        let fields = change.fields();
        let replay = self.absorbed.contains(&change.id());
        let row_exists = self.rows.contains_key(&change.row);
        let clocks = self.clocks.entry(change.row).or_default();
        let decision = decide(clocks, change.operation, change.stamp, &fields);
        check_decision(clocks, change, &decision, replay, row_exists);
        if change.operation == Operation::Update && !clocks.exists {
            self.pending.push(change.clone());
            return decision;
        }
        if decision.insert {
            self.rows.insert(
                change.row,
                Row {
                    table: change.entity.table,
                    values: BTreeMap::new(),
                    deleted: false,
                    created_at: change.created_at,
                },
            );
        }
        match self.rows.get_mut(&change.row) {
            Some(row) => {
                for name in &decision.apply {
                    let (name, value) = change.value(name);
                    row.values.insert(name, value.to_owned());
                }
                if let Some(deleted) = decision.set_deleted {
                    row.deleted = deleted;
                }
            }
            None => assert!(!decision.writes(), "a write to a row not here: {change:?}"),
        }
        clocks.absorb(change.operation, change.stamp, &fields);
        if let Some(row) = self.rows.get(&change.row) {
            assert_eq!(row.deleted, clocks.deleted(), "flag and register disagree");
        }
        self.absorbed.insert(change.id());
        self.conflicts.extend(
            decision
                .conflicts
                .iter()
                .map(|conflict| (change.id(), conflict.clone())),
        );
        if decision.insert {
            // Its create is here: the updates that waited for it are decided now.
            let (ready, waiting) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition::<Vec<_>, _>(|p| p.row == change.row);
            self.pending = waiting;
            for update in &ready {
                self.apply(update);
            }
        }
        decision
    }

    /// What a user would see: the rows, and what is counted from them.
    fn state(&self) -> State {
        State::of(&self.rows)
    }
}

/// Checks one decision against the rules, given the registers it was taken on. `replay`:
/// this replica has absorbed the change before (which `decide` cannot be told).
fn check_decision(
    clocks: &RowClocks,
    change: &Change,
    decision: &Decision,
    replay: bool,
    row_exists: bool,
) {
    let stamp = change.stamp;
    let fields = change.fields();
    assert_eq!(
        row_exists, clocks.exists,
        "harness: row and clocks disagree"
    );
    assert!(
        !decision.duplicate || replay,
        "a first arrival was taken for a replay (its values would be lost): {change:?}"
    );
    if decision.duplicate {
        assert!(
            !decision.writes() && decision.conflicts.is_empty(),
            "a duplicate must do nothing: {decision:?}"
        );
        return;
    }
    if replay {
        assert!(
            !decision.writes(),
            "a replay wrote: {change:?} {decision:?}"
        );
        // One register holding the change's own stamp proves it was absorbed here.
        let proof = match change.operation {
            Operation::Create | Operation::Update => fields
                .iter()
                .any(|name| clocks.fields.get(*name) == Some(&stamp)),
            Operation::Delete | Operation::Restore => {
                clocks.deletion.map(|(_, s)| s) == Some(stamp)
            }
        };
        assert!(!proof, "a provable replay was not called one: {change:?}");
    }
    let conflicts_of =
        |kind: ConflictKind| decision.conflicts.iter().filter(move |c| c.kind == kind);
    match change.operation {
        Operation::Update if !clocks.exists => {
            assert_eq!(
                *decision,
                Decision::default(),
                "an update before its create decides nothing"
            );
        }
        Operation::Create | Operation::Update => {
            assert_eq!(
                decision.insert, !clocks.exists,
                "a create inserts exactly when the row is not here"
            );
            assert_eq!(
                decision.set_deleted,
                (decision.insert && clocks.deleted()).then_some(true),
                "an edit never moves the deletion register; a create after its delete is a tombstone"
            );
            // Field-level last-writer-wins: each field apart, the greater stamp.
            let (lost, won): (Vec<&str>, Vec<&str>) = fields
                .iter()
                .copied()
                .partition(|name| clocks.fields.get(*name).is_some_and(|s| *s > stamp));
            assert_eq!(decision.apply, won, "the fields that win: {change:?}");
            let concurrent: Vec<_> = conflicts_of(ConflictKind::ConcurrentEdit).collect();
            if lost.is_empty() {
                assert!(concurrent.is_empty());
            } else {
                let winner = lost.iter().filter_map(|n| clocks.fields.get(*n)).max();
                assert_eq!(concurrent.len(), 1, "lost fields are recorded: {change:?}");
                assert_eq!(concurrent[0].fields, lost);
                assert_eq!(Some(&concurrent[0].winner), winner);
            }
            let to_delete: Vec<_> = conflicts_of(ConflictKind::EditLostToDelete).collect();
            match clocks.deletion {
                Some((true, deleted_at))
                    if change.operation == Operation::Update
                        && deleted_at > stamp
                        && !won.is_empty() =>
                {
                    assert_eq!(to_delete.len(), 1, "an edit lost to a delete: {change:?}");
                    assert_eq!(to_delete[0].fields, won);
                    assert_eq!(to_delete[0].winner, deleted_at);
                }
                _ => assert!(to_delete.is_empty(), "no delete beat {change:?}"),
            }
        }
        Operation::Delete | Operation::Restore => {
            let deleted = change.operation == Operation::Delete;
            let wins = clocks.deletion.is_none_or(|(_, s)| s < stamp);
            assert!(!decision.insert && decision.apply.is_empty());
            assert_eq!(
                decision.set_deleted,
                (wins && clocks.exists && clocks.deleted() != deleted).then_some(deleted),
                "the deletion register: {change:?}"
            );
            assert!(decision.conflicts.is_empty());
        }
    }
    for conflict in &decision.conflicts {
        assert!(
            conflict.winner > stamp,
            "a conflict names a winner that lost"
        );
        assert_ne!(
            conflict.kind,
            ConflictKind::UniqueKey,
            "the store's to find"
        );
    }
}

/// What replicas must agree on.
#[derive(Debug, PartialEq, Eq)]
struct State {
    rows: BTreeMap<Uuid, Row>,
    /// Per counted parent (`threads`, id): its live children and the latest one's
    /// `created_at`, counted from the rows.
    counters: BTreeMap<(&'static str, Uuid), (u64, Option<u64>)>,
    /// Per parent: its live children in display order, (`created_at`, id).
    order: BTreeMap<Uuid, Vec<Uuid>>,
}

impl State {
    /// Fails naming the first row (or counter, or order) where `self` differs from
    /// `expected`: a whole state is too long to read in a failure.
    fn assert_same(&self, expected: &State, what: &str) {
        let ids: BTreeSet<&Uuid> = self.rows.keys().chain(expected.rows.keys()).collect();
        for id in ids {
            assert_eq!(self.rows.get(id), expected.rows.get(id), "{what}: row {id}");
        }
        assert_eq!(self.counters, expected.counters, "{what}: counters");
        assert_eq!(self.order, expected.order, "{what}: message order");
    }

    fn of(rows: &BTreeMap<Uuid, Row>) -> State {
        let mut counters = BTreeMap::new();
        let mut order = BTreeMap::<Uuid, Vec<(u64, Uuid)>>::new();
        for entity in synced() {
            let Some(counter) = entity.counter else {
                continue;
            };
            for (id, _) in rows.iter().filter(|(_, r)| r.table == counter.table) {
                counters.insert((counter.table, *id), (0, None));
            }
            for (id, row) in rows.iter().filter(|(_, r)| r.table == entity.table) {
                if row.deleted {
                    continue;
                }
                let parent = row.values[counter.field]
                    .parse::<Uuid>()
                    .expect("a parent id");
                let (count, latest) = counters.entry((counter.table, parent)).or_insert((0, None));
                *count += 1;
                *latest = (*latest).max(Some(row.created_at));
                order.entry(parent).or_default().push((row.created_at, *id));
            }
        }
        State {
            rows: rows.clone(),
            counters,
            order: order
                .into_iter()
                .map(|(parent, mut children)| {
                    children.sort();
                    (parent, children.into_iter().map(|(_, id)| id).collect())
                })
                .collect(),
        }
    }
}

/// The rows the rules name, folded straight from every change made: each field holds the
/// value of its greatest write, each row the state of its greatest delete or restore.
fn oracle(log: &[Change]) -> BTreeMap<Uuid, Row> {
    let mut rows = BTreeMap::new();
    let mut best = BTreeMap::<(Uuid, &'static str), (Stamp, &str)>::new();
    let mut deletion = BTreeMap::<Uuid, (Stamp, bool)>::new();
    for change in log {
        match change.operation {
            Operation::Create | Operation::Update => {
                if change.operation == Operation::Create {
                    rows.insert(
                        change.row,
                        Row {
                            table: change.entity.table,
                            values: BTreeMap::new(),
                            deleted: false,
                            created_at: change.created_at,
                        },
                    );
                }
                for (name, value) in &change.values {
                    let slot = best
                        .entry((change.row, *name))
                        .or_insert((change.stamp, value));
                    if change.stamp > slot.0 {
                        *slot = (change.stamp, value);
                    }
                }
            }
            Operation::Delete | Operation::Restore => {
                let deleted = change.operation == Operation::Delete;
                let slot = deletion
                    .entry(change.row)
                    .or_insert((change.stamp, deleted));
                if change.stamp > slot.0 {
                    *slot = (change.stamp, deleted);
                }
            }
        }
    }
    for ((id, name), (_, value)) in best {
        let row = rows.get_mut(&id).expect("every edited row was created");
        row.values.insert(name, value.to_owned());
    }
    for (id, (_, deleted)) in deletion {
        rows.get_mut(&id)
            .expect("deleted rows were created")
            .deleted = deleted;
    }
    rows
}

// ---- The world the property runs ------------------------------------------------------

/// Replicas and the network between them: changes in flight (delivered in any order, some
/// twice, some refused and sent again) and changes dropped (sent again on `Resend` and at
/// the end).
struct World {
    replicas: Vec<Replica>,
    in_flight: Vec<(usize, Change)>,
    dropped: Vec<(usize, Change)>,
    /// Every change made, in the order made.
    log: Vec<Change>,
    serial: u64,
    salt: u64,
}

/// A 64-bit mix (SplitMix64's finaliser): spreads serial numbers over ids, so id order
/// is unrelated to who wrote first, as between UUIDv7s of one millisecond.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl World {
    fn new(skews: &[i64], salt: u64) -> Self {
        World {
            replicas: skews
                .iter()
                .map(|skew| Replica::at(EPOCH.saturating_add_signed(*skew)))
                .collect(),
            in_flight: Vec::new(),
            dropped: Vec::new(),
            log: Vec::new(),
            serial: 0,
            salt,
        }
    }

    /// A unique id whose order is random: high bits mixed, low bits the serial.
    fn fresh_id(&mut self) -> Uuid {
        self.serial += 1;
        Uuid::from_u128((u128::from(mix(self.serial ^ self.salt)) << 64) | u128::from(self.serial))
    }

    /// A local write at `origin`: stamped by its clock, applied through the same decision
    /// as any change, sent to every other replica.
    fn write(
        &mut self,
        origin: usize,
        entity: &'static Entity,
        row: Uuid,
        operation: Operation,
        values: Vec<(&'static str, String)>,
    ) -> Uuid {
        for (name, _) in &values {
            assert!(
                !counter_columns().contains(&(entity.table, *name)),
                "a counter travelled as a value: {}.{name}",
                entity.table
            );
        }
        let change_id = self.fresh_id();
        let replica = &mut self.replicas[origin];
        let change = Change {
            entity,
            row,
            operation,
            stamp: Stamp {
                hlc: replica.advance(0),
                change: change_id,
            },
            values,
            created_at: replica.wall,
            origin,
            seen: replica.absorbed.clone(),
        };
        let decision = replica.apply(&change);
        // The clock has observed every stamp absorbed here, so a local write is later than
        // all of them and wins everything it touches.
        let fields: Vec<String> = change.fields().iter().map(|n| (*n).to_owned()).collect();
        match operation {
            Operation::Create => assert!(decision.insert && decision.apply == fields),
            Operation::Update => {
                assert!(decision.apply == fields && decision.conflicts.is_empty())
            }
            Operation::Delete => assert_eq!(decision.set_deleted, Some(true)),
            Operation::Restore => assert_eq!(decision.set_deleted, Some(false)),
        }
        for to in 0..self.replicas.len() {
            if to != origin {
                self.in_flight.push((to, change.clone()));
            }
        }
        self.log.push(change);
        row
    }

    /// Creates a row of `entity` at `origin`. A counted child (a message) goes under a
    /// live parent there (a thread), created first when there is none.
    fn create(&mut self, origin: usize, entity: &'static Entity, pick: usize) -> Uuid {
        let parent = match entity.counter {
            Some(counter) => {
                let parents = self.live(origin, |e| e.table == counter.table);
                Some(match parents.get(pick % parents.len().max(1)) {
                    Some(id) => *id,
                    None => {
                        let table = model::by_table(counter.table).expect("a parent table");
                        self.create(origin, table, pick)
                    }
                })
            }
            None => None,
        };
        let row = self.fresh_id();
        let serial = self.serial;
        let values = create_fields(entity)
            .into_iter()
            .map(|name| match (entity.counter, parent) {
                (Some(c), Some(parent)) if c.field == name => (name, parent.to_string()),
                _ => (name, format!("{serial}:{name}")),
            })
            .collect();
        self.write(origin, entity, row, Operation::Create, values)
    }

    /// Rows live (created, not deleted) at a replica, of the entities `which` takes.
    fn live(&self, replica: usize, which: impl Fn(&Entity) -> bool) -> Vec<Uuid> {
        self.rows_where(replica, |e, row| !row.deleted && which(e))
    }

    fn rows_where(&self, replica: usize, which: impl Fn(&Entity, &Row) -> bool) -> Vec<Uuid> {
        self.replicas[replica]
            .rows
            .iter()
            .filter(|(_, row)| which(model::by_table(row.table).expect("a table"), row))
            .map(|(id, _)| *id)
            .collect()
    }

    fn act(&mut self, action: &Action) {
        let n = self.replicas.len();
        match *action {
            Action::Write {
                replica,
                what,
                pick,
            } => self.local(replica % n, what, pick),
            Action::Deliver { pick, how } => self.deliver(pick, how),
            Action::Tick { replica, millis } => self.replicas[replica % n].wall += millis,
            Action::Race { who, pick, fields } => self.race(who, pick, fields),
            Action::Resend => self.in_flight.append(&mut self.dropped),
        }
    }

    /// What a user may do through the API at one replica: edit, delete only live rows,
    /// restore only deleted rows of entities that delete softly.
    fn local(&mut self, origin: usize, what: What, pick: usize) {
        let entities = synced();
        match what {
            What::Create => {
                self.create(
                    origin,
                    entities[pick % entities.len()],
                    pick / entities.len(),
                );
            }
            What::Message => {
                self.create(origin, &model::MESSAGES, pick);
            }
            What::Update { fields, hot } => {
                let rows = self.live(origin, |e| {
                    e.api.update
                        && !editable(e).is_empty()
                        && (!hot || e.table == model::THREADS.table)
                });
                if let Some(row) = rows.get(pick % rows.len().max(1)).copied() {
                    self.update(origin, row, fields);
                }
            }
            What::Delete => {
                let rows = self.live(origin, |e| e.api.delete);
                if let Some(row) = rows.get(pick % rows.len().max(1)).copied() {
                    let entity =
                        model::by_table(self.replicas[origin].rows[&row].table).expect("a table");
                    self.write(origin, entity, row, Operation::Delete, Vec::new());
                }
            }
            What::Restore => {
                let rows = self.rows_where(origin, |e, row| row.deleted && e.soft_delete);
                if let Some(row) = rows.get(pick % rows.len().max(1)).copied() {
                    let entity =
                        model::by_table(self.replicas[origin].rows[&row].table).expect("a table");
                    self.write(origin, entity, row, Operation::Restore, Vec::new());
                }
            }
        }
    }

    /// Edits some of a row's editable fields (bits of `fields`; at least one).
    fn update(&mut self, origin: usize, row: Uuid, fields: u8) {
        let entity = model::by_table(self.replicas[origin].rows[&row].table).expect("a table");
        let names = editable(entity);
        let mut chosen: Vec<_> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| fields & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        if chosen.is_empty() {
            chosen.push(names[usize::from(fields) % names.len()]);
        }
        let serial = self.serial + 1;
        let values = chosen
            .into_iter()
            .map(|name| (name, format!("{serial}:{name}")))
            .collect();
        self.write(origin, entity, row, Operation::Update, values);
    }

    fn race(&mut self, who: u8, pick: usize, fields: u8) {
        let racers: Vec<usize> = (0..self.replicas.len())
            .filter(|i| who & (1 << i) != 0)
            .collect();
        let Some(first) = racers.first() else {
            return;
        };
        let threads = self.live(*first, |e| e.table == model::THREADS.table);
        let Some(row) = threads.get(pick % threads.len().max(1)).copied() else {
            return;
        };
        let racers: Vec<usize> = racers
            .into_iter()
            .filter(|r| {
                self.replicas[*r]
                    .rows
                    .get(&row)
                    .is_some_and(|row| !row.deleted)
            })
            .collect();
        let at = self
            .replicas
            .iter()
            .map(|r| r.wall.max(HybridClock::millis(r.last)) + 1)
            .max()
            .unwrap_or(EPOCH);
        for racer in racers {
            self.replicas[racer].wall = at;
            self.update(racer, row, fields);
            let stamp = self.log.last().expect("the racer wrote").stamp;
            assert_eq!(stamp.hlc, HybridClock::from_millis(at), "a racer's clock");
        }
    }

    fn deliver(&mut self, pick: usize, how: How) {
        if self.in_flight.is_empty() {
            return;
        }
        let i = pick % self.in_flight.len();
        match how {
            How::Once => {
                let (to, change) = self.in_flight.remove(i);
                if !self.replicas[to].receive(&change) {
                    self.in_flight.push((to, change));
                }
            }
            How::Twice => {
                // Delivered now and again later: the copy stays in flight.
                let (to, change) = self.in_flight[i].clone();
                self.replicas[to].receive(&change);
            }
            How::Drop => {
                let lost = self.in_flight.remove(i);
                self.dropped.push(lost);
            }
        }
    }

    /// The full exchange: every dropped change is sent again and every wall clock reaches
    /// the latest stamp (so none is refused any more), then everything in flight is
    /// delivered, in an order drawn by the property.
    fn drain(&mut self, order: &[usize]) {
        self.in_flight.append(&mut self.dropped);
        let latest = self
            .log
            .iter()
            .map(|c| HybridClock::millis(c.stamp.hlc))
            .max()
            .unwrap_or(0);
        for replica in &mut self.replicas {
            replica.wall = replica.wall.max(latest);
        }
        let mut k = 0;
        while !self.in_flight.is_empty() {
            let i = order[k % order.len()] % self.in_flight.len();
            k += 1;
            let (to, change) = self.in_flight.remove(i);
            assert!(
                self.replicas[to].receive(&change),
                "refused after clocks caught up"
            );
        }
    }

    /// Every write concurrent writers lost is recorded by the winner's node.
    ///
    /// Two writes of one field, neither made with the other seen: the later one's node
    /// holds it when the earlier arrives, so the earlier loses there, and must be recorded.
    /// An update older than the row's last deletion, which the deleter had not seen:
    /// it arrives at the deleter's node on a tombstone and must be recorded (as lost to the
    /// delete, or to concurrent edits if every one of its fields lost those).
    fn check_conflicts_recorded(&self) {
        let recorded = |replica: usize, loser: Uuid, pred: &dyn Fn(&Conflict) -> bool| {
            self.replicas[replica]
                .conflicts
                .iter()
                .any(|(id, c)| *id == loser && pred(c))
        };
        let mut last_deletion = BTreeMap::<Uuid, &Change>::new();
        for change in &self.log {
            if matches!(change.operation, Operation::Delete | Operation::Restore) {
                let slot = last_deletion.entry(change.row).or_insert(change);
                if change.stamp > slot.stamp {
                    *slot = change;
                }
            }
        }
        for later in &self.log {
            for earlier in &self.log {
                if earlier.row != later.row
                    || earlier.stamp >= later.stamp
                    || later.seen.contains(&earlier.id())
                    || !matches!(earlier.operation, Operation::Create | Operation::Update)
                {
                    continue;
                }
                match later.operation {
                    Operation::Create | Operation::Update => {
                        for field in earlier.fields() {
                            if later.fields().contains(&field) {
                                assert!(
                                    recorded(later.origin, earlier.id(), &|c| {
                                        c.kind == ConflictKind::ConcurrentEdit
                                            && c.fields.iter().any(|f| f == field)
                                    }),
                                    "{field} of {earlier:?} lost to {later:?} unrecorded"
                                );
                            }
                        }
                    }
                    Operation::Delete
                        if earlier.operation == Operation::Update
                            && last_deletion[&later.row].id() == later.id() =>
                    {
                        assert!(
                            recorded(later.origin, earlier.id(), &|c| matches!(
                                c.kind,
                                ConflictKind::EditLostToDelete | ConflictKind::ConcurrentEdit
                            )),
                            "{earlier:?} lost to the delete {later:?} unrecorded"
                        );
                    }
                    _ => {}
                }
            }
        }
    }
}

// ---- The property ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum What {
    Create,
    Message,
    /// `fields`: which editable fields, as bits; `hot`: only threads (a case has a few),
    /// so replicas write the same fields of the same rows often.
    Update {
        fields: u8,
        hot: bool,
    },
    Delete,
    Restore,
}

#[derive(Debug, Clone, Copy)]
enum How {
    Once,
    /// Delivered now, and the copy left in flight arrives again later.
    Twice,
    /// Lost until the next `Resend` (or the end).
    Drop,
}

#[derive(Debug, Clone)]
enum Action {
    Write {
        replica: usize,
        what: What,
        pick: usize,
    },
    Deliver {
        pick: usize,
        how: How,
    },
    Tick {
        replica: usize,
        millis: u64,
    },
    /// Replicas (bits of `who`) whose wall clocks meet at one millisecond past every
    /// stamp they know edit the same fields of one thread before hearing from each other:
    /// equal hybrid times, which only the change id orders.
    Race {
        who: u8,
        pick: usize,
        fields: u8,
    },
    Resend,
}

fn what() -> impl Strategy<Value = What> {
    prop_oneof![
        2 => Just(What::Create),
        3 => Just(What::Message),
        6 => (any::<u8>(), any::<bool>()).prop_map(|(fields, hot)| What::Update { fields, hot }),
        2 => Just(What::Delete),
        1 => Just(What::Restore),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let how = prop_oneof![6 => Just(How::Once), 2 => Just(How::Twice), 1 => Just(How::Drop)];
    prop_oneof![
        6 => (0..5usize, what(), any::<usize>())
            .prop_map(|(replica, what, pick)| Action::Write { replica, what, pick }),
        6 => (any::<usize>(), how).prop_map(|(pick, how)| Action::Deliver { pick, how }),
        // Often no time at all: equal clocks on two replicas, ties broken by change id.
        2 => (0..5usize, prop_oneof![Just(0u64), 0..400u64])
            .prop_map(|(replica, millis)| Action::Tick { replica, millis }),
        1 => (any::<u8>(), any::<usize>(), any::<u8>())
            .prop_map(|(who, pick, fields)| Action::Race { who, pick, fields }),
        1 => Just(Action::Resend),
    ]
}

/// Cases per run: `CENECA_MERGE_CASES` (a nightly run sets thousands), 64 by default so CI
/// takes seconds.
fn cases() -> u32 {
    match std::env::var("CENECA_MERGE_CASES") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("CENECA_MERGE_CASES must be a number, not {text:?}")),
        Err(_) => 64,
    }
}

/// Runs one drawn history and checks everything the merge promises of it.
fn run(
    skews: &[i64],
    salt: u64,
    actions: &[Action],
    drain_order: &[usize],
    batch_seed: u64,
) -> World {
    let mut world = World::new(skews, salt);
    let n = skews.len();
    // One row of every synced entity, spread over the replicas, so each case merges them
    // all; a message goes to the replica that made the thread.
    let mut thread_at = None;
    for (i, entity) in synced().into_iter().enumerate() {
        let origin = match (entity.counter, thread_at) {
            (Some(_), Some(at)) => at,
            _ => i % n,
        };
        world.create(origin, entity, 0);
        if entity.table == model::THREADS.table {
            thread_at = Some(origin);
        }
    }
    for action in actions {
        world.act(action);
    }
    world.drain(drain_order);

    let all: BTreeSet<Uuid> = world.log.iter().map(Change::id).collect();
    for replica in &world.replicas {
        assert!(
            replica.pending.is_empty(),
            "an update still waits for its create"
        );
        assert_eq!(replica.absorbed, all, "a change never arrived");
    }
    let converged = world.replicas[0].state();
    for (i, replica) in world.replicas.iter().enumerate() {
        replica
            .state()
            .assert_same(&converged, &format!("replica {i} against replica 0"));
        assert!(
            replica.clocks == world.replicas[0].clocks,
            "registers of replica {i} differ from replica 0's"
        );
    }
    converged.assert_same(&State::of(&oracle(&world.log)), "what the rules name");
    world.check_conflicts_recorded();

    // Everything again, at every replica: replays write nothing.
    for replica in &world.replicas {
        let mut again = replica.clone();
        for change in world.log.iter().rev() {
            assert!(!again.apply(change).writes());
        }
        again.state().assert_same(&converged, "everything replayed");
    }

    // The whole log as one batch in another order, at a new replica; then the batch again.
    let mut batch: Vec<&Change> = world.log.iter().collect();
    batch.sort_by_key(|c| mix(c.stamp.change.as_u128() as u64 ^ batch_seed));
    let mut fresh = Replica::default();
    for change in &batch {
        fresh.apply(change);
    }
    assert!(fresh.pending.is_empty());
    fresh
        .state()
        .assert_same(&converged, "one batch in another order");
    let clocks = fresh.clocks.clone();
    for change in &batch {
        fresh.apply(change);
    }
    fresh
        .state()
        .assert_same(&converged, "the batch applied twice");
    assert!(
        fresh.clocks == clocks,
        "the batch applied twice moved registers"
    );
    world
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn replicas_converge_whatever_the_delivery(
        replicas in 3usize..=5,
        skews in proptest::collection::vec(prop_oneof![Just(0i64), -1_500i64..=1_500], 5),
        salt in any::<u64>(),
        actions in proptest::collection::vec(action(), 1..160),
        drain_order in proptest::collection::vec(any::<usize>(), 1..8),
        batch_seed in any::<u64>(),
    ) {
        run(&skews[..replicas], salt, &actions, &drain_order, batch_seed);
    }
}

// ---- The rules one at a time ----------------------------------------------------------

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn stamp(hlc: u64, change: u128) -> Stamp {
    Stamp {
        hlc,
        change: id(change),
    }
}

const ROW: u128 = 1_000;

/// A change of one thread (`ROW`), made at `hlc` with change id `change`.
fn thread_change(
    operation: Operation,
    hlc: u64,
    change: u128,
    values: &[(&'static str, &str)],
) -> Change {
    Change {
        entity: &model::THREADS,
        row: id(ROW),
        operation,
        stamp: stamp(hlc, change),
        values: values.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        created_at: hlc,
        origin: 0,
        seen: BTreeSet::new(),
    }
}

fn create_thread() -> Change {
    thread_change(
        Operation::Create,
        10,
        1,
        &[
            ("title", "first"),
            ("pinned", "false"),
            ("workspace_id", "w"),
        ],
    )
}

/// Applies the changes in this order at a new replica.
fn replay(changes: &[&Change]) -> Replica {
    let mut replica = Replica::default();
    for change in changes {
        replica.apply(change);
    }
    replica
}

fn row(replica: &Replica) -> &Row {
    &replica.rows[&id(ROW)]
}

#[test]
fn edits_of_different_fields_both_survive() {
    let create = create_thread();
    // Same clock on two nodes: only the fields tell them apart.
    let title = thread_change(Operation::Update, 20, 2, &[("title", "renamed")]);
    let pinned = thread_change(Operation::Update, 20, 3, &[("pinned", "true")]);
    let one = replay(&[&create, &title, &pinned]);
    let other = replay(&[&create, &pinned, &title]);
    assert_eq!(one.state(), other.state());
    assert_eq!(row(&one).values["title"], "renamed");
    assert_eq!(row(&one).values["pinned"], "true");
    assert!(one.conflicts.is_empty() && other.conflicts.is_empty());
}

#[test]
fn the_greater_stamp_wins_a_field_in_every_order() {
    let create = create_thread();
    let early = thread_change(Operation::Update, 20, 2, &[("title", "early")]);
    let late = thread_change(Operation::Update, 30, 3, &[("title", "late")]);
    let in_order = replay(&[&create, &early, &late]);
    let reversed = replay(&[&create, &late, &early]);
    assert_eq!(row(&in_order).values["title"], "late");
    assert_eq!(in_order.state(), reversed.state());
    // Only where the loser arrives second is anything lost, and that is recorded.
    assert!(in_order.conflicts.is_empty());
    assert_eq!(
        reversed.conflicts,
        vec![(
            id(2),
            Conflict {
                kind: ConflictKind::ConcurrentEdit,
                fields: vec!["title".to_owned()],
                winner: late.stamp,
            }
        )]
    );
}

#[test]
fn equal_clocks_are_ordered_by_change_id() {
    let create = create_thread();
    let lower = thread_change(Operation::Update, 20, 7, &[("title", "lower id")]);
    let higher = thread_change(Operation::Update, 20, 9, &[("title", "higher id")]);
    for order in [[&create, &lower, &higher], [&create, &higher, &lower]] {
        assert_eq!(row(&replay(&order)).values["title"], "higher id");
    }
}

#[test]
fn an_edit_older_than_the_delete_loses_and_is_recorded() {
    let create = create_thread();
    let edit = thread_change(Operation::Update, 20, 2, &[("title", "edited")]);
    let delete = thread_change(Operation::Delete, 30, 3, &[]);
    let edit_first = replay(&[&create, &edit, &delete]);
    let delete_first = replay(&[&create, &delete, &edit]);
    for replica in [&edit_first, &delete_first] {
        assert!(row(replica).deleted, "the row stays deleted");
        // Written into the tombstone all the same: a restore shows the same row everywhere.
        assert_eq!(row(replica).values["title"], "edited");
    }
    assert_eq!(edit_first.state(), delete_first.state());
    assert!(edit_first.conflicts.is_empty(), "the deleter had the edit");
    assert_eq!(
        delete_first.conflicts,
        vec![(
            id(2),
            Conflict {
                kind: ConflictKind::EditLostToDelete,
                fields: vec!["title".to_owned()],
                winner: delete.stamp,
            }
        )]
    );
}

#[test]
fn an_edit_newer_than_the_delete_stays_in_the_tombstone() {
    let create = create_thread();
    let delete = thread_change(Operation::Delete, 20, 2, &[]);
    let edit = thread_change(Operation::Update, 30, 3, &[("title", "edited later")]);
    let delete_first = replay(&[&create, &delete, &edit]);
    let edit_first = replay(&[&create, &edit, &delete]);
    assert_eq!(delete_first.state(), edit_first.state());
    // An edit never moves the deletion register (only a restore does), and it lost nothing.
    assert!(row(&delete_first).deleted);
    assert_eq!(row(&delete_first).values["title"], "edited later");
    assert!(delete_first.conflicts.is_empty() && edit_first.conflicts.is_empty());
    let restored = replay(&[
        &create,
        &delete,
        &edit,
        &thread_change(Operation::Restore, 40, 4, &[]),
    ]);
    assert!(!row(&restored).deleted);
    assert_eq!(row(&restored).values["title"], "edited later");
}

#[test]
fn delete_and_restore_are_one_register() {
    let create = create_thread();
    let delete = thread_change(Operation::Delete, 20, 2, &[]);
    let restore = thread_change(Operation::Restore, 30, 3, &[]);
    for order in [[&create, &delete, &restore], [&create, &restore, &delete]] {
        assert!(!row(&replay(&order)).deleted, "the later restore wins");
    }
    let delete_again = thread_change(Operation::Delete, 40, 4, &[]);
    let mut replica = replay(&[&create, &delete, &restore]);
    assert_eq!(replica.apply(&delete_again).set_deleted, Some(true));
    // A restore older than the register changes nothing and is no conflict.
    let stale = thread_change(Operation::Restore, 35, 5, &[]);
    let decision = replica.apply(&stale);
    assert_eq!(decision, Decision::default());
    assert!(row(&replica).deleted && replica.conflicts.is_empty());
}

#[test]
fn a_create_arriving_after_its_delete_is_a_tombstone() {
    let create = create_thread();
    let delete = thread_change(Operation::Delete, 20, 2, &[]);
    let mut replica = Replica::default();
    // No row yet: nothing to mark, but the register is kept.
    assert!(!replica.apply(&delete).writes());
    let decision = replica.apply(&create);
    assert!(decision.insert);
    assert_eq!(decision.set_deleted, Some(true));
    // The deleter saw the create: that is history, not a conflict (the first cut
    // recorded one).
    assert!(decision.conflicts.is_empty());
    assert_eq!(replica.state(), replay(&[&create, &delete]).state());
    replica.apply(&thread_change(Operation::Restore, 30, 3, &[]));
    assert!(!row(&replica).deleted);
    assert_eq!(row(&replica).values["title"], "first");
}

#[test]
fn an_update_before_its_create_waits_for_it() {
    let create = create_thread();
    let edit = thread_change(Operation::Update, 20, 2, &[("title", "early bird")]);
    assert_eq!(
        decide(
            &RowClocks::default(),
            Operation::Update,
            edit.stamp,
            &["title"]
        ),
        Decision::default()
    );
    let mut replica = Replica::default();
    replica.apply(&edit);
    assert!(replica.rows.is_empty());
    assert_eq!(replica.pending.len(), 1);
    replica.apply(&create);
    assert!(replica.pending.is_empty());
    assert_eq!(row(&replica).values["title"], "early bird");
    assert_eq!(replica.state(), replay(&[&create, &edit]).state());
}

#[test]
fn a_replay_is_a_duplicate_and_writes_nothing() {
    let create = create_thread();
    let edit = thread_change(
        Operation::Update,
        20,
        2,
        &[("title", "both"), ("pinned", "true")],
    );
    let delete = thread_change(Operation::Delete, 30, 3, &[]);
    let restore = thread_change(Operation::Restore, 40, 4, &[]);
    let mut replica = replay(&[&create, &edit, &delete, &restore]);
    let before = replica.state();
    for change in [&create, &edit, &delete, &restore] {
        let decision = replica.apply(change);
        assert!(
            !decision.writes() && decision.conflicts.is_empty(),
            "{change:?}"
        );
        // The delete's register now holds the restore: its replay is told from a late
        // arrival by nothing, and needs not be, as neither does anything.
        assert_eq!(decision.duplicate, change.id() != delete.id(), "{change:?}");
    }
    assert_eq!(replica.state(), before);

    // One of the edit's fields taken since by a later write: still a replay (the first
    // cut reported it again as a concurrent edit of `title`).
    let later = thread_change(Operation::Update, 50, 5, &[("title", "later")]);
    replica.apply(&later);
    let decision = replica.apply(&edit);
    assert!(
        decision.duplicate && decision.conflicts.is_empty(),
        "{decision:?}"
    );
    assert_eq!(row(&replica).values["title"], "later");
}

#[test]
fn refuse_future_judges_milliseconds_at_the_boundary() {
    let now = HybridClock::from_millis(10_000);
    let at = |millis: u64, logical: u64| HybridClock::from_millis(millis) + logical;
    assert_eq!(HybridClock::millis(at(10_500, 0)), 10_500);
    assert_eq!(
        refuse_future(at(10_500, 0), now, 500),
        Ok(()),
        "exactly the limit"
    );
    // The logical counter is not time: the most of it in the last accepted millisecond.
    assert_eq!(refuse_future(at(10_501, 0) - 1, now, 500), Ok(()));
    assert_eq!(refuse_future(at(10_501, 0), now, 500), Err(501));
    assert_eq!(
        refuse_future(at(9_000, 7), now, 0),
        Ok(()),
        "the past is fine"
    );
    assert_eq!(
        refuse_future(at(10_000, 9), now, 0),
        Ok(()),
        "same millisecond"
    );
    assert_eq!(refuse_future(at(10_001, 0), now, 0), Err(1));
    assert_eq!(refuse_future(0, now, 0), Ok(()));
    assert_eq!(refuse_future(u64::MAX, 0, u64::MAX), Ok(()));
}

#[test]
fn messages_from_several_replicas_end_in_one_order() {
    // Three replicas at the same wall-clock millisecond: every message has the same
    // created_at, so only the id orders them.
    let mut world = World::new(&[0, 0, 0], 42);
    let thread = world.create(0, &model::THREADS, 0);
    world.drain(&[0]);
    for origin in [2, 1, 0, 1, 2, 0] {
        world.create(origin, &model::MESSAGES, 0);
    }
    // Delivered in a scrambled order.
    world.drain(&[usize::MAX, 3]);
    let state = world.replicas[0].state();
    for replica in &world.replicas {
        assert_eq!(replica.state(), state);
    }
    let order = &state.order[&thread];
    assert_eq!(order.len(), 6);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "ties broken by id");
    assert_eq!(
        state.counters[&(model::THREADS.table, thread)],
        (6, Some(EPOCH))
    );

    // A deleted message leaves the count and the order everywhere.
    let gone = order[3];
    world.write(1, &model::MESSAGES, gone, Operation::Delete, Vec::new());
    world.drain(&[1]);
    for replica in &world.replicas {
        let state = replica.state();
        assert_eq!(state.counters[&(model::THREADS.table, thread)].0, 5);
        assert!(!state.order[&thread].contains(&gone));
    }
}

#[test]
fn every_synced_entity_takes_part() {
    let entities = synced();
    // The 24 entities less the audit log and the change log themselves, sessions aside.
    assert_eq!(entities.len(), 22);
    let counters = counter_columns();
    assert!(counters.contains(&("threads", "message_count")));
    assert!(counters.contains(&("threads", "last_message_at")));
    for entity in entities {
        let fields = create_fields(entity);
        assert!(!fields.is_empty(), "{} creates nothing", entity.table);
        for name in fields {
            assert!(entity.has_column(name), "{}.{name}", entity.table);
            assert!(!counters.contains(&(entity.table, name)));
        }
    }
}

/// The harness must be able to fail: a replica that takes every change as it comes, with
/// no clocks, ends elsewhere than the rules say when changes cross.
#[test]
fn the_oracle_tells_arrival_order_from_stamp_order() {
    let create = create_thread();
    let early = thread_change(Operation::Update, 20, 2, &[("title", "early")]);
    let late = thread_change(Operation::Update, 30, 3, &[("title", "late")]);
    let log = [create.clone(), late.clone(), early.clone()];
    let mut naive = BTreeMap::new();
    naive.insert(
        id(ROW),
        Row {
            table: "threads",
            values: [
                ("title", "early"),
                ("pinned", "false"),
                ("workspace_id", "w"),
            ]
            .into_iter()
            .map(|(n, v)| (n, v.to_owned()))
            .collect(),
            deleted: false,
            created_at: 10,
        },
    );
    assert_ne!(oracle(&log), naive);
    assert_eq!(oracle(&log), replay(&[&create, &late, &early]).rows);
}
