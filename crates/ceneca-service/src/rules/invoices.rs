//! Invoices: a billing period ends after it starts.

use ceneca_domain::{Record, Value};

use super::{Cx, EntityRules};
use crate::error::{Result, ServiceError};

pub(super) struct Invoices;

impl EntityRules for Invoices {
    fn table(&self) -> Option<&'static str> {
        Some("invoices")
    }

    fn check_create(&self, _cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        if let (Some(start), Some(end)) = (
            record.get("period_start").and_then(Value::as_time),
            record.get("period_end").and_then(Value::as_time),
        ) && end <= start
        {
            return Err(ServiceError::invalid(
                "period_end",
                "must be after period_start",
            ));
        }
        Ok(())
    }
}
