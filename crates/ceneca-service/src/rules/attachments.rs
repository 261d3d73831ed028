//! Attachments: one belongs to a message or to a document, not both.

use ceneca_domain::Record;

use super::{Cx, EntityRules};
use crate::error::{Result, ServiceError};

pub(super) struct Attachments;

impl EntityRules for Attachments {
    fn table(&self) -> Option<&'static str> {
        Some("attachments")
    }

    fn check_create(&self, _cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        if record.id_of("message_id").is_some() && record.id_of("document_id").is_some() {
            return Err(ServiceError::invalid(
                "document_id",
                "an attachment belongs to a message or a document, not both",
            ));
        }
        Ok(())
    }
}
