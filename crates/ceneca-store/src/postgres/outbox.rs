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

pub(super) async fn holds(pool: &PgPool, collection: &str, ids: &[Uuid]) -> Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT DISTINCT point_id FROM vector_outbox WHERE collection = $1 AND point_id = ANY($2)",
    )
    .bind(collection)
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(backend)
}

pub(super) async fn owner(pool: &PgPool) -> Result<Option<(String, String)>> {
    sqlx::query_as("SELECT index_id, fed FROM vector_index_owner WHERE singleton = 1")
        .fetch_optional(pool)
        .await
        .map_err(backend)
}

pub(super) async fn set_owner(pool: &PgPool, index_id: &str, fed: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO vector_index_owner (singleton, index_id, fed, updated_at) VALUES (1, $1, $2, now())
         ON CONFLICT (singleton) DO UPDATE SET index_id = EXCLUDED.index_id, fed = EXCLUDED.fed,
             updated_at = EXCLUDED.updated_at",
    )
    .bind(index_id)
    .bind(fed)
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

/// The advisory-lock keys of the leases: "ceneca", then 1 for the vector indexer, 2 for
/// maintenance and 3 for the right to rebuild the vector index (held by a rebuild while it
/// waits for, then holds, the indexer's).
pub(super) const INDEXER_LEASE: i64 = 0x6365_6e65_6361_0001;
pub(super) const MAINTENANCE_LEASE: i64 = 0x6365_6e65_6361_0002;
const REBUILD_LEASE: i64 = 0x6365_6e65_6361_0003;

/// The lease is a session advisory lock held by a connection of its own: if the node
/// dies, PostgreSQL closes the session and the lock passes on.
struct PgLease {
    conn: sqlx::PgConnection,
    key: i64,
    /// Also held: the right to rebuild (a rebuild's lease).
    rebuilding: bool,
}

/// Whether a rebuild holds the right to rebuild (a shared lock on it is refused).
async fn rebuild_waits(conn: &mut sqlx::PgConnection) -> Result<bool> {
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock_shared($1)")
        .bind(REBUILD_LEASE)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend)?;
    if free {
        sqlx::query("SELECT pg_advisory_unlock_shared($1)")
            .bind(REBUILD_LEASE)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
    }
    Ok(!free)
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

    async fn wanted(&mut self) -> Result<bool> {
        if self.key != INDEXER_LEASE || self.rebuilding {
            return Ok(false);
        }
        rebuild_waits(&mut self.conn).await
    }

    async fn release(&mut self) -> Result<()> {
        // The lock is the session's: unlocked here, not when the server notices the
        // connection closed (a run started right after would be refused meanwhile).
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut self.conn)
            .await
            .map_err(backend)?;
        if self.rebuilding {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(REBUILD_LEASE)
                .execute(&mut self.conn)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }
}

/// A connection of its own for a lease: detached (the pool opens a replacement), so the
/// lock lives as long as this session. The server probes a silent peer after 30 s and
/// gives up after three more 10 s probes, so a lease whose holder's machine died or fell
/// off the network passes on within about a minute, not after the system's two hours.
async fn lease_connection(pool: &PgPool) -> Result<sqlx::PgConnection> {
    let mut conn = pool.acquire().await.map_err(backend)?.detach();
    for setting in [
        "SET tcp_keepalives_idle = 30",
        "SET tcp_keepalives_interval = 10",
        "SET tcp_keepalives_count = 3",
    ] {
        sqlx::query(setting)
            .execute(&mut conn)
            .await
            .map_err(backend)?;
    }
    Ok(conn)
}

pub(super) async fn lease(pool: &PgPool, key: i64) -> Result<Option<Box<dyn crate::Lease>>> {
    let mut conn = lease_connection(pool).await?;
    let granted: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut conn)
        .await
        .map_err(backend)?;
    // The indexer takes no lease a rebuild waits for.
    if granted && (key != INDEXER_LEASE || !rebuild_waits(&mut conn).await?) {
        Ok(Some(Box::new(PgLease {
            conn,
            key,
            rebuilding: false,
        })))
    } else {
        let _ = sqlx::Connection::close(conn).await;
        Ok(None)
    }
}

/// The indexer's lease for a rebuild (`Store::vector_rebuild_lease`): `None` if another
/// rebuild holds the right to rebuild, or the indexer kept its lease past `wait`.
pub(super) async fn rebuild_lease(
    pool: &PgPool,
    wait: std::time::Duration,
) -> Result<Option<Box<dyn crate::Lease>>> {
    let mut conn = lease_connection(pool).await?;
    // An indexer looking whether a rebuild waits holds the right for an instant (a shared
    // lock): asked again for a second before another rebuild is taken to hold it.
    let mut right = false;
    for _ in 0..10 {
        right = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(REBUILD_LEASE)
            .fetch_one(&mut conn)
            .await
            .map_err(backend)?;
        if right {
            break;
        }
        tokio::time::sleep(crate::outbox::REBUILD_POLL).await;
    }
    if !right {
        let _ = sqlx::Connection::close(conn).await;
        return Ok(None);
    }
    let started = std::time::Instant::now();
    loop {
        let granted: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(INDEXER_LEASE)
            .fetch_one(&mut conn)
            .await
            .map_err(backend)?;
        if granted {
            return Ok(Some(Box::new(PgLease {
                conn,
                key: INDEXER_LEASE,
                rebuilding: true,
            })));
        }
        if started.elapsed() >= wait {
            let _ = sqlx::Connection::close(conn).await;
            return Ok(None);
        }
        tokio::time::sleep(crate::outbox::REBUILD_POLL).await;
    }
}
