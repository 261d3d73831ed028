//! The vector outbox on PostgreSQL.

use sqlx::Row;
use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::backend;
use crate::Result;
use crate::outbox::{EmbeddingPoint, OutboxEntry};

fn point(row: &sqlx::postgres::PgRow, at: usize) -> Result<Option<EmbeddingPoint>> {
    let id: Option<Uuid> = row.try_get(at).map_err(backend)?;
    let Some(id) = id else { return Ok(None) };
    Ok(Some(EmbeddingPoint {
        id,
        workspace_id: row.try_get(at + 1).map_err(backend)?,
        source_id: row.try_get(at + 2).map_err(backend)?,
        vector: row.try_get(at + 3).map_err(backend)?,
    }))
}

pub(super) async fn pending(pool: &PgPool, limit: u32) -> Result<Vec<OutboxEntry>> {
    let rows = sqlx::query(
        "SELECT o.seq, o.collection, o.point_id, e.id, e.workspace_id, e.source_id, e.vector
         FROM (SELECT seq, collection, point_id FROM vector_outbox ORDER BY seq LIMIT $1) o
         LEFT JOIN embedding_records e ON e.id = o.point_id AND e.collection = o.collection
         ORDER BY o.seq",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    rows.iter()
        .map(|row| {
            Ok(OutboxEntry {
                seq: row.try_get(0).map_err(backend)?,
                collection: row.try_get(1).map_err(backend)?,
                point_id: row.try_get(2).map_err(backend)?,
                current: point(row, 3)?,
            })
        })
        .collect()
}

pub(super) async fn done(pool: &PgPool, seqs: &[i64]) -> Result<()> {
    sqlx::query("DELETE FROM vector_outbox WHERE seq = ANY($1)")
        .bind(seqs)
        .execute(pool)
        .await
        .map_err(backend)?;
    Ok(())
}

pub(super) async fn counts(pool: &PgPool) -> Result<Vec<(String, u64)>> {
    let rows = sqlx::query("SELECT collection, COUNT(*) FROM vector_outbox GROUP BY collection")
        .fetch_all(pool)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|r| {
            let n: i64 = r.try_get(1).map_err(backend)?;
            Ok((r.try_get(0).map_err(backend)?, n as u64))
        })
        .collect()
}

pub(super) async fn page(
    pool: &PgPool,
    collection: &str,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<EmbeddingPoint>> {
    let rows = sqlx::query(
        "SELECT id, workspace_id, source_id, vector FROM embedding_records
         WHERE collection = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(collection)
    .bind(after.unwrap_or(Uuid::nil()))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(p) = point(row, 0)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// The advisory-lock keys of the leases: "ceneca", then 1 for the vector indexer and 2
/// for maintenance.
pub(super) const INDEXER_LEASE: i64 = 0x6365_6e65_6361_0001;
pub(super) const MAINTENANCE_LEASE: i64 = 0x6365_6e65_6361_0002;

/// The lease is a session advisory lock held by a connection of its own: if the node
/// dies, PostgreSQL closes the session and the lock passes on.
struct PgLease {
    conn: sqlx::PgConnection,
    key: i64,
}

#[async_trait::async_trait]
impl crate::Lease for PgLease {
    async fn check(&mut self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&mut self.conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn release(&mut self) -> Result<()> {
        // The lock is the session's: unlocked here, not when the server notices the
        // connection closed (a run started right after would be refused meanwhile).
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut self.conn)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

pub(super) async fn lease(pool: &PgPool, key: i64) -> Result<Option<Box<dyn crate::Lease>>> {
    // Detached: the pool opens a replacement, and the lock lives as long as this session.
    let mut conn = pool.acquire().await.map_err(backend)?.detach();
    let granted: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut conn)
        .await
        .map_err(backend)?;
    if granted {
        Ok(Some(Box::new(PgLease { conn, key })))
    } else {
        let _ = sqlx::Connection::close(conn).await;
        Ok(None)
    }
}
