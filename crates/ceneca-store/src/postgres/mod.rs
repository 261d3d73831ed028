//! PostgreSQL: a pooled `sqlx` connection per request or batch. Native types (UUID,
//! TIMESTAMPTZ, JSONB, BOOLEAN, BYTEA), multi-row inserts for bulk writes, and migrations
//! serialized across nodes with an advisory lock so several `ceneca` processes can start at
//! once against one database.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::stats::{InFlight, PoolGroup, PoolStats, WaitHistogram};
use async_trait::async_trait;
use ceneca_domain::clock::{HybridClock, now};
use ceneca_domain::schema::{Field, Kind};
use ceneca_domain::scope::{Scope, ScopeFilter};
use ceneca_domain::{Entity, Record, Value, model};
use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::migrate::{self, MigrationStatus};
use crate::ops::{Exec, apply_batch};
use crate::query::{Deleted, ListQuery};
use crate::reads;
use crate::sql::{self, Dialect, Param, Sql};
use crate::write::WriteBatch;
use crate::{Engine, Result, Store, StoreError, StoreOptions};

mod outbox;
mod search;
mod snapshot;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// PostgreSQL's spellings.
pub struct PgDialect;

impl Dialect for PgDialect {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }
    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }
    fn in_set(&self, column: &str, placeholder: &str) -> String {
        format!("{column} = ANY({placeholder})")
    }
    fn greatest(&self) -> &'static str {
        "GREATEST"
    }
    fn lock_rows(&self) -> &'static str {
        // Not `FOR UPDATE`: rows referring to the locked one (a new membership, a new
        // workspace) check their foreign key with a share lock, which this one allows.
        " FOR NO KEY UPDATE"
    }
    fn byte_length(&self, expr: &str) -> String {
        format!("octet_length({expr})")
    }
}

/// PostgreSQL accepts at most 65,535 parameters per statement.
const MAX_PARAMS: usize = 60_000;
/// Any constant: the key of the advisory lock migrations hold.
const MIGRATION_LOCK: i64 = 0x6365_6e65_6361;
/// The key of the advisory lock that serializes audit appends across nodes.
const AUDIT_LOCK: i64 = 0x6175_6469_7421;

pub struct PgStore {
    pool: PgPool,
    clock: Arc<HybridClock>,
    max_connections: u32,
    /// Writes waiting for a connection of the pool, and how long they waited.
    waiting: InFlight,
    write_wait: WaitHistogram,
    /// Bumped after each commit that logged changes (the change feed's wake-up).
    changes: tokio::sync::watch::Sender<u64>,
    search_time_limit: Duration,
}

impl PgStore {
    pub async fn connect(options: &StoreOptions) -> Result<Self> {
        use std::str::FromStr;
        let mut connect = sqlx::postgres::PgConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Config(format!("store.database_url: {e}")))?;
        // A Unix socket (a host that is a path) never leaves the machine.
        if connect.get_socket().is_none()
            && !connect.get_host().starts_with('/')
            && let Some(address) = options
                .egress
                .resolve("store.database_url", connect.get_host(), connect.get_port())
                .await
                .map_err(|e| StoreError::Config(e.to_string()))?
        {
            connect = connect.host(&address.ip().to_string());
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.pg_max_connections)
            .idle_timeout(Duration::from_secs(options.pg_idle_timeout_secs))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::Config(format!("cannot connect to PostgreSQL: {e}")))?;
        Ok(Self {
            pool,
            clock: Arc::new(HybridClock::new()),
            max_connections: options.pg_max_connections,
            waiting: InFlight::default(),
            write_wait: WaitHistogram::default(),
            changes: tokio::sync::watch::Sender::new(0),
            search_time_limit: options.pg_search_time_limit,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn backend(e: sqlx::Error) -> StoreError {
    // A deadlock's victim, or a serialization failure: PostgreSQL rolled the transaction
    // back and nothing of it was written. Like a row that changed under a merge, the
    // write may be sent again (409 `stale` to a client; a push retries it itself).
    if let sqlx::Error::Database(db) = &e
        && matches!(db.code().as_deref(), Some("40P01") | Some("40001"))
    {
        return StoreError::Stale;
    }
    StoreError::Backend(e.to_string())
}

/// Maps SQLSTATEs to typed errors. Constraint names follow `<table>__<cols>__key`.
fn map_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let table = db.table().unwrap_or_default().to_owned();
        match db.code().as_deref() {
            Some("23505") => {
                let constraint = db.constraint().unwrap_or_default();
                let fields = constraint
                    .strip_prefix(&format!("{table}__"))
                    .and_then(|c| c.strip_suffix("__key"))
                    .map(|c| c.split("__").map(str::to_owned).collect())
                    .unwrap_or_default();
                return StoreError::Unique { table, fields };
            }
            Some("23503") => return StoreError::ForeignKey { table },
            Some("23514") | Some("23502") => return StoreError::Check { table },
            // query_canceled: by a `statement_timeout` or by an administrator (told apart
            // where a time limit was set, see `search`).
            Some("57014") => return StoreError::Cancelled,
            // lock_not_available: a `lock_timeout` ran out (ours on searches).
            Some("55P03") => {
                return StoreError::Unavailable(
                    "the data is locked by maintenance (a reindex or a migration)".into(),
                );
            }
            _ => {}
        }
    }
    backend(e)
}

