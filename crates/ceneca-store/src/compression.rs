//! Retention's compression of old message bodies, written once for both engines over
//! [`Exec`]: finding the bodies nobody has written to since a cutoff, storing them packed
//! (see [`crate::packing`]), and storing every packed body plain again (before the
//! migration that made packing possible is reverted).
//!
//! Packing is not a change to a message: its text, `updated_at` and change log stay as
//! they were, and the full-text index keeps its words. What changes is what the message
//! stores, so the storage counters follow, and the round is audited.

use ceneca_domain::schema::{Field, Kind, field};
use ceneca_domain::{Record, Value};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;
use crate::ops::Exec;
use crate::packing::{MESSAGE_CONTENT, PACK_FROM_BYTES, unpack};
use crate::sql::{COUNT, Sql};
use crate::usage::UsageDeltas;

/// The bodies last written before `written_before`, stored plain and long enough to
/// gain from packing: a page in `(updated_at, id)` order, after `after`.
#[derive(Debug, Clone, PartialEq)]
pub struct PackQuery {
    pub written_before: OffsetDateTime,
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// A body a maintenance run may pack: which, where it stands in the order, and how many
/// bytes it stores (a round is bounded by bytes before any body is read).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackCandidate {
    pub message: Uuid,
    pub updated_at: OffsetDateTime,
    pub stored_bytes: i64,
}

/// A body packed by the caller: written only if the message still stores `stored` plain.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedBody {
    pub message: Uuid,
    pub stored: String,
    pub frame: Vec<u8>,
}

/// The condition the partial index `messages__pack_candidates` is read with (migration
/// 0013: the same spelling, or SQLite will not use it).
fn plain_and_long(alias: &str) -> String {
    format!("{alias}content_packed IS NULL AND length({alias}content) >= {PACK_FROM_BYTES}")
}

/// One page of the bodies `query` covers, without their text.
pub(crate) async fn candidates<E: Exec>(
    exec: &mut E,
    query: &PackQuery,
) -> Result<Vec<PackCandidate>> {
    static COLUMNS: [Field; 3] = [
        field("id", Kind::Uuid),
        field("updated_at", Kind::Time),
        field("bytes", COUNT),
    ];
    let d = exec.dialect();
    let mut sql = Sql::default();
    let before = sql.bind(d, Value::Time(query.written_before), Kind::Time);
    let after = match query.after {
        Some((at, id)) => {
            let at = sql.bind(d, Value::Time(at), Kind::Time);
            let id = sql.bind(d, Value::Id(id), Kind::Uuid);
            format!(" AND (updated_at > {at} OR (updated_at = {at} AND id > {id}))")
        }
        None => String::new(),
    };
    sql.text = format!(
        "SELECT id, updated_at, CAST({} AS BIGINT) FROM messages
         WHERE {} AND updated_at < {before}{after}
         ORDER BY updated_at, id LIMIT {}",
        d.byte_length("content"),
        plain_and_long(""),
        query.limit
    );
    let fields: Vec<&Field> = COLUMNS.iter().collect();
    Ok(exec
        .fetch_columns(&fields, &sql)
        .await?
        .iter()
        .filter_map(|r| {
            Some(PackCandidate {
                message: r.id_of("id")?,
                updated_at: r.get("updated_at")?.as_time()?,
                stored_bytes: r.get("bytes")?.as_int()?,
            })
        })
        .collect())
}

/// The stored text of those of `messages` still stored plain.
pub(crate) async fn bodies<E: Exec>(
    exec: &mut E,
    messages: &[Uuid],
) -> Result<Vec<(Uuid, String)>> {
    static COLUMNS: [Field; 2] = [
        field("id", Kind::Uuid),
        field("content", Kind::Text { max: usize::MAX }),
    ];
    let d = exec.dialect();
    let mut sql = Sql::default();
    let set = sql.bind(d, Value::IdSet(messages.to_vec()), Kind::Uuid);
    sql.text = format!(
        "SELECT id, content FROM messages WHERE {} AND content_packed IS NULL",
        d.in_set("id", &set)
    );
    let fields: Vec<&Field> = COLUMNS.iter().collect();
    Ok(exec
        .fetch_columns(&fields, &sql)
        .await?
        .into_iter()
        .filter_map(|mut r| match (r.id(), r.remove("content")) {
            (Some(id), Some(Value::Text(text))) => Some((id, text)),
            _ => None,
        })
        .collect())
}

/// What a packing round did, for the counters' sake and the audit entry.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    pub messages: u64,
    pub bytes_before: i64,
    pub bytes_after: i64,
}

impl Packed {
    /// The audit entry's account of it: counts, never content.
    pub(crate) fn details(&self, written_before: OffsetDateTime) -> serde_json::Value {
        let format = &time::format_description::well_known::Rfc3339;
        json!({
            "written_before": written_before.format(format).unwrap_or_default(),
            "messages_compressed": self.messages,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
        })
    }
}

