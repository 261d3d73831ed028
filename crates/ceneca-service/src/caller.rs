//! Who is calling: the authenticated user, their session and device, and their scope.

use ceneca_domain::scope::{Access, Scope, ScopeFilter, scope_filter};
use ceneca_domain::{Entity, Value};
use ceneca_store::Actor;
use uuid::Uuid;

/// An authenticated caller. Built only by `Services::authenticate`, so holding one proves
/// the token was valid, the session live and the account active.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub email: String,
    pub system_admin: bool,
    pub session_id: Uuid,
    pub device_id: Option<Uuid>,
    pub scope: Scope,
    /// Where the request came from, for the audit trail.
    pub source_ip: Option<String>,
    /// Set when the caller is an API token: the one workspace it may act in.
    pub api_token_workspace: Option<Uuid>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.user_id),
            device_id: self.device_id,
        }
    }
    /// The SQL filter for `access` to rows of `entity`.
    pub fn filter(&self, entity: &Entity, access: Access) -> ScopeFilter {
        scope_filter(entity, access, &self.scope)
    }
    pub fn id_value(&self) -> Value {
        Value::Id(self.user_id)
    }
}
