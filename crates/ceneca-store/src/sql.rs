//! Portable SQL generated from the entity model. The few differences between engines
//! (placeholders, set membership, `max`/`GREATEST`) go through [`Dialect`], implemented
//! once per engine; everything else here is plain SQL both engines accept.

use std::fmt::Write as _;

use ceneca_domain::schema::{Cascade, Counter, Default as FieldDefault, Entity, Kind};
use ceneca_domain::scope::{ResourcesIn, ScopeFilter};
use ceneca_domain::{Record, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::query::{Deleted, ListQuery};

/// Engine-specific spellings.
pub trait Dialect {
    /// Which engine speaks it (statements spelled once per engine are kept by it).
    fn engine(&self) -> crate::Engine;
    /// The placeholder for the `n`th parameter (1-based).
    fn placeholder(&self, n: usize) -> String;
    /// `column` is one of the ids bound (as one [`Value::IdSet`]) at `placeholder`.
    fn in_set(&self, column: &str, placeholder: &str) -> String;
    /// The scalar maximum function of two arguments.
    fn greatest(&self) -> &'static str;
    /// What ends a `SELECT` that locks the rows it reads until the transaction ends;
    /// empty where the transaction already holds the only write lock.
    fn lock_rows(&self) -> &'static str;
    /// The length in bytes of a text or binary expression.
    fn byte_length(&self, expr: &str) -> String;
}

/// A count or size read from a statement (never negative).
pub(crate) const COUNT: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};

/// A bound parameter with the kind of the column it is compared to or stored in, so an
/// engine with strict parameter types can bind a typed NULL.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub value: Value,
    pub kind: Kind,
}

/// A statement and its parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    pub(crate) fn bind(&mut self, d: &dyn Dialect, value: Value, kind: Kind) -> String {
        self.params.push(Param { value, kind });
        d.placeholder(self.params.len())
    }
}

