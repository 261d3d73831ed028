//! Uploading an attachment's content: streamed to a temporary file (sealed chunk by chunk
//! when `attachments.encrypt` is on) while it is hashed and counted, refused past the size limit or when its type (read from its bytes) is not
//! allowed or its hash is not the one the client expected, then kept under its hash and
//! described on the row in one audited write.

use ceneca_crypto::KeyRing;
use ceneca_crypto::sealed_file::{CHUNK as SEALED_CHUNK, FileSealer, TAG};
use ceneca_domain::content_type::{SNIFF_BYTES, TextCheck, allowed, sniff};
use ceneca_domain::output::View;
use ceneca_domain::scope::Access;
use ceneca_domain::{Record, Value, model};
use ceneca_store::{BlobKey, BlobStore, Deleted, PendingBlob, WriteOp};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use uuid::Uuid;

use super::storage_error;
use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError, from_store};
use crate::storage::Room;
use crate::{Caller, Services};

/// How long an upload may send nothing before it is ended (a stalled client must not
/// hold a temporary file open for ever).
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Bytes read from the body at a time (each write of them is a hop to the blocking pool).
const CHUNK: usize = 256 * 1024;

impl Services {
    /// Stores `body` as the content of attachment `id` (replacing any it had) and answers
    /// the row as it now stands. `expected_sha256`, when given, must be the content's
    /// SHA-256 (hex), or nothing is kept. The caller must be allowed to change the row;
    /// that is checked before a byte is read.
    pub async fn put_attachment_content<R>(
        &self,
        caller: &Caller,
        id: Uuid,
        body: R,
        expected_sha256: Option<&str>,
    ) -> Result<Json>
    where
        R: AsyncRead + Unpin + Send,
    {
        match self.upload(caller, id, body, expected_sha256).await {
            Err(e) => Err(self
                .audit_refusal(
                    caller,
                    "attachment.upload".into(),
                    "attachments",
                    Some(id),
                    e,
                )
                .await),
            ok => ok,
        }
    }

    /// Creates an attachment row and its content in one write: `metadata` is the body a
    /// JSON create takes (the message or document, the file name), `body` the file. The
    /// create is checked in full (validation, authorization, the parent) before a byte is
    /// read, and the row is written only once the file is kept, so a refused or cut-off
    /// upload leaves no row and no file.
    pub async fn create_attachment_with_content<R>(
        &self,
        caller: &Caller,
        metadata: &Json,
        body: R,
        expected_sha256: Option<&str>,
    ) -> Result<Json>
    where
        R: AsyncRead + Unpin + Send,
    {
        match self
            .create_with_content(caller, metadata, body, expected_sha256)
            .await
        {
            Err(e) => Err(self
                .audit_refusal(caller, "attachments.create".into(), "attachments", None, e)
                .await),
            ok => ok,
        }
    }

    async fn create_with_content<R>(
        &self,
        caller: &Caller,
        metadata: &Json,
        body: R,
        expected_sha256: Option<&str>,
    ) -> Result<Json>
    where
        R: AsyncRead + Unpin + Send,
    {
        let entity = &model::ATTACHMENTS;
        let expected = expected_sha256.map(parse_sha256).transpose()?;
        let blobs = self.blob_store()?.clone();
        let (prepared, _) = self.prepare_attachment(caller, metadata).await?;
        let room = self.room_for_file(&prepared).await?;
        let received = self.receive(&blobs, body, expected, room.as_ref()).await?;
        // The file took its time: the create is checked again with the caller as they
        // stand now (a logout, a lost membership, a parent deleted meanwhile refuse it).
        let caller = &self.recheck_after_upload(caller).await?;
        let (mut record, mut extras) = self.prepare_attachment(caller, metadata).await?;
        let workspace = record.id_of("workspace_id");
        // Checked again inside the write, under the quota holder's lock: two uploads near
        // the limit are decided one after the other.
        extras.ops.extend(room.map(|r| r.guard));
        let _gate = self.blob_gate.read().await;
        let (set, details) = received.keep(&blobs, &self.keys, workspace).await?;
        for (name, value) in set.iter() {
            record.set(name, value.clone());
        }
        // A failure from here leaves the blob unreferenced: the sweep removes it once the
        // grace period has passed.
        let created = self
            .commit_create(caller, entity, record, extras, Some(details))
            .await?;
        self.thumbnails_wanted.notify_one();
        Ok(created)
    }

