//! Attachments: one belongs to a message or to a document, not both; its file name is a
//! name, never a path (it reaches `Content-Disposition` on download, and clients save
//! files under it).

use ceneca_domain::{Record, Value};
use uuid::Uuid;

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
        check_file_name(record)
    }

    fn check_update(
        &self,
        _cx: &Cx<'_>,
        _id: Uuid,
        _current: Option<&Record>,
        set: &mut Record,
    ) -> Result<()> {
        check_file_name(set)
    }
}

/// A file name: not empty, no path separator, no control character, nothing that reorders
/// or hides text (`x\u{202e}gnp.exe` shows as `xexe.png`), not `.` or `..`.
fn check_file_name(record: &Record) -> Result<()> {
    let Some(name) = record.get("file_name").and_then(Value::as_str) else {
        return Ok(());
    };
    let reason = if name.trim().is_empty() {
        Some("must not be empty")
    } else if name.contains(['/', '\\']) {
        Some("is a file name, not a path: no / or \\")
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if name
        .chars()
        .any(ceneca_domain::content_type::reorders_or_hides_text)
    {
        Some(
            "must not contain characters that reorder or hide text (bidirectional overrides, zero-width characters)",
        )
    } else if matches!(name, "." | "..") {
        Some("is not a file name")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ServiceError::invalid("file_name", reason)),
        None => Ok(()),
    }
}
