//! Attachment content: the file behind an attachment row, kept by this node in its blob
//! folder (`ceneca_store::BlobStore`), described by the server alone — its size, SHA-256
//! and type come from the bytes, and only an upload here sets where they are.
//!
//! A row is created first (its metadata, through the entity routes); its content is then
//! uploaded (`upload.rs`), read back (`download.rs`), an image's thumbnail made off the
//! request path (`thumbnails.rs`), and blobs no row references are swept (`sweep.rs`).

mod download;
mod sweep;
mod thumbnails;
mod upload;

pub use download::{AttachmentContent, ContentReader};
pub use sweep::{SWEEP_GRACE, SweepReport};
pub use thumbnails::Thumbnail;

use std::sync::Arc;

use ceneca_domain::{Record, model};
use ceneca_store::BlobStore;

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// The blob folder failed (disk full, permissions): the server's trouble, not the
/// client's; logged with its cause, never shown.
fn storage_error(e: std::io::Error) -> ServiceError {
    ServiceError::Internal(format!("attachment storage: {e}"))
}

impl Services {
    /// An attachment's file is its message's or document's too: the caller must reach
    /// that parent, live (a permission set that hides a document hides its files; a
    /// message in the bin keeps its files there).
    async fn check_parent(&self, caller: &Caller, row: &Record) -> Result<()> {
        let (table, id) = match (row.id_of("message_id"), row.id_of("document_id")) {
            (Some(message), _) => ("messages", message),
            (None, Some(document)) => ("documents", document),
            (None, None) => return Ok(()),
        };
        // The parent's absence is the file's: the answer names the attachment.
        match self.parent_row(caller, table, id).await {
            Ok(_) => Ok(()),
            Err(ServiceError::NotFound(_)) => Err(ServiceError::NotFound(model::ATTACHMENTS.name)),
            Err(e) => Err(e),
        }
    }

    fn blob_store(&self) -> Result<&Arc<dyn BlobStore>> {
        self.blobs.as_ref().ok_or_else(|| {
            ServiceError::Unavailable("this server keeps no attachment content".into())
        })
    }
}
