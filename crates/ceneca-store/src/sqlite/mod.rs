//! The embedded engine: SQLite in WAL mode, one writer connection and a pool of read-only
//! connections. Work runs on Tokio's blocking pool; a batch holds the writer for its whole
//! transaction (`BEGIN IMMEDIATE`), so writers queue in the process instead of spinning on
//! `SQLITE_BUSY`.

pub mod cipher;
mod codec;
pub mod convert;
mod functions;
mod group_commit;
mod leases;

pub use functions::register_functions;
mod outbox;
mod search;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ceneca_domain::clock::{HybridClock, now};
use ceneca_domain::schema::Field;
use ceneca_domain::scope::{Scope, ScopeFilter};
use ceneca_domain::{Entity, Record, Value, model};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params_from_iter};
use time::OffsetDateTime;
use uuid::Uuid;

pub use codec::{format_time, parse_time};

use crate::migrate::{self, MigrationStatus};
use crate::ops::{Exec, run_ready};
use crate::query::{Deleted, ListQuery};
use crate::reads;
use crate::sql::{self, Dialect, Sql};
use crate::stats::{InFlight, PoolGroup, PoolStats, WaitHistogram};
use crate::write::WriteBatch;
use crate::{Engine, Result, SqliteSynchronous, Store, StoreError, StoreOptions};

/// SQLite's spellings.
pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }
    fn placeholder(&self, n: usize) -> String {
        format!("?{n}")
    }
    fn in_set(&self, column: &str, placeholder: &str) -> String {
        format!("{column} IN (SELECT value FROM json_each({placeholder}))")
    }
    fn greatest(&self) -> &'static str {
        "max"
    }
    fn lock_rows(&self) -> &'static str {
        ""
    }
    fn byte_length(&self, expr: &str) -> String {
        // `length` of text counts characters; of a blob, bytes.
        format!("length(CAST({expr} AS BLOB))")
    }
}

/// Read connections: reads beyond this many wait (asynchronously) for one to be free.
/// Every one opened is kept, because opening one parses the schema and maps the WAL
/// index, which costs more than most reads; without the bound, a burst of concurrent
/// requests opened and closed a connection per read.
const MAX_READERS: usize = 16;
/// Read connections kept apart for what must answer while the others are busy with long
/// reads: a session read again to authenticate a request, the authentication counter and
/// the readiness probe when the counter's own connection is taken.
const PRIORITY_READERS: usize = 4;
/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 256;

pub struct SqliteStore {
    /// Declared first, so it stops (and closes its connection) before the others close.
    checkpointer: Checkpointer,
    path: PathBuf,
    synchronous: SqliteSynchronous,
    /// The database's keys when it is encrypted (SQLCipher); every connection is keyed.
    keys: Option<cipher::DatabaseKeys>,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Readers>,
    /// [`PRIORITY_READERS`] more, for [`SqliteStore::read_first`].
    priority_readers: Arc<Readers>,
    clock: Arc<HybridClock>,
    stats: Arc<SqliteStats>,
    /// Bumped after each commit that logged changes (the change feed's wake-up).
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Write batches waiting to share the writer's next transaction (`group_commit.rs`).
    group: Arc<group_commit::GroupCommit>,
    /// A connection of its own for the authentication counter, read on the request's
    /// thread ([`Store::auth_generation`]); opened at its first use.
    counter: Mutex<Option<Connection>>,
}

/// The read connections, and the permits that bound how many exist.
struct Readers {
    permits: Arc<tokio::sync::Semaphore>,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            idle: Mutex::new(Vec::with_capacity(max)),
        }
    }
}

