//! The caller's scope and the SQL-side filters derived from it (DESIGN.md §3 rule 1).
//!
//! A [`Scope`] is loaded once per request: the organizations and workspaces the caller
//! belongs to, with roles. [`scope_filter`] turns it into a [`ScopeFilter`] for one entity
//! and one operation; the store puts that filter into the `WHERE` clause of every read and
//! write, so tenant isolation is enforced by the query itself, never by filtering results.

use uuid::Uuid;

use crate::dlp::DlpPolicy;
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
    /// The organization of each workspace above that belongs to one.
    pub workspace_orgs: Vec<(Uuid, Uuid)>,
    /// Permission sets that may concern the caller (by user, or by a role they hold).
    pub permissions: Vec<PermissionRule>,
    /// The DLP policies set on the organizations above (those set, live ones only).
    pub organization_dlp: Vec<(Uuid, DlpPolicy)>,
    /// The DLP policy of each workspace above that has one: the stricter of its own and
    /// its organization's.
    pub workspace_dlp: Vec<(Uuid, DlpPolicy)>,
}

impl Scope {
    /// The DLP policy set on `workspace` (the stricter of its own and its organization's),
    /// if the scope knows the workspace; `None` when it does not.
    pub fn workspace_dlp_policy(&self, workspace: Uuid) -> Option<DlpPolicy> {
        if let Some((_, policy)) = self.workspace_dlp.iter().find(|(w, _)| *w == workspace) {
            return Some(*policy);
        }
        self.workspaces
            .iter()
            .any(|(w, _)| *w == workspace)
            .then_some(DlpPolicy::Off)
    }

    /// The DLP policy set on `organization`, if the scope knows it.
    pub fn organization_dlp_policy(&self, organization: Uuid) -> Option<DlpPolicy> {
        if let Some((_, policy)) = self
            .organization_dlp
            .iter()
            .find(|(o, _)| *o == organization)
        {
            return Some(*policy);
        }
        self.organizations
            .iter()
            .any(|(o, _)| *o == organization)
            .then_some(DlpPolicy::Off)
    }

    /// Whether any organization or workspace of the scope sets a policy.
    pub fn sets_dlp(&self) -> bool {
        !self.organization_dlp.is_empty() || !self.workspace_dlp.is_empty()
    }
}

/// Who a permission set is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(Uuid),
    /// Everyone holding this role where the rule is set (a workspace or organization role).
    Role(String),
}

/// One permission set row: allow or deny `actions` on a resource type (or one resource)
/// inside a workspace or an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionRule {
    pub organization_id: Option<Uuid>,
    pub workspace_id: Option<Uuid>,
    pub subject: Subject,
    /// An entity's path or table name, or `*`.
    pub resource_type: String,
    pub resource_id: Option<Uuid>,
    pub actions: Vec<String>,
    pub allow: bool,
}

impl PermissionRule {
    /// Rules speak about content: tables that govern access (members, rules) are never
    /// concerned, even by `*`, so no rule can let anyone change who has access.
    fn concerns(&self, entity: &Entity, action: &str) -> bool {
        if crate::credential::ACCESS_TABLES.contains(&entity.table) {
            return false;
        }
        let resource = self.resource_type == "*"
            || self.resource_type == entity.path
            || self.resource_type == entity.table;
        resource && self.actions.iter().any(|a| a == action || a == "admin")
    }

    fn applies_to(&self, scope: &Scope) -> bool {
        match &self.subject {
            Subject::User(id) => *id == scope.user_id,
            Subject::Role(role) => match (self.workspace_id, self.organization_id) {
                (Some(ws), _) => scope.workspace_role(ws).is_some_and(|r| r.as_str() == role),
                (None, Some(org)) => scope.org_role(org).is_some_and(|r| r.as_str() == role),
                (None, None) => false,
            },
        }
    }

