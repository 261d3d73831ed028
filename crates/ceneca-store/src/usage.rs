//! What each workspace stores, by category (`ceneca_domain::storage`): counters in
//! `storage_usage`, kept by every batch that writes sized rows (one upsert per workspace
//! and category, however many rows), read by statistics and quotas, and recounted from the
//! data by `reconcile`. Written once for both engines over [`Exec`].
//!
//! Rows in the bin are not counted: deleting content makes room at once (a purge later
//! frees the disk). What the counters do not follow, and a reconcile repairs: rows removed
//! by a foreign key's cascade (a hard delete of their parent) or by hand in SQL, and rows a
//! replica forgets.

use std::collections::BTreeMap;
use std::fmt::Write;

use ceneca_domain::schema::{Field, Kind, field};
use ceneca_domain::storage::{Category, SIZED, sizing};
use ceneca_domain::{Entity, Record, Value};
use uuid::Uuid;

use crate::ops::Exec;
use crate::sql::{COUNT, Dialect, Sql};
use crate::{Result, StoreError};

/// Whose workspaces a usage question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOf {
    Workspace(Uuid),
    /// Every workspace of the organization.
    Organization(Uuid),
    /// The user's own workspaces (those of no organization).
    User(Uuid),
}

/// What one category holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub category: Category,
    pub rows: i64,
    pub bytes: i64,
}

/// A workspace and category whose counters differ from the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDrift {
    pub workspace_id: Uuid,
    pub category: Category,
    /// (rows, bytes) as counted on writes.
    pub counted: (i64, i64),
    /// (rows, bytes) in the data.
    pub actual: (i64, i64),
}

/// The columns of a per-workspace count; without the first, of a total.
static PER_WORKSPACE: [Field; 4] = [
    field("workspace_id", Kind::Uuid),
    field("category", Kind::Text { max: usize::MAX }),
    field("rows", COUNT),
    field("bytes", COUNT),
];

fn category(text: &str) -> Option<Category> {
    Category::ALL.into_iter().find(|c| c.as_str() == text)
}

/// Changes to the counters of one batch: (workspace, category) → (rows, bytes).
#[derive(Debug, Default)]
pub(crate) struct UsageDeltas(BTreeMap<(Uuid, Category), (i64, i64)>);

impl UsageDeltas {
    /// `rows` of `entity` added (`sign` 1) or removed (-1), rows in the bin too (a row
    /// going to or coming back from the bin is counted by this).
    pub(crate) fn count(&mut self, entity: &Entity, rows: &[Record], sign: i64) {
        let Some(sizing) = sizing(entity) else {
            return;
        };
        for row in rows {
            if let Some(workspace) = row.id_of("workspace_id") {
                let entry = self.0.entry((workspace, sizing.category)).or_default();
                entry.0 += sign;
                entry.1 += sign * sizing.bytes(row);
            }
        }
    }

    /// `rows` of `entity` added or removed, those in the bin left out (they are not
    /// counted).
    pub(crate) fn count_live(&mut self, entity: &Entity, rows: &[Record], sign: i64) {
        let live: Vec<Record> = rows.iter().filter(|r| !in_bin(r)).cloned().collect();
        self.count(entity, &live, sign);
    }

    /// A row of `entity` changed size from `before` to `after` (nothing, for a row in the
    /// bin, which is not counted).
    pub(crate) fn resize(&mut self, entity: &Entity, before: &Record, after: &Record) {
        let Some(sizing) = sizing(entity) else {
            return;
        };
        if in_bin(before) {
            return;
        }
        if let Some(workspace) = after.id_of("workspace_id") {
            let entry = self.0.entry((workspace, sizing.category)).or_default();
            entry.1 += sizing.bytes(after) - sizing.bytes(before);
        }
    }

    /// Whether the batch adds bytes anywhere.
    pub(crate) fn grows(&self) -> bool {
        self.0.values().any(|(_, bytes)| *bytes > 0)
    }

    /// Writes the changes: one upsert per workspace and category.
    pub(crate) async fn flush<E: Exec>(self, exec: &mut E) -> Result<()> {
        for ((workspace, category), (rows, bytes)) in self.0 {
            if rows == 0 && bytes == 0 {
                continue;
            }
            let d = exec.dialect();
            let mut sql = Sql::default();
            let w = sql.bind(d, Value::Id(workspace), Kind::Uuid);
            let c = sql.bind(
                d,
                Value::Text(category.as_str().into()),
                Kind::Text { max: 20 },
            );
            let r = sql.bind(
                d,
                Value::Int(rows),
                Kind::Int {
                    min: i64::MIN,
                    max: i64::MAX,
                },
            );
            let b = sql.bind(
                d,
                Value::Int(bytes),
                Kind::Int {
                    min: i64::MIN,
                    max: i64::MAX,
                },
            );
            sql.text = format!(
                "INSERT INTO storage_usage (workspace_id, category, row_count, bytes) \
                 VALUES ({w}, {c}, {r}, {b}) ON CONFLICT (workspace_id, category) DO UPDATE \
                 SET row_count = storage_usage.row_count + excluded.row_count, \
                 bytes = storage_usage.bytes + excluded.bytes"
            );
            exec.execute(&sql).await?;
        }
        Ok(())
    }
}

