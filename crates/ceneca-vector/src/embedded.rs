//! The embedded default: Qdrant's in-process engine (`qdrant-edge` 0.6.0), one shard per
//! collection under `<data>/vectors/<collection>/`.
//!
//! That version has sharp edges, and this wrapper is what makes it safe to run:
//! - **Unflushed writes are lost on a crash** (its WAL is not replayed on load). The
//!   service's indexer deletes an outbox entry only after [`VectorIndex::persist`] said the
//!   write is durable, so after a crash the outbox replays whatever was lost.
//! - **`flush()` panics when another thread holds its locks** (and `Drop` flushes). Here
//!   one writer lock serialises update and flush, and the optimizer holds a *flush gate*
//!   while it runs: `persist` only `try_lock`s the gate and answers "not now" instead of
//!   racing it. Shards are dropped only when nothing else holds them.
//! - **`optimize()` blocks for as long as it likes** (minutes under continuous writes).
//!   It runs on its own thread, only after writes have been quiet for a moment, never
//!   holding up writes or searches (both keep working during it).
//! - **Its WAL is never truncated.** Deleting it is unsafe (operation numbers restart and
//!   later upserts of existing points are ignored), so when it outgrows its bound the
//!   service rebuilds the collection from SQL into a fresh shard beside the old one
//!   ([`VectorIndex::rebuild`]) and swaps it in; the `CURRENT` file names the live shard.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use qdrant_edge::{
    Condition, CreateIndex, Distance, EdgeConfig, EdgeShard, EdgeVectorParams, FieldCondition,
    FieldIndexOperations, Filter, JsonPath, Match, NamedQuery, PayloadFieldSchema,
    PayloadSchemaType, PointId, PointInsertOperations, PointOperations, PointStruct,
    PointStructPersisted, QueryEnum, Record, ScrollRequest, SearchParams, SearchRequest,
    UpdateOperation, Vector, VectorStructInternal, WithPayloadInterface, WithVector,
};
use uuid::Uuid;

use crate::{
    CollectionStats, Hit, OnOtherDimensions, Point, Query, Result, VectorError, VectorIndex,
    kind_named,
};

/// How long writes must have been quiet before the optimizer starts.
const QUIET_BEFORE_OPTIMIZE: Duration = Duration::from_secs(2);
/// The HNSW beam width at query time: recall ≥ 0.95 at top-10 on real-looking data.
const SEARCH_EF: usize = 128;
const LIVE_FILE: &str = "CURRENT";
const FED_FILE: &str = "FED";

fn engine(e: impl std::fmt::Display) -> VectorError {
    VectorError::Engine(e.to_string())
}

/// One collection: its live shard and the locks that keep `qdrant-edge` from panicking.
struct Collection {
    dir: PathBuf,
    dims: usize,
    settings: EdgeSettings,
    /// The live shard, loaded (or created) at its first use: a server that never touches
    /// a collection neither maps its files nor waits for them at start.
    live: RwLock<Option<Arc<Shard>>>,
    /// Opened to be replaced with other dimensions (`OnOtherDimensions::Replace`): the old
    /// shard stays live on disk until a rebuild swaps the new one in, and is never loaded.
    replacing: bool,
    /// One writer at a time: update and flush never overlap.
    writer: Mutex<()>,
    /// Held by the optimizer while it runs; flush only try-locks it.
    flush_gate: Mutex<()>,
    /// Writes since the optimizer last ran, and when the last one was.
    dirty: AtomicBool,
    last_write: Mutex<Instant>,
    /// The shard a rebuild is filling, not yet live.
    shadow: Mutex<Option<(String, Arc<Shard>)>>,
}

impl Collection {
    /// The live shard, loaded or created now if this is its first use.
    fn shard(&self) -> Result<Arc<Shard>> {
        if let Some(shard) = self.loaded() {
            return Ok(shard);
        }
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        if let Some(shard) = live.as_ref() {
            return Ok(shard.clone());
        }
        if self.replacing {
            return Err(VectorError::Engine(
                "the collection is being rebuilt with new dimensions".into(),
            ));
        }
        let shard = Arc::new(match live_shard(&self.dir) {
            Live::Named(name) => load(&self.dir.join(name))?,
            Live::Missing(why) => return Err(VectorError::Corrupt(why)),
            Live::None => fresh(&self.dir, self.dims, self.settings)?,
        });
        *live = Some(shard.clone());
        Ok(shard)
    }

