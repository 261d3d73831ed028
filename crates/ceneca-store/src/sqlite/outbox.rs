//! The vector outbox on SQLite.

use rusqlite::{Connection, params};
use uuid::Uuid;

use super::backend;
use crate::outbox::{EmbeddingPoint, OutboxEntry};
use crate::{Result, StoreError};

fn uuid(text: String) -> Result<Uuid> {
    Uuid::parse_str(&text).map_err(|e| StoreError::Backend(format!("bad uuid in outbox: {e}")))
}

/// An embedding row's columns as SQLite returns them: id, workspace, source, vector.
type RawPoint = (String, String, String, Vec<u8>);

fn point(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<RawPoint>> {
    let id: Option<String> = row.get(at)?;
    Ok(match id {
        Some(id) => Some((id, row.get(at + 1)?, row.get(at + 2)?, row.get(at + 3)?)),
        None => None,
    })
}

fn to_point((id, ws, source, vector): RawPoint) -> Result<EmbeddingPoint> {
    Ok(EmbeddingPoint {
        id: uuid(id)?,
        workspace_id: uuid(ws)?,
        source_id: uuid(source)?,
        vector,
    })
}

pub(super) fn pending(conn: &Connection, limit: u32) -> Result<Vec<OutboxEntry>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT o.seq, o.collection, o.point_id, e.id, e.workspace_id, e.source_id, e.vector
             FROM (SELECT seq, collection, point_id FROM vector_outbox ORDER BY seq LIMIT ?1) o
             LEFT JOIN embedding_records e ON e.id = o.point_id AND e.collection = o.collection
             ORDER BY o.seq",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![limit], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                point(row, 3)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, collection, point_id, current) = row.map_err(backend)?;
        out.push(OutboxEntry {
            seq,
            collection,
            point_id: uuid(point_id)?,
            current: current.map(to_point).transpose()?,
        });
    }
    Ok(out)
}

pub(super) fn done(conn: &Connection, seqs: &[i64]) -> Result<()> {
    let json = serde_json::Value::from(seqs.to_vec()).to_string();
    conn.prepare_cached("DELETE FROM vector_outbox WHERE seq IN (SELECT value FROM json_each(?1))")
        .and_then(|mut s| s.execute([json]))
        .map_err(backend)?;
    Ok(())
}

pub(super) fn counts(conn: &Connection) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn
        .prepare_cached("SELECT collection, COUNT(*) FROM vector_outbox GROUP BY collection")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
        })
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<_>>().map_err(backend)
}

pub(super) fn page(
    conn: &Connection,
    collection: &str,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<EmbeddingPoint>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, workspace_id, source_id, vector FROM embedding_records
             WHERE collection = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )
        .map_err(backend)?;
    let after = after
        .map(|a| a.hyphenated().to_string())
        .unwrap_or_default();
    let rows = stmt
        .query_map(params![collection, after, limit], |row| point(row, 0))
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        if let Some(p) = row.map_err(backend)? {
            out.push(to_point(p)?);
        }
    }
    Ok(out)
}

pub(super) fn holds(conn: &Connection, collection: &str, ids: &[Uuid]) -> Result<Vec<Uuid>> {
    let ids = serde_json::to_string(&ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT DISTINCT point_id FROM vector_outbox
             WHERE collection = ?1 AND point_id IN (SELECT value FROM json_each(?2))",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![collection, ids], |row| row.get::<_, String>(0))
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(uuid(row.map_err(backend)?)?);
    }
    Ok(out)
}

pub(super) fn owner(conn: &Connection) -> Result<Option<(String, String)>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached("SELECT index_id, fed FROM vector_index_owner WHERE singleton = 1")
        .map_err(backend)?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .map_err(backend)
}

pub(super) fn set_owner(conn: &Connection, index_id: &str, fed: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO vector_index_owner (singleton, index_id, fed, updated_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (singleton) DO UPDATE SET index_id = excluded.index_id, fed = excluded.fed,
             updated_at = excluded.updated_at",
    )
    .map_err(backend)?
    .execute(params![
        index_id,
        fed,
        super::format_time(ceneca_domain::clock::now())
    ])
    .map_err(backend)?;
    Ok(())
}
