//! AI interactions: recorded for the caller, with the token total computed (saturating)
//! from its parts.

use ceneca_domain::{Record, Value};

use super::{Cx, EntityRules, me};
use crate::error::Result;

pub(super) struct AiInteractions;

impl EntityRules for AiInteractions {
    fn table(&self) -> Option<&'static str> {
        Some("ai_interactions")
    }

    fn check_create(&self, cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        record.set("user_id", me(cx.caller));
        let total = ["prompt_tokens", "completion_tokens"]
            .iter()
            .map(|f| record.get(f).and_then(Value::as_int).unwrap_or(0))
            .fold(0i64, i64::saturating_add);
        record.set("total_tokens", Value::Int(total));
        Ok(())
    }
}
