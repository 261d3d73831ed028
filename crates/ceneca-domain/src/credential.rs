//! What each kind of credential may do (DESIGN.md §3 rule 8: a token can only do what its
//! kind allows).
//!
//! Roles and the scope decide *which rows*; the credential decides *which kinds of thing*
//! may be touched at all. An API token is for scripts working in one workspace: it reaches
//! that workspace's content and nothing that manages the account or access to it. A device
//! token is for a sync client: it reaches the content of every workspace of its owner, but
//! not the account itself (password, second factor, devices, tokens, consent) nor
//! administrator powers. Only a log-in session (or a mapped client certificate) is the
//! whole account. The rule is an allowlist: what is not named here is refused.

use uuid::Uuid;

use crate::schema::{Entity, Tenancy};

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A log-in session: bearer token or browser cookie.
    Session,
    /// A client certificate on a mutual-TLS connection, mapped to an account.
    Certificate,
    /// A device's token: a sync client acting for its owner.
    Device { device_id: Uuid },
    /// A named API token limited to one workspace's content.
    ApiToken { workspace_id: Uuid },
}

/// Tables a device token may not reach: the account, its credentials and its consent.
const ACCOUNT_TABLES: &[&str] = &[
    "users",
    "devices",
    "data_sharing_policies",
    "audit_log",
    "sessions",
];

/// Tables that govern who has access rather than hold content: no token may change them
/// (a stolen token must not become lasting access for someone else), and no permission
/// rule may open them (see `scope::PermissionRule`).
pub const ACCESS_TABLES: &[&str] = &[
    "workspace_members",
    "organization_members",
    "permission_sets",
];

impl Credential {
    /// Whether the credential stands for the whole account: account management (password,
    /// MFA, devices, tokens, consent) and administrator powers.
    pub fn is_whole_account(&self) -> bool {
        matches!(self, Credential::Session | Credential::Certificate)
    }

    /// Whether rows of `entity` may be reached at all with this credential (the scope still
    /// decides which rows).
    pub fn reaches(&self, entity: &Entity) -> bool {
        match self {
            Credential::Session | Credential::Certificate => true,
            Credential::Device { .. } => {
                !ACCOUNT_TABLES.contains(&entity.table) && !ACCESS_TABLES.contains(&entity.table)
            }
            Credential::ApiToken { .. } => {
                matches!(entity.tenancy, Tenancy::Workspace { .. })
                    && !ACCESS_TABLES.contains(&entity.table)
            }
        }
    }

    /// The workspace an API token is limited to.
    pub fn api_token_workspace(&self) -> Option<Uuid> {
        match self {
            Credential::ApiToken { workspace_id } => Some(*workspace_id),
            _ => None,
        }
    }

    /// The credential in words, for refusals.
    pub fn describe(&self) -> &'static str {
        match self {
            Credential::Session => "a log-in session",
            Credential::Certificate => "a client certificate",
            Credential::Device { .. } => "a device token",
            Credential::ApiToken { .. } => "an API token",
        }
    }

    /// Why `what` is refused to this credential, or `None` when it is allowed.
    pub fn refuse_account_action(&self, what: &str) -> Option<String> {
        (!self.is_whole_account()).then(|| {
            format!(
                "{} cannot {what}: account-level actions need a log-in session",
                self.describe()
            )
        })
    }

    /// Why rows of `entity` are refused to this credential, or `None` when allowed.
    pub fn refuse_entity(&self, entity: &Entity) -> Option<String> {
        (!self.reaches(entity)).then(|| match self {
            Credential::ApiToken { .. } => format!(
                "an API token works only with the content of its workspace; {} need a log-in session",
                entity.path
            ),
            other => format!(
                "{} cannot reach {}: they belong to the account and need a log-in session",
                other.describe(),
                entity.path
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    #[test]
    fn api_tokens_reach_workspace_content_only() {
        let token = Credential::ApiToken {
            workspace_id: Uuid::nil(),
        };
        for entity in model::ALL {
            let content = matches!(entity.tenancy, Tenancy::Workspace { .. })
                && !ACCESS_TABLES.contains(&entity.table);
            assert_eq!(token.reaches(entity), content, "{}", entity.table);
        }
        assert!(token.reaches(&model::DOCUMENTS));
        assert!(!token.reaches(&model::DEVICES));
        assert!(!token.reaches(&model::AI_PROVIDER_CONFIGS));
        assert!(!token.reaches(&model::WORKSPACE_MEMBERS));
        assert!(!token.reaches(&model::PERMISSION_SETS));
        assert!(!token.is_whole_account());
    }

    #[test]
    fn device_tokens_reach_content_but_not_the_account() {
        let device = Credential::Device {
            device_id: Uuid::nil(),
        };
        assert!(device.reaches(&model::THREADS));
        assert!(device.reaches(&model::WORKSPACES));
        for table in ACCOUNT_TABLES.iter().chain(ACCESS_TABLES) {
            let entity = model::by_table(table).expect("account table");
            assert!(!device.reaches(entity), "{table}");
        }
        assert!(!device.is_whole_account());
        assert!(device.refuse_account_action("enrol MFA").is_some());
        assert!(
            Credential::Session
                .refuse_account_action("enrol MFA")
                .is_none()
        );
    }
}