/// Counters for [`Store::pool_stats`], kept with atomics on every read and write.
#[derive(Debug, Default)]
struct SqliteStats {
    /// Writes queued for the writer (including the one holding it).
    writes: InFlight,
    /// Writes waiting for the writer, not yet holding it.
    waiting: InFlight,
    /// Reads running (each on a reader connection of its own).
    reads: InFlight,
    write_wait: WaitHistogram,
    /// Transactions the group commit ran (each holding one or more batches).
    groups: std::sync::atomic::AtomicU64,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    ///
    /// A new database is private to the account that runs Ceneca, whatever the umask: a
    /// missing folder is created 0700 and the file 0600 before SQLite opens it. SQLite
    /// creates the `-wal` and `-shm` files with the database file's mode, so they are
    /// 0600 too.
    ///
    /// With [`StoreOptions::database_keys`] the file is encrypted (a new one is created
    /// encrypted); a plaintext file is then refused, as is an encrypted one without keys
    /// ([`cipher::EncryptionError`]).
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Self> {
        let keys = options.database_keys.clone();
        cipher::check_state(path, keys.as_ref())?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder
                .create(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        create_private_file(path)?;
        let writer = open_connection(path, options.sqlite_synchronous, false, keys.as_ref())?;
        // The writer's commits checkpoint only as a backstop: the checkpointer does it,
        // beside them. Past the limit, a WAL reused from its start is cut back to it.
        writer
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES};
                 PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
            ))
            .map_err(backend)?;
        let writer = Arc::new(Mutex::new(writer));
        let checkpointer = Checkpointer::start(
            open_connection(path, options.sqlite_synchronous, true, keys.as_ref())?,
            writer.clone(),
        )?;
        let clock = Arc::new(HybridClock::new());
        let stats = Arc::<SqliteStats>::default();
        let changes = Arc::new(tokio::sync::watch::Sender::new(0));
        let group = Arc::new(group_commit::GroupCommit::new(group_commit::Writer {
            conn: writer.clone(),
            clock: clock.clone(),
            changes: changes.clone(),
            stats: stats.clone(),
            written: Arc::downgrade(&checkpointer.wake),
        }));
        Ok(Self {
            checkpointer,
            path: path.to_owned(),
            synchronous: options.sqlite_synchronous,
            keys,
            writer,
            readers: Arc::new(Readers::new(MAX_READERS)),
            priority_readers: Arc::new(Readers::new(PRIORITY_READERS)),
            clock,
            stats,
            changes,
            group,
            counter: Mutex::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let writer = self.writer.clone();
        let stats = self.stats.clone();
        let queued = std::time::Instant::now();
        let written = self.checkpointer.wake.clone();
        tokio::task::spawn_blocking(move || {
            let _writing = stats.writes.enter();
            let waiting = stats.waiting.enter();
            let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            drop(waiting);
            stats.write_wait.observe(queued.elapsed());
            let result = work(&mut conn);
            drop(conn);
            // Full means a checkpoint is already due; gone means the store is closing.
            let _ = written.try_send(());
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("writer task failed: {e}")))?
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.read_on(self.readers.clone(), work).await
    }

    /// `work` on the counter's connection, on the caller's thread, if the connection is
    /// free (none: it is in use, or cannot be opened). It never waits: its `busy_timeout`
    /// is 0, so a busy database answers at once, and the caller reads elsewhere.
    fn on_counter_connection<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T>,
    ) -> Option<Result<T>> {
        let mut counter = self.counter.try_lock().ok()?;
        if counter.is_none() {
            *counter = open_connection(&self.path, self.synchronous, true, self.keys.as_ref())
                .and_then(|conn| {
                    conn.busy_timeout(std::time::Duration::ZERO)
                        .map_err(backend)?;
                    Ok(conn)
                })
                .ok();
        }
        counter.as_ref().map(work)
    }

    /// A read on the connections kept for authentication and readiness, which never wait
    /// behind the queue of ordinary reads (a user's long lists, exports, searches).
    async fn read_first<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.read_on(self.priority_readers.clone(), work).await
    }

    async fn read_on<T: Send + 'static>(
        &self,
        readers: Arc<Readers>,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let path = self.path.clone();
        let synchronous = self.synchronous;
        let keys = self.keys.clone();
        let stats = self.stats.clone();
        let permit = readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("the store is closing".into()))?;
        tokio::task::spawn_blocking(move || {
            let _reading = stats.reads.enter();
            let pooled = readers.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&path, synchronous, true, keys.as_ref())?,
            };
            let result = work(&conn);
            // At most one connection per permit exists, so the idle list stays bounded.
            readers
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

