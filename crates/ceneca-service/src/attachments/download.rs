//! Reading an attachment's content back: the row must be readable by the caller, and its
//! content stored on this node (a replica receives rows, not their files). A sealed file
//! is opened chunk by chunk, only the chunks a range covers.

use std::io::SeekFrom;

use ceneca_crypto::sealed_file::{CHUNK, FileOpener, MAX_HEADER, SealedLayout};
use ceneca_domain::scope::Access;
use ceneca_domain::{Value, model};
use ceneca_store::{BlobKey, Deleted};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use uuid::Uuid;

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// An attachment's content, open for reading, with what the server knows of it.
pub struct AttachmentContent {
    source: Source,
    pub size: u64,
    /// Hex; also the content's entity tag.
    pub sha256: String,
    /// As sniffed at upload.
    pub mime_type: String,
    /// As the client named it (the server sanitises it before it reaches a header).
    pub file_name: String,
}

/// The stored file: the content itself, or sealed (checked whole-file before any byte is
/// served: its last chunk binds its name and length).
pub(super) enum Source {
    Plain(tokio::fs::File),
    Sealed {
        file: tokio::fs::File,
        opener: Box<FileOpener>,
        layout: SealedLayout,
        identity: String,
    },
}

/// Bytes read from a plain file per chunk: each read is a hop to the blocking pool, so a
/// small one (the default is 4 KiB) caps the throughput.
const PLAIN_CHUNK: usize = 256 * 1024;

impl Source {
    /// All of it, read into memory: for small blobs only (thumbnails and their sources,
    /// bounded by the caller).
    pub(super) async fn read_all(self, size: u64) -> std::io::Result<Vec<u8>> {
        let mut reader = ContentReader {
            source: self,
            position: 0,
            remaining: size,
        };
        if let Source::Plain(file) = &mut reader.source {
            file.seek(SeekFrom::Start(0)).await?;
        }
        let mut out = Vec::with_capacity(size as usize);
        while let Some(piece) = reader.next_chunk().await? {
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }
}

impl AttachmentContent {
    /// Reads `length` bytes of the content from `start` (both inside the content).
    pub async fn range(self, start: u64, length: u64) -> std::io::Result<ContentReader> {
        let mut reader = ContentReader {
            source: self.source,
            position: start,
            remaining: length,
        };
        if let Source::Plain(file) = &mut reader.source {
            file.seek(SeekFrom::Start(start)).await?;
        }
        Ok(reader)
    }
}

/// A range of an attachment's content, read chunk by chunk.
pub struct ContentReader {
    source: Source,
    position: u64,
    remaining: u64,
}

impl ContentReader {
    /// The next piece of the range; `None` at its end. A sealed chunk that does not open
    /// (the file was altered) is an error: nothing of it is served.
    pub async fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let piece = match &mut self.source {
            Source::Plain(file) => {
                let want = self.remaining.min(PLAIN_CHUNK as u64) as usize;
                let mut buffer = vec![0u8; want];
                file.read_exact(&mut buffer).await?;
                buffer
            }
            Source::Sealed {
                file,
                opener,
                layout,
                identity,
            } => {
                let index = self.position / CHUNK as u64;
                let mut chunk = read_sealed_chunk(file, opener, layout, index, identity).await?;
                let skip = (self.position - index * CHUNK as u64) as usize;
                let end = chunk.len().min(skip + self.remaining as usize);
                chunk.truncate(end);
                chunk.drain(..skip);
                chunk
            }
        };
        if piece.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the stored file is shorter than its row says",
            ));
        }
        self.position += piece.len() as u64;
        self.remaining -= piece.len() as u64;
        Ok(Some(piece))
    }
}