    /// The workspaces the rule covers: its own, or those of its organization in scope.
    fn workspaces(&self, scope: &Scope) -> Vec<Uuid> {
        match (self.workspace_id, self.organization_id) {
            (Some(ws), _) => vec![ws],
            (None, Some(org)) => scope.org_workspaces(org),
            (None, None) => Vec::new(),
        }
    }
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
    /// The caller's live workspaces that belong to organization `org`.
    pub fn org_workspaces(&self, org: Uuid) -> Vec<Uuid> {
        self.workspace_orgs
            .iter()
            .filter(|(_, o)| *o == org)
            .map(|(w, _)| *w)
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

/// Single resources named by permission rules, each admitted only inside the workspace
/// whose rule named it. A rule speaks only for its own workspace (DESIGN.md §3 rule 8): a
/// rule that names another tenant's id must match nothing, so the id never travels alone
/// into SQL — it is always paired with the workspace that owns the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcesIn {
    pub workspace_id: Uuid,
    pub ids: Vec<Uuid>,
}

/// A tenant filter for SQL: rows match when any clause's column holds one of its ids.
#[derive(Debug, Clone, PartialEq)]
pub enum ScopeFilter {
    /// No restriction (system administrators on admin paths, public catalogues).
    All,
    /// `column IN ids` for any clause; no clause (or only empty ones) matches nothing.
    AnyOf(Vec<(&'static str, Vec<Uuid>)>),
    /// Rows the inner filter admits, and these resources (granted by permission sets).
    Plus(Box<ScopeFilter>, Vec<ResourcesIn>),
    /// Rows the inner filter admits, except these resources (denied by permission sets).
    Except(Box<ScopeFilter>, Vec<ResourcesIn>),
}

impl ScopeFilter {
    pub const NOTHING: ScopeFilter = ScopeFilter::AnyOf(Vec::new());

    /// Whether a row with these owner column values passes the filter (used to authorize
    /// creates, where the row does not exist yet). Single granted resources never admit a
    /// new row: a grant on one document is not a right to create beside it.
    pub fn admits(&self, column: &str, id: Uuid) -> bool {
        match self {
            ScopeFilter::All => true,
            ScopeFilter::AnyOf(clauses) => clauses
                .iter()
                .any(|(c, ids)| *c == column && ids.contains(&id)),
            ScopeFilter::Plus(inner, _) | ScopeFilter::Except(inner, _) => inner.admits(column, id),
        }
    }

    /// Whether the resource `id` of `workspace` passes the filter.
    pub fn admits_resource(&self, workspace: Uuid, id: Uuid) -> bool {
        let named = |sets: &[ResourcesIn]| {
            sets.iter()
                .any(|s| s.workspace_id == workspace && s.ids.contains(&id))
        };
        match self {
            ScopeFilter::All => true,
            ScopeFilter::AnyOf(clauses) => clauses.iter().any(|(c, ids)| match *c {
                "workspace_id" => ids.contains(&workspace),
                "id" => ids.contains(&id),
                _ => false,
            }),
            ScopeFilter::Plus(inner, granted) => {
                inner.admits_resource(workspace, id) || named(granted)
            }
            ScopeFilter::Except(inner, denied) => {
                inner.admits_resource(workspace, id) && !named(denied)
            }
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
            // Exclusions stay exclusions: a denied resource is not readmitted.
            (ScopeFilter::Except(inner, ids), other) | (other, ScopeFilter::Except(inner, ids)) => {
                ScopeFilter::Except(Box::new(inner.or(other)), ids)
            }
            (ScopeFilter::Plus(inner, ids), other) | (other, ScopeFilter::Plus(inner, ids)) => {
                ScopeFilter::Plus(Box::new(inner.or(other)), ids)
            }
        }
    }

    pub fn is_nothing(&self) -> bool {
        match self {
            ScopeFilter::All => false,
            ScopeFilter::AnyOf(clauses) => clauses.iter().all(|(_, ids)| ids.is_empty()),
            ScopeFilter::Plus(inner, granted) => {
                inner.is_nothing() && granted.iter().all(|g| g.ids.is_empty())
            }
            ScopeFilter::Except(inner, _) => inner.is_nothing(),
        }
    }

    /// The workspaces whose rows the filter admits as a whole (`None`: every workspace),
    /// the single resources it grants beyond them, and those it denies — for indexes that
    /// filter by payload instead of SQL (the vector index).
    pub fn workspace_view(&self) -> WorkspaceView {
        match self {
            ScopeFilter::All => WorkspaceView::default(),
            ScopeFilter::AnyOf(clauses) => WorkspaceView {
                workspaces: Some(
                    clauses
                        .iter()
                        .filter(|(c, _)| *c == "workspace_id")
                        .flat_map(|(_, ids)| ids.iter().copied())
                        .collect(),
                ),
                ..WorkspaceView::default()
            },
            ScopeFilter::Plus(inner, granted) => {
                let mut view = inner.workspace_view();
                view.granted.extend(pairs(granted));
                view
            }
            ScopeFilter::Except(inner, denied) => {
                let mut view = inner.workspace_view();
                view.denied.extend(pairs(denied));
                view
            }
        }
    }
}

fn pairs(sets: &[ResourcesIn]) -> impl Iterator<Item = (Uuid, Uuid)> + '_ {
    sets.iter()
        .flat_map(|s| s.ids.iter().map(move |id| (s.workspace_id, *id)))
}

/// A [`ScopeFilter`] seen by workspace: see [`ScopeFilter::workspace_view`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkspaceView {
    pub workspaces: Option<Vec<Uuid>>,
    /// `(workspace, resource)` pairs granted beyond `workspaces`.
    pub granted: Vec<(Uuid, Uuid)>,
    /// `(workspace, resource)` pairs denied.
    pub denied: Vec<(Uuid, Uuid)>,
}

/// Role-based workspaces, adjusted by the permission sets that concern the caller: allows
/// add workspaces (or single resources), denies remove them, and deny always wins.
///
/// Every rule acts only inside the workspaces it belongs to (its own, or for an
/// organization rule the caller's workspaces of that organization): a single-resource
/// rule becomes the pair (rule workspace, id), so a rule naming a row of another tenant,
/// or naming a user of another tenant, can neither open nor hide anything outside the
/// authority of whoever administers the rule.
fn with_permissions(
    entity: &Entity,
    access: Access,
    scope: &Scope,
    mut workspaces: Vec<Uuid>,
) -> ScopeFilter {
    let action = match access {
        Access::Read => "read",
        Access::Write => "write",
        Access::Delete | Access::Restore => "delete",
    };
    let rules: Vec<&PermissionRule> = scope
        .permissions
        .iter()
        .filter(|r| r.concerns(entity, action) && r.applies_to(scope))
        .collect();
    if rules.is_empty() {
        return single("workspace_id", workspaces);
    }
    let (whole, single_resource): (Vec<&PermissionRule>, Vec<&PermissionRule>) =
        rules.into_iter().partition(|r| r.resource_id.is_none());
    let denied: Vec<Uuid> = whole
        .iter()
        .filter(|r| !r.allow)
        .flat_map(|r| r.workspaces(scope))
        .collect();
    workspaces.extend(
        whole
            .iter()
            .filter(|r| r.allow)
            .flat_map(|r| r.workspaces(scope)),
    );
    workspaces.retain(|w| !denied.contains(w));
    workspaces.sort();
    workspaces.dedup();
    let mut granted: Vec<ResourcesIn> = Vec::new();
    let mut refused: Vec<ResourcesIn> = Vec::new();
    for rule in single_resource {
        let Some(id) = rule.resource_id else {
            continue;
        };
        for workspace in rule.workspaces(scope) {
            let sets = match rule.allow {
                true if denied.contains(&workspace) => continue,
                true => &mut granted,
                false => &mut refused,
            };
            match sets.iter_mut().find(|s| s.workspace_id == workspace) {
                Some(set) if set.ids.contains(&id) => {}
                Some(set) => set.ids.push(id),
                None => sets.push(ResourcesIn {
                    workspace_id: workspace,
                    ids: vec![id],
                }),
            }
        }
    }
    let mut filter = single("workspace_id", workspaces);
    if !granted.is_empty() {
        filter = ScopeFilter::Plus(Box::new(filter), granted);
    }
    if !refused.is_empty() {
        filter = ScopeFilter::Except(Box::new(filter), refused);
    }
    filter
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
            with_permissions(entity, access, scope, scope.workspaces_with(least))
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

    fn rule(
        ws: u128,
        subject: Subject,
        resource: &str,
        id: Option<u128>,
        actions: &[&str],
        allow: bool,
    ) -> PermissionRule {
        PermissionRule {
            organization_id: None,
            workspace_id: Some(Uuid::from_u128(ws)),
            subject,
            resource_type: resource.into(),
            resource_id: id.map(Uuid::from_u128),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            allow,
        }
    }

    #[test]
    fn permission_sets_allow_deny_and_deny_wins() {
        let mut s = scope();
        // Editors of workspace 21 may not delete documents; threads are untouched.
        s.permissions.push(rule(
            21,
            Subject::Role("editor".into()),
            "documents",
            None,
            &["delete"],
            false,
        ));
        assert!(
            !scope_filter(&model::DOCUMENTS, Access::Delete, &s)
                .admits("workspace_id", Uuid::from_u128(21))
        );
        assert!(
            scope_filter(&model::THREADS, Access::Delete, &s)
                .admits("workspace_id", Uuid::from_u128(21))
        );
        assert!(
            scope_filter(&model::DOCUMENTS, Access::Write, &s)
                .admits("workspace_id", Uuid::from_u128(21))
        );
        // A user rule shares threads of a workspace the user has no role in.
        s.permissions.push(rule(
            99,
            Subject::User(s.user_id),
            "threads",
            None,
            &["read"],
            true,
        ));
        assert!(
            scope_filter(&model::THREADS, Access::Read, &s)
                .admits("workspace_id", Uuid::from_u128(99))
        );
        assert!(
            !scope_filter(&model::MESSAGES, Access::Read, &s)
                .admits("workspace_id", Uuid::from_u128(99))
        );
        // Deny wins over allow.
        s.permissions.push(rule(
            99,
            Subject::User(s.user_id),
            "*",
            None,
            &["read"],
            false,
        ));
        assert!(
            !scope_filter(&model::THREADS, Access::Read, &s)
                .admits("workspace_id", Uuid::from_u128(99))
        );
        // Rules for another user or another role do not apply.
        s.permissions.push(rule(
            20,
            Subject::User(Uuid::from_u128(2)),
            "*",
            None,
            &["read"],
            false,
        ));
        s.permissions.push(rule(
            20,
            Subject::Role("admin".into()),
            "*",
            None,
            &["read"],
            false,
        ));
        assert!(
            scope_filter(&model::THREADS, Access::Read, &s)
                .admits("workspace_id", Uuid::from_u128(20))
        );
        // A single resource can be denied.
        s.permissions.push(rule(
            20,
            Subject::User(s.user_id),
            "documents",
            Some(7),
            &["read"],
            false,
        ));
        assert!(
            matches!(scope_filter(&model::DOCUMENTS, Access::Read, &s), ScopeFilter::Except(_, denied) if denied == vec![ResourcesIn { workspace_id: Uuid::from_u128(20), ids: vec![Uuid::from_u128(7)] }])
        );
    }

    /// A property over random permission sets (owners, subjects and resource ids drawn
    /// from several tenants, allow and deny): the decision for a resource depends only on
    /// the caller's roles and the rules of the resource's own workspace (or its
    /// organization). So a rule never grants anything outside the authority of whoever
    /// administers it, and never takes anything from anyone elsewhere.
    #[test]
    fn permission_rules_act_only_inside_their_own_workspace() {
        // A small deterministic generator (xorshift): no dependency, reproducible.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let users: Vec<Uuid> = (0..4).map(|i| Uuid::from_u128(100 + i)).collect();
        let orgs: Vec<Uuid> = (0..3).map(|i| Uuid::from_u128(200 + i)).collect();
        // Workspaces 0..6; the even ones belong to an organization.
        let workspaces: Vec<(Uuid, Option<Uuid>)> = (0..6)
            .map(|i| {
                let org = (i % 2 == 0).then(|| orgs[i / 2]);
                (Uuid::from_u128(300 + i as u128), org)
            })
            .collect();
        // Resources, each in one workspace.
        let resources: Vec<(Uuid, Uuid)> = (0..24)
            .map(|i| (Uuid::from_u128(1000 + i as u128), workspaces[i % 6].0))
            .collect();
        let roles = ["admin", "editor", "viewer", "owner", "member"];
        let kinds = ["*", "documents", "threads"];
        let entities = [&model::DOCUMENTS, &model::THREADS];
        let accesses = [Access::Read, Access::Write, Access::Delete];
        for case in 0..3000 {
            let mut scope = Scope {
                user_id: users[0],
                ..Scope::default()
            };
            for (ws, org) in &workspaces {
                if next(2) == 0 {
                    let role = [
                        WorkspaceRole::Viewer,
                        WorkspaceRole::Editor,
                        WorkspaceRole::Admin,
                    ][next(3)];
                    scope.workspaces.push((*ws, role));
                    if let Some(org) = org {
                        scope.workspace_orgs.push((*ws, *org));
                    }
                }
            }
            for org in &orgs {
                if next(3) == 0 {
                    scope
                        .organizations
                        .push((*org, [OrgRole::Member, OrgRole::Admin][next(2)]));
                }
            }
            for _ in 0..next(6) {
                let (ws, org) = workspaces[next(6)];
                let org_rule = org.is_some() && next(3) == 0;
                scope.permissions.push(PermissionRule {
                    organization_id: if org_rule { org } else { None },
                    workspace_id: if org_rule { None } else { Some(ws) },
                    subject: match next(3) {
                        0 => Subject::Role(roles[next(roles.len())].into()),
                        _ => Subject::User(users[next(users.len())]),
                    },
                    resource_type: kinds[next(kinds.len())].into(),
                    resource_id: (next(2) == 0).then(|| resources[next(resources.len())].0),
                    actions: vec![["read", "write", "delete", "admin"][next(4)].into()],
                    allow: next(2) == 0,
                });
            }
            let entity = entities[next(2)];
            let access = accesses[next(3)];
            let all = scope_filter(entity, access, &scope);
            for (id, ws) in &resources {
                let org = workspaces
                    .iter()
                    .find(|(w, _)| w == ws)
                    .and_then(|(_, o)| *o);
                let mut local = scope.clone();
                local.permissions.retain(|r| {
                    r.workspace_id == Some(*ws)
                        || (r.workspace_id.is_none() && r.organization_id == org)
                });
                let expected = scope_filter(entity, access, &local).admits_resource(*ws, *id);
                assert_eq!(
                    all.admits_resource(*ws, *id),
                    expected,
                    "case {case}: {access:?} on {} {id} in {ws}: rules elsewhere changed the answer\n{:#?}",
                    entity.table,
                    scope.permissions
                );
                // Without rules of its own workspace, only the caller's role decides.
                local.permissions.clear();
                let by_role = scope_filter(entity, access, &local).admits_resource(*ws, *id);
                let rules_here = scope.permissions.iter().any(|r| {
                    r.workspace_id == Some(*ws)
                        || (r.workspace_id.is_none() && r.organization_id == org)
                });
                if !rules_here {
                    assert_eq!(all.admits_resource(*ws, *id), by_role, "case {case}");
                }
            }
        }
    }

    #[test]
    fn permission_rules_never_open_membership() {
        let mut s = scope();
        for resource in ["*", "members", "workspace_members"] {
            s.permissions.push(rule(
                20,
                Subject::User(s.user_id),
                resource,
                None,
                &["admin"],
                true,
            ));
        }
        // A viewer of workspace 20 stays unable to change its members.
        assert!(
            !scope_filter(&model::WORKSPACE_MEMBERS, Access::Write, &s)
                .admits("workspace_id", Uuid::from_u128(20))
        );
        assert!(
            scope_filter(&model::THREADS, Access::Write, &s)
                .admits("workspace_id", Uuid::from_u128(20))
        );
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