/// How long the checkpointer lets writes gather after the first one before it copies
/// them into the database file: at most a few checkpoints a second under steady writes,
/// and one soon after a lone write (which makes it durable on disk then, under
/// `synchronous=NORMAL`, rather than at some later commit).
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// WAL pages past which the checkpointer finishes the copy with writes held back (32 MiB).
const LONG_WAL_PAGES: i64 = 8192;
/// WAL pages past which a commit checkpoints itself, should the checkpointer fall behind.
const BACKSTOP_PAGES: i64 = 4 * LONG_WAL_PAGES;
/// The size a WAL file is cut back to when it is reused from its start (64 MiB).
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Copies the WAL into the database file on a thread and connection of its own.
///
/// SQLite's default runs a checkpoint inside the commit that takes the WAL past 1,000
/// pages, so that one write waits for the copy and two fsyncs (about 20 ms of a
/// 5,000-row commit here). A `PASSIVE` checkpoint blocks neither the writer nor readers,
/// so it runs beside them. But the WAL is reused from its start only when a write begins
/// with all of it copied, which under steady writes never happens (a commit always lands
/// during the copy): so once the WAL passes [`LONG_WAL_PAGES`], the checkpointer holds
/// writes back (it takes the writer) while it copies what the pass beside them left, a
/// few hundred milliseconds of writes at most. The next write then starts the WAL again,
/// and `journal_size_limit` cuts the file back. The writer's own checkpoints stay on at
/// [`BACKSTOP_PAGES`] in case this thread falls behind.
struct Checkpointer {
    /// Told (without blocking) after every write; holds one wake-up at most. Others keep
    /// it only for the time of a write (or weakly), so dropping this closes the channel.
    wake: Arc<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(conn: Connection, writer: Arc<Mutex<Connection>>) -> Result<Self> {
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("ceneca-checkpoint".into())
            .spawn(move || checkpoint_loop(&conn, &writer, &woken))
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self {
            wake: Arc::new(wake),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    /// Ends the loop (its channel closes) and waits for it, so its connection is closed
    /// before the store's others: whoever opens the file next finds it as the store
    /// left it.
    fn drop(&mut self) {
        let (closed, _) = std::sync::mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.wake, Arc::new(closed)));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn checkpoint_loop(
    conn: &Connection,
    writer: &Mutex<Connection>,
    woken: &std::sync::mpsc::Receiver<()>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    while woken.recv().is_ok() {
        let due = std::time::Instant::now() + CHECKPOINT_PAUSE;
        loop {
            match woken.recv_timeout(due.saturating_duration_since(std::time::Instant::now())) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                // The store is closing: its last connection checkpoints as it closes.
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let wal_pages = match checkpoint(conn) {
            Ok(pages) => pages,
            Err(e) => {
                tracing::warn!(error = %e, "the WAL checkpoint failed; the next write retries it");
                continue;
            }
        };
        // All it saw is copied, but writes went on meanwhile: the WAL restarts only from a
        // write that finds none of it left to copy.
        if wal_pages >= LONG_WAL_PAGES {
            let _writes_held = writer.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = checkpoint(conn) {
                tracing::warn!(error = %e, "the WAL checkpoint failed; the next write retries it");
            }
        }
    }
}

/// Copies what it can of the WAL into the database file; answers the WAL's length in
/// pages as it was when the copy began (all of it copied, unless a reader still needs
/// some of it).
fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

/// Creates `path` empty with mode 0600 if it does not exist (an existing file is left
/// as it is: `ceneca serve` checks the modes of the data folder).
fn create_private_file(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Config(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// A connection with Ceneca's settings; keyed first when the database is encrypted (the
/// writer, opened first, also re-keys a file still under a retired key).
fn open_connection(
    path: &Path,
    synchronous: SqliteSynchronous,
    read_only: bool,
    keys: Option<&cipher::DatabaseKeys>,
) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let open = || {
        Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError::Config(format!("cannot open {}: {e}", path.display())))
    };
    let conn = match keys {
        None => open()?,
        Some(keys) if read_only => {
            let conn = open()?;
            cipher::apply_key(&conn, keys.active()).map_err(|e| {
                if cipher::is_wrong_key(&e) {
                    cipher::EncryptionError::WrongKey {
                        path: path.to_owned(),
                    }
                    .into()
                } else {
                    backend(e)
                }
            })?;
            conn
        }
        Some(keys) => cipher::unlock(path, keys, open)?,
    };
    let synchronous = synchronous.as_str();
    // `secure_delete`: what a delete or an update frees is overwritten with zeros, in the
    // pages that keep it and in the pages freed (a purged message's body, an erased
    // account's e-mail), so the file keeps no trace of deleted rows once the WAL is
    // checkpointed. Inserts, the hot path, free nothing.
    conn.execute_batch(&format!(
        "PRAGMA page_size = 4096;
         PRAGMA secure_delete = ON;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -65536;
         PRAGMA mmap_size = 268435456;
         PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = MEMORY;
         PRAGMA query_only = {};",
        if read_only { "ON" } else { "OFF" }
    ))
    .map_err(backend)?;
    register_functions(&conn).map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Maps constraint failures to typed errors; the message text is SQLite's documented form
/// ("UNIQUE constraint failed: table.col, table.col").
fn map_error(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(err, message) = &e
        && err.code == rusqlite::ErrorCode::ConstraintViolation
    {
        // Extended codes are not reported consistently for every statement form (a
        // RESTRICT foreign key under RETURNING reports the primary code), the message is.
        let message = message.as_deref().unwrap_or("");
        let detail = message.split_once(": ").map(|(_, d)| d).unwrap_or("");
        let table = detail.split('.').next().unwrap_or("").to_owned();
        if message.starts_with("UNIQUE") || message.starts_with("PRIMARY KEY") {
            let fields = detail
                .split(", ")
                .filter_map(|c| c.split_once('.').map(|(_, col)| col.to_owned()))
                .collect();
            return StoreError::Unique { table, fields };
        }
        if message.starts_with("FOREIGN KEY") {
            return StoreError::ForeignKey { table };
        }
        return StoreError::Check { table };
    }
    backend(e)
}

fn fetch(conn: &Connection, entity: &Entity, sql: &Sql) -> Result<Vec<Record>> {
    let fields: Vec<&Field> = entity.columns().collect();
    fetch_columns(conn, &fields, sql)
}

fn fetch_columns(conn: &Connection, fields: &[&Field], sql: &Sql) -> Result<Vec<Record>> {
    let mut stmt = conn.prepare_cached(&sql.text).map_err(map_error)?;
    let mut rows = stmt
        .query(params_from_iter(sql.params.iter()))
        .map_err(map_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_error)? {
        out.push(codec::decode_row(fields, row)?);
    }
    Ok(out)
}

struct SqliteExec<'c> {
    conn: &'c Connection,
}

impl Exec for SqliteExec<'_> {
    fn dialect(&self) -> &dyn Dialect {
        &SqliteDialect
    }
    async fn lock_audit_chain(&mut self) -> Result<()> {
        Ok(())
    }
    async fn fetch_columns(&mut self, fields: &[&Field], sql: &Sql) -> Result<Vec<Record>> {
        fetch_columns(self.conn, fields, sql)
    }
    async fn execute(&mut self, sql: &Sql) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(&sql.text).map_err(map_error)?;
        Ok(stmt
            .execute(params_from_iter(sql.params.iter()))
            .map_err(map_error)? as u64)
    }
    /// Multi-row inserts of [`INSERT_ROWS`] rows (then halves of it for the rest), each
    /// size prepared once. One row per statement would cost more than the row: every
    /// statement that fires a trigger opens a statement savepoint, and at each savepoint
    /// FTS5 writes what it holds to disk as a segment of its own, so a full-text table fed
    /// row by row spends four fifths of the insert on flushing and merging those segments.
    ///
    /// Rows read back (`returning`) are inserted one by one: SQLite returns a multi-row
    /// insert's rows in no promised order.
    async fn insert_many(
        &mut self,
        entity: &Entity,
        records: &[Record],
        returning: bool,
    ) -> Result<Vec<Record>> {
        if returning {
            let text = sql::insert_text(&SqliteDialect, entity, true);
            let mut out = Vec::with_capacity(records.len());
            for record in records {
                let sql = Sql {
                    text: text.clone(),
                    params: sql::insert_params(entity, record),
                };
                out.extend(fetch(self.conn, entity, &sql)?);
            }
            return Ok(out);
        }
        let per_row = sql::insert_width(entity).max(1);
        let mut rows = INSERT_ROWS.min(MAX_PARAMS / per_row).max(1);
        let mut rest = records;
        let mut text = String::new();
        let mut text_rows = 0;
        while !rest.is_empty() {
            while rows > rest.len() {
                rows /= 2;
            }
            let (chunk, after) = rest.split_at(rows);
            if text_rows != rows {
                text = sql::insert_many_text(&SqliteDialect, entity, rows, false);
                text_rows = rows;
            }
            let mut stmt = self.conn.prepare_cached(&text).map_err(map_error)?;
            stmt.execute(params_from_iter(
                chunk
                    .iter()
                    .flat_map(|record| sql::insert_params(entity, record)),
            ))
            .map_err(map_error)?;
            rest = after;
        }
        Ok(Vec::new())
    }
}

/// Rows per multi-row insert: past 64, fewer savepoints no longer pay for the longer
/// statement (1,000 messages: 30 ms one by one, 8.6 ms by 8, 5.6 ms by 64).
const INSERT_ROWS: usize = 64;
/// SQLite's bound on parameters per statement (`SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_PARAMS: usize = 32_766;

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS ceneca_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL, checksum TEXT NOT NULL) STRICT";

