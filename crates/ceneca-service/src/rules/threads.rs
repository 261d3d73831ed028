//! Threads: the creator is recorded; archiving stamps the time.

use ceneca_domain::clock::now;
use ceneca_domain::{Record, Value};
use uuid::Uuid;

use super::{Cx, EntityRules, me};
use crate::error::Result;

pub(super) struct Threads;

impl EntityRules for Threads {
    fn table(&self) -> Option<&'static str> {
        Some("threads")
    }

    fn check_create(&self, cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        record.set("created_by", me(cx.caller));
        Ok(())
    }

    fn check_update(
        &self,
        _cx: &Cx<'_>,
        _id: Uuid,
        _current: Option<&Record>,
        set: &mut Record,
    ) -> Result<()> {
        match set.get("is_archived").and_then(Value::as_bool) {
            Some(true) => set.set("archived_at", Value::Time(now())),
            Some(false) => set.set("archived_at", Value::Null),
            None => {}
        }
        Ok(())
    }
}