    /// An attachment row made from `metadata` with every check a create makes, its
    /// parent's included.
    async fn prepare_attachment(
        &self,
        caller: &Caller,
        metadata: &Json,
    ) -> Result<(Record, crate::rules::Extras)> {
        let prepared = self
            .prepare_create(caller, &model::ATTACHMENTS, metadata, None)
            .await?;
        self.check_parent(caller, &prepared.0).await?;
        Ok(prepared)
    }

    async fn upload<R>(
        &self,
        caller: &Caller,
        id: Uuid,
        body: R,
        expected_sha256: Option<&str>,
    ) -> Result<Json>
    where
        R: AsyncRead + Unpin + Send,
    {
        let entity = &model::ATTACHMENTS;
        caller.require_reach(entity)?;
        self.require_local_write(entity)?;
        let expected = expected_sha256.map(parse_sha256).transpose()?;
        let blobs = self.blob_store()?.clone();
        let write = caller.filter(entity, Access::Write);
        let Some(row) = self
            .store
            .get(entity, id, write.clone(), Deleted::Exclude)
            .await?
        else {
            return Err(self.explain_missing(caller, entity, id).await);
        };
        self.check_parent(caller, &row).await?;
        let mut room = self.room_for_file(&row).await?;
        // The file this replaces makes room.
        if let Some(room) = room.as_mut() {
            let replaced = row.get("size_bytes").and_then(Value::as_int).unwrap_or(0);
            room.left = room.left.saturating_add(replaced.max(0) as u64);
        }
        let received = self.receive(&blobs, body, expected, room.as_ref()).await?;
        // Checked again as the caller stands now: the file took its time.
        let caller = &self.recheck_after_upload(caller).await?;
        let write = caller.filter(entity, Access::Write);
        self.check_parent(caller, &row).await?;
        // From keeping the blob to committing the row that names it, the sweep waits.
        let _gate = self.blob_gate.read().await;
        let (set, details) = received
            .keep(&blobs, &self.keys, row.id_of("workspace_id"))
            .await?;
        let event = AuditEvent::new("attachment.upload", "success")
            .by(caller)
            .on(entity.table, Some(id))
            .details(details);
        let mut batch = caller.write_batch().push(WriteOp::Update {
            entity,
            id,
            filter: write,
            set,
        });
        batch.ops.extend(room.map(|r| r.guard));
        let batch = batch.push(self.audit_op(event));
        // A failure from here leaves the blob unreferenced: the sweep removes it once the
        // grace period has passed.
        match self.store.apply(batch).await {
            Ok(rows) => {
                self.thumbnails_wanted.notify_one();
                self.present(entity, &rows[0], View::Detail)
            }
            Err(ceneca_store::StoreError::NotFound) => {
                Err(self.explain_missing(caller, entity, id).await)
            }
            Err(e) => Err(from_store(entity.name, false, e)),
        }
    }

    /// The caller as they stand once a file has arrived. The upload kept the session in
    /// use all along, so it is marked used now: an upload longer than the idle timeout
    /// is not refused for inactivity, while a logout, a revocation or a suspension during
    /// it still ends it.
    async fn recheck_after_upload(&self, caller: &Caller) -> Result<Caller> {
        if caller.credential != ceneca_domain::credential::Credential::Certificate {
            self.store
                .touch_session(caller.session_id, ceneca_domain::clock::now())
                .await?;
        }
        self.recheck(caller).await
    }

    /// What the quota of `row`'s workspace leaves for a file, checked before a byte is
    /// read (a holder at its quota is refused at once); `None`: no quota.
    async fn room_for_file(&self, row: &Record) -> Result<Option<Room>> {
        match row.id_of("workspace_id") {
            Some(workspace) => self.check_quota(workspace, 1).await,
            None => Ok(None),
        }
    }