fn bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    param: &'q Param,
) -> Query<'q, Postgres, PgArguments> {
    use sqlx::types::Json;
    match &param.value {
        Value::Null => match param.kind {
            Kind::Uuid | Kind::Ref(_) => query.bind(None::<Uuid>),
            Kind::Time => query.bind(None::<OffsetDateTime>),
            Kind::Bool => query.bind(None::<bool>),
            Kind::Int { .. } => query.bind(None::<i64>),
            Kind::Object | Kind::Array | Kind::Any | Kind::Strings(_) => {
                query.bind(None::<Json<serde_json::Value>>)
            }
            Kind::Vector | Kind::Bytes => query.bind(None::<Vec<u8>>),
            _ => query.bind(None::<String>),
        },
        Value::Bool(b) => query.bind(*b),
        Value::Int(i) => query.bind(*i),
        Value::Text(s) => query.bind(s.as_str()),
        Value::Id(id) => query.bind(*id),
        Value::IdSet(ids) => query.bind(ids.as_slice()),
        Value::Time(t) => query.bind(*t),
        Value::Json(j) => query.bind(Json(j)),
        Value::Bytes(b) => query.bind(b.as_slice()),
    }
}

fn build(sql: &Sql) -> Query<'_, Postgres, PgArguments> {
    sql.params.iter().fold(sqlx::query(&sql.text), bind)
}

fn decode(field: &Field, row: &PgRow, i: usize) -> Result<Value> {
    fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
        row: &'r PgRow,
        i: usize,
    ) -> Result<Option<T>> {
        row.try_get::<Option<T>, _>(i).map_err(backend)
    }
    let value = match field.kind {
        Kind::Uuid | Kind::Ref(_) => get::<Uuid>(row, i)?.map(Value::Id),
        Kind::Time => get::<OffsetDateTime>(row, i)?.map(Value::Time),
        Kind::Bool => get::<bool>(row, i)?.map(Value::Bool),
        Kind::Int { .. } => get::<i64>(row, i)?.map(Value::Int),
        Kind::Object | Kind::Array | Kind::Any | Kind::Strings(_) => {
            get::<serde_json::Value>(row, i)?.map(Value::Json)
        }
        Kind::Vector | Kind::Bytes => get::<Vec<u8>>(row, i)?.map(Value::Bytes),
        Kind::Text { .. }
        | Kind::Email
        | Kind::Slug
        | Kind::Url
        | Kind::Currency
        | Kind::Sha256
        | Kind::Enum(_)
        | Kind::Secret => get::<String>(row, i)?.map(Value::Text),
    };
    Ok(value.unwrap_or(Value::Null))
}

fn decode_row(fields: &[&Field], row: &PgRow) -> Result<Record> {
    let mut record = Record::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        record.set(field.name, decode(field, row, i)?);
    }
    Ok(record)
}

async fn fetch(conn: &mut PgConnection, entity: &Entity, sql: &Sql) -> Result<Vec<Record>> {
    let fields: Vec<&Field> = entity.columns().collect();
    fetch_columns(conn, &fields, sql).await
}

async fn fetch_columns(
    conn: &mut PgConnection,
    fields: &[&Field],
    sql: &Sql,
) -> Result<Vec<Record>> {
    let rows = build(sql).fetch_all(conn).await.map_err(map_error)?;
    rows.iter().map(|row| decode_row(fields, row)).collect()
}

struct PgExec<'c> {
    conn: &'c mut PgConnection,
}

