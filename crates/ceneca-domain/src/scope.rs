//! The caller's scope and the SQL-side filters derived from it (DESIGN.md §3 rule 1).
//!
//! A [`Scope`] is loaded once per request: the organizations and workspaces the caller
//! belongs to, with roles. [`scope_filter`] turns it into a [`ScopeFilter`] for one entity
//! and one operation; the store puts that filter into the `WHERE` clause of every read and
//! write, so tenant isolation is enforced by the query itself, never by filtering results.

use uuid::Uuid;

use crate::roles::{OrgRole, WorkspaceRole};
use crate::schema::{Entity, Owner, OwnerWrite, Tenancy};

/// What the caller may see, loaded once per request.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub user_id: Uuid,
    pub system_admin: bool,
    pub organizations: Vec<(Uuid, OrgRole)>,
    /// Effective roles: explicit membership, ownership (admin) or organization admin (admin).
    pub workspaces: Vec<(Uuid, WorkspaceRole)>,
    /// Soft-deleted organizations and workspaces the caller had roles in: only restore
    /// reaches them.
    pub deleted_organizations: Vec<(Uuid, OrgRole)>,
    pub deleted_workspaces: Vec<(Uuid, WorkspaceRole)>,
}

impl Scope {
    pub fn org_role(&self, id: Uuid) -> Option<OrgRole> {
        self.organizations
            .iter()
            .find(|(o, _)| *o == id)
            .map(|(_, r)| *r)
    }
    pub fn workspace_role(&self, id: Uuid) -> Option<WorkspaceRole> {
        self.workspaces
            .iter()
            .find(|(w, _)| *w == id)
            .map(|(_, r)| *r)
    }
    pub fn orgs_with(&self, least: OrgRole) -> Vec<Uuid> {
        self.organizations
            .iter()
            .filter(|(_, r)| *r >= least)
            .map(|(o, _)| *o)
            .collect()
    }
    pub fn workspaces_with(&self, least: WorkspaceRole) -> Vec<Uuid> {
        self.workspaces
            .iter()
            .filter(|(_, r)| *r >= least)
            .map(|(w, _)| *w)
            .collect()
    }
}

/// The kind of access an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Delete,
    /// Undoing a soft delete: needs the delete permission, on deleted rows.
    Restore,
}

