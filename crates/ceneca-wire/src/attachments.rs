//! Attachment content: the query of an upload.

use crate::error::ParamError;
use crate::params::refuse_repeats;

/// `PUT /attachments/{id}/content?expected_sha256=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadParams {
    /// The SHA-256 (hex) the client computed: content that does not match it is refused
    /// and nothing is kept.
    pub expected_sha256: Option<String>,
}

impl UploadParams {
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        refuse_repeats(pairs)?;
        let mut out = UploadParams::default();
        for (name, value) in pairs {
            match name.as_str() {
                "expected_sha256" => out.expected_sha256 = Some(value.clone()),
                other => return Err(ParamError::new(other, "is not a parameter of this route")),
            }
        }
        Ok(out)
    }
}