fn in_bin(row: &Record) -> bool {
    row.get("deleted_at").is_some_and(|v| !v.is_null())
}

/// The condition on `workspaces w` of the workspaces `of` names.
fn workspaces_of(d: &dyn Dialect, sql: &mut Sql, of: UsageOf) -> String {
    match of {
        UsageOf::Workspace(id) => format!("w.id = {}", sql.bind(d, Value::Id(id), Kind::Uuid)),
        UsageOf::Organization(id) => format!(
            "w.organization_id = {}",
            sql.bind(d, Value::Id(id), Kind::Uuid)
        ),
        UsageOf::User(id) => format!(
            "w.owner_user_id = {} AND w.organization_id IS NULL",
            sql.bind(d, Value::Id(id), Kind::Uuid)
        ),
    }
}

/// What the workspaces `of` names store, by category, from the counters.
pub(crate) async fn usage<E: Exec>(exec: &mut E, of: UsageOf) -> Result<Vec<Usage>> {
    let d = exec.dialect();
    let mut sql = Sql::default();
    let condition = workspaces_of(d, &mut sql, of);
    sql.text = format!(
        "SELECT u.category, CAST(COALESCE(SUM(u.row_count), 0) AS BIGINT), \
         CAST(COALESCE(SUM(u.bytes), 0) AS BIGINT) \
         FROM storage_usage u JOIN workspaces w ON w.id = u.workspace_id \
         WHERE {condition} GROUP BY u.category"
    );
    let fields: Vec<&Field> = PER_WORKSPACE[1..].iter().collect();
    let rows = exec.fetch_columns(&fields, &sql).await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some(Usage {
                category: category(row.get("category")?.as_str()?)?,
                rows: row.get("rows")?.as_int()?,
                bytes: row.get("bytes")?.as_int()?,
            })
        })
        .collect())
}

/// The total bytes of the workspaces `of` names, from the counters.
pub(crate) async fn total_bytes<E: Exec>(exec: &mut E, of: UsageOf) -> Result<i64> {
    Ok(usage(exec, of).await?.iter().map(|u| u.bytes).sum())
}

/// The statement that counts every workspace's rows and bytes from the data, per
/// category: the same definitions the write path counts with.
fn recount(d: &dyn Dialect) -> String {
    let mut parts = Vec::new();
    for sizing in &SIZED {
        let mut size: Vec<String> = sizing
            .columns
            .iter()
            .map(|c| format!("COALESCE({}, 0)", d.byte_length(c)))
            .collect();
        for beside in sizing.beside {
            size.push(format!(
                "CASE WHEN {} IS NULL THEN 0 ELSE COALESCE({}, 0) END",
                beside.kept_while, beside.size
            ));
        }
        // The bin is not charged.
        let live = if sizing.entity.soft_delete {
            " WHERE deleted_at IS NULL"
        } else {
            ""
        };
        parts.push(format!(
            "SELECT workspace_id, '{}' AS category, {} AS size FROM {}{live}",
            sizing.category.as_str(),
            size.join(" + "),
            sizing.entity.table
        ));
    }
    let mut text = String::from(
        "SELECT workspace_id, category, COUNT(*) AS row_count, \
         CAST(SUM(size) AS BIGINT) AS bytes FROM (",
    );
    text.push_str(&parts.join(" UNION ALL "));
    write!(text, ") sized GROUP BY workspace_id, category").ok();
    text
}

fn per_workspace(rows: &[Record]) -> BTreeMap<(Uuid, Category), (i64, i64)> {
    rows.iter()
        .filter_map(|row| {
            let key = (
                row.get("workspace_id")?.as_id()?,
                category(row.get("category")?.as_str()?)?,
            );
            Some((
                key,
                (row.get("rows")?.as_int()?, row.get("bytes")?.as_int()?),
            ))
        })
        .collect()
}

/// What every workspace stores, counted from the data: the statement sums the stored
/// lengths, then the JSON columns are measured row by row as the write path measures them
/// (from the value: an engine's own spelling of JSON differs).
async fn count_from_data<E: Exec>(exec: &mut E) -> Result<BTreeMap<(Uuid, Category), (i64, i64)>> {
    let fields: Vec<&Field> = PER_WORKSPACE.iter().collect();
    let d = exec.dialect();
    let sql = Sql {
        text: recount(d),
        params: Vec::new(),
    };
    let mut actual = per_workspace(&exec.fetch_columns(&fields, &sql).await?);
    for sizing in SIZED.iter().filter(|s| !s.json.is_empty()) {
        add_json_bytes(exec, sizing, &mut actual).await?;
    }
    Ok(actual)
}