/// Reads and opens chunk `index` of a sealed file.
async fn read_sealed_chunk(
    file: &mut tokio::fs::File,
    opener: &FileOpener,
    layout: &SealedLayout,
    index: u64,
    identity: &str,
) -> std::io::Result<Vec<u8>> {
    let (start, len) = layout.chunk_span(index);
    file.seek(SeekFrom::Start(start)).await?;
    let mut chunk = vec![0u8; len];
    file.read_exact(&mut chunk).await?;
    opener
        .open(layout, index, &mut chunk, identity.as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(chunk)
}

impl Services {
    /// Opens the content of attachment `id`.
    pub async fn attachment_content(&self, caller: &Caller, id: Uuid) -> Result<AttachmentContent> {
        let entity = &model::ATTACHMENTS;
        caller.require_reach(entity)?;
        let row = self
            .store
            .get(
                entity,
                id,
                caller.filter(entity, Access::Read),
                Deleted::Exclude,
            )
            .await?
            .ok_or(ServiceError::NotFound(entity.name))?;
        self.check_parent(caller, &row).await?;
        let text = |name: &str| row.get(name).and_then(Value::as_str).map(str::to_owned);
        let Some(stored) = text("storage_key") else {
            if let Some(removed) = row.get("content_removed_at").and_then(Value::as_time) {
                let removed = removed
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                return Err(ServiceError::Removed(format!(
                    "this attachment's file was removed on {removed}, when its thread was \
                     archived; what describes it is kept"
                )));
            }
            return Err(ServiceError::NotFound("attachment content"));
        };
        let size = row
            .get("size_bytes")
            .and_then(Value::as_int)
            .unwrap_or_default() as u64;
        let sealed = row.get("encrypted").and_then(Value::as_bool) == Some(true);
        let (source, _) = self
            .open_stored(id, &stored, Some(size), sealed, "attachment content")
            .await?;
        self.audit_read(
            caller,
            "attachment.download".into(),
            entity.table,
            Some(id),
            None,
        )
        .await?;
        Ok(AttachmentContent {
            source,
            size,
            sha256: text("sha256").unwrap_or_default(),
            mime_type: text("mime_type").unwrap_or_else(|| "application/octet-stream".into()),
            file_name: text("file_name").unwrap_or_default(),
        })
    }

    /// The whole content of the blob `stored` of attachment `id` (`size` bytes, sealed or
    /// not), to read chunk by chunk: for an export, which has read the row already.
    pub(crate) async fn stored_content(
        &self,
        id: Uuid,
        stored: &str,
        size: u64,
        sealed: bool,
    ) -> Result<ContentReader> {
        let (source, _) = self
            .open_stored(id, stored, Some(size), sealed, "attachment content")
            .await?;
        let content = AttachmentContent {
            source,
            size,
            sha256: String::new(),
            mime_type: String::new(),
            file_name: String::new(),
        };
        content
            .range(0, size)
            .await
            .map_err(|e| ServiceError::Internal(format!("attachment {id}: {e}")))
    }

    /// Opens the blob `stored` of attachment `id` (its file, or its thumbnail: `what`),
    /// sealed or not, with its size. `size`, when known, must be what a sealed blob
    /// holds.
    pub(super) async fn open_stored(
        &self,
        id: Uuid,
        stored: &str,
        size: Option<u64>,
        sealed: bool,
        what: &'static str,
    ) -> Result<(Source, u64)> {
        let key = BlobKey::parse(stored).ok_or_else(|| {
            ServiceError::Internal(format!("attachment {id} names a malformed blob key"))
        })?;
        let blobs = self.blob_store()?;
        let mut file = blobs
            .open(&key)
            .await
            .map_err(super::storage_error)?
            .ok_or_else(|| {
                tracing::error!(attachment = %id, blob = key.as_str(), "an attachment's blob is missing");
                ServiceError::NotFound(what)
            })?;
        if !sealed {
            let len = file.metadata().await.map_err(super::storage_error)?.len();
            return Ok((Source::Plain(file), size.unwrap_or(len)));
        }
        let (opener, layout) = self.open_sealed(&mut file, &key, size).await.map_err(|e| {
            tracing::error!(attachment = %id, blob = key.as_str(), error = %e,
                    "an attachment's sealed file does not open: altered, moved or its key is gone");
            ServiceError::Internal(format!("attachment {id}: sealed file: {e}"))
        })?;
        let len = layout.size;
        Ok((
            Source::Sealed {
                file,
                opener: Box::new(opener),
                layout,
                identity: key.digest().to_owned(),
            },
            len,
        ))
    }

    /// Reads a sealed file's header and checks its last chunk (its name and length),
    /// so a file altered or stored under another's name is refused before a byte is
    /// served.
    async fn open_sealed(
        &self,
        file: &mut tokio::fs::File,
        key: &BlobKey,
        size: Option<u64>,
    ) -> std::io::Result<(FileOpener, SealedLayout)> {
        let invalid = |e: ceneca_crypto::KeyRingError| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, e)
        };
        let file_len = file.metadata().await?.len();
        let mut head = vec![0u8; (file_len as usize).min(MAX_HEADER)];
        file.read_exact(&mut head).await?;
        let opener = self.keys.file_opener(&head).map_err(invalid)?;
        let layout = opener.layout(file_len).map_err(invalid)?;
        if let Some(size) = size
            && layout.size != size
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("holds {} bytes, its row says {size}", layout.size),
            ));
        }
        read_sealed_chunk(file, &opener, &layout, layout.chunks - 1, key.digest()).await?;
        Ok((opener, layout))
    }
}
