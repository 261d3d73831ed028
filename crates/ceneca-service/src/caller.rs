//! Who is calling: the authenticated user, their session and device, and their scope.

use ceneca_domain::credential::Credential;
use ceneca_domain::scope::{Access, Scope, ScopeFilter, scope_filter};
use ceneca_domain::{Entity, Value};
use ceneca_store::Actor;
use uuid::Uuid;

use crate::error::ServiceError;

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
    /// How the caller authenticated, which limits what it may do at all.
    pub credential: Credential,
    /// Set only while a pushed change is applied on the caller's behalf (`sync/push.rs`).
    pub replaying: Option<Replaying>,
}

/// A change made on another node, applied as its author: it keeps its identity and
/// clock in the change log, its row keeps the id and creation time it was given, and its
/// creation side effects (rows the API writes alongside) are not run again.
#[derive(Debug, Clone, Copy)]
pub struct Replaying {
    pub stamp: ceneca_store::Replay,
    pub created_at: Option<time::OffsetDateTime>,
    /// Where the row's change log ended when the change was merged: the write goes
    /// through only if it still ends there (`None`: the caller checks it otherwise).
    pub history_ends_at: Option<i64>,
}

impl Replaying {
    /// The write's guard: nothing came between the merge and the write.
    pub(crate) fn guard(&self) -> Option<ceneca_store::WriteOp> {
        self.history_ends_at
            .map(|last_seq| ceneca_store::WriteOp::ExpectHistory {
                row: self.stamp.row,
                last_seq,
            })
    }
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.user_id),
            device_id: self.device_id,
            replay: self.replaying.map(|r| r.stamp),
        }
    }
    /// A batch written by this caller: a replayed change's starts with its guard.
    pub fn write_batch(&self) -> ceneca_store::WriteBatch {
        let batch = ceneca_store::WriteBatch::new(self.actor());
        match self.replaying.as_ref().and_then(Replaying::guard) {
            Some(guard) => batch.push(guard),
            None => batch,
        }
    }
    /// The SQL filter for `access` to rows of `entity`.
    pub fn filter(&self, entity: &Entity, access: Access) -> ScopeFilter {
        scope_filter(entity, access, &self.scope)
    }
    /// Refuses account-level actions (password, MFA, devices, tokens, consent) to
    /// credentials that do not stand for the whole account.
    pub fn require_whole_account(&self, what: &str) -> Result<(), ServiceError> {
        match self.credential.refuse_account_action(what) {
            Some(reason) => Err(ServiceError::Forbidden(reason)),
            None => Ok(()),
        }
    }
    /// Refuses rows of `entity` to credentials that may not reach them.
    pub fn require_reach(&self, entity: &Entity) -> Result<(), ServiceError> {
        match self.credential.refuse_entity(entity) {
            Some(reason) => Err(ServiceError::Forbidden(reason)),
            None => Ok(()),
        }
    }
    pub fn id_value(&self) -> Value {
        Value::Id(self.user_id)
    }
}
