//! Messages: a user's message is authored by the caller (assistant and system messages
//! have no author).

use ceneca_domain::Record;

use super::{Cx, EntityRules, me, text};
use crate::error::Result;

pub(super) struct Messages;

impl EntityRules for Messages {
    fn table(&self) -> Option<&'static str> {
        Some("messages")
    }

    fn check_create(&self, cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        if text(record, "role") == Some("user") {
            record.set("author_id", me(cx.caller));
        }
        Ok(())
    }
}
