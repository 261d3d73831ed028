//! The audit chain's head file: the chain's end, anchored outside the database.
//!
//! No chain can show by itself that its last entries were deleted; a copy of its end kept
//! elsewhere can. So each process keeps `<data_dir>/audit.head` (one line,
//! `<sequence>:<mac>`) at the furthest head it has seen committed, and `ceneca audit
//! verify` checks the database against it: a database *ahead* of the file grew since (or
//! another node wrote to it) and is fine; one that ends *before* the file's head, or whose
//! entry at that sequence has another MAC, lost entries or was rewritten.
//!
//! **What is guaranteed, and what it costs.** The write path only records the new head in
//! memory ([`ChainWatcher::committed`]: a mutex and a compare). A writer thread waits
//! [`COALESCE`] after the first head it was not yet told of, then writes the furthest one
//! atomically (temporary file, fsync, rename, fsync of the folder; mode 0600). So the file
//! trails the last committed append by at most `COALESCE` plus one write, and costs at most
//! one fsync per `COALESCE` however many appends there are. Appends of that last moment
//! are not yet anchored if the process dies (`kill -9`, power loss): cutting *those* goes
//! unnoticed by the file; an operator's record of `ceneca audit head` covers the rest.
//! A clean shutdown writes the last head ([`HeadFile::flush`], and on drop).
//!
//! **The file never moves back, and stops when the chain does.** Every entry committed
//! before the chain lock was taken is visible to whoever holds it, so when the store links
//! a new entry after an end *before* a head this process knows committed
//! ([`ChainWatcher::linking`]), entries were deleted. Advancing the file past such a cut
//! would erase the evidence (new entries refill the deleted sequence numbers), so the file
//! is then *frozen* at its head and an error is logged. The same holds at start-up: a file
//! whose head the database does not contain stays frozen. Moving the file away, after
//! investigating, re-anchors the chain.
//!
//! With several nodes on one PostgreSQL database each node's file holds what that node
//! saw; verification only requires the database to contain it. With SQLite at
//! `sqlite_synchronous = normal`, a power failure can lose the last commits after the file
//! recorded them: verification then rightly reports them missing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use ceneca_domain::audit::{Anchor, ChainHead};
use ceneca_store::ChainWatcher;

/// How long the writer waits for more appends before writing the head: the file's most lag.
pub const COALESCE: Duration = Duration::from_millis(100);

/// The head file's name in the data folder.
pub const FILE_NAME: &str = "audit.head";

/// Why the head file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HeadFileError {
    #[error("cannot read the audit head file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the audit head file {path} is not an audit head: {source}")]
    Malformed {
        path: PathBuf,
        source: ceneca_domain::audit::HeadFormatError,
    },
    #[error("cannot write the audit head file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The head a file records, as an anchor for verification; `None` if there is no file.
pub fn read(path: &Path) -> Result<Option<Anchor>, HeadFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HeadFileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let head = ChainHead::parse(&text).map_err(|source| HeadFileError::Malformed {
        path: path.to_owned(),
        source,
    })?;
    Ok(Some(Anchor {
        head,
        source: format!("the head file {}", path.display()),
    }))
}

/// Replaces the file at `path` with `head`, all or nothing, readable by its owner only.
pub fn write(path: &Path, head: &ChainHead) -> Result<(), HeadFileError> {
    let failed = |source| HeadFileError::Write {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| FILE_NAME.to_owned());
    // One temporary file per process: two processes on one data folder (a server and a
    // `ceneca` command) never write into each other's.
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(failed)?;
    #[cfg(unix)]
    {
        // `mode` applies only when the file is created; a leftover keeps its own.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(failed)?;
    }
    file.write_all(format!("{head}\n").as_bytes())
        .map_err(failed)?;
    file.sync_all().map_err(failed)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(failed)?;
    // The rename itself is durable once the folder is.
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(failed)?;
    }
    Ok(())
}