impl Exec for PgExec<'_> {
    fn dialect(&self) -> &dyn Dialect {
        &PgDialect
    }
    async fn lock_audit_chain(&mut self) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK)
            .execute(&mut *self.conn)
            .await
            .map_err(backend)?;
        Ok(())
    }
    async fn fetch_columns(&mut self, fields: &[&Field], sql: &Sql) -> Result<Vec<Record>> {
        fetch_columns(self.conn, fields, sql).await
    }
    async fn execute(&mut self, sql: &Sql) -> Result<u64> {
        Ok(build(sql)
            .execute(&mut *self.conn)
            .await
            .map_err(map_error)?
            .rows_affected())
    }
    /// Multi-row `INSERT`s as large as the parameter limit allows: one round trip per
    /// chunk instead of one per row.
    async fn insert_many(
        &mut self,
        entity: &Entity,
        records: &[Record],
        returning: bool,
    ) -> Result<Vec<Record>> {
        let per_row = entity.columns().count().max(1);
        let mut out = Vec::with_capacity(if returning { records.len() } else { 0 });
        for chunk in records.chunks((MAX_PARAMS / per_row).max(1)) {
            let sql = sql::insert_many(&PgDialect, entity, chunk, returning);
            if returning {
                out.extend(fetch(self.conn, entity, &sql).await?);
            } else {
                self.execute(&sql).await?;
            }
        }
        Ok(out)
    }
}

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS ceneca_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL, checksum TEXT NOT NULL)";

type Applied = Vec<(i64, String, String, String)>;

/// Boxed (like the other migration helpers) so the `Send` proof does not have to hold for
/// every lifetime of the re-borrowed connection, which rustc cannot show through sqlx.
fn applied_migrations(conn: &mut PgConnection) -> BoxFuture<'_, Result<Applied>> {
    Box::pin(async move {
        sqlx::Executor::execute(&mut *conn, MIGRATIONS_TABLE)
            .await
            .map_err(backend)?;
        let rows = sqlx::query(
            "SELECT version, name, applied_at, checksum FROM ceneca_migrations ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(backend)?,
                    r.try_get(1).map_err(backend)?,
                    r.try_get(2).map_err(backend)?,
                    r.try_get(3).map_err(backend)?,
                ))
            })
            .collect()
    })
}

fn lock_migrations(conn: &mut PgConnection) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(conn)
            .await
            .map_err(backend)?;
        Ok(())
    })
}

fn run_script<'c>(
    conn: &'c mut PgConnection,
    script: &'static str,
    m: &'static migrate::Migration,
) -> BoxFuture<'c, Result<()>> {
    Box::pin(async move {
        // A plain string runs over the simple-query protocol, which takes many statements.
        sqlx::Executor::execute(conn, script)
            .await
            .map_err(|e| StoreError::Migration(format!("{} {}: {e}", m.version, m.name)))?;
        Ok(())
    })
}

fn record_migration<'c>(
    conn: &'c mut PgConnection,
    m: &'static migrate::Migration,
    applied: bool,
) -> BoxFuture<'c, Result<()>> {
    Box::pin(async move {
        let query = if applied {
            sqlx::query("INSERT INTO ceneca_migrations (version, name, applied_at, checksum) VALUES ($1, $2, $3, $4)")
                .bind(m.version)
                .bind(m.name)
                .bind(ceneca_domain::output::format_time(now()))
                .bind(m.checksum())
        } else {
            sqlx::query("DELETE FROM ceneca_migrations WHERE version = $1").bind(m.version)
        };
        query.execute(conn).await.map_err(backend)?;
        Ok(())
    })
}

#[async_trait]
impl Store for PgStore {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    async fn apply(&self, batch: WriteBatch) -> Result<Vec<Record>> {
        let queued = std::time::Instant::now();
        let waiting = self.waiting.enter();
        let mut tx = self.pool.begin().await.map_err(backend)?;
        drop(waiting);
        self.write_wait.observe(queued.elapsed());
        let applied = apply_batch(&mut PgExec { conn: &mut tx }, &self.clock, batch).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(applied.committed(&self.changes))
    }

    async fn get(
        &self,
        entity: &'static Entity,
        id: Uuid,
        filter: ScopeFilter,
        deleted: Deleted,
    ) -> Result<Option<Record>> {
        let sql = sql::get(&PgDialect, entity, id, &filter, deleted);
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        Ok(fetch(&mut conn, entity, &sql).await?.into_iter().next())
    }

