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

use ceneca_store::BlobStore;

use crate::Services;
use crate::error::{Result, ServiceError};

impl Services {
    fn blob_store(&self) -> Result<&Arc<dyn BlobStore>> {
        self.blobs.as_ref().ok_or_else(|| {
            ServiceError::Unavailable("this server keeps no attachment content".into())
        })
    }
}