    /// Streams `body` to a temporary file, hashing and counting it: refused past the size
    /// limit, when empty, when its hash is not `expected`, or when its type (read from the
    /// bytes) is not allowed. Nothing is kept until [`Received::keep`].
    async fn receive<R>(
        &self,
        blobs: &Arc<dyn BlobStore>,
        mut body: R,
        expected: Option<String>,
        room: Option<&Room>,
    ) -> Result<Received>
    where
        R: AsyncRead + Unpin + Send,
    {
        let limit = self.config.max_upload_bytes;
        let sealer = self
            .config
            .encrypt_attachments
            .then(|| self.keys.file_sealer());
        let mut sink = Sink::begin(blobs, sealer).await.map_err(storage_error)?;
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut size: u64 = 0;
        let mut buffer = vec![0u8; CHUNK];
        let mut text = TextCheck::default();
        loop {
            let n = tokio::time::timeout(UPLOAD_IDLE, body.read(&mut buffer))
                .await
                .map_err(|_| {
                    ServiceError::bad_request(
                        "body",
                        format!(
                            "the upload stalled: no bytes for {} s; nothing was kept",
                            UPLOAD_IDLE.as_secs()
                        ),
                    )
                })?
                .map_err(|e| {
                    ServiceError::bad_request("body", format!("the upload was cut off: {e}"))
                })?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > limit {
                return Err(ServiceError::too_large(limit));
            }
            if let Some(room) = room
                && size > room.left
            {
                return Err(room.exceeded());
            }
            let chunk = &buffer[..n];
            if head.len() < SNIFF_BYTES {
                let take = (SNIFF_BYTES - head.len()).min(n);
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(chunk);
            text.feed(chunk);
            sink.write(chunk).await.map_err(storage_error)?;
        }
        if size == 0 {
            return Err(ServiceError::invalid("file", "is empty"));
        }
        let sha256 = hex::encode(hasher.finalize());
        if let Some(expected) = expected
            && expected != sha256
        {
            return Err(ServiceError::invalid(
                "expected_sha256",
                format!(
                    "does not match the content received (its SHA-256 is {sha256}): nothing was kept"
                ),
            ));
        }
        // Text only if all of it is (a binary padded with 8 KiB of text is not).
        let mime = match sniff(&head, size as usize == head.len()) {
            "text/plain" if !text.finish() => "application/octet-stream",
            mime => mime,
        };
        if !allowed(mime, &self.config.allowed_attachment_types) {
            return Err(ServiceError::UnsupportedType(format!(
                "files of type {mime} (read from the content) are not accepted here \
                 (attachments.allowed_types)"
            )));
        }
        Ok(Received {
            sink,
            size,
            sha256,
            mime,
        })
    }
}

/// Where received bytes go: straight to the temporary file, or sealed chunk by chunk
/// (`ceneca_crypto::sealed_file`), so a file is never whole in memory either way.
pub(super) enum Sink {
    Plain(PendingBlob),
    Sealed {
        pending: PendingBlob,
        sealer: Box<FileSealer>,
        /// The chunk being filled; sealed once full and more bytes follow (the last
        /// chunk is sealed apart, bound to the file's name).
        chunk: Vec<u8>,
    },
}

impl Sink {
    pub(super) async fn begin(
        blobs: &Arc<dyn BlobStore>,
        sealer: Option<FileSealer>,
    ) -> std::io::Result<Self> {
        let mut pending = blobs.begin().await?;
        Ok(match sealer {
            None => Sink::Plain(pending),
            Some(sealer) => {
                pending.write(sealer.header()).await?;
                Sink::Sealed {
                    pending,
                    sealer: Box::new(sealer),
                    chunk: Vec::with_capacity(SEALED_CHUNK + TAG),
                }
            }
        })
    }

