//! Attachment content: the file behind an attachment row, kept by this node in its blob
//! folder (`ceneca_store::BlobStore`), described by the server alone — its size, SHA-256
//! and type come from the bytes, and only an upload here sets where they are.
//!
//! A row is created first (its metadata, through the entity routes); its content is then
//! uploaded (`upload.rs`), read back (`download.rs`), and blobs no row references are
//! swept (`sweep.rs`).

mod download;
mod sweep;
mod upload;

pub use download::AttachmentContent;
pub use sweep::SweepReport;

use std::sync::Arc;

use ceneca_domain::scope::Access;
use ceneca_domain::{Record, model};
use ceneca_store::{BlobStore, Deleted};

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

impl Services {
    /// An attachment's file is its message's or document's too: the caller must reach
    /// that parent, live (a permission set that hides a document hides its files; a
    /// message in the bin keeps its files there).
    async fn check_parent(&self, caller: &Caller, row: &Record) -> Result<()> {
        let (entity, id) = match (row.id_of("message_id"), row.id_of("document_id")) {
            (Some(message), _) => (&model::MESSAGES, message),
            (None, Some(document)) => (&model::DOCUMENTS, document),
            (None, None) => return Ok(()),
        };
        self.store
            .get(
                entity,
                id,
                caller.filter(entity, Access::Read),
                Deleted::Exclude,
            )
            .await?
            .map(|_| ())
            .ok_or(ServiceError::NotFound(model::ATTACHMENTS.name))
    }

    fn blob_store(&self) -> Result<&Arc<dyn BlobStore>> {
        self.blobs.as_ref().ok_or_else(|| {
            ServiceError::Unavailable("this server keeps no attachment content".into())
        })
    }
}