/// A message row holding what the counters measure.
fn sized(workspace: Uuid, deleted: Option<Value>, content: &str, frame: Option<&[u8]>) -> Record {
    let mut row = Record::with_capacity(4);
    row.set("workspace_id", Value::Id(workspace));
    row.set("deleted_at", deleted.unwrap_or(Value::Null));
    row.set(MESSAGE_CONTENT.field, Value::Text(content.to_owned()));
    row.set(
        MESSAGE_CONTENT.packed,
        frame.map_or(Value::Null, |f| Value::Bytes(f.to_vec())),
    );
    row
}

/// The columns a write returns: where the row is counted, and whether it is.
static WRITTEN: [Field; 2] = [
    field("workspace_id", Kind::Uuid),
    field("deleted_at", Kind::Time),
];

/// Stores `bodies` packed, each only if its message still stores that text plain (one
/// edited or packed since it was read is left alone), and counts the bytes saved.
pub(crate) async fn pack<E: Exec>(
    exec: &mut E,
    bodies: &[PackedBody],
    usage: &mut UsageDeltas,
) -> Result<Packed> {
    let mut out = Packed::default();
    let fields: Vec<&Field> = WRITTEN.iter().collect();
    for body in bodies {
        let d = exec.dialect();
        let mut sql = Sql::default();
        let frame = sql.bind(d, Value::Bytes(body.frame.clone()), Kind::Bytes);
        let id = sql.bind(d, Value::Id(body.message), Kind::Uuid);
        let stored = sql.bind(
            d,
            Value::Text(body.stored.clone()),
            Kind::Text { max: usize::MAX },
        );
        sql.text = format!(
            "UPDATE messages SET content = '', content_packed = {frame}, compressed = true
             WHERE id = {id} AND content_packed IS NULL AND content = {stored}
             RETURNING workspace_id, deleted_at"
        );
        let Some(mut row) = exec.fetch_columns(&fields, &sql).await?.pop() else {
            continue;
        };
        let Some(workspace) = row.id_of("workspace_id") else {
            continue;
        };
        let deleted = row.remove("deleted_at");
        let before = sized(workspace, deleted.clone(), &body.stored, None);
        let after = sized(workspace, deleted, "", Some(&body.frame));
        usage.resize(MESSAGE_CONTENT.entity, &before, &after);
        out.messages += 1;
        out.bytes_before += body.stored.len() as i64;
        out.bytes_after += body.frame.len() as i64;
    }
    Ok(out)
}

/// Stores every packed body plain again, a page at a time, keeping the counters right.
/// Returns how many it unpacked.
pub(crate) async fn unpack_all<E: Exec>(exec: &mut E) -> Result<u64> {
    const PAGE: u32 = 500;
    static COLUMNS: [Field; 4] = [
        field("id", Kind::Uuid),
        field("workspace_id", Kind::Uuid),
        field("deleted_at", Kind::Time),
        field("content_packed", Kind::Bytes),
    ];
    let fields: Vec<&Field> = COLUMNS.iter().collect();
    let mut usage = UsageDeltas::default();
    let mut done = 0;
    loop {
        let page = Sql {
            text: format!(
                "SELECT id, workspace_id, deleted_at, content_packed FROM messages
                 WHERE content_packed IS NOT NULL ORDER BY id LIMIT {PAGE}"
            ),
            params: Vec::new(),
        };
        let rows = exec.fetch_columns(&fields, &page).await?;
        if rows.is_empty() {
            break;
        }
        for mut row in rows {
            let (Some(id), Some(workspace), Some(Value::Bytes(frame))) = (
                row.id_of("id"),
                row.id_of("workspace_id"),
                row.remove("content_packed"),
            ) else {
                continue;
            };
            let text = unpack(&frame)
                .map_err(|e| crate::StoreError::Migration(format!("message {id}: {e}")))?;
            let deleted = row.remove("deleted_at");
            let d = exec.dialect();
            let mut sql = Sql::default();
            let plain = sql.bind(d, Value::Text(text.clone()), Kind::Text { max: usize::MAX });
            let mark = sql.bind(d, Value::Id(id), Kind::Uuid);
            sql.text = format!(
                "UPDATE messages SET content = {plain}, content_packed = NULL, compressed = false
                 WHERE id = {mark}"
            );
            exec.execute(&sql).await?;
            let before = sized(workspace, deleted.clone(), "", Some(&frame));
            let after = sized(workspace, deleted, &text, None);
            usage.resize(MESSAGE_CONTENT.entity, &before, &after);
            done += 1;
        }
    }
    usage.flush(exec).await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_candidates_are_read_as_the_partial_index_is_written() {
        let up = include_str!("../migrations/sqlite/0013_packed_bodies.up.sql");
        assert!(
            up.contains(&format!("WHERE {}", plain_and_long(""))),
            "{up}"
        );
        let up = include_str!("../migrations/postgres/0013_packed_bodies.up.sql");
        assert!(
            up.contains(&format!("WHERE {}", plain_and_long(""))),
            "{up}"
        );
    }
}