    pub(super) async fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(pending) => pending.write(bytes).await,
            Sink::Sealed {
                pending,
                sealer,
                chunk,
            } => {
                while !bytes.is_empty() {
                    if chunk.len() == SEALED_CHUNK {
                        sealer.seal(chunk);
                        pending.write(chunk).await?;
                        chunk.clear();
                    }
                    let take = (SEALED_CHUNK - chunk.len()).min(bytes.len());
                    chunk.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                }
                Ok(())
            }
        }
    }

    fn sealed(&self) -> bool {
        matches!(self, Sink::Sealed { .. })
    }

    /// The temporary file, complete: a sealed file's last chunk is bound to `name`.
    async fn finish(self, name: &str) -> std::io::Result<PendingBlob> {
        match self {
            Sink::Plain(pending) => Ok(pending),
            Sink::Sealed {
                mut pending,
                sealer,
                mut chunk,
            } => {
                sealer.seal_last(&mut chunk, name.as_bytes());
                pending.write(&chunk).await?;
                Ok(pending)
            }
        }
    }
}

/// A file received in full and accepted, not yet kept.
pub(super) struct Received {
    pub(super) sink: Sink,
    pub(super) size: u64,
    pub(super) sha256: String,
    pub(super) mime: &'static str,
}

impl Received {
    /// Keeps the file under its hash (the caller holds the sweep's gate until the row
    /// that names it is written): its key, and whether it is sealed.
    pub(super) async fn store(
        self,
        blobs: &Arc<dyn BlobStore>,
        keys: &KeyRing,
        workspace: Option<Uuid>,
    ) -> Result<(BlobKey, bool)> {
        // A sealed file's name is keyed, and scoped to its workspace: the folder does not
        // tell what it holds, and an upload never finds (nor times) another tenant's file.
        let sealed = self.sink.sealed();
        let name = if sealed {
            let scope = workspace.map(|w| w.as_bytes().to_vec()).unwrap_or_default();
            keys.sealed_file_name(&scope, &self.sha256)
        } else {
            self.sha256.clone()
        };
        let pending = self.sink.finish(&name).await.map_err(storage_error)?;
        let key = blobs.keep(pending, &name).await.map_err(storage_error)?;
        Ok((key, sealed))
    }

    /// Keeps the file (see [`Received::store`]) and answers the row's content fields and
    /// the audit details.
    async fn keep(
        self,
        blobs: &Arc<dyn BlobStore>,
        keys: &KeyRing,
        workspace: Option<Uuid>,
    ) -> Result<(Record, Json)> {
        let (size, sha256, mime) = (self.size, self.sha256.clone(), self.mime);
        let (key, sealed) = self.store(blobs, keys, workspace).await?;
        let mut set = Record::default();
        set.set("size_bytes", Value::Int(size as i64));
        set.set("sha256", Value::Text(sha256.clone()));
        set.set("mime_type", Value::Text(mime.to_owned()));
        set.set("storage_key", Value::Text(key.as_str().to_owned()));
        set.set("encrypted", Value::Bool(sealed));
        // An image waits for its thumbnail (`thumbnails.rs`); the file it replaces, and
        // that file's thumbnail, are left to the orphan sweep.
        set.set(
            "thumbnail",
            if super::thumbnails::makes_thumbnail(mime) {
                Value::Text("pending".into())
            } else {
                Value::Null
            },
        );
        set.set("thumbnail_key", Value::Null);
        set.set("thumbnail_bytes", Value::Int(0));
        // Content uploaded again to an attachment whose file retention removed.
        set.set("content_removed_at", Value::Null);
        let details = serde_json::json!({
            "size_bytes": size, "sha256": sha256, "mime_type": mime,
            "encrypted": sealed,
        });
        Ok((set, details))
    }
}

/// A SHA-256 as a client gives it: 64 hex digits, either case.
fn parse_sha256(text: &str) -> Result<String> {
    let lower = text.to_ascii_lowercase();
    if lower.len() == 64 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(ServiceError::bad_request(
            "expected_sha256",
            "must be a SHA-256 in hex (64 digits)",
        ))
    }
}
