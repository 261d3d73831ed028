//! Data-sharing policies: the scope follows the edition's list and is stored in its one
//! normalised spelling; granting and revoking stamp their times.

use ceneca_domain::clock::now;
use ceneca_domain::{Record, Value};
use uuid::Uuid;

use super::{Cx, EntityRules, text};
use crate::Services;
use crate::error::{Result, ServiceError};

pub(super) struct DataSharingPolicies;

/// On create `set` is the new row and carries the scope, which is stored in its one
/// normalised spelling; on update the scope is the stored one (it cannot be patched), and
/// revoking is always allowed, even for a scope written before the list was closed.
fn check_sharing(svc: &Services, record: &Record, set: &mut Record) -> Result<()> {
    let creating = set.get("scope").is_some();
    if let (Some(scope), Some(granted)) = (
        text(record, "scope"),
        set.get("granted").and_then(Value::as_bool),
    ) && (creating || granted)
    {
        let scope = svc
            .config
            .edition
            .check_sharing_scope(scope, granted)
            .map_err(|r| ServiceError::invalid("scope", r))?;
        if creating {
            set.set("scope", Value::Text(scope.to_owned()));
        }
    }
    match set.get("granted").and_then(Value::as_bool) {
        Some(true) => {
            set.set("granted_at", Value::Time(now()));
            set.set("revoked_at", Value::Null);
        }
        Some(false) => set.set("revoked_at", Value::Time(now())),
        None => {}
    }
    Ok(())
}

impl EntityRules for DataSharingPolicies {
    fn table(&self) -> Option<&'static str> {
        Some("data_sharing_policies")
    }

    fn check_create(&self, cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        let snapshot = record.clone();
        check_sharing(cx.svc, &snapshot, record)
    }

    fn needs_current_row(&self) -> bool {
        true
    }

    fn check_update(
        &self,
        cx: &Cx<'_>,
        _id: Uuid,
        current: Option<&Record>,
        set: &mut Record,
    ) -> Result<()> {
        let current =
            current.ok_or_else(|| ServiceError::Internal("policy row not loaded".into()))?;
        check_sharing(cx.svc, current, set)
    }
}
