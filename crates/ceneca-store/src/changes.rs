//! Reads of the change log for replication: a caller's feed after a cursor, and the
//! history of rows (to fold their field clocks). The SQL is the same on both engines.

use ceneca_domain::schema::{Field, Kind, Owner, Tenancy, field};
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Entity, Record, Value, model};
use uuid::Uuid;

use crate::sql::{self, COUNT, Dialect, Sql};
use crate::write::operation;

/// The part of the feed one reader sees of some entity types: the reader's filter on
/// those entities, applied to the change log's copy of each row's owners.
#[derive(Debug, Clone)]
pub struct FeedPart {
    pub entity: &'static Entity,
    pub filter: ScopeFilter,
}

/// A caller's feed after `after`: the changes of every part, and the revocations addressed
/// to `revocations_of` (when the credential stands for the user's devices), in commit order.
#[derive(Debug, Clone)]
pub struct FeedQuery {
    pub after: i64,
    pub limit: u32,
    pub parts: Vec<FeedPart>,
    pub revocations_of: Option<Uuid>,
    /// Whose own memberships (workspace and organization) come too, whatever the parts
    /// say: a device, which may not read who has access, still learns its user's roles.
    pub memberships_of: Option<Uuid>,
    /// Only the changes made on this device by this user (a local node's own, to push
    /// upstream).
    pub made_on: Option<(Uuid, Uuid)>,
    /// Only the changes up to this cursor (a snapshot reads the log as it stood).
    pub until: Option<i64>,
}

/// Where the change log keeps the owner a filter of `entity` names as `column`.
fn log_column(entity: &Entity, column: &'static str) -> Option<&'static str> {
    if column == "id" {
        return Some("entity_id");
    }
    match entity.tenancy {
        Tenancy::Workspace { .. } => (column == "workspace_id").then_some("scope_workspace_id"),
        Tenancy::Organization => (column == "organization_id").then_some("scope_organization_id"),
        Tenancy::User => (column == "user_id").then_some("scope_user_id"),
        Tenancy::Owners { owners, .. } => owners.iter().find_map(|owner| match *owner {
            Owner::User(c) if c == column => Some("scope_user_id"),
            Owner::Organization(c) if c == column => Some("scope_organization_id"),
            Owner::Workspace(c) if c == column => Some("scope_workspace_id"),
            _ => None,
        }),
        _ => None,
    }
}

pub(crate) fn feed(d: &dyn Dialect, q: &FeedQuery) -> Sql {
    let mut sql = Sql::default();
    let condition = feed_condition(d, &mut sql, q);
    let limit = sql.bind(d, Value::Int(i64::from(q.limit)), COUNT);
    sql.text = format!(
        "SELECT {} FROM sync_events WHERE {condition} ORDER BY seq LIMIT {limit}",
        sql::column_list(&model::SYNC_EVENTS),
    );
    sql
}

/// How many changes the feed holds after its cursor (its limit aside), as `seq`.
pub(crate) fn feed_count(d: &dyn Dialect, q: &FeedQuery) -> Sql {
    let mut sql = Sql::default();
    let condition = feed_condition(d, &mut sql, q);
    sql.text = format!("SELECT COUNT(*) AS seq FROM sync_events WHERE {condition}");
    sql
}

fn feed_condition(d: &dyn Dialect, sql: &mut Sql, q: &FeedQuery) -> String {
    let after = sql.bind(d, Value::Int(q.after), COUNT);
    let revoke = sql.bind(d, Value::Text(operation::REVOKE.to_owned()), TEXT);
    let mut parts = Vec::new();
    if let Some(user) = q.revocations_of {
        let user = sql.bind(d, Value::Id(user), Kind::Uuid);
        parts.push(format!("(operation = {revoke} AND scope_user_id = {user})"));
    }
    if let Some(user) = q.memberships_of {
        let user = sql.bind(d, Value::Id(user), Kind::Uuid);
        let names = [&model::WORKSPACE_MEMBERS, &model::ORGANIZATION_MEMBERS]
            .map(|e| sql.bind(d, Value::Text(e.name.to_owned()), TEXT))
            .join(", ");
        parts.push(format!(
            "(entity_type IN ({names}) AND operation <> {revoke} AND scope_user_id = {user})"
        ));
    }
    for part in &q.parts {
        // The log names an entity by its singular name (`thread`).
        let name = sql.bind(d, Value::Text(part.entity.name.to_owned()), TEXT);
        let entity = part.entity;
        let condition = sql::scope_condition_on(d, sql, &part.filter, &|c| log_column(entity, c));
        if condition != "1 = 0" {
            parts.push(format!(
                "(entity_type = {name} AND operation <> {revoke} AND {condition})"
            ));
        }
    }
    if parts.is_empty() {
        parts.push("1 = 0".to_owned());
    }
    let device = match q.made_on {
        Some((device, user)) => {
            let device = sql.bind(d, Value::Id(device), Kind::Uuid);
            let user = sql.bind(d, Value::Id(user), Kind::Uuid);
            format!(" AND device_id = {device} AND user_id = {user}")
        }
        None => String::new(),
    };
    let until = match q.until {
        Some(until) => format!(" AND seq <= {}", sql.bind(d, Value::Int(until), COUNT)),
        None => String::new(),
    };
    format!("seq > {after}{until}{device} AND ({})", parts.join(" OR "))
}

/// Every change of these rows (any entity: ids are UUIDv7, unique across tables), oldest
/// first, without their values: what a row's field clocks fold from.
pub(crate) fn history(d: &dyn Dialect, ids: &[Uuid]) -> Sql {
    let mut sql = Sql::default();
    let mark = sql.bind(d, Value::IdSet(ids.to_vec()), Kind::Uuid);
    sql.text = format!(
        "SELECT {} FROM sync_events WHERE {} ORDER BY seq",
        HISTORY_COLUMNS
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", "),
        d.in_set("entity_id", &mark)
    );
    sql
}

/// The columns [`history`] reads.
pub static HISTORY_COLUMNS: [Field; 7] = [
    field("id", Kind::Uuid),
    field("entity_type", TEXT),
    field("entity_id", Kind::Uuid),
    field("operation", TEXT),
    field("changed_fields", Kind::Strings(None)),
    field("hlc", COUNT),
    field("seq", COUNT),
];

/// The newest cursor: `seq` of the last change, 0 when the log is empty.
pub(crate) fn last_seq() -> Sql {
    Sql {
        text: "SELECT COALESCE(MAX(seq), 0) AS seq FROM sync_events".to_owned(),
        params: Vec::new(),
    }
}

/// The last change of one row (`seq`, 0 when it has none).
pub(crate) fn row_last_seq(d: &dyn Dialect, row: Uuid) -> Sql {
    let mut sql = Sql::default();
    let mark = sql.bind(d, Value::Id(row), Kind::Uuid);
    sql.text =
        format!("SELECT COALESCE(MAX(seq), 0) AS seq FROM sync_events WHERE entity_id = {mark}");
    sql
}

/// The `seq` a [`LAST_SEQ`] query answered (0 when it found none).
pub(crate) fn seq_answer(rows: &[Record]) -> i64 {
    rows.first()
        .and_then(|r| r.get("seq"))
        .and_then(Value::as_int)
        .unwrap_or(0)
}

/// The column [`last_seq`] reads.
pub static LAST_SEQ: [Field; 1] = [field("seq", COUNT)];

const TEXT: Kind = Kind::Text { max: usize::MAX };