    async fn list(&self, entity: &'static Entity, query: ListQuery) -> Result<Vec<Record>> {
        let sql = sql::list(&PgDialect, entity, &query);
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        fetch(&mut conn, entity, &sql).await
    }

    async fn load_scope(&self, user_id: Uuid, system_admin: bool) -> Result<Scope> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        reads::load_scope(&mut PgExec { conn: &mut conn }, user_id, system_admin).await
    }

    async fn load_session(&self, token_hash: Vec<u8>) -> Result<Option<reads::LoadedSession>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        reads::load_session(&mut PgExec { conn: &mut conn }, token_hash).await
    }

    async fn auth_generation(&self) -> Result<i64> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        reads::auth_generation(&mut PgExec { conn: &mut conn }).await
    }

    async fn lookup_unscoped(
        &self,
        entity: &'static Entity,
        column: &'static str,
        value: Value,
    ) -> Result<Option<Record>> {
        let kind = entity.field(column).map(|f| f.kind).ok_or_else(|| {
            StoreError::Backend(format!("{} has no column {column}", entity.table))
        })?;
        let sql = Sql {
            text: format!(
                "SELECT {} FROM {} WHERE {column} = $1 LIMIT 1",
                sql::column_list(entity),
                entity.table
            ),
            params: vec![Param { value, kind }],
        };
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        Ok(fetch(&mut conn, entity, &sql).await?.into_iter().next())
    }

    async fn claim_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET mfa_last_step = $1
             WHERE id = $2 AND (mfa_last_step IS NULL OR mfa_last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn consume_recovery_code(
        &self,
        user_id: Uuid,
        expected: Vec<String>,
        remaining: Vec<String>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET mfa_recovery_codes = $1
             WHERE id = $2 AND mfa_recovery_codes = $3",
        )
        .bind(sqlx::types::Json(serde_json::Value::from(remaining)))
        .bind(user_id)
        .bind(sqlx::types::Json(serde_json::Value::from(expected)))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_session(&self, session_id: Uuid, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(session_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn search(&self, query: crate::SearchQuery) -> Result<Vec<crate::SearchHit>> {
        // In a transaction of its own, so that its time limits are set for it alone and
        // undone however it ends (a dropped transaction is rolled back). Each limit is
        // ours or a stricter one the database's administrator set, whichever is less.
        // A wait for a lock (a `REINDEX`, a migration) has a limit of its own, shorter, so
        // that it is answered as the busy database it is, not as a too costly query.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Ours, or the setting in force when it is stricter.
        let limit = |name: &str, mark: &str| {
            format!(
                "set_config('{name}', CASE WHEN current_setting('{name}')::interval = interval '0'
                                             OR current_setting('{name}')::interval > {mark} * interval '1 ms'
                                           THEN {mark} || 'ms' ELSE current_setting('{name}') END, true)"
            )
        };
        let (_, limit_ms): (String, i64) = sqlx::query_as(&format!(
            "SELECT {}, (extract(epoch FROM {}::interval) * 1000)::bigint",
            limit("lock_timeout", "$2::bigint"),
            limit("statement_timeout", "$1::bigint"),
        ))
        .bind(self.search_time_limit.as_millis().max(1) as i64)
        .bind(crate::search::SEARCH_LOCK_WAIT.as_millis() as i64)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_error)?;
        let started = std::time::Instant::now();
        let hits = match search::search(&mut tx, &query).await {
            // Cancelled once the limit had passed: by the limit (the error's message is
            // in the server's language, so it cannot tell).
            Err(StoreError::Cancelled)
                if started.elapsed() >= Duration::from_millis(limit_ms.max(0) as u64) =>
            {
                return Err(StoreError::TimedOut);
            }
            other => other?,
        };
        tx.commit().await.map_err(map_error)?;
        Ok(hits)
    }

    /// The `tsvector` columns are generated, so they are always current: rebuilding means
    /// rebuilding the GIN indexes.
    async fn reindex_text(&self) -> Result<()> {
        for index in ["messages__search", "documents__search"] {
            sqlx::Executor::execute(&self.pool, format!("REINDEX INDEX {index}").as_str())
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn vector_outbox(&self, limit: u32) -> Result<Vec<crate::OutboxEntry>> {
        outbox::pending(&self.pool, limit).await
    }

    async fn vector_outbox_done(&self, seqs: Vec<i64>) -> Result<()> {
        outbox::done(&self.pool, &seqs).await
    }

    async fn vector_outbox_pending(&self) -> Result<Vec<(String, u64)>> {
        outbox::counts(&self.pool).await
    }

    async fn vector_outbox_holds(&self, collection: String, ids: Vec<Uuid>) -> Result<Vec<Uuid>> {
        outbox::holds(&self.pool, &collection, &ids).await
    }

    async fn vector_index_owner(&self) -> Result<Option<(String, String)>> {
        outbox::owner(&self.pool).await
    }

    async fn set_vector_index_owner(&self, index_id: String, fed: String) -> Result<()> {
        outbox::set_owner(&self.pool, &index_id, &fed).await
    }

    async fn vector_indexer_lease(&self) -> Result<Option<Box<dyn crate::Lease>>> {
        outbox::lease(&self.pool, outbox::INDEXER_LEASE).await
    }

    async fn vector_rebuild_lease(
        &self,
        wait: std::time::Duration,
    ) -> Result<Option<Box<dyn crate::Lease>>> {
        outbox::rebuild_lease(&self.pool, wait).await
    }

    async fn embeddings_page(
        &self,
        collection: String,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<crate::EmbeddingPoint>> {
        outbox::page(&self.pool, &collection, after, limit).await
    }

    async fn migration_status(&self) -> Result<Vec<MigrationStatus>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        Ok(migrate::status(
            migrate::POSTGRES,
            &applied_migrations(&mut conn).await?,
        ))
    }

    async fn migrate_up(&self) -> Result<Vec<i64>> {
        let mut done = Vec::new();
        for m in migrate::POSTGRES {
            let mut tx = self.pool.begin().await.map_err(backend)?;
            lock_migrations(&mut tx).await?;
            if applied_migrations(&mut tx)
                .await?
                .iter()
                .any(|a| a.0 == m.version)
            {
                continue;
            }
            run_script(&mut tx, m.up, m).await?;
            record_migration(&mut tx, m, true).await?;
            tx.commit().await.map_err(backend)?;
            done.push(m.version);
        }
        if done.iter().any(|v| migrate::RECOUNTS_STORAGE.contains(v)) {
            self.reconcile_storage(true).await?;
        }
        Ok(done)
    }

    async fn migrate_down(&self) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        lock_migrations(&mut tx).await?;
        let applied = applied_migrations(&mut tx).await?;
        let Some(last) = applied.last() else {
            return Ok(None);
        };
        let m = migrate::POSTGRES
            .iter()
            .find(|m| m.version == last.0)
            .ok_or_else(|| {
                StoreError::Migration(format!("version {} is unknown to this binary", last.0))
            })?;
        if migrate::UNPACKS_BEFORE_DOWN.contains(&m.version) {
            crate::compression::unpack_all(&mut PgExec { conn: &mut tx }).await?;
        }
        run_script(&mut tx, m.down, m).await?;
        record_migration(&mut tx, m, false).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(m.version))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn feed(&self, query: crate::changes::FeedQuery) -> Result<Vec<Record>> {
        let sql = crate::changes::feed(&PgDialect, &query);
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        fetch(&mut conn, &model::SYNC_EVENTS, &sql).await
    }

    async fn count_feed(&self, query: crate::changes::FeedQuery) -> Result<i64> {
        let sql = crate::changes::feed_count(&PgDialect, &query);
        let fields: Vec<&Field> = crate::changes::LAST_SEQ.iter().collect();
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let rows = fetch_columns(&mut conn, &fields, &sql).await?;
        Ok(crate::changes::seq_answer(&rows))
    }

    async fn change_history(&self, ids: Vec<Uuid>) -> Result<Vec<Record>> {
        let sql = crate::changes::history(&PgDialect, &ids);
        let fields: Vec<&Field> = crate::changes::HISTORY_COLUMNS.iter().collect();
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        fetch_columns(&mut conn, &fields, &sql).await
    }

    async fn storage_usage(&self, of: crate::UsageOf) -> Result<Vec<crate::Usage>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::usage::usage(&mut PgExec { conn: &mut conn }, of).await
    }

    async fn maintenance_lease(&self) -> Result<Option<Box<dyn crate::Lease>>> {
        outbox::lease(&self.pool, outbox::MAINTENANCE_LEASE).await
    }

    async fn archive_policies(&self) -> Result<Vec<(Uuid, i64)>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::retention::policies(&mut PgExec { conn: &mut conn }).await
    }

    async fn archive_candidates(
        &self,
        query: crate::ArchiveQuery,
    ) -> Result<Vec<crate::ArchiveCandidate>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::retention::candidates(&mut PgExec { conn: &mut conn }, &query).await
    }

    async fn scrub_deleted(&self) -> Result<()> {
        // Outside a transaction (VACUUM refuses one); the tables whose rows a purge or an
        // erase deletes, with the change log and conflicts that copied them.
        sqlx::query(
            "VACUUM organizations, workspaces, projects, threads, documents, messages, \
             attachments, embedding_records, ai_interactions, sync_events, sync_conflicts, \
             users, sessions, devices, user_settings, organization_members, workspace_members, \
             ai_provider_configs, permission_sets, data_sharing_policies, invoices, \
             telemetry_events, audit_log",
        )
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn snapshot_into(
        &self,
        path: std::path::PathBuf,
    ) -> Result<ceneca_domain::audit::ChainHead> {
        snapshot::export(&self.pool, path).await
    }

    async fn restore_snapshot(
        &self,
        path: std::path::PathBuf,
    ) -> Result<ceneca_domain::audit::ChainHead> {
        snapshot::import(&self.pool, path).await
    }

    async fn check_restore_target(&self) -> Result<()> {
        snapshot::check_restore_target(&self.pool).await
    }

    async fn pending_erasures(&self) -> Result<Vec<Uuid>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::erasure::pending(&mut PgExec { conn: &mut conn }).await
    }

    async fn created_by(&self, user: Uuid, entity: &'static Entity) -> Result<Vec<Uuid>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::erasure::created_by(&mut PgExec { conn: &mut conn }, user, entity).await
    }

    async fn erasure_work(&self, user: Uuid, limit: u32) -> Result<crate::ErasureWork> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::erasure::work(&mut PgExec { conn: &mut conn }, user, limit).await
    }

    async fn purge_candidates(
        &self,
        query: crate::PurgeQuery,
    ) -> Result<Vec<crate::PurgeCandidate>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::purge::candidates(&mut PgExec { conn: &mut conn }, &query).await
    }

    async fn purge_footprint(
        &self,
        entity: &'static Entity,
        ids: Vec<Uuid>,
    ) -> Result<crate::PurgeFootprint> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::purge::footprint(&mut PgExec { conn: &mut conn }, entity, &ids).await
    }

    async fn archive_footprint(&self, threads: Vec<Uuid>) -> Result<crate::Footprint> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::retention::footprint(&mut PgExec { conn: &mut conn }, &threads).await
    }

    async fn thumbnails_waiting(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<(Uuid, Record)>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::thumbnails::waiting(&mut PgExec { conn: &mut conn }, after, limit).await
    }

    async fn thumbnail_of_blob(
        &self,
        storage_key: String,
        workspace: Uuid,
    ) -> Result<Option<crate::MadeThumbnail>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::thumbnails::of_blob(&mut PgExec { conn: &mut conn }, &storage_key, workspace).await
    }

    async fn pack_candidates(&self, query: crate::PackQuery) -> Result<Vec<crate::PackCandidate>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::compression::candidates(&mut PgExec { conn: &mut conn }, &query).await
    }

    async fn message_bodies(&self, messages: Vec<Uuid>) -> Result<Vec<(Uuid, String)>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        crate::compression::bodies(&mut PgExec { conn: &mut conn }, &messages).await
    }

    async fn reconcile_storage(&self, fix: bool) -> Result<Vec<crate::UsageDrift>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Writes wait while the data is recounted, so the fix replaces counters no write
        // has moved since.
        sqlx::query("LOCK TABLE storage_usage IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let drift = crate::usage::reconcile(&mut PgExec { conn: &mut tx }, fix).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(drift)
    }

    async fn last_change(&self) -> Result<i64> {
        let fields: Vec<&Field> = crate::changes::LAST_SEQ.iter().collect();
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let rows = fetch_columns(&mut conn, &fields, &crate::changes::last_seq()).await?;
        Ok(crate::changes::seq_answer(&rows))
    }

    fn clock(&self) -> Arc<HybridClock> {
        self.clock.clone()
    }

    fn change_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn pool_stats(&self) -> PoolStats {
        let size = u64::from(self.pool.size());
        let idle = self.pool.num_idle() as u64;
        PoolStats {
            groups: vec![PoolGroup {
                name: "pool",
                in_use: size.saturating_sub(idle),
                idle,
                max: Some(u64::from(self.max_connections)),
            }],
            writes_waiting: self.waiting.get(),
            write_wait: self.write_wait.snapshot(),
        }
    }
}
