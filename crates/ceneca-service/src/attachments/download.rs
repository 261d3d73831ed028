//! Reading an attachment's content back: the row must be readable by the caller, and its
//! content stored on this node (a replica receives rows, not their files).

use ceneca_domain::scope::Access;
use ceneca_domain::{Value, model};
use ceneca_store::{BlobKey, Deleted};
use uuid::Uuid;

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// An attachment's content, open for reading, with what the server knows of it.
pub struct AttachmentContent {
    pub file: tokio::fs::File,
    pub size: u64,
    /// Hex; also the content's entity tag.
    pub sha256: String,
    /// As sniffed at upload.
    pub mime_type: String,
    /// As the client named it (the server sanitises it before it reaches a header).
    pub file_name: String,
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
            return Err(ServiceError::NotFound("attachment content"));
        };
        let key = BlobKey::parse(&stored).ok_or_else(|| {
            ServiceError::Internal(format!("attachment {id} has a malformed storage key"))
        })?;
        let blobs = self.blob_store()?;
        let file = blobs
            .open(&key)
            .await
            .map_err(super::storage_error)?
            .ok_or_else(|| {
                tracing::error!(attachment = %id, blob = key.as_str(), "an attachment's blob is missing");
                ServiceError::NotFound("attachment content")
            })?;
        self.audit_read(
            caller,
            "attachment.download".into(),
            entity.table,
            Some(id),
            None,
        )
        .await?;
        Ok(AttachmentContent {
            file,
            size: row
                .get("size_bytes")
                .and_then(Value::as_int)
                .unwrap_or_default() as u64,
            sha256: key.sha256().to_owned(),
            mime_type: text("mime_type").unwrap_or_else(|| "application/octet-stream".into()),
            file_name: text("file_name").unwrap_or_default(),
        })
    }
}
