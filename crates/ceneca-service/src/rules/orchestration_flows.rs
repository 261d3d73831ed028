//! Orchestration flows: the definition must be a valid flow graph (on create and on
//! update).

use ceneca_domain::{Record, Value, flow};
use uuid::Uuid;

use super::{Cx, EntityRules};
use crate::error::{Result, ServiceError};

pub(super) struct OrchestrationFlows;

fn check_definition(record: &Record) -> Result<()> {
    if let Some(Value::Json(definition)) = record.get("definition") {
        flow::validate_definition(definition)
            .map_err(|r| ServiceError::invalid("definition", r))?;
    }
    Ok(())
}

impl EntityRules for OrchestrationFlows {
    fn table(&self) -> Option<&'static str> {
        Some("orchestration_flows")
    }

    fn check_create(&self, _cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        check_definition(record)
    }

    fn check_update(
        &self,
        _cx: &Cx<'_>,
        _id: Uuid,
        _current: Option<&Record>,
        set: &mut Record,
    ) -> Result<()> {
        check_definition(set)
    }
}