    /// The live shard if it has been loaded.
    fn loaded(&self) -> Option<Arc<Shard>> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn touched(&self) {
        self.dirty.store(true, Ordering::Release);
        *self.last_write.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

/// Tuning for the embedded engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct EdgeSettings {
    /// Segments larger than this (KB of vectors) get an HNSW index; smaller ones are
    /// searched exhaustively (exact). `None`: the engine's default (about 10 MB).
    pub indexing_threshold_kb: Option<usize>,
}

fn config(dims: usize, settings: EdgeSettings) -> EdgeConfig {
    EdgeConfig {
        optimizers: qdrant_edge::EdgeOptimizersConfig {
            indexing_threshold: settings.indexing_threshold_kb,
            ..Default::default()
        },
        vectors: HashMap::from([(
            String::new(),
            EdgeVectorParams {
                size: dims,
                distance: Distance::Cosine,
                on_disk: Some(false),
                multivector_config: None,
                datatype: None,
                quantization_config: None,
                hnsw_config: None,
            },
        )]),
        ..EdgeConfig::default()
    }
}

/// A shard of the engine, dropped without ever panicking.
///
/// qdrant-edge flushes a shard when it is dropped, and that flush panics when a lock is
/// taken at that instant or the files cannot be written (the folder removed under a running
/// server). A panic in a drop that runs while another panic unwinds aborts the process;
/// this wrapper catches it and logs it instead, so a failed shard is an error, not a crash.
struct Shard(Option<EdgeShard>);

impl Shard {
    fn new(shard: EdgeShard) -> Self {
        Self(Some(shard))
    }
}

impl std::ops::Deref for Shard {
    type Target = EdgeShard;
    fn deref(&self) -> &EdgeShard {
        self.0
            .as_ref()
            .expect("a shard is only taken out by its drop")
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        if let Some(shard) = self.0.take()
            && let Err(why) = caught(|| drop(shard))
        {
            tracing::warn!(
                why,
                "vector index: a shard could not be flushed as it closed"
            );
        }
    }
}

/// Runs `f`, turning an engine panic into its message (kept off stderr, see
/// [`quiet_caught_engine_panics`]).
fn caught<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    quiet_caught_engine_panics();
    let outer = IN_CAUGHT.with(|c| c.replace(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_CAUGHT.with(|c| c.set(outer));
    outcome.map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the engine panicked".to_owned())
    })
}

/// Creates a new, empty shard in `dir/name` with keyword indexes on the filtered fields.
fn new_shard(dir: &Path, name: &str, dims: usize, settings: EdgeSettings) -> Result<Shard> {
    let path = dir.join(name);
    create_private_dir(&path)?;
    let shard = Shard::new(
        caught(|| EdgeShard::new(&path, config(dims, settings)))
            .map_err(engine)?
            .map_err(engine)?,
    );
    for field in ["workspace_id", "source_id"] {
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(CreateIndex {
                    field_name: payload_path(field)?,
                    field_schema: Some(PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword)),
                }),
            ))
            .map_err(engine)?;
    }
    caught(|| shard.flush()).map_err(|why| {
        engine(format!(
            "{}: the new shard was not flushed: {why}",
            path.display()
        ))
    })?;
    Ok(shard)
}

