//! Subscription plans: only known limits, each a non-negative integer.

use ceneca_domain::{Record, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use super::{Cx, EntityRules};
use crate::error::{Result, ServiceError};

pub(super) struct SubscriptionPlans;

fn check_limits(record: &Record) -> Result<()> {
    if let Some(Value::Json(Json::Object(limits))) = record.get("limits") {
        for (key, value) in limits {
            if !matches!(
                key.as_str(),
                "storage_quota_bytes" | "seats" | "monthly_tokens"
            ) {
                return Err(ServiceError::invalid(
                    "limits",
                    format!(
                        "unknown limit '{key}': use storage_quota_bytes, seats, monthly_tokens"
                    ),
                ));
            }
            if value.as_i64().is_none_or(|n| n < 0) {
                return Err(ServiceError::invalid(
                    "limits",
                    format!("{key} must be a non-negative integer"),
                ));
            }
        }
    }
    Ok(())
}

impl EntityRules for SubscriptionPlans {
    fn table(&self) -> Option<&'static str> {
        Some("subscription_plans")
    }

    fn check_create(&self, _cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        check_limits(record)
    }

    fn check_update(
        &self,
        _cx: &Cx<'_>,
        _id: Uuid,
        _current: Option<&Record>,
        set: &mut Record,
    ) -> Result<()> {
        check_limits(set)
    }
}