fn applied_migrations(conn: &Connection) -> Result<Vec<(i64, String, String, String)>> {
    conn.execute_batch(MIGRATIONS_TABLE).map_err(backend)?;
    let mut stmt = conn
        .prepare(
            "SELECT version, name, applied_at, checksum FROM ceneca_migrations ORDER BY version",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(backend)?;
    rows.collect::<rusqlite::Result<_>>().map_err(backend)
}

#[async_trait]
impl Store for SqliteStore {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }
    fn database_encrypted(&self) -> bool {
        self.keys.is_some()
    }

    async fn apply(&self, batch: WriteBatch) -> Result<Vec<Record>> {
        self.group.apply(batch).await
    }

    async fn get(
        &self,
        entity: &'static Entity,
        id: Uuid,
        filter: ScopeFilter,
        deleted: Deleted,
    ) -> Result<Option<Record>> {
        let sql = sql::get(&SqliteDialect, entity, id, &filter, deleted);
        self.read(move |conn| Ok(fetch(conn, entity, &sql)?.into_iter().next()))
            .await
    }

    async fn list(&self, entity: &'static Entity, query: ListQuery) -> Result<Vec<Record>> {
        let sql = sql::list(&SqliteDialect, entity, &query);
        self.read(move |conn| fetch(conn, entity, &sql)).await
    }

    async fn load_scope(&self, user_id: Uuid, system_admin: bool) -> Result<Scope> {
        self.read(move |conn| {
            run_ready(reads::load_scope(
                &mut SqliteExec { conn },
                user_id,
                system_admin,
            ))
        })
        .await
    }

    async fn load_session(&self, token_hash: Vec<u8>) -> Result<Option<reads::LoadedSession>> {
        self.read_first(move |conn| {
            run_ready(reads::load_session(&mut SqliteExec { conn }, token_hash))
        })
        .await
    }

    /// Read where the request runs, not on the blocking pool: it is one row on a page the
    /// connection keeps, a few microseconds, where a hop to the pool and back costs two
    /// thread wake-ups on every authenticated request. The read never waits: if the
    /// connection is in use by another request, or the database is busy (its
    /// `busy_timeout` is 0), it goes to the pool as any read.
    async fn auth_generation(&self) -> Result<i64> {
        if let Some(Ok(generation)) = self.on_counter_connection(|conn| {
            run_ready(reads::auth_generation(&mut SqliteExec { conn }))
        }) {
            return Ok(generation);
        }
        self.read_first(|conn| run_ready(reads::auth_generation(&mut SqliteExec { conn })))
            .await
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
                "SELECT {} FROM {} WHERE {column} = ?1 LIMIT 1",
                sql::column_list(entity),
                entity.table
            ),
            params: vec![sql::Param { value, kind }],
        };
        self.read(move |conn| Ok(fetch(conn, entity, &sql)?.into_iter().next()))
            .await
    }

    async fn claim_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool> {
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE users SET mfa_last_step = ?1
                     WHERE id = ?2 AND (mfa_last_step IS NULL OR mfa_last_step < ?1)",
                )
                .and_then(|mut s| {
                    s.execute(rusqlite::params![step, user_id.hyphenated().to_string()])
                })
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn consume_recovery_code(
        &self,
        user_id: Uuid,
        expected: Vec<String>,
        remaining: Vec<String>,
    ) -> Result<bool> {
        // The column holds the JSON text this store wrote (`serde_json`'s compact form),
        // so the same serialisation compares equal.
        let (expected, remaining) = (
            serde_json::Value::from(expected).to_string(),
            serde_json::Value::from(remaining).to_string(),
        );
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE users SET mfa_recovery_codes = ?1
                     WHERE id = ?2 AND mfa_recovery_codes = ?3",
                )
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        remaining,
                        user_id.hyphenated().to_string(),
                        expected
                    ])
                })
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn touch_session(&self, session_id: Uuid, at: OffsetDateTime) -> Result<()> {
        self.write(move |conn| {
            conn.prepare_cached("UPDATE sessions SET last_used_at = ?1 WHERE id = ?2")
                .and_then(|mut s| s.execute([format_time(at), session_id.hyphenated().to_string()]))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn search(&self, query: crate::SearchQuery) -> Result<Vec<crate::SearchHit>> {
        self.read(move |conn| search::search(conn, &query)).await
    }

    async fn reindex_text(&self) -> Result<()> {
        self.write(|conn| search::reindex(conn)).await
    }

    async fn vector_outbox(&self, limit: u32) -> Result<Vec<crate::OutboxEntry>> {
        self.read(move |conn| outbox::pending(conn, limit)).await
    }

    async fn vector_outbox_done(&self, seqs: Vec<i64>) -> Result<()> {
        self.write(move |conn| outbox::done(conn, &seqs)).await
    }

    async fn vector_outbox_pending(&self) -> Result<Vec<(String, u64)>> {
        self.read(outbox::counts).await
    }

    async fn vector_outbox_holds(&self, collection: String, ids: Vec<Uuid>) -> Result<Vec<Uuid>> {
        self.read(move |conn| outbox::holds(conn, &collection, &ids))
            .await
    }

    async fn vector_index_owner(&self) -> Result<Option<(String, String)>> {
        self.read(outbox::owner).await
    }

    async fn set_vector_index_owner(&self, index_id: String, fed: String) -> Result<()> {
        self.write(move |conn| outbox::set_owner(conn, &index_id, &fed))
            .await
    }

    async fn vector_indexer_lease(&self) -> Result<Option<Box<dyn crate::Lease>>> {
        leases::indexer(self.path.clone()).await
    }

    async fn vector_rebuild_lease(
        &self,
        wait: std::time::Duration,
    ) -> Result<Option<Box<dyn crate::Lease>>> {
        leases::rebuild(self.path.clone(), wait).await
    }

    async fn embeddings_page(
        &self,
        collection: String,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<crate::EmbeddingPoint>> {
        self.read(move |conn| outbox::page(conn, &collection, after, limit))
            .await
    }

    async fn migration_status(&self) -> Result<Vec<MigrationStatus>> {
        self.write(|conn| Ok(migrate::status(migrate::SQLITE, &applied_migrations(conn)?)))
            .await
    }

    async fn migrate_up(&self) -> Result<Vec<i64>> {
        let done = self.write(|conn| {
            let applied = applied_migrations(conn)?;
            let mut done = Vec::new();
            for m in migrate::SQLITE.iter().filter(|m| applied.iter().all(|a| a.0 != m.version)) {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
                tx.execute_batch(m.up)
                    .map_err(|e| StoreError::Migration(format!("{} {}: {e}", m.version, m.name)))?;
                tx.execute(
                    "INSERT INTO ceneca_migrations (version, name, applied_at, checksum) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![m.version, m.name, format_time(now()), m.checksum()],
                )
                .map_err(backend)?;
                tx.commit().map_err(backend)?;
                done.push(m.version);
            }
            Ok(done)
        })
        .await?;
        if done.iter().any(|v| migrate::RECOUNTS_STORAGE.contains(v)) {
            self.reconcile_storage(true).await?;
        }
        Ok(done)
    }

    async fn migrate_down(&self) -> Result<Option<i64>> {
        self.write(|conn| {
            let applied = applied_migrations(conn)?;
            let Some(last) = applied.last() else {
                return Ok(None);
            };
            let m = migrate::SQLITE
                .iter()
                .find(|m| m.version == last.0)
                .ok_or_else(|| {
                    StoreError::Migration(format!("version {} is unknown to this binary", last.0))
                })?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            if migrate::UNPACKS_BEFORE_DOWN.contains(&m.version) {
                run_ready(crate::compression::unpack_all(&mut SqliteExec {
                    conn: &tx,
                }))?;
            }
            tx.execute_batch(m.down)
                .map_err(|e| StoreError::Migration(format!("{} {}: {e}", m.version, m.name)))?;
            tx.execute(
                "DELETE FROM ceneca_migrations WHERE version = ?1",
                [m.version],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Some(m.version))
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        // On the counter's connection when it is free: the probe then answers whatever
        // load the read connections carry, as the database does.
        if let Some(answer) = self.on_counter_connection(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend)
        }) {
            return answer;
        }
        self.read_first(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }

    async fn feed(&self, query: crate::changes::FeedQuery) -> Result<Vec<Record>> {
        let sql = crate::changes::feed(&SqliteDialect, &query);
        self.read(move |conn| fetch(conn, &model::SYNC_EVENTS, &sql))
            .await
    }

    async fn count_feed(&self, query: crate::changes::FeedQuery) -> Result<i64> {
        let sql = crate::changes::feed_count(&SqliteDialect, &query);
        self.read(move |conn| {
            let fields: Vec<&Field> = crate::changes::LAST_SEQ.iter().collect();
            let rows = fetch_columns(conn, &fields, &sql)?;
            Ok(crate::changes::seq_answer(&rows))
        })
        .await
    }

    async fn change_history(&self, ids: Vec<Uuid>) -> Result<Vec<Record>> {
        let sql = crate::changes::history(&SqliteDialect, &ids);
        self.read(move |conn| {
            let fields: Vec<&Field> = crate::changes::HISTORY_COLUMNS.iter().collect();
            fetch_columns(conn, &fields, &sql)
        })
        .await
    }

    async fn storage_usage(&self, of: crate::UsageOf) -> Result<Vec<crate::Usage>> {
        self.read(move |conn| run_ready(crate::usage::usage(&mut SqliteExec { conn }, of)))
            .await
    }

    async fn maintenance_lease(&self) -> Result<Option<Box<dyn crate::Lease>>> {
        leases::maintenance(self.path.clone()).await
    }

    async fn archive_policies(&self) -> Result<Vec<(Uuid, i64)>> {
        self.read(|conn| run_ready(crate::retention::policies(&mut SqliteExec { conn })))
            .await
    }

    async fn archive_candidates(
        &self,
        query: crate::ArchiveQuery,
    ) -> Result<Vec<crate::ArchiveCandidate>> {
        self.read(move |conn| {
            run_ready(crate::retention::candidates(
                &mut SqliteExec { conn },
                &query,
            ))
        })
        .await
    }

    async fn pack_candidates(&self, query: crate::PackQuery) -> Result<Vec<crate::PackCandidate>> {
        self.read(move |conn| {
            run_ready(crate::compression::candidates(
                &mut SqliteExec { conn },
                &query,
            ))
        })
        .await
    }

    async fn message_bodies(&self, messages: Vec<Uuid>) -> Result<Vec<(Uuid, String)>> {
        self.read(move |conn| {
            run_ready(crate::compression::bodies(
                &mut SqliteExec { conn },
                &messages,
            ))
        })
        .await
    }

    async fn thumbnails_waiting(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<(Uuid, Record)>> {
        self.read(move |conn| {
            run_ready(crate::thumbnails::waiting(
                &mut SqliteExec { conn },
                after,
                limit,
            ))
        })
        .await
    }

    async fn thumbnail_of_blob(
        &self,
        storage_key: String,
        workspace: Uuid,
    ) -> Result<Option<crate::MadeThumbnail>> {
        self.read(move |conn| {
            run_ready(crate::thumbnails::of_blob(
                &mut SqliteExec { conn },
                &storage_key,
                workspace,
            ))
        })
        .await
    }

    async fn scrub_deleted(&self) -> Result<()> {
        self.write(|conn| {
            conn.execute_batch(
                "INSERT INTO messages_fts (messages_fts) VALUES ('optimize');
                 INSERT INTO documents_fts (documents_fts) VALUES ('optimize');",
            )
            .map_err(backend)?;
            // Under the writer's lock, so no write lands in the log while it is cut; a
            // reader still on old frames makes it stop short (busy), which is not an error.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(backend)
        })
        .await
    }

    async fn snapshot_into(
        &self,
        path: std::path::PathBuf,
    ) -> Result<ceneca_domain::audit::ChainHead> {
        let keys = self.keys.clone();
        let written = path.clone();
        self.read(move |conn| {
            let target = path.to_str().ok_or_else(|| {
                StoreError::Config(format!("{} is not a UTF-8 path", path.display()))
            })?;
            // A reader's one read transaction, allowed to write the new file only.
            conn.execute_batch("PRAGMA query_only = OFF")
                .map_err(backend)?;
            let done = conn.execute("VACUUM INTO ?1", [target]).map_err(backend);
            conn.execute_batch("PRAGMA query_only = ON")
                .map_err(backend)?;
            done.map(|_| ())
        })
        .await?;
        // The chain's end as the snapshot holds it, read from the file itself.
        tokio::task::spawn_blocking(move || {
            let conn = Connection::open_with_flags(&written, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(backend)?;
            if let Some(keys) = &keys {
                cipher::apply_key(&conn, keys.active()).map_err(backend)?;
            }
            let head = conn
                .query_row(
                    "SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1",
                    [],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
                )
                .optional()
                .map_err(backend)?;
            Ok(match head {
                Some((sequence, Some(mac))) => ceneca_domain::audit::ChainHead { sequence, mac },
                _ => ceneca_domain::audit::ChainHead::genesis(),
            })
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    async fn restore_snapshot(
        &self,
        _path: std::path::PathBuf,
    ) -> Result<ceneca_domain::audit::ChainHead> {
        Err(StoreError::Config(
            "an embedded database's snapshot is its file: it is restored by putting the file in place".into(),
        ))
    }

    async fn pending_erasures(&self) -> Result<Vec<Uuid>> {
        self.read(move |conn| run_ready(crate::erasure::pending(&mut SqliteExec { conn })))
            .await
    }

    async fn created_by(&self, user: Uuid, entity: &'static Entity) -> Result<Vec<Uuid>> {
        self.read(move |conn| {
            run_ready(crate::erasure::created_by(
                &mut SqliteExec { conn },
                user,
                entity,
            ))
        })
        .await
    }

    async fn erasure_work(&self, user: Uuid, limit: u32) -> Result<crate::ErasureWork> {
        self.read(move |conn| {
            run_ready(crate::erasure::work(&mut SqliteExec { conn }, user, limit))
        })
        .await
    }

    async fn purge_candidates(
        &self,
        query: crate::PurgeQuery,
    ) -> Result<Vec<crate::PurgeCandidate>> {
        self.read(move |conn| run_ready(crate::purge::candidates(&mut SqliteExec { conn }, &query)))
            .await
    }

    async fn purge_footprint(
        &self,
        entity: &'static Entity,
        ids: Vec<Uuid>,
    ) -> Result<crate::PurgeFootprint> {
        self.read(move |conn| {
            run_ready(crate::purge::footprint(
                &mut SqliteExec { conn },
                entity,
                &ids,
            ))
        })
        .await
    }

    async fn archive_footprint(&self, threads: Vec<Uuid>) -> Result<crate::Footprint> {
        self.read(move |conn| {
            run_ready(crate::retention::footprint(
                &mut SqliteExec { conn },
                &threads,
            ))
        })
        .await
    }

    async fn reconcile_storage(&self, fix: bool) -> Result<Vec<crate::UsageDrift>> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_error)?;
            let drift = run_ready(crate::usage::reconcile(&mut SqliteExec { conn: &tx }, fix))?;
            tx.commit().map_err(map_error)?;
            Ok(drift)
        })
        .await
    }

    async fn last_change(&self) -> Result<i64> {
        self.read(|conn| {
            let fields: Vec<&Field> = crate::changes::LAST_SEQ.iter().collect();
            let rows = fetch_columns(conn, &fields, &crate::changes::last_seq())?;
            Ok(crate::changes::seq_answer(&rows))
        })
        .await
    }

    fn clock(&self) -> Arc<HybridClock> {
        self.clock.clone()
    }

    fn change_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn pool_stats(&self) -> PoolStats {
        let waiting = self.stats.waiting.get();
        let writing = self.stats.writes.get().saturating_sub(waiting).min(1);
        let idle_readers = [&self.readers, &self.priority_readers]
            .iter()
            .map(|r| r.idle.lock().map_or(0, |r| r.len()) as u64)
            .sum();
        PoolStats {
            groups: vec![
                PoolGroup {
                    name: "writer",
                    in_use: writing,
                    idle: 1 - writing,
                    max: Some(1),
                },
                PoolGroup {
                    name: "readers",
                    in_use: self.stats.reads.get(),
                    idle: idle_readers,
                    max: Some((MAX_READERS + PRIORITY_READERS) as u64),
                },
            ],
            writes_waiting: waiting,
            write_wait: self.stats.write_wait.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{Actor, WriteOp};
    use ceneca_domain::model;
    use ceneca_domain::validate::fill_defaults;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), &StoreOptions::new("")).unwrap();
        assert_eq!(
            store.migrate_up().await.unwrap(),
            vec![
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20
            ]
        );
        (dir, store)
    }

    fn user(email: &str) -> Record {
        let mut r = Record::new();
        r.set("id", Value::Id(ceneca_domain::new_id()));
        r.set("email", Value::Text(email.into()));
        r.set("display_name", Value::Text("A".into()));
        r.set("password_hash", Value::Text("x".into()));
        let now = now();
        r.set("created_at", Value::Time(now));
        r.set("updated_at", Value::Time(now));
        fill_defaults(&model::USERS, &mut r, now);
        r
    }

    /// Data folder world-readable (security review): a new database, its folder and its
    /// WAL and shared-memory files are private whatever the umask (this test process runs
    /// under the usual 022; the CLI test forces it).
    #[cfg(unix)]
    #[tokio::test]
    async fn data_folder_world_readable_new_database_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("data");
        let path = folder.join("ceneca.db");
        let store = SqliteStore::open(&path, &StoreOptions::new("")).unwrap();
        store.migrate_up().await.unwrap();
        store
            .apply(WriteBatch::new(Actor::default()).push(WriteOp::Insert {
                entity: &model::USERS,
                record: user("p@x.io"),
            }))
            .await
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o700);
        for file in ["ceneca.db", "ceneca.db-wal", "ceneca.db-shm"] {
            assert_eq!(mode(&folder.join(file)), 0o600, "{file}");
        }
    }

    /// The writer's commits never checkpoint (`wal_autocheckpoint = 0`): without the
    /// checkpointer, rows would sit in the WAL until the store closed, and the database
    /// file would not grow.
    #[tokio::test]
    async fn writes_reach_the_database_file_through_the_checkpointer() {
        let (dir, store) = store().await;
        let path = dir.path().join("t.db");
        let size = || std::fs::metadata(&path).unwrap().len();
        let mut batch = WriteBatch::new(Actor::default());
        for i in 0..2000 {
            batch = batch.push(WriteOp::Insert {
                entity: &model::USERS,
                record: user(&format!("u{i}@x.io")),
            });
        }
        let before = size();
        store.apply(batch).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while size() < before + 200 * 1024 {
            assert!(
                std::time::Instant::now() < deadline,
                "2,000 rows never reached the database file ({} bytes, {before} before)",
                size()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Closing the store stops the checkpointer first and leaves no WAL behind.
        drop(store);
        assert!(!dir.path().join("t.db-wal").exists());
    }

    /// From the attack on the checkpointer: under steady writes a checkpoint beside them
    /// never copies all of the WAL, so it was never reused from its start and grew past
    /// the database itself (900 MB in 30 s). Past its bound, the copy finishes with
    /// writes held back.
    #[tokio::test]
    async fn regression_steady_writes_never_grow_the_wal_without_bound() {
        let (dir, store) = store().await;
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
        let started = std::time::Instant::now();
        let mut n = 0;
        while size("t.db") + size("t.db-wal") < 160 * 1024 * 1024 {
            assert!(started.elapsed().as_secs() < 120, "too slow to tell");
            let mut batch = WriteBatch::new(Actor::default());
            for _ in 0..2000 {
                n += 1;
                let mut user = user(&format!("u{n}@x.io"));
                user.set("display_name", Value::Text("x".repeat(400)));
                batch = batch.push(WriteOp::Insert {
                    entity: &model::USERS,
                    record: user,
                });
            }
            store.apply(batch).await.unwrap();
        }
        let wal = size("t.db-wal");
        assert!(
            wal < WAL_SIZE_LIMIT as u64,
            "the WAL grew to {wal} bytes beside a {}-byte database",
            size("t.db")
        );
    }

    #[tokio::test]
    async fn every_model_column_exists_in_the_schema() {
        let (_dir, store) = store().await;
        for entity in model::ALL {
            let sql = Sql {
                text: format!(
                    "SELECT {} FROM {} LIMIT 0",
                    sql::column_list(entity),
                    entity.table
                ),
                params: vec![],
            };
            store
                .read(move |c| fetch(c, entity, &sql))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", entity.table));
        }
    }

    /// What an erase expects of each reference to an account (`ceneca_domain::erasure`)
    /// is what the schema's foreign keys do (PostgreSQL's schema is the same by
    /// construction: the SQLite one is derived from it).
    #[tokio::test]
    async fn erasure_matches_what_the_foreign_keys_do() {
        use ceneca_domain::erasure::{OnErase, references};
        let (_dir, store) = store().await;
        for (entity, column, on) in references() {
            let (table, from) = (entity.table, column.to_owned());
            let actions: Vec<String> = store
                .read(move |c| {
                    let mut stmt = c
                        .prepare(
                            "SELECT on_delete FROM pragma_foreign_key_list(?1) WHERE \"from\" = ?2",
                        )
                        .map_err(backend)?;
                    let rows = stmt
                        .query_map(rusqlite::params![table, from], |r| r.get::<_, String>(0))
                        .map_err(backend)?;
                    rows.collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(backend)
                })
                .await
                .unwrap();
            let expected: &[&str] = match on {
                OnErase::Goes | OnErase::HandedOver => &["CASCADE"],
                OnErase::Unlinked => &["SET NULL"],
                OnErase::Pseudonymised | OnErase::History => &[],
            };
            assert_eq!(actions, expected, "{}.{column}", entity.table);
        }
    }

    #[tokio::test]
    async fn writes_log_changes_and_unique_violations_are_typed() {
        let (_dir, store) = store().await;
        let actor = Actor::default();
        let rows = store
            .apply(WriteBatch::new(actor).push(WriteOp::Insert {
                entity: &model::USERS,
                record: user("a@x.io"),
            }))
            .await
            .unwrap();
        assert_eq!(rows[0].get("status"), Some(&Value::Text("active".into())));
        let err = store
            .apply(WriteBatch::new(actor).push(WriteOp::Insert {
                entity: &model::USERS,
                record: user("a@x.io"),
            }))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Unique { table, fields } if table == "users" && fields == &["email"]),
            "{err:?}"
        );
        let q = ListQuery::new(ScopeFilter::All, "seq", false, 10);
        let changes = store.list(&model::SYNC_EVENTS, q).await.unwrap();
        assert_eq!(changes.len(), 1, "the failed batch logged nothing");
        assert_eq!(
            changes[0].get("operation"),
            Some(&Value::Text("create".into()))
        );
    }

    /// Batches that queue while the writer is busy share one transaction: each is
    /// answered after the commit that holds it, and one that fails halfway (its second
    /// row breaks a unique key) is undone alone, its first row with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_batches_share_a_transaction_and_a_failing_one_is_undone_alone() {
        let (_dir, store) = store().await;
        let store = Arc::new(store);
        let actor = Actor::default();
        let groups_before = store
            .stats
            .groups
            .load(std::sync::atomic::Ordering::Relaxed);
        // The writer, held by a thread of its own until let go.
        let (locked, is_locked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let writer = store.writer.clone();
        let holder = std::thread::spawn(move || {
            let _held = writer.lock().unwrap();
            locked.send(()).unwrap();
            let _ = released.recv();
        });
        is_locked.recv().unwrap();
        let mut writes = Vec::new();
        for i in 0..10 {
            let mut batch = WriteBatch::new(actor).push(WriteOp::Insert {
                entity: &model::USERS,
                record: user(&format!("u{i}@x.io")),
            });
            if i == 4 {
                // Its own first row, then a row that collides with batch 2's.
                batch = WriteBatch::new(actor)
                    .push(WriteOp::Insert {
                        entity: &model::USERS,
                        record: user("only-in-4@x.io"),
                    })
                    .push(WriteOp::Insert {
                        entity: &model::USERS,
                        record: user("u2@x.io"),
                    });
            }
            let store = store.clone();
            writes.push(tokio::spawn(async move { store.apply(batch).await }));
        }
        // Every batch is queued (one drainer waits for the writer) before it is let go.
        while store.group.queued() < 10 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        release.send(()).unwrap();
        holder.join().unwrap();
        let mut answers = Vec::new();
        for write in writes {
            answers.push(write.await.unwrap());
        }
        for (i, answer) in answers.iter().enumerate() {
            match i {
                4 => assert!(
                    matches!(answer, Err(StoreError::Unique { .. })),
                    "{answer:?}"
                ),
                _ => assert!(answer.is_ok(), "batch {i}: {answer:?}"),
            }
        }
        let q = ListQuery::new(ScopeFilter::All, "email", false, 100);
        let emails: Vec<String> = store
            .list(&model::USERS, q)
            .await
            .unwrap()
            .iter()
            .filter_map(|u| u.get("email").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let expected: Vec<String> = (0..10)
            .filter(|i| *i != 4)
            .map(|i| format!("u{i}@x.io"))
            .collect();
        assert_eq!(emails, expected, "batch 4 left nothing, the others all");
        assert_eq!(
            store
                .stats
                .groups
                .load(std::sync::atomic::Ordering::Relaxed)
                - groups_before,
            1,
            "the ten batches shared one transaction"
        );
        let q = ListQuery::new(ScopeFilter::All, "seq", false, 100);
        assert_eq!(store.list(&model::SYNC_EVENTS, q).await.unwrap().len(), 9);
        assert_eq!(store.group.queued(), 0);
        assert_eq!(store.pool_stats().writes_waiting, 0);
    }

    /// Found by the attack: with every read connection busy with long reads, the
    /// readiness probe and authentication waited seconds in the same queue. They have
    /// connections of their own.
    #[tokio::test]
    #[expect(
        clippy::await_holding_lock,
        reason = "the counter's connection held is the case tested: the read goes elsewhere"
    )]
    async fn regression_readiness_and_authentication_never_wait_behind_ordinary_reads() {
        let (_dir, store) = store().await;
        let _all_busy = store
            .readers
            .permits
            .clone()
            .acquire_many_owned(MAX_READERS as u32)
            .await
            .unwrap();
        let soon = std::time::Duration::from_secs(5);
        let ordinary = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            store.list(
                &model::USERS,
                ListQuery::new(ScopeFilter::All, "email", false, 1),
            ),
        )
        .await;
        assert!(ordinary.is_err(), "an ordinary read waits for a connection");
        tokio::time::timeout(soon, store.ping())
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(soon, store.load_session(vec![0; 32]))
            .await
            .unwrap()
            .unwrap();
        // The counter's own connection taken, it is read on the kept ones too.
        let _counter = store.counter.lock().unwrap();
        let seeded = tokio::time::timeout(soon, store.auth_generation())
            .await
            .unwrap()
            .unwrap();
        assert!(
            seeded > 1_700_000_000_000_000,
            "seeded with the microseconds since 1970: {seeded}"
        );
    }

    #[tokio::test]
    async fn migrations_go_down_and_up_again() {
        let (_dir, store) = store().await;
        for version in [
            20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1,
        ] {
            assert_eq!(store.migrate_down().await.unwrap(), Some(version));
        }
        assert!(
            store.migration_status().await.unwrap()[0]
                .applied_at
                .is_none()
        );
        assert_eq!(
            store.migrate_up().await.unwrap(),
            vec![
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20
            ]
        );
        assert_eq!(store.migrate_up().await.unwrap(), Vec::<i64>::new());
    }
}
