//! Accounts: nobody suspends their own account, and deleting one ends its sessions.

use async_trait::async_trait;
use ceneca_domain::clock::now;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Record, Value, model};
use ceneca_store::{ListQuery, WriteOp};

/// The most organizations an account closing may own (each is checked in its write).
const MAX_OWNED: u32 = 1000;
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
        cx: &Cx<'_>,
        id: Uuid,
        _row: Option<&Record>,
        extras: &mut Extras,
    ) -> Result<()> {
        // An organization's last owner does not close their account: each organization
        // they own must keep an owner whose account is open (decided by the store, on the
        // memberships as committed; an owner made meanwhile is found there too, since the
        // check counts the others).
        let mut owned = ListQuery::new(
            ScopeFilter::AnyOf(vec![("user_id", vec![id])]),
            "created_at",
            false,
            MAX_OWNED,
        );
        owned.equals.push(("role", Value::Text("owner".into())));
        let owned = cx
            .svc
            .store
            .list(&model::ORGANIZATION_MEMBERS, owned)
            .await?;
        if owned.len() >= MAX_OWNED as usize {
            return Err(ServiceError::conflict(format!(
                "this account owns {MAX_OWNED} organizations or more: hand them over first"
            )));
        }
        for membership in owned {
            if let Some(organization) = membership.id_of("organization_id") {
                extras.ops.push(WriteOp::OwnershipChange {
                    organization,
                    member: membership.id(),
                    actor: None,
                    grants_owner: false,
                });
            }
        }
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
