//! Accounts: nobody suspends their own account, and deleting one ends its sessions.

use async_trait::async_trait;
use ceneca_domain::clock::now;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Record, Value, model};
use ceneca_store::WriteOp;
use uuid::Uuid;

use super::{Cx, EntityRules, Extras};
use crate::error::{Result, ServiceError};

pub(super) struct Users;

#[async_trait]
impl EntityRules for Users {
    fn table(&self) -> Option<&'static str> {
        Some("users")
    }

    fn check_update(
        &self,
        cx: &Cx<'_>,
        id: Uuid,
        _current: Option<&Record>,
        set: &mut Record,
    ) -> Result<()> {
        if set.get("status").and_then(Value::as_str) == Some("suspended") && id == cx.caller.user_id
        {
            return Err(ServiceError::invalid(
                "status",
                "you cannot suspend your own account",
            ));
        }
        Ok(())
    }

    async fn delete_effects(
        &self,
        _cx: &Cx<'_>,
        id: Uuid,
        _row: Option<&Record>,
        extras: &mut Extras,
    ) -> Result<()> {
        // An organization's last active owner does not close their account: decided by
        // the store on the memberships as committed (an ownership granted meanwhile
        // included); organizations in the bin need no owner.
        extras.ops.push(WriteOp::AccountCloses { user: id });
        // Deleting an account ends its sessions at once.
        let mut set = Record::new();
        set.set("revoked_at", Value::Time(now()));
        extras.ops.push(WriteOp::UpdateAll {
            entity: &model::SESSIONS,
            filter: ScopeFilter::AnyOf(vec![("user_id", vec![id])]),
            set,
        });
        Ok(())
    }
}
