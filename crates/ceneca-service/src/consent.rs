//! Consent (DataSharingPolicy) enforced by the operations that send data outside: a scope
//! the user has not granted, or has revoked, refuses the operation. The zero-sync edition
//! has no such operations at all.

use ceneca_domain::Value;
use ceneca_domain::edition::Edition;
use ceneca_domain::model;
use ceneca_domain::output::{View, to_json};
use ceneca_domain::scope::ScopeFilter;
use ceneca_store::ListQuery;
use serde_json::{Value as Json, json};

use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// The most telemetry events one export carries.
pub const MAX_EXPORT: u32 = 1000;

impl Services {
    /// Whether the caller currently consents to `scope` (a granted, unrevoked policy).
    pub async fn has_consent(&self, caller: &Caller, scope: &str) -> Result<bool> {
        let mut q = ListQuery::new(
            ScopeFilter::AnyOf(vec![("user_id", vec![caller.user_id])]),
            "created_at",
            true,
            1,
        );
        q.equals.push(("scope", Value::Text(scope.to_owned())));
        let policies = self.store.list(&model::DATA_SHARING_POLICIES, q).await?;
        Ok(policies.first().is_some_and(|p| {
            p.get("granted").and_then(Value::as_bool) == Some(true)
                && p.get("revoked_at").is_none_or(Value::is_null)
        }))
    }

    /// The caller's telemetry, as an exporter would send it: refused without consent to
    /// `telemetry`, and never in the zero-sync edition.
    pub async fn export_telemetry(&self, caller: &Caller) -> Result<Json> {
        if self.config.edition == Edition::ZeroSync {
            return Err(ServiceError::NotInEdition(
                "the zero-sync edition has no telemetry export: nothing leaves the network".into(),
            ));
        }
        caller.require_whole_account("export telemetry")?;
        if !self.has_consent(caller, "telemetry").await? {
            let refusal = ServiceError::Forbidden(
                "export needs consent: grant the 'telemetry' sharing policy first".into(),
            );
            return Err(self
                .audit_refusal(
                    caller,
                    "telemetry_events.export".into(),
                    "telemetry_events",
                    None,
                    refusal,
                )
                .await);
        }
        let q = ListQuery::new(
            ScopeFilter::AnyOf(vec![("user_id", vec![caller.user_id])]),
            "created_at",
            false,
            MAX_EXPORT,
        );
        let mut events = self.store.list(&model::TELEMETRY_EVENTS, q).await?;
        events.truncate(MAX_EXPORT as usize);
        let event = AuditEvent::new("telemetry_events.export", "success")
            .by(caller)
            .on("telemetry_events", None)
            .details(json!({ "count": events.len() }));
        self.audit_now(event).await?;
        Ok(
            json!({ "items": events.iter().map(|e| to_json(&model::TELEMETRY_EVENTS, e, View::Detail)).collect::<Vec<_>>() }),
        )
    }
}
