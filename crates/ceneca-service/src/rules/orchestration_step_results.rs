//! Orchestration step results: a step does not finish before it starts (checked on the
//! row as it will be after an update).

use ceneca_domain::Record;
use uuid::Uuid;

use super::{Cx, EntityRules};
use crate::error::{Result, ServiceError};

pub(super) struct OrchestrationStepResults;

fn check_step_times(record: &Record) -> Result<()> {
    if let (Some(start), Some(end)) = (
        record
            .get("started_at")
            .and_then(ceneca_domain::Value::as_time),
        record
            .get("finished_at")
            .and_then(ceneca_domain::Value::as_time),
    ) && end < start
    {
        return Err(ServiceError::invalid(
            "finished_at",
            "must not be before started_at",
        ));
    }
    Ok(())
}

impl EntityRules for OrchestrationStepResults {
    fn table(&self) -> Option<&'static str> {
        Some("orchestration_step_results")
    }

    fn check_create(&self, _cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        check_step_times(record)
    }

    fn needs_current_row(&self) -> bool {
        true
    }

    fn check_update(
        &self,
        _cx: &Cx<'_>,
        _id: Uuid,
        current: Option<&Record>,
        set: &mut Record,
    ) -> Result<()> {
        let mut merged = current.cloned().unwrap_or_default();
        for (k, v) in set.iter() {
            merged.set(k, v.clone());
        }
        check_step_times(&merged)
    }
}