/// The comma-separated column list of an entity, in model order.
pub fn column_list(entity: &Entity) -> String {
    entity
        .columns()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind_of(entity: &Entity, column: &str) -> Kind {
    entity.field(column).map(|f| f.kind).unwrap_or(Kind::Uuid)
}

fn insert_columns(entity: &Entity) -> impl Iterator<Item = &ceneca_domain::schema::Field> {
    entity
        .columns()
        .filter(|f| f.default != FieldDefault::Generated)
}

/// `INSERT` of one complete row; `RETURNING` every column when `returning`.
pub fn insert(d: &dyn Dialect, entity: &Entity, record: &Record, returning: bool) -> Sql {
    Sql {
        text: insert_text(d, entity, returning),
        params: insert_params(entity, record),
    }
}

/// The text of a one-row `INSERT` (the same for every row of an entity, so it is prepared
/// once and reused).
pub fn insert_text(d: &dyn Dialect, entity: &Entity, returning: bool) -> String {
    insert_many_text(d, entity, 1, returning)
}

/// The text of a one-row upsert: an `INSERT` that, on a `key` conflict with a row of the
/// same workspace, sets the `update` columns (and `updated_at`) and returns the stored row.
pub fn upsert_text(d: &dyn Dialect, entity: &Entity, key: &[&str], update: &[&str]) -> String {
    let mut text = insert_text(d, entity, false);
    let sets: Vec<String> = update
        .iter()
        .chain(std::iter::once(&"updated_at"))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    write!(
        text,
        " ON CONFLICT ({}) DO UPDATE SET {} WHERE {}.workspace_id = excluded.workspace_id RETURNING {}",
        key.join(", "),
        sets.join(", "),
        entity.table,
        column_list(entity)
    )
    .ok();
    text
}

/// The parameters of a one-row `INSERT`, in [`insert_text`]'s order.
pub fn insert_params(entity: &Entity, record: &Record) -> Vec<Param> {
    insert_columns(entity)
        .map(|f| Param {
            value: record.get(f.name).cloned().unwrap_or(Value::Null),
            kind: f.kind,
        })
        .collect()
}

/// Whether the database assigns any column (then inserts must read the row back).
pub fn has_generated_columns(entity: &Entity) -> bool {
    entity
        .columns()
        .any(|f| f.default == FieldDefault::Generated)
}

/// One multi-row `INSERT` (engines that pay a round trip per statement use this for bulk).
pub fn insert_many(d: &dyn Dialect, entity: &Entity, records: &[Record], returning: bool) -> Sql {
    Sql {
        text: insert_many_text(d, entity, records.len(), returning),
        params: records
            .iter()
            .flat_map(|record| insert_params(entity, record))
            .collect(),
    }
}

/// How many parameters one row of an `INSERT` binds.
pub fn insert_width(entity: &Entity) -> usize {
    insert_columns(entity).count()
}

/// The text of an `INSERT` of `rows` rows, its parameters row after row in
/// [`insert_params`]'s order (the same for every batch of that size, so SQLite prepares it
/// once).
pub fn insert_many_text(d: &dyn Dialect, entity: &Entity, rows: usize, returning: bool) -> String {
    let names: Vec<_> = insert_columns(entity).map(|f| f.name).collect();
    let per_row = names.len();
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let marks: Vec<String> = (1..=per_row)
                .map(|n| d.placeholder(row * per_row + n))
                .collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    let mut text = format!(
        "INSERT INTO {} ({}) VALUES {}",
        entity.table,
        names.join(", "),
        values.join(", ")
    );
    if returning {
        write!(text, " RETURNING {}", column_list(entity)).ok();
    }
    text
}

/// The tenant filter as a condition on unqualified `workspace_id`/`id` columns.
pub(crate) fn scope_condition(d: &dyn Dialect, sql: &mut Sql, filter: &ScopeFilter) -> String {
    scope_condition_on(d, sql, filter, &Some)
}

/// The tenant filter with its columns renamed by `column` (the change log keeps a row's
/// owners under columns of its own); a column with no counterpart matches nothing.
pub(crate) fn scope_condition_on(
    d: &dyn Dialect,
    sql: &mut Sql,
    filter: &ScopeFilter,
    column: &dyn Fn(&'static str) -> Option<&'static str>,
) -> String {
    match filter {
        ScopeFilter::All => "1 = 1".to_owned(),
        ScopeFilter::AnyOf(clauses) => {
            let parts: Vec<String> = clauses
                .iter()
                .filter(|(_, ids)| !ids.is_empty())
                .filter_map(|(name, ids)| {
                    let name = column(name)?;
                    let mark = sql.bind(d, Value::IdSet(ids.clone()), Kind::Uuid);
                    Some(d.in_set(name, &mark))
                })
                .collect();
            if parts.is_empty() {
                "1 = 0".to_owned()
            } else {
                format!("({})", parts.join(" OR "))
            }
        }
        ScopeFilter::Plus(inner, granted) => {
            let inner = scope_condition_on(d, sql, inner, column);
            format!(
                "({inner} OR {})",
                resources_condition(d, sql, granted, column)
            )
        }
        ScopeFilter::Except(inner, denied) => {
            let inner = scope_condition_on(d, sql, inner, column);
            format!(
                "({inner} AND NOT {})",
                resources_condition(d, sql, denied, column)
            )
        }
    }
}

/// Single resources, each only inside its workspace: `(workspace_id = w AND id IN ids)`
/// for each workspace. The id alone is never enough (see [`ResourcesIn`]).
fn resources_condition(
    d: &dyn Dialect,
    sql: &mut Sql,
    sets: &[ResourcesIn],
    column: &dyn Fn(&'static str) -> Option<&'static str>,
) -> String {
    let (Some(workspace_column), Some(id_column)) = (column("workspace_id"), column("id")) else {
        return "1 = 0".to_owned();
    };
    let parts: Vec<String> = sets
        .iter()
        .filter(|s| !s.ids.is_empty())
        .map(|s| {
            let workspace = sql.bind(d, Value::Id(s.workspace_id), Kind::Uuid);
            let ids = sql.bind(d, Value::IdSet(s.ids.clone()), Kind::Uuid);
            format!(
                "({workspace_column} = {workspace} AND {})",
                d.in_set(id_column, &ids)
            )
        })
        .collect();
    if parts.is_empty() {
        "1 = 0".to_owned()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

fn deleted_condition(entity: &Entity, deleted: Deleted) -> &'static str {
    match (entity.soft_delete, deleted) {
        (false, _) | (true, Deleted::Include) => "",
        (true, Deleted::Exclude) => " AND deleted_at IS NULL",
        (true, Deleted::Only) => " AND deleted_at IS NOT NULL",
    }
}

/// One row by id, inside the filter.
pub fn get(
    d: &dyn Dialect,
    entity: &Entity,
    id: Uuid,
    filter: &ScopeFilter,
    deleted: Deleted,
) -> Sql {
    let mut sql = Sql::default();
    let id_mark = sql.bind(d, Value::Id(id), Kind::Uuid);
    let scope = scope_condition(d, &mut sql, filter);
    sql.text = format!(
        "SELECT {} FROM {} WHERE id = {id_mark} AND {scope}{}",
        column_list(entity),
        entity.table,
        deleted_condition(entity, deleted)
    );
    sql
}

/// A page of rows in keyset order; asks for `limit + 1` so the caller knows if more follow.
pub fn list(d: &dyn Dialect, entity: &Entity, q: &ListQuery) -> Sql {
    let mut sql = Sql::default();
    let mut text = format!(
        "SELECT {} FROM {} WHERE ",
        column_list(entity),
        entity.table
    );
    text.push_str(&scope_condition(d, &mut sql, &q.filter));
    text.push_str(deleted_condition(entity, q.deleted));
    if let Some(ids) = &q.ids {
        let mark = sql.bind(d, Value::IdSet(ids.clone()), Kind::Uuid);
        write!(text, " AND {}", d.in_set("id", &mark)).ok();
    }
    for (column, value) in &q.equals {
        if value.is_null() {
            write!(text, " AND {column} IS NULL").ok();
        } else {
            let mark = sql.bind(d, value.clone(), kind_of(entity, column));
            write!(text, " AND {column} = {mark}").ok();
        }
    }
    if let Some(t) = q.created_after {
        let mark = sql.bind(d, Value::Time(t), Kind::Time);
        write!(text, " AND created_at > {mark}").ok();
    }
    if let Some(t) = q.created_before {
        let mark = sql.bind(d, Value::Time(t), Kind::Time);
        write!(text, " AND created_at < {mark}").ok();
    }
    let (cmp, dir) = if q.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((value, id)) = &q.after {
        let sort_kind = kind_of(entity, q.sort);
        if q.sort == "id" {
            let mark = sql.bind(d, Value::Id(*id), Kind::Uuid);
            write!(text, " AND id {cmp} {mark}").ok();
        } else {
            let v = sql.bind(d, value.clone(), sort_kind);
            let i = sql.bind(d, Value::Id(*id), Kind::Uuid);
            write!(
                text,
                " AND ({s} {cmp} {v} OR ({s} = {v} AND id {cmp} {i}))",
                s = q.sort
            )
            .ok();
        }
    }
    if q.sort == "id" {
        write!(text, " ORDER BY id {dir}").ok();
    } else {
        write!(text, " ORDER BY {} {dir}, id {dir}", q.sort).ok();
    }
    write!(text, " LIMIT {}", q.limit as u64 + 1).ok();
    sql.text = text;
    sql
}

/// Sets columns of a live row inside the filter; bumps `updated_at` and the version field.
pub fn update(
    d: &dyn Dialect,
    entity: &Entity,
    id: Uuid,
    filter: &ScopeFilter,
    set: &Record,
    deleted: Deleted,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::default();
    let mut assignments = Vec::with_capacity(set.len() + 2);
    for (column, value) in set.iter() {
        if column == "updated_at" {
            continue;
        }
        let mark = sql.bind(d, value.clone(), kind_of(entity, column));
        assignments.push(format!("{column} = {mark}"));
    }
    let mark = sql.bind(d, Value::Time(now), Kind::Time);
    assignments.push(format!("updated_at = {mark}"));
    if let Some(version) = entity.version_field {
        assignments.push(format!("{version} = {version} + 1"));
    }
    let id_mark = sql.bind(d, Value::Id(id), Kind::Uuid);
    let scope = scope_condition(d, &mut sql, filter);
    sql.text = format!(
        "UPDATE {} SET {} WHERE id = {id_mark} AND {scope}{} RETURNING {}",
        entity.table,
        assignments.join(", "),
        deleted_condition(entity, deleted),
        column_list(entity)
    );
    sql
}

/// Sets columns on every row inside the filter; bumps `updated_at`.
pub fn update_all(
    d: &dyn Dialect,
    entity: &Entity,
    filter: &ScopeFilter,
    set: &Record,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::default();
    let mut assignments = Vec::with_capacity(set.len() + 1);
    for (column, value) in set.iter() {
        let mark = sql.bind(d, value.clone(), kind_of(entity, column));
        assignments.push(format!("{column} = {mark}"));
    }
    let mark = sql.bind(d, Value::Time(now), Kind::Time);
    assignments.push(format!("updated_at = {mark}"));
    let scope = scope_condition(d, &mut sql, filter);
    sql.text = format!(
        "UPDATE {} SET {} WHERE {scope}",
        entity.table,
        assignments.join(", ")
    );
    sql
}

/// Marks a live row deleted at `now`.
pub fn soft_delete(
    d: &dyn Dialect,
    entity: &Entity,
    id: Uuid,
    filter: &ScopeFilter,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::default();
    let at = sql.bind(d, Value::Time(now), Kind::Time);
    let id_mark = sql.bind(d, Value::Id(id), Kind::Uuid);
    let scope = scope_condition(d, &mut sql, filter);
    sql.text = format!(
        "UPDATE {} SET deleted_at = {at}, updated_at = {at} WHERE id = {id_mark} AND {scope} AND deleted_at IS NULL RETURNING {}",
        entity.table,
        column_list(entity)
    );
    sql
}

/// Clears the deletion mark of a row deleted at `deleted_at`.
pub fn restore(
    d: &dyn Dialect,
    entity: &Entity,
    id: Uuid,
    filter: &ScopeFilter,
    deleted_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::default();
    let now_mark = sql.bind(d, Value::Time(now), Kind::Time);
    let id_mark = sql.bind(d, Value::Id(id), Kind::Uuid);
    let at = sql.bind(d, Value::Time(deleted_at), Kind::Time);
    let scope = scope_condition(d, &mut sql, filter);
    sql.text = format!(
        "UPDATE {} SET deleted_at = NULL, updated_at = {now_mark} WHERE id = {id_mark} AND deleted_at = {at} AND {scope} RETURNING {}",
        entity.table,
        column_list(entity)
    );
    sql
}

/// Deletes a row inside the filter.
/// Every row inside the filter, removed without a trace in the change log.
pub fn forget(d: &dyn Dialect, entity: &Entity, filter: &ScopeFilter) -> Sql {
    let mut sql = Sql::default();
    let scope = scope_condition(d, &mut sql, filter);
    sql.text = format!("DELETE FROM {} WHERE {scope}", entity.table);
    sql
}

pub fn delete(d: &dyn Dialect, entity: &Entity, id: Uuid, filter: &ScopeFilter) -> Sql {
    let mut sql = Sql::default();
    let id_mark = sql.bind(d, Value::Id(id), Kind::Uuid);
    let scope = scope_condition(d, &mut sql, filter);
    sql.text = format!(
        "DELETE FROM {} WHERE id = {id_mark} AND {scope} RETURNING {}",
        entity.table,
        column_list(entity)
    );
    sql
}

fn cascade_target(d: &dyn Dialect, sql: &mut Sql, cascade: &Cascade, root: Uuid) -> String {
    let root_mark = sql.bind(d, Value::Id(root), Kind::Uuid);
    match cascade.via {
        None => format!("{} = {root_mark}", cascade.column),
        Some((table, column)) => format!(
            "{} IN (SELECT id FROM {table} WHERE {column} = {root_mark})",
            cascade.column
        ),
    }
}

/// Soft-deletes the live rows a cascade reaches, with the root's timestamp.
pub fn cascade_soft_delete(
    d: &dyn Dialect,
    cascade: &Cascade,
    root: Uuid,
    at: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::default();
    let at_mark = sql.bind(d, Value::Time(at), Kind::Time);
    let target = cascade_target(d, &mut sql, cascade, root);
    sql.text = format!(
        "UPDATE {} SET deleted_at = {at_mark}, updated_at = {at_mark} WHERE {target} AND deleted_at IS NULL{}",
        cascade.table,
        returning_rows(cascade.table)
    );
    sql
}

/// `RETURNING` the rows a cascade touched, when the model knows their table: each is
/// logged as a change of its own, so a replica ends in the same state.
fn returning_rows(table: &str) -> String {
    ceneca_domain::model::by_table(table)
        .map(|entity| format!(" RETURNING {}", column_list(entity)))
        .unwrap_or_default()
}

/// Restores the rows a cascade deleted together with the root (same timestamp), leaving
/// rows that were deleted on their own before.
pub fn cascade_restore(
    d: &dyn Dialect,
    cascade: &Cascade,
    root: Uuid,
    deleted_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::default();
    let now_mark = sql.bind(d, Value::Time(now), Kind::Time);
    let at_mark = sql.bind(d, Value::Time(deleted_at), Kind::Time);
    let target = cascade_target(d, &mut sql, cascade, root);
    sql.text = format!(
        "UPDATE {} SET deleted_at = NULL, updated_at = {now_mark} WHERE {target} AND deleted_at = {at_mark}{}",
        cascade.table,
        returning_rows(cascade.table)
    );
    sql
}

/// Moves a parent's counter by `delta` and, when `touch` is given, its activity timestamp
/// forward.
pub fn bump_counter(
    d: &dyn Dialect,
    counter: &Counter,
    parent: Uuid,
    delta: i64,
    touch: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::default();
    let delta_mark = sql.bind(
        d,
        Value::Int(delta),
        Kind::Int {
            min: i64::MIN,
            max: i64::MAX,
        },
    );
    let now_mark = sql.bind(d, Value::Time(now), Kind::Time);
    let mut sets = format!(
        "{c} = {c} + {delta_mark}, updated_at = {now_mark}",
        c = counter.count_column
    );
    if let (Some(column), Some(t)) = (counter.touch_column, touch) {
        let t_mark = sql.bind(d, Value::Time(t), Kind::Time);
        write!(sets, ", {column} = {}({column}, {t_mark})", d.greatest()).ok();
    }
    let id_mark = sql.bind(d, Value::Id(parent), Kind::Uuid);
    sql.text = format!("UPDATE {} SET {sets} WHERE id = {id_mark}", counter.table);
    sql
}

/// The columns of a record a change-log entry lists as changed.
pub fn changed_fields(record: &Record) -> Vec<&'static str> {
    record
        .names()
        .filter(|n| !matches!(*n, "id" | "created_at" | "updated_at"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ceneca_domain::model;

    struct Question;
    impl Dialect for Question {
        fn engine(&self) -> crate::Engine {
            crate::Engine::Sqlite
        }
        fn placeholder(&self, n: usize) -> String {
            format!("?{n}")
        }
        fn in_set(&self, column: &str, p: &str) -> String {
            format!("{column} IN ({p})")
        }
        fn greatest(&self) -> &'static str {
            "max"
        }
        fn lock_rows(&self) -> &'static str {
            " FOR NO KEY UPDATE"
        }
        fn byte_length(&self, expr: &str) -> String {
            format!("length(CAST({expr} AS BLOB))")
        }
    }

    #[test]
    fn scoped_get_filters_in_sql() {
        let ws = Uuid::from_u128(7);
        let filter = ScopeFilter::AnyOf(vec![("workspace_id", vec![ws])]);
        let sql = get(
            &Question,
            &model::THREADS,
            Uuid::nil(),
            &filter,
            Deleted::Exclude,
        );
        assert!(
            sql.text
                .ends_with("WHERE id = ?1 AND (workspace_id IN (?2)) AND deleted_at IS NULL"),
            "{}",
            sql.text
        );
        assert_eq!(sql.params[1].value, Value::IdSet(vec![ws]));
    }

    #[test]
    fn an_empty_scope_matches_nothing() {
        let sql = get(
            &Question,
            &model::THREADS,
            Uuid::nil(),
            &ScopeFilter::NOTHING,
            Deleted::Include,
        );
        assert!(sql.text.contains("AND 1 = 0"), "{}", sql.text);
    }

    #[test]
    fn lists_page_by_keyset() {
        let mut q = ListQuery::new(ScopeFilter::All, "created_at", false, 50);
        q.equals.push(("thread_id", Value::Id(Uuid::nil())));
        q.after = Some((Value::Time(OffsetDateTime::UNIX_EPOCH), Uuid::nil()));
        let sql = list(&Question, &model::MESSAGES, &q);
        assert!(sql.text.contains("AND thread_id = ?1"));
        assert!(
            sql.text
                .contains("(created_at > ?2 OR (created_at = ?2 AND id > ?3))"),
            "{}",
            sql.text
        );
        assert!(
            sql.text
                .ends_with("ORDER BY created_at ASC, id ASC LIMIT 51")
        );
    }

    #[test]
    fn inserts_leave_identity_columns_to_the_database() {
        let sql = insert(&Question, &model::SYNC_EVENTS, &Record::new(), false);
        assert!(!sql.text.contains("seq"));
        assert!(
            sql.text
                .starts_with("INSERT INTO sync_events (id, created_at, updated_at, device_id")
        );
    }
}