#[derive(Debug)]
struct State {
    /// The furthest head known committed (by this process, or read from the file).
    known: ChainHead,
    /// `known` is not written yet.
    dirty: bool,
    /// The chain lost entries this process knew committed: the file stays as it is.
    frozen: bool,
    /// A write failed and has not succeeded since (logged once).
    failing: bool,
    stop: bool,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
    /// One write at a time (the writer thread and an explicit flush).
    writing: Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep going.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn freeze(&self, state: &mut State, why: String) {
        if !state.frozen {
            state.frozen = true;
            tracing::error!(
                head_file = %self.path.display(),
                anchored = %state.known,
                "audit chain tampering: {why}. The head file is kept as evidence and no longer \
                 advanced; run `ceneca audit verify`, and move the file away once investigated"
            );
        }
    }

    /// Writes the known head if it is not written yet.
    fn flush(&self) -> Result<(), HeadFileError> {
        let _writing = lock(&self.writing);
        let head = {
            let mut state = lock(&self.state);
            if !state.dirty {
                return Ok(());
            }
            state.dirty = false;
            state.known.clone()
        };
        let result = write(&self.path, &head);
        let mut state = lock(&self.state);
        match &result {
            Ok(()) => state.failing = false,
            Err(e) => {
                // Retried on the next round; a newer head may have arrived meanwhile.
                state.dirty = true;
                if !state.failing {
                    state.failing = true;
                    tracing::warn!(error = %e, "audit head not anchored; retrying");
                }
            }
        }
        result
    }