/// A tenant filter for SQL: rows match when any clause's column holds one of its ids.
#[derive(Debug, Clone, PartialEq)]
pub enum ScopeFilter {
    /// No restriction (system administrators on admin paths, public catalogues).
    All,
    /// `column IN ids` for any clause; no clause (or only empty ones) matches nothing.
    AnyOf(Vec<(&'static str, Vec<Uuid>)>),
}

impl ScopeFilter {
    pub const NOTHING: ScopeFilter = ScopeFilter::AnyOf(Vec::new());

    /// Whether a row with these owner column values passes the filter (used to authorize
    /// creates, where the row does not exist yet).
    pub fn admits(&self, column: &str, id: Uuid) -> bool {
        match self {
            ScopeFilter::All => true,
            ScopeFilter::AnyOf(clauses) => clauses
                .iter()
                .any(|(c, ids)| *c == column && ids.contains(&id)),
        }
    }
    /// Rows either filter admits.
    pub fn or(self, other: ScopeFilter) -> ScopeFilter {
        match (self, other) {
            (ScopeFilter::All, _) | (_, ScopeFilter::All) => ScopeFilter::All,
            (ScopeFilter::AnyOf(mut a), ScopeFilter::AnyOf(b)) => {
                a.extend(b);
                ScopeFilter::AnyOf(a)
            }
        }
    }

    pub fn is_nothing(&self) -> bool {
        match self {
            ScopeFilter::All => false,
            ScopeFilter::AnyOf(clauses) => clauses.iter().all(|(_, ids)| ids.is_empty()),
        }
    }
}

fn ids_with<R: Ord + Copy>(entries: &[(Uuid, R)], least: R) -> Vec<Uuid> {
    entries
        .iter()
        .filter(|(_, r)| *r >= least)
        .map(|(id, _)| *id)
        .collect()
}

fn single(column: &'static str, ids: Vec<Uuid>) -> ScopeFilter {
    ScopeFilter::AnyOf(vec![(column, ids)])
}

/// The rows of `entity` the caller may access for `access`.
pub fn scope_filter(entity: &Entity, access: Access, scope: &Scope) -> ScopeFilter {
    use Access::*;
    let me = scope.user_id;
    match entity.tenancy {
        Tenancy::SelfUser if scope.system_admin => ScopeFilter::All,
        Tenancy::SelfUser => single("id", vec![me]),
        Tenancy::SelfOrganization if access == Restore => {
            single("id", ids_with(&scope.deleted_organizations, OrgRole::Owner))
        }
        Tenancy::SelfOrganization => {
            let least = match access {
                Read => OrgRole::Viewer,
                Write => OrgRole::Admin,
                Delete | Restore => OrgRole::Owner,
            };
            single("id", scope.orgs_with(least))
        }
        Tenancy::SelfWorkspace if access == Restore => single(
            "id",
            ids_with(&scope.deleted_workspaces, WorkspaceRole::Admin),
        ),
        Tenancy::SelfWorkspace => {
            let least = match access {
                Read => WorkspaceRole::Viewer,
                Write | Delete | Restore => WorkspaceRole::Admin,
            };
            single("id", scope.workspaces_with(least))
        }
        Tenancy::Organization => {
            let least = match access {
                Read => OrgRole::Viewer,
                Write | Delete | Restore => OrgRole::Admin,
            };
            single("organization_id", scope.orgs_with(least))
        }
        Tenancy::Workspace { write, delete } => {
            let least = match access {
                Read => WorkspaceRole::Viewer,
                Write => write,
                Delete | Restore => delete,
            };
            single("workspace_id", scope.workspaces_with(least))
        }
        Tenancy::User => single("user_id", vec![me]),
        Tenancy::Owners {
            owners,
            org_read,
            ws_read,
            write,
        } => {
            if access != Read {
                match write {
                    OwnerWrite::Owners => {}
                    OwnerWrite::SystemAdmin if scope.system_admin => return ScopeFilter::All,
                    OwnerWrite::SystemAdmin | OwnerWrite::Nobody => return ScopeFilter::NOTHING,
                }
            }
            let clauses = owners
                .iter()
                .map(|owner| match (*owner, access) {
                    (Owner::User(c), _) => (c, vec![me]),
                    (Owner::Organization(c), Read) => (c, scope.orgs_with(org_read)),
                    (Owner::Organization(c), _) => (c, scope.orgs_with(OrgRole::Admin)),
                    (Owner::Workspace(c), Read) => (c, scope.workspaces_with(ws_read)),
                    (Owner::Workspace(c), _) => (c, scope.workspaces_with(WorkspaceRole::Admin)),
                })
                .collect();
            ScopeFilter::AnyOf(clauses)
        }
        Tenancy::Catalog if access == Read || scope.system_admin => ScopeFilter::All,
        Tenancy::Admin if access == Read && scope.system_admin => ScopeFilter::All,
        Tenancy::Catalog | Tenancy::Admin | Tenancy::Internal => ScopeFilter::NOTHING,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    fn scope() -> Scope {
        Scope {
            user_id: Uuid::from_u128(1),
            system_admin: false,
            organizations: vec![(Uuid::from_u128(10), OrgRole::Member)],
            workspaces: vec![
                (Uuid::from_u128(20), WorkspaceRole::Viewer),
                (Uuid::from_u128(21), WorkspaceRole::Editor),
            ],
            ..Scope::default()
        }
    }

    #[test]
    fn workspace_rows_need_editor_to_write() {
        let s = scope();
        let read = scope_filter(&model::THREADS, Access::Read, &s);
        let write = scope_filter(&model::THREADS, Access::Write, &s);
        assert!(read.admits("workspace_id", Uuid::from_u128(20)));
        assert!(!write.admits("workspace_id", Uuid::from_u128(20)));
        assert!(write.admits("workspace_id", Uuid::from_u128(21)));
    }

    #[test]
    fn members_cannot_change_their_organization() {
        let s = scope();
        assert!(
            scope_filter(&model::ORGANIZATIONS, Access::Read, &s).admits("id", Uuid::from_u128(10))
        );
        assert!(scope_filter(&model::ORGANIZATIONS, Access::Write, &s).is_nothing());
    }

    #[test]
    fn catalogues_are_read_by_all_and_written_by_admins() {
        let mut s = scope();
        assert_eq!(
            scope_filter(&model::SUBSCRIPTION_PLANS, Access::Read, &s),
            ScopeFilter::All
        );
        assert!(scope_filter(&model::SUBSCRIPTION_PLANS, Access::Write, &s).is_nothing());
        s.system_admin = true;
        assert_eq!(
            scope_filter(&model::SUBSCRIPTION_PLANS, Access::Write, &s),
            ScopeFilter::All
        );
    }

    #[test]
    fn the_audit_log_is_for_admins_only() {
        let mut s = scope();
        assert!(scope_filter(&model::AUDIT_LOG, Access::Read, &s).is_nothing());
        s.system_admin = true;
        assert_eq!(
            scope_filter(&model::AUDIT_LOG, Access::Read, &s),
            ScopeFilter::All
        );
        assert!(scope_filter(&model::AUDIT_LOG, Access::Write, &s).is_nothing());
    }
}