thread_local! {
    /// Set while this thread runs an engine call through [`caught`]: its panics are expected.
    static IN_CAUGHT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keeps the engine panics [`caught`] catches off stderr (they are logged as warnings);
/// every other panic goes to the hook that was there before.
fn quiet_caught_engine_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CAUGHT.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Flushes a shard. qdrant-edge's `flush` panics (`try_lock().expect`) when another thread
/// holds one of its locks at that instant, leaving the flush incomplete; the panic is
/// caught and reported as "not flushed" — the caller keeps its outbox entries and flushes
/// again later.
fn try_flush(shard: &EdgeShard) -> bool {
    let flushed = caught(|| shard.flush()).is_ok();
    if !flushed {
        tracing::warn!("vector index: a flush found the engine busy; it is retried");
    }
    flushed
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn to_point(p: Point) -> PointStructPersisted {
    PointStruct::new(
        PointId::Uuid(p.id),
        p.vector,
        serde_json::json!({
            "workspace_id": p.workspace_id.to_string(),
            "source_id": p.source_id.to_string(),
            "kind": p.kind,
        }),
    )
    .into()
}

/// A stored record as a [`Point`]; `None` for what Ceneca never writes (numeric ids,
/// other vector layouts, a payload without its ids).
fn from_record(r: Record) -> Option<Point> {
    let PointId::Uuid(id) = r.id else { return None };
    let payload = r.payload?;
    let text = |key: &str| payload.0.get(key).and_then(|v| v.as_str());
    let vector = match r.vector? {
        VectorStructInternal::Single(v) => v,
        VectorStructInternal::Named(mut named) => match named.remove("") {
            Some(qdrant_edge::VectorInternal::Dense(v)) => v,
            _ => return None,
        },
        VectorStructInternal::MultiDense(_) => return None,
    };
    Some(Point {
        id,
        vector,
        workspace_id: Uuid::parse_str(text("workspace_id")?).ok()?,
        source_id: Uuid::parse_str(text("source_id")?).ok()?,
        kind: kind_named(text("kind").unwrap_or_default()),
    })
}

fn payload_path(field: &str) -> Result<JsonPath> {
    field
        .parse()
        .map_err(|_| VectorError::Engine(format!("bad payload path '{field}'")))
}

fn any_of(field: &str, ids: &[Uuid]) -> Result<Condition> {
    Ok(Condition::Field(FieldCondition::new_match(
        payload_path(field)?,
        Match::from(ids.iter().map(Uuid::to_string).collect::<Vec<_>>()),
    )))
}

/// The embedded vector index.
pub struct EdgeIndex {
    root: PathBuf,
    /// This index's id (`<root>/INDEX_ID`, made at its first open): see
    /// [`VectorIndex::identity`].
    id: String,
    /// `<root>/.lock`, locked for as long as the index is open: a second process (another
    /// `serve` on the same folder, a command run beside it) would otherwise write the same
    /// shards and corrupt them.
    _lock: std::fs::File,
    settings: EdgeSettings,
    collections: RwLock<HashMap<String, Arc<Collection>>>,
    stop: Arc<AtomicBool>,
    optimizer: Mutex<Option<JoinHandle<()>>>,
}

impl EdgeIndex {
    /// Opens the index under `root` (created if missing) and starts its optimizer thread.
    pub fn open(root: impl Into<PathBuf>, settings: EdgeSettings) -> Result<Arc<Self>> {
        let root = root.into();
        create_private_dir(&root)?;
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let lock = options.open(root.join(".lock"))?;
        if let Err(e) = lock.try_lock() {
            return Err(match e {
                std::fs::TryLockError::WouldBlock => VectorError::InUse(root.display().to_string()),
                std::fs::TryLockError::Error(e) => VectorError::Io(e),
            });
        }
        let id = index_id(&root)?;
        let index = Arc::new(Self {
            root,
            id,
            _lock: lock,
            settings,
            collections: RwLock::new(HashMap::new()),
            stop: Arc::new(AtomicBool::new(false)),
            optimizer: Mutex::new(None),
        });
        let weak = Arc::downgrade(&index);
        let stop = index.stop.clone();
        let handle = std::thread::Builder::new()
            .name("vector-optimizer".into())
            .spawn(move || optimizer_loop(weak, stop))?;
        *index.optimizer.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(index)
    }

    /// Stops the optimizer (waiting for a running optimization to finish), flushes every
    /// collection and lets go of its files. The index answers nothing afterwards.
    pub fn close(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self
            .optimizer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = handle.join();
        }
        for collection in self.all() {
            let _writer = collection.writer.lock();
            if let Some(shard) = collection.loaded() {
                try_flush(&shard);
            }
        }
        self.collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Runs the optimizer on `collection` now, waiting for it (tests and benchmarks: the
    /// background optimizer would do the same after writes go quiet).
    pub fn optimize_now(&self, collection: &str) -> Result<()> {
        let c = self.collection(collection)?;
        let _gate = c.flush_gate.lock().unwrap_or_else(|p| p.into_inner());
        c.dirty.store(false, Ordering::Release);
        c.shard()?.optimize().map_err(engine)?;
        Ok(())
    }

    fn all(&self) -> Vec<Arc<Collection>> {
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| VectorError::UnknownCollection(name.to_owned()))
    }

    fn open_blocking(&self, name: &str, dims: usize, other: OnOtherDimensions) -> Result<()> {
        if let Ok(existing) = self.collection(name) {
            if existing.dims != dims {
                return Err(VectorError::OtherDimensions {
                    collection: name.to_owned(),
                    stored: existing.dims,
                    configured: dims,
                });
            }
            return Ok(());
        }
        let dir = self.root.join(name);
        create_private_dir(&dir)?;
        let current = match live_shard(&dir) {
            Live::Named(name) => Some(name),
            Live::None => None,
            // Nothing is removed while `CURRENT` cannot say which shard is live: the
            // first use reports the collection damaged and the indexer rebuilds it.
            Live::Missing(why) => {
                tracing::error!(collection = name, error = %why, "vector collection damaged; it is rebuilt from the database");
                return self.insert(name, dir, dims, None, false);
            }
        };
        // Leftovers of interrupted rebuilds or swapped-out shards.
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && Some(&file) != current.as_ref() {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        let mut loaded = None;
        let mut replacing = false;
        if let Some(live) = &current {
            // The dimensions from the shard's configuration file, without loading it; a
            // shard whose file does not say is loaded to ask it.
            let stored = match stored_dims(&dir.join(live)) {
                Some(stored) => stored,
                None => match load(&dir.join(live)) {
                    Ok(shard) => {
                        let stored = shard.config().vectors.get("").map_or(dims, |v| v.size);
                        loaded = Some(Arc::new(shard));
                        stored
                    }
                    // Damaged: reported at its first use, and rebuilt by the indexer.
                    Err(_) => dims,
                },
            };
            if stored != dims {
                if other == OnOtherDimensions::Refuse {
                    return Err(VectorError::OtherDimensions {
                        collection: name.to_owned(),
                        stored,
                        configured: dims,
                    });
                }
                // An explicit rebuild with new dimensions: it builds the new shard aside
                // and swaps it in; until then the old one stays live on disk, so a rebuild
                // that fails leaves the collection as it was.
                drop(loaded.take());
                replacing = true;
            }
        }
        self.insert(name, dir, dims, loaded, replacing)
    }

    fn insert(
        &self,
        name: &str,
        dir: PathBuf,
        dims: usize,
        loaded: Option<Arc<Shard>>,
        replacing: bool,
    ) -> Result<()> {
        let collection = Arc::new(Collection {
            dir,
            dims,
            settings: self.settings,
            live: RwLock::new(loaded),
            replacing,
            writer: Mutex::new(()),
            flush_gate: Mutex::new(()),
            dirty: AtomicBool::new(true),
            last_write: Mutex::new(Instant::now()),
            shadow: Mutex::new(None),
        });
        self.collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), collection);
        Ok(())
    }
}

/// The index's id, read from `<root>/INDEX_ID`, or made and written there (0600, by
/// rename after fsync) if the folder has none: a new or emptied folder is a new index.
fn index_id(root: &Path) -> Result<String> {
    let path = root.join("INDEX_ID");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(id) = Uuid::parse_str(text.trim())
    {
        return Ok(id.to_string());
    }
    let id = Uuid::now_v7().to_string();
    write_file(root, "INDEX_ID", &id)?;
    Ok(id)
}

/// Writes `dir/name` (0600) by rename after fsync: whole or not at all.
fn write_file(dir: &Path, name: &str, text: &str) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

/// What a collection's `CURRENT` says.
enum Live {
    /// No `CURRENT`: a new collection.
    None,
    /// The live shard's folder, which exists.
    Named(String),
    /// `CURRENT` cannot be read, or names a shard that is not there.
    Missing(String),
}

fn live_shard(dir: &Path) -> Live {
    match std::fs::read_to_string(dir.join(LIVE_FILE)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Live::None,
        Err(e) => Live::Missing(format!("{}: {e}", dir.join(LIVE_FILE).display())),
        Ok(text) => {
            let name = text.trim();
            // Only a name this index writes: `shard-` and hex (never `..`, `.` or a path).
            let ours = name
                .strip_prefix("shard-")
                .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            if ours && dir.join(name).is_dir() {
                Live::Named(name.to_owned())
            } else {
                Live::Missing(format!(
                    "{} names shard '{name}', which is not there",
                    dir.join(LIVE_FILE).display()
                ))
            }
        }
    }
}

/// Loads a shard; a shard that does not load (an error, or a panic of the engine on
/// damaged files) is [`VectorError::Corrupt`].
fn load(path: &Path) -> Result<Shard> {
    match std::panic::catch_unwind(|| EdgeShard::load(path, None)) {
        Ok(Ok(shard)) => Ok(Shard::new(shard)),
        Ok(Err(e)) => Err(VectorError::Corrupt(format!("{}: {e}", path.display()))),
        Err(_) => Err(VectorError::Corrupt(format!(
            "{}: the engine failed to load it",
            path.display()
        ))),
    }
}

/// The dimensions a shard was created with, read from its configuration file.
fn stored_dims(shard: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(shard.join("edge_config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    config["vectors"][""]["size"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
}

/// A new, empty shard made the collection's live one.
fn fresh(dir: &Path, dims: usize, settings: EdgeSettings) -> Result<Shard> {
    let name = format!("shard-{}", Uuid::now_v7().simple());
    let shard = new_shard(dir, &name, dims, settings)?;
    write_live(dir, &name)?;
    Ok(shard)
}

/// Creates a folder of the index (and missing parents) readable by the owner only,
/// whatever the umask: the index holds tenants' vectors and payloads, and the engine
/// writes its own files with default modes inside.
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Points `CURRENT` at `name`, atomically.
fn write_live(dir: &Path, name: &str) -> Result<()> {
    write_file(dir, LIVE_FILE, name)
}

/// Drops a swapped-out shard once no search holds it any more, then deletes its files.
fn retire(shard: Arc<Shard>, path: PathBuf) {
    let mut shard = shard;
    for _ in 0..600 {
        match Arc::try_unwrap(shard) {
            Ok(owned) => {
                drop(owned);
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(error = %e, path = %path.display(), "could not remove a retired vector shard");
                }
                return;
            }
            Err(still_shared) => {
                shard = still_shared;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    // Still in use after a minute: leave it; the next start removes it.
    std::mem::forget(shard);
}

fn optimizer_loop(index: std::sync::Weak<EdgeIndex>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(250));
        let Some(index) = index.upgrade() else { return };
        for collection in index.all() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            let quiet = collection
                .last_write
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                >= QUIET_BEFORE_OPTIMIZE;
            // A collection never used since the start has nothing to optimize.
            let Some(shard) = collection.loaded() else {
                continue;
            };
            if !quiet || !collection.dirty.swap(false, Ordering::AcqRel) {
                continue;
            }
            let _gate = collection
                .flush_gate
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let started = Instant::now();
            match shard.optimize() {
                Ok(true) => tracing::debug!(
                    collection = %collection.dir.display(),
                    seconds = started.elapsed().as_secs_f64(),
                    "vector index optimized"
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "vector index optimization failed"),
            }
        }
    }
}

/// Runs blocking engine work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| VectorError::Engine(format!("vector task failed: {e}")))?
}

#[async_trait]
impl VectorIndex for Arc<EdgeIndex> {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn identity(&self) -> Option<String> {
        Some(self.id.clone())
    }

    /// The mark every collection's folder carries; empty when they differ (one folder put
    /// back from an older copy) or none has one.
    fn fed_mark(&self) -> String {
        let marks: std::collections::HashSet<String> = self
            .all()
            .iter()
            .map(|c| {
                std::fs::read_to_string(c.dir.join(FED_FILE))
                    .map(|m| m.trim().to_owned())
                    .unwrap_or_default()
            })
            .collect();
        match marks.into_iter().collect::<Vec<_>>().as_slice() {
            [mark] => mark.clone(),
            _ => String::new(),
        }
    }

    async fn mark_fed(&self, mark: &str) -> Result<()> {
        let text = mark.to_owned();
        let folders: Vec<PathBuf> = self.all().iter().map(|c| c.dir.clone()).collect();
        blocking(move || {
            folders
                .iter()
                .try_for_each(|folder| write_file(folder, FED_FILE, &text))
        })
        .await
    }

    async fn open_collection(
        &self,
        collection: &str,
        dims: usize,
        other: OnOtherDimensions,
    ) -> Result<()> {
        let (index, name) = (self.clone(), collection.to_owned());
        blocking(move || index.open_blocking(&name, dims, other)).await
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<()> {
        let c = self.collection(collection)?;
        if points.is_empty() {
            return Ok(());
        }
        blocking(move || {
            let _writer = c.writer.lock().unwrap_or_else(|p| p.into_inner());
            let op = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
                PointInsertOperations::PointsList(points.into_iter().map(to_point).collect()),
            ));
            c.shard()?.update(op).map_err(engine)?;
            c.touched();
            Ok(())
        })
        .await
    }

    async fn delete(&self, collection: &str, ids: Vec<Uuid>) -> Result<()> {
        let c = self.collection(collection)?;
        if ids.is_empty() {
            return Ok(());
        }
        blocking(move || {
            let _writer = c.writer.lock().unwrap_or_else(|p| p.into_inner());
            let op = UpdateOperation::PointOperation(PointOperations::DeletePoints {
                ids: ids.into_iter().map(PointId::Uuid).collect(),
            });
            c.shard()?.update(op).map_err(engine)?;
            c.touched();
            Ok(())
        })
        .await
    }

    async fn search(&self, collection: &str, query: Query) -> Result<Vec<Hit>> {
        let c = self.collection(collection)?;
        if query.workspaces.as_ref().is_some_and(Vec::is_empty) || query.limit == 0 {
            return Ok(Vec::new());
        }
        let mut must = Vec::new();
        if let Some(workspaces) = &query.workspaces {
            must.push(any_of("workspace_id", workspaces)?);
        }
        if !query.source_ids.is_empty() {
            must.push(any_of("source_id", &query.source_ids)?);
        }
        // Answered on this thread (a search takes about a millisecond; a spawn would add
        // to that), marked as blocking so the runtime moves other tasks away meanwhile.
        let request = SearchRequest {
            query: QueryEnum::Nearest(NamedQuery {
                query: Vector::new_dense(query.vector).0,
                using: None,
            }),
            filter: (!must.is_empty()).then_some(Filter {
                should: None,
                min_should: None,
                must: Some(must),
                must_not: None,
            }),
            params: Some(SearchParams {
                hnsw_ef: Some(SEARCH_EF.max(query.limit)),
                ..SearchParams::default()
            }),
            limit: query.limit,
            offset: 0,
            with_payload: Some(qdrant_edge::WithPayloadInterface::Bool(true)),
            with_vector: None,
            score_threshold: query.score_threshold,
        };
        let run = || c.shard()?.search(request).map_err(engine);
        let found = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => run(),
        }?;
        let uuid_in = |payload: &Option<qdrant_edge::Payload>, key: &str| {
            payload
                .as_ref()
                .and_then(|p| p.0.get(key))
                .and_then(|v| v.as_str())
                .and_then(|s| Uuid::parse_str(s).ok())
        };
        Ok(found
            .into_iter()
            .filter_map(|p| match p.id {
                PointId::Uuid(id) => Some(Hit {
                    id,
                    score: p.score,
                    workspace_id: uuid_in(&p.payload, "workspace_id")?,
                    source_id: uuid_in(&p.payload, "source_id")?,
                }),
                PointId::NumId(_) => None,
            })
            .collect())
    }

    async fn retrieve(&self, collection: &str, ids: Vec<Uuid>) -> Result<Vec<Point>> {
        let c = self.collection(collection)?;
        blocking(move || {
            let ids: Vec<PointId> = ids.into_iter().map(PointId::Uuid).collect();
            let records = c
                .shard()?
                .retrieve(
                    &ids,
                    Some(WithPayloadInterface::Bool(true)),
                    Some(WithVector::Bool(true)),
                )
                .map_err(engine)?;
            Ok(records.into_iter().filter_map(from_record).collect())
        })
        .await
    }

    async fn ids(
        &self,
        collection: &str,
        from: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Uuid>, Option<Uuid>)> {
        let c = self.collection(collection)?;
        blocking(move || {
            let (records, next) = c
                .shard()?
                .scroll(ScrollRequest {
                    offset: from.map(PointId::Uuid),
                    limit: Some(limit.max(1)),
                    filter: None,
                    with_payload: Some(WithPayloadInterface::Bool(false)),
                    with_vector: WithVector::Bool(false),
                    order_by: None,
                })
                .map_err(engine)?;
            let uuid = |id: PointId| match id {
                PointId::Uuid(u) => Some(u),
                PointId::NumId(_) => None,
            };
            Ok((
                records.into_iter().filter_map(|r| uuid(r.id)).collect(),
                next.and_then(uuid),
            ))
        })
        .await
    }

    async fn stats(&self, collection: &str) -> Result<CollectionStats> {
        let c = self.collection(collection)?;
        blocking(move || {
            let shard = c.shard()?;
            let info = shard.info();
            Ok(CollectionStats {
                points: info.points_count as u64,
                indexed: info.indexed_vectors_count as u64,
                segments: info.segments_count as u64,
                wal_bytes: dir_size(&shard.path().join("wal")),
            })
        })
        .await
    }

    async fn log_bytes(&self, collection: &str) -> Result<u64> {
        let c = self.collection(collection)?;
        blocking(move || Ok(dir_size(&c.shard()?.path().join("wal")))).await
    }

    async fn persist(&self, collection: &str) -> Result<bool> {
        let c = self.collection(collection)?;
        blocking(move || {
            let _writer = c.writer.lock().unwrap_or_else(|p| p.into_inner());
            let Ok(_gate) = c.flush_gate.try_lock() else {
                return Ok(false);
            };
            // Nothing was written to a shard never loaded.
            Ok(c.loaded().is_none_or(|shard| try_flush(&shard)))
        })
        .await
    }

    async fn rebuild(&self, collection: &str, points: Option<Vec<Point>>) -> Result<()> {
        let c = self.collection(collection)?;
        blocking(move || {
            let mut shadow = c.shadow.lock().unwrap_or_else(|p| p.into_inner());
            match points {
                Some(points) => {
                    if shadow.is_none() {
                        let name = format!("shard-{}", Uuid::now_v7().simple());
                        *shadow = Some((
                            name.clone(),
                            Arc::new(new_shard(&c.dir, &name, c.dims, c.settings)?),
                        ));
                    }
                    if let Some((_, shard)) = shadow.as_ref()
                        && !points.is_empty()
                    {
                        let op = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
                            PointInsertOperations::PointsList(
                                points.into_iter().map(to_point).collect(),
                            ),
                        ));
                        shard.update(op).map_err(engine)?;
                    }
                    Ok(())
                }
                None => {
                    let (name, shard) = match shadow.take() {
                        Some(built) => built,
                        None => {
                            let name = format!("shard-{}", Uuid::now_v7().simple());
                            let shard = Arc::new(new_shard(&c.dir, &name, c.dims, c.settings)?);
                            (name, shard)
                        }
                    };
                    if !try_flush(&shard) {
                        *shadow = Some((name, shard));
                        return Err(VectorError::Engine(
                            "the rebuilt shard could not be flushed yet".into(),
                        ));
                    }
                    let _writer = c.writer.lock().unwrap_or_else(|p| p.into_inner());
                    let _gate = c.flush_gate.lock().unwrap_or_else(|p| p.into_inner());
                    write_live(&c.dir, &name)?;
                    let old = c
                        .live
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .replace(shard);
                    c.touched();
                    if let Some(old) = old {
                        let old_path = old.path().to_path_buf();
                        std::thread::spawn(move || retire(old, old_path));
                    }
                    Ok(())
                }
            }
        })
        .await
    }
}

