//! The ZIP archive of an export, written on a blocking thread as the export's reads
//! arrive, into any `Write` (an HTTP body's channel, a file): nothing is held in memory
//! but the piece being written.
//!
//! Every file is hashed (SHA-256) and measured as it is written; `manifest.json` comes
//! last, listing them. An archive whose writer stops before [`Archive::finish`] gets no
//! central directory: it is not a ZIP any reader opens, never one that looks complete.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// What the writer thread is told, in order.
enum Command {
    /// A new file; `compress`: deflate it (rows), or store it as it is (files, which are
    /// mostly compressed already).
    Start {
        name: String,
        compress: bool,
    },
    Data(Vec<u8>),
    /// Writes `manifest.json` (`header` with the files listed) and ends the archive.
    Finish {
        header: Json,
    },
}

/// One file of the archive, as the manifest lists it.
#[derive(Debug, Clone)]
pub struct ArchivedFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What the archive came to.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub files: Vec<ArchivedFile>,
    /// Bytes of the archive itself.
    pub archive_bytes: u64,
}

pub(crate) struct Archive {
    commands: mpsc::Sender<Command>,
    writer: tokio::task::JoinHandle<std::io::Result<Written>>,
}

/// A `Write` that counts what passes, and writes nothing more once poisoned.
struct Counted<W> {
    inner: W,
    bytes: u64,
    /// Set when the archive is abandoned: the ZIP writer finishes the archive when it is
    /// dropped (a central directory over the files so far, which any reader would open
    /// as whole), and that must never reach the sink.
    poisoned: Arc<AtomicBool>,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("the archive was abandoned"));
        }
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn zip_error(e: zip::result::ZipError) -> std::io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        other => std::io::Error::other(other),
    }
}

type Zip<W> = ZipWriter<zip::write::StreamWriter<Counted<W>>>;

/// What the files written so far came to: each file's path, size and hash.
#[derive(Default)]
struct Listing {
    files: Vec<ArchivedFile>,
    current: Option<(String, u64, Sha256)>,
}

impl Listing {
    fn close(&mut self) {
        if let Some((path, bytes, hash)) = self.current.take() {
            self.files.push(ArchivedFile {
                path,
                bytes,
                sha256: hex::encode(hash.finalize()),
            });
        }
    }
}

/// Writes the files `received` is told of into `zip`, until told to finish: answers the
/// manifest's header then. An error, or the producer gone without finishing, is an error.
fn write_files<W: Write>(
    zip: &mut Zip<W>,
    received: &mut mpsc::Receiver<Command>,
    listing: &mut Listing,
) -> std::io::Result<Json> {
    while let Some(command) = received.blocking_recv() {
        match command {
            Command::Start { name, compress } => {
                listing.close();
                let method = if compress {
                    CompressionMethod::Deflated
                } else {
                    CompressionMethod::Stored
                };
                let options = SimpleFileOptions::default()
                    .compression_method(method)
                    .compression_level(compress.then_some(1))
                    .large_file(true)
                    .unix_permissions(0o600);
                zip.start_file(name.as_str(), options).map_err(zip_error)?;
                listing.current = Some((name, 0, Sha256::new()));
            }
            Command::Data(bytes) => {
                let Some((_, size, hash)) = listing.current.as_mut() else {
                    return Err(std::io::Error::other("data before a file"));
                };
                hash.update(&bytes);
                *size += bytes.len() as u64;
                zip.write_all(&bytes)?;
            }
            Command::Finish { header } => return Ok(header),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        "the export stopped before its end",
    ))
}

/// Writes the manifest (`header` with the files listed) and ends the archive.
fn finish<W: Write>(
    mut zip: Zip<W>,
    mut listing: Listing,
    mut header: Json,
) -> std::io::Result<Written> {
    listing.close();
    header["files"] = Json::Array(
        listing
            .files
            .iter()
            .map(|f| json!({"path": f.path, "bytes": f.bytes, "sha256": f.sha256}))
            .collect(),
    );
    let manifest = serde_json::to_vec_pretty(&header).map_err(std::io::Error::other)?;
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o600);
    zip.start_file("manifest.json", options)
        .map_err(zip_error)?;
    zip.write_all(&manifest)?;
    let mut sink = zip.finish().map_err(zip_error)?.into_inner();
    sink.flush()?;
    Ok(Written {
        files: listing.files,
        archive_bytes: sink.bytes,
    })
}

impl Archive {
    /// Starts the writer thread over `sink`.
    pub(crate) fn new(sink: Box<dyn Write + Send>) -> Self {
        // A few pieces in flight: the reads stay ahead of the writer, memory stays flat.
        let (commands, mut received) = mpsc::channel::<Command>(8);
        let writer = tokio::task::spawn_blocking(move || {
            let poisoned = Arc::new(AtomicBool::new(false));
            let mut zip = ZipWriter::new_stream(Counted {
                inner: sink,
                bytes: 0,
                poisoned: poisoned.clone(),
            });
            let mut listing = Listing::default();
            match write_files(&mut zip, &mut received, &mut listing) {
                Ok(header) => finish(zip, listing, header),
                Err(e) => {
                    // No central directory: dropping the writer would write one.
                    poisoned.store(true, Ordering::SeqCst);
                    drop(zip);
                    Err(e)
                }
            }
        });
        Self { commands, writer }
    }

    async fn send(&self, command: Command) -> std::io::Result<()> {
        if self.commands.send(command).await.is_err() {
            // The writer stopped: its error says why.
            return Err(std::io::Error::other("the archive's writer stopped"));
        }
        Ok(())
    }

    /// Starts the file `name`.
    pub(crate) async fn start(&self, name: String, compress: bool) -> std::io::Result<()> {
        self.send(Command::Start { name, compress }).await
    }

    /// Appends to the current file.
    pub(crate) async fn write(&self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.send(Command::Data(bytes)).await
    }

    /// Writes the manifest (`header`, with every file listed) and ends the archive.
    pub(crate) async fn finish(self, header: Json) -> std::io::Result<Written> {
        let sent = self.send(Command::Finish { header }).await;
        drop(self.commands);
        let written = self
            .writer
            .await
            .map_err(|e| std::io::Error::other(format!("the archive's writer ended: {e}")))?;
        // The writer's own error says more than a refused send.
        let written = written?;
        sent.map(|()| written)
    }

    /// Abandons the archive: the writer stops without a central directory. Answers why
    /// the writer stopped, if it had stopped on its own (the sink failed).
    pub(crate) async fn abandon(self) -> Option<std::io::Error> {
        drop(self.commands);
        match self.writer.await {
            Ok(Err(e)) if e.kind() != std::io::ErrorKind::Interrupted => Some(e),
            _ => None,
        }
    }
}