    fn run(&self) {
        loop {
            let mut state = lock(&self.state);
            while !state.dirty && !state.stop {
                state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if !state.stop {
                // Let the appends of the next moment join this write.
                state = self
                    .wake
                    .wait_timeout_while(state, COALESCE, |s| !s.stop)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let stop = state.stop;
            drop(state);
            let _ = self.flush();
            if stop {
                return;
            }
        }
    }
}

impl ChainWatcher for Inner {
    fn linking(&self, prev: &ChainHead) {
        let mut state = lock(&self.state);
        if state.frozen {
            return;
        }
        let known = &state.known;
        if prev.sequence < known.sequence {
            let why = format!(
                "the audit log ends at entry {} but entry {} was committed",
                prev.sequence, known.sequence
            );
            self.freeze(&mut state, why);
        } else if prev.sequence == known.sequence && prev.mac != known.mac {
            let why = format!(
                "entry {} of the audit log is not the one committed",
                prev.sequence
            );
            self.freeze(&mut state, why);
        }
    }

    fn committed(&self, head: &ChainHead) {
        let mut state = lock(&self.state);
        if state.frozen || head.sequence <= state.known.sequence {
            return;
        }
        state.known = head.clone();
        if !state.dirty {
            state.dirty = true;
            self.wake.notify_one();
        }
    }
}

/// The head file of one process, and its writer thread (stopped, after a last write, when
/// the last clone of the services is dropped).
#[derive(Debug)]
pub struct HeadFile {
    inner: Arc<Inner>,
    writer: Option<JoinHandle<()>>,
}

impl HeadFile {
    /// Starts anchoring at `path`, continuing from the head the file holds. `contains`
    /// says whether the database holds that head; if not, the file starts frozen.
    pub fn open(path: PathBuf, contains: Option<bool>) -> Result<Self, HeadFileError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| HeadFileError::Write {
                path: path.clone(),
                source,
            })?;
        }
        let known = read(&path)?.map(|a| a.head);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                known: known.clone().unwrap_or_else(ChainHead::genesis),
                dirty: false,
                frozen: false,
                failing: false,
                stop: false,
            }),
            path,
            wake: Condvar::new(),
            writing: Mutex::new(()),
        });
        if let (Some(head), Some(false)) = (&known, contains) {
            let why = format!(
                "the audit log does not contain entry {head}, which the head file records (entries were deleted or rewritten, or the database was restored from a backup)"
            );
            inner.freeze(&mut lock(&inner.state), why);
        }
        let thread = Arc::clone(&inner);
        let writer = std::thread::Builder::new()
            .name("audit-head".into())
            .spawn(move || thread.run())
            .map_err(|source| HeadFileError::Write {
                path: inner.path.clone(),
                source,
            })?;
        Ok(Self {
            inner,
            writer: Some(writer),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// What the store calls on each append.
    pub fn watcher(&self) -> Arc<dyn ChainWatcher> {
        self.inner.clone()
    }

    /// Whether the file stopped advancing because the chain lost committed entries.
    pub fn is_frozen(&self) -> bool {
        lock(&self.inner.state).frozen
    }

    /// Writes the furthest committed head now (shutdown, tests).
    pub fn flush(&self) -> Result<(), HeadFileError> {
        self.inner.flush()
    }
}

impl Drop for HeadFile {
    fn drop(&mut self) {
        lock(&self.inner.state).stop = true;
        self.inner.wake.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(sequence: i64) -> ChainHead {
        ChainHead {
            sequence,
            mac: format!("{sequence:064x}"),
        }
    }

    #[test]
    fn audit_head_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join(FILE_NAME);
        let file = HeadFile::open(path.clone(), None).unwrap();
        assert_eq!(read(&path).unwrap(), None, "nothing to anchor yet");
        for s in 1..=50 {
            file.watcher().committed(&head(s));
        }
        file.watcher().committed(&head(7)); // a late notice never moves it back
        file.flush().unwrap();
        assert_eq!(read(&path).unwrap().unwrap().head, head(50));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![FILE_NAME.to_owned()], "no temporary file left");
        drop(file);

        // Reopened, it continues from its head.
        let file = HeadFile::open(path.clone(), Some(true)).unwrap();
        file.watcher().committed(&head(40));
        file.flush().unwrap();
        assert_eq!(read(&path).unwrap().unwrap().head, head(50));
        file.watcher().committed(&head(51));
        drop(file); // the last head is written on drop
        assert_eq!(read(&path).unwrap().unwrap().head, head(51));
    }

    #[test]
    fn the_writer_thread_catches_up_within_its_delay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let file = HeadFile::open(path.clone(), None).unwrap();
        file.watcher().committed(&head(3));
        let deadline = std::time::Instant::now() + COALESCE * 50;
        while read(&path).unwrap().map(|a| a.head) != Some(head(3)) {
            assert!(std::time::Instant::now() < deadline, "not written");
            std::thread::sleep(COALESCE / 4);
        }
    }

    #[test]
    fn a_cut_tail_freezes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let file = HeadFile::open(path.clone(), None).unwrap();
        let watcher = file.watcher();
        watcher.linking(&head(0));
        watcher.committed(&head(10));
        watcher.linking(&head(10));
        assert!(!file.is_frozen());
        // The database ends before a committed entry: deleted.
        watcher.linking(&head(4));
        assert!(file.is_frozen());
        watcher.committed(&head(11));
        file.flush().unwrap();
        assert_eq!(
            read(&path).unwrap().unwrap().head,
            head(10),
            "kept as evidence"
        );

        // Same sequence, another MAC: rewritten.
        let other = dir.path().join("other.head");
        let file = HeadFile::open(other, None).unwrap();
        file.watcher().committed(&head(2));
        file.watcher().linking(&ChainHead {
            sequence: 2,
            mac: "f".repeat(64),
        });
        assert!(file.is_frozen());

        // A file the database does not match starts frozen.
        let file = HeadFile::open(path.clone(), Some(false)).unwrap();
        assert!(file.is_frozen());
        std::fs::write(&path, "not a head\n").unwrap();
        assert!(matches!(
            HeadFile::open(path, None),
            Err(HeadFileError::Malformed { .. })
        ));
    }
}