impl Drop for EdgeIndex {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self
            .optimizer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            // The optimizer thread holds only a weak reference; this joins a finished loop
            // or one that is finishing its current optimization.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert_one(shard: &EdgeShard) {
        let point = Point {
            id: Uuid::now_v7(),
            vector: vec![0.5, 0.5, 0.5, 0.5],
            workspace_id: Uuid::now_v7(),
            source_id: Uuid::now_v7(),
            kind: "message",
        };
        let op = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(vec![to_point(point)]),
        ));
        shard.update(op).unwrap();
    }

    /// The end-to-end suite aborted (SIGABRT) at teardown: the detached indexer created a
    /// shard after the test's folder was removed, the engine's flush panicked, and the
    /// shard's own drop flushed and panicked again while the first panic unwound.
    #[test]
    fn regression_a_shard_whose_folder_is_gone_fails_without_aborting() {
        let dir = tempfile::tempdir().unwrap();
        let shard = new_shard(dir.path(), "shard-1", 4, EdgeSettings::default()).unwrap();
        upsert_one(&shard);
        std::fs::remove_dir_all(dir.path()).unwrap();
        upsert_one(&shard);
        // Dropped while another panic unwinds: a second panic there would abort.
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = shard;
            panic!("a failure elsewhere");
        }));
        assert!(unwound.is_err());
    }
}