/// Adds the bytes of `sizing`'s JSON columns, read a page at a time.
async fn add_json_bytes<E: Exec>(
    exec: &mut E,
    sizing: &ceneca_domain::storage::Sizing,
    into: &mut BTreeMap<(Uuid, Category), (i64, i64)>,
) -> Result<()> {
    const PAGE: usize = 5000;
    static ID: Field = field("id", Kind::Uuid);
    static WORKSPACE: Field = field("workspace_id", Kind::Uuid);
    let mut fields: Vec<&Field> = vec![&ID, &WORKSPACE];
    for column in sizing.json {
        fields.push(sizing.entity.field(column).ok_or(StoreError::NotFound)?);
    }
    let live = if sizing.entity.soft_delete {
        " AND deleted_at IS NULL"
    } else {
        ""
    };
    let mut after: Option<Uuid> = None;
    loop {
        let d = exec.dialect();
        let mut sql = Sql::default();
        let from = match after {
            Some(id) => format!("id > {}", sql.bind(d, Value::Id(id), Kind::Uuid)),
            None => "1 = 1".to_owned(),
        };
        sql.text = format!(
            "SELECT id, workspace_id, {} FROM {} WHERE {from}{live} ORDER BY id LIMIT {PAGE}",
            sizing.json.join(", "),
            sizing.entity.table
        );
        let rows = exec.fetch_columns(&fields, &sql).await?;
        for row in &rows {
            let bytes: usize = sizing
                .json
                .iter()
                .map(|c| match row.get(c) {
                    Some(Value::Json(v)) => ceneca_domain::storage::json_bytes(v),
                    _ => 0,
                })
                .sum();
            if let (Some(workspace), true) = (row.id_of("workspace_id"), bytes > 0) {
                into.entry((workspace, sizing.category)).or_default().1 += bytes as i64;
            }
        }
        match rows.last().and_then(Record::id) {
            Some(last) if rows.len() == PAGE => after = Some(last),
            _ => return Ok(()),
        }
    }
}

/// Compares every counter with the data; with `fix`, replaces the counters with the data's
/// figures. Run inside a write transaction, so no write lands between the count and the
/// fix.
pub(crate) async fn reconcile<E: Exec>(exec: &mut E, fix: bool) -> Result<Vec<UsageDrift>> {
    let fields: Vec<&Field> = PER_WORKSPACE.iter().collect();
    let counted_sql = Sql {
        text: "SELECT workspace_id, category, row_count, bytes FROM storage_usage".into(),
        params: Vec::new(),
    };
    let actual = count_from_data(exec).await?;
    let counted = per_workspace(&exec.fetch_columns(&fields, &counted_sql).await?);
    let mut drift = Vec::new();
    let keys: std::collections::BTreeSet<_> = actual.keys().chain(counted.keys()).collect();
    for key in keys {
        let (a, c) = (
            actual.get(key).copied().unwrap_or_default(),
            counted.get(key).copied().unwrap_or_default(),
        );
        if a != c {
            drift.push(UsageDrift {
                workspace_id: key.0,
                category: key.1,
                counted: c,
                actual: a,
            });
        }
    }
    if fix && !drift.is_empty() {
        exec.execute(&Sql {
            text: "DELETE FROM storage_usage".into(),
            params: Vec::new(),
        })
        .await?;
        for ((workspace, category), (rows, bytes)) in actual {
            let d = exec.dialect();
            let mut sql = Sql::default();
            let values = [
                sql.bind(d, Value::Id(workspace), Kind::Uuid),
                sql.bind(
                    d,
                    Value::Text(category.as_str().into()),
                    Kind::Text { max: usize::MAX },
                ),
                sql.bind(d, Value::Int(rows), COUNT),
                sql.bind(d, Value::Int(bytes), COUNT),
            ];
            sql.text = format!(
                "INSERT INTO storage_usage (workspace_id, category, row_count, bytes) VALUES ({})",
                values.join(", ")
            );
            exec.execute(&sql).await?;
        }
    }
    Ok(drift)
}

/// Takes the lock of whoever holds a quota (`of`'s organization or user row) until the
/// commit: writes that check a quota are then decided one at a time per holder.
pub(crate) async fn lock_holder<E: Exec>(exec: &mut E, of: UsageOf) -> Result<()> {
    let d = exec.dialect();
    let mut sql = Sql::default();
    let (table, id) = match of {
        UsageOf::Organization(id) => ("organizations", id),
        UsageOf::User(id) => ("users", id),
        UsageOf::Workspace(id) => ("workspaces", id),
    };
    let mark = sql.bind(d, Value::Id(id), Kind::Uuid);
    sql.text = format!("SELECT id FROM {table} WHERE id = {mark}{}", d.lock_rows());
    static ID: Field = field("id", Kind::Uuid);
    exec.fetch_columns(&[&ID], &sql).await?;
    Ok(())
}

/// Fails with `StoreError::QuotaExceeded` when what `of` stores passes `quota` bytes.
pub(crate) async fn check_quota<E: Exec>(exec: &mut E, of: UsageOf, quota: i64) -> Result<()> {
    let used = total_bytes(exec, of).await?;
    if used > quota {
        return Err(StoreError::QuotaExceeded { quota, used });
    }
    Ok(())
}
