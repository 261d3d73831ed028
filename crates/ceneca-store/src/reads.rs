//! Reads that precede a scope — the caller's scope itself and a session with its user —
//! written once for both engines over the [`Exec`] interface the write path uses. Each
//! engine runs them on one connection (a pooled reader on SQLite, a pooled connection on
//! PostgreSQL), so authenticating a request stays one round trip to the pool.

use ceneca_domain::dlp::DlpPolicy;
use ceneca_domain::roles::{OrgRole, WorkspaceRole};
use ceneca_domain::schema::{Field, Kind, field};
use ceneca_domain::scope::Scope;
use ceneca_domain::{Record, Value, model};
use uuid::Uuid;

use std::sync::OnceLock;

use crate::ops::Exec;
use crate::sql::{self, Dialect, Param, Sql};
use crate::{Engine, Result};

/// The columns of a membership row of the scope query: what is reached, the role held,
/// whether it is soft-deleted, its DLP policy, and (for workspaces) its organization and
/// that organization's DLP policy.
static MEMBERSHIP: [Field; 6] = [
    field("id", Kind::Uuid),
    field("role", Kind::Text { max: usize::MAX }),
    field("deleted", Kind::Bool),
    field("dlp_policy", Kind::Text { max: usize::MAX }),
    field("organization_id", Kind::Uuid),
    field("organization_dlp_policy", Kind::Text { max: usize::MAX }),
];

/// The statements of these reads, spelled once per engine: they run on every
/// authenticated request.
struct Statements {
    organizations: String,
    workspaces: String,
    rules: String,
    session: String,
    user: String,
    generation: String,
}

static STATEMENTS: [OnceLock<Statements>; 2] = [OnceLock::new(), OnceLock::new()];

impl Statements {
    fn of(dialect: &dyn Dialect) -> &'static Statements {
        let slot = match dialect.engine() {
            Engine::Sqlite => 0,
            Engine::Postgres => 1,
        };
        STATEMENTS[slot].get_or_init(|| Self::spell(dialect))
    }

    fn spell(d: &dyn Dialect) -> Self {
        let me = d.placeholder(1);
        let in_workspaces = d.in_set("workspace_id", &d.placeholder(2));
        let in_organizations = d.in_set("organization_id", &d.placeholder(3));
        Self {
            organizations: format!(
                "SELECT m.organization_id, m.role, o.deleted_at IS NOT NULL, o.dlp_policy
                 FROM organization_members m JOIN organizations o ON o.id = m.organization_id
                 WHERE m.user_id = {me}"
            ),
            workspaces: format!(
                "SELECT w.id,
                        CASE WHEN w.owner_user_id = {me} THEN 'admin'
                             WHEN w.organization_id IN (SELECT organization_id FROM organization_members
                                                        WHERE user_id = {me} AND role IN ('owner', 'admin')) THEN 'admin'
                             ELSE wm.role END,
                        w.deleted_at IS NOT NULL, w.dlp_policy, w.organization_id, o.dlp_policy
                 FROM workspaces w
                 LEFT JOIN organizations o ON o.id = w.organization_id
                 LEFT JOIN workspace_members wm ON wm.workspace_id = w.id AND wm.user_id = {me}
                 WHERE w.owner_user_id = {me} OR wm.user_id IS NOT NULL
                    OR w.organization_id IN (SELECT organization_id FROM organization_members
                                             WHERE user_id = {me} AND role IN ('owner', 'admin'))"
            ),
            rules: format!(
                "SELECT {} FROM permission_sets WHERE (subject_user_id = {me} OR (subject_type = 'role' AND
                 ({in_workspaces} OR {in_organizations})))
                 AND (workspace_id IS NULL OR workspace_id IN (SELECT id FROM workspaces WHERE deleted_at IS NULL))
                 AND (organization_id IS NULL OR organization_id IN (SELECT id FROM organizations WHERE deleted_at IS NULL))",
                sql::column_list(&model::PERMISSION_SETS),
            ),
            session: format!(
                "SELECT {} FROM sessions WHERE token_hash = {me}",
                sql::column_list(&model::SESSIONS)
            ),
            user: format!(
                "SELECT {} FROM users WHERE id = {me}",
                sql::column_list(&model::USERS)
            ),
            generation: "SELECT generation FROM auth_generation WHERE singleton = 1".into(),
        }
    }
}

fn param(value: Value, kind: Kind) -> Param {
    Param { value, kind }
}

/// A membership row: (id, role as stored, soft-deleted).
fn membership(row: &Record) -> Option<(Uuid, &str, bool)> {
    Some((
        row.id()?,
        row.get("role").and_then(Value::as_str).unwrap_or_default(),
        matches!(row.get("deleted"), Some(Value::Bool(true))),
    ))
}

/// A DLP policy column; unset (or `off`) is `None`.
fn dlp_policy(row: &Record, column: &str) -> Option<DlpPolicy> {
    Some(DlpPolicy::from_column(
        row.get(column).and_then(Value::as_str),
    ))
    .filter(|policy| *policy != DlpPolicy::Off)
}

/// The caller's organizations and workspaces with roles (live and soft-deleted), and the
/// permission rules that concern them. Rules of a soft-deleted workspace or organization
/// are dormant: its content is reached by restoring it, with the roles that allow that.
pub(crate) async fn load_scope<E: Exec>(
    exec: &mut E,
    user_id: Uuid,
    system_admin: bool,
) -> Result<Scope> {
    let statements = Statements::of(exec.dialect());
    let mut scope = Scope {
        user_id,
        system_admin,
        ..Scope::default()
    };
    let user = || vec![param(Value::Id(user_id), Kind::Uuid)];
    let organizations = Sql {
        text: statements.organizations.clone(),
        params: user(),
    };
    let workspaces = Sql {
        text: statements.workspaces.clone(),
        params: user(),
    };
    let columns: Vec<&Field> = MEMBERSHIP.iter().collect();
    for row in exec.fetch_columns(&columns[..4], &organizations).await? {
        let Some((id, role, deleted)) = membership(&row) else {
            continue;
        };
        let Some(role) = OrgRole::parse(role) else {
            continue;
        };
        if let Some(policy) = dlp_policy(&row, "dlp_policy")
            && !deleted
        {
            scope.organization_dlp.push((id, policy));
        }
        if deleted {
            &mut scope.deleted_organizations
        } else {
            &mut scope.organizations
        }
        .push((id, role));
    }
    for row in exec.fetch_columns(&columns, &workspaces).await? {
        let Some((id, role, deleted)) = membership(&row) else {
            continue;
        };
        let Some(role) = WorkspaceRole::parse(role) else {
            continue;
        };
        if let Some(org) = row.id_of("organization_id")
            && !deleted
        {
            scope.workspace_orgs.push((id, org));
        }
        let policy =
            dlp_policy(&row, "dlp_policy").max(dlp_policy(&row, "organization_dlp_policy"));
        if let Some(policy) = policy
            && !deleted
        {
            scope.workspace_dlp.push((id, policy));
        }
        if deleted {
            &mut scope.deleted_workspaces
        } else {
            &mut scope.workspaces
        }
        .push((id, role));
    }
    let rules = Sql {
        text: statements.rules.clone(),
        params: vec![
            param(Value::Id(user_id), Kind::Uuid),
            param(
                Value::IdSet(scope.workspaces.iter().map(|(w, _)| *w).collect()),
                Kind::Uuid,
            ),
            param(
                Value::IdSet(scope.organizations.iter().map(|(o, _)| *o).collect()),
                Kind::Uuid,
            ),
        ],
    };
    scope.permissions = exec
        .fetch(&model::PERMISSION_SETS, &rules)
        .await?
        .iter()
        .filter_map(crate::permission_rule)
        .collect();
    Ok(scope)
}

/// A session with its user and that user's scope, and the authentication counter read
/// before them.
#[derive(Debug, Clone)]
pub struct LoadedSession {
    /// Read first: a change that commits while the rest is read leaves this value behind
    /// the rows, never ahead of them, so a caller kept at it is read again next time.
    pub generation: i64,
    pub session: Record,
    pub user: Record,
    /// `system_admin` left false, for the service to decide.
    pub scope: Scope,
}

static GENERATION: [Field; 1] = [field(
    "generation",
    Kind::Int {
        min: i64::MIN,
        max: i64::MAX,
    },
)];

/// The authentication counter ([`crate::Store::auth_generation`]).
pub(crate) async fn auth_generation<E: Exec>(exec: &mut E) -> Result<i64> {
    let sql = Sql {
        text: Statements::of(exec.dialect()).generation.clone(),
        params: Vec::new(),
    };
    let columns: Vec<&Field> = GENERATION.iter().collect();
    exec.fetch_columns(&columns, &sql)
        .await?
        .first()
        .and_then(|row| row.get("generation").and_then(Value::as_int))
        .ok_or_else(|| crate::StoreError::Backend("auth_generation has no row".into()))
}

/// A session by the digest of its token, with its user and that user's scope.
pub(crate) async fn load_session<E: Exec>(
    exec: &mut E,
    token_hash: Vec<u8>,
) -> Result<Option<LoadedSession>> {
    let statements = Statements::of(exec.dialect());
    let generation = auth_generation(exec).await?;
    let by_hash = Sql {
        text: statements.session.clone(),
        params: vec![param(Value::Bytes(token_hash), Kind::Bytes)],
    };
    let Some(session) = exec
        .fetch(&model::SESSIONS, &by_hash)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let Some(user_id) = session.id_of("user_id") else {
        return Ok(None);
    };
    let by_id = Sql {
        text: statements.user.clone(),
        params: vec![param(Value::Id(user_id), Kind::Uuid)],
    };
    let Some(user) = exec.fetch(&model::USERS, &by_id).await?.into_iter().next() else {
        return Ok(None);
    };
    let scope = load_scope(exec, user_id, false).await?;
    Ok(Some(LoadedSession {
        generation,
        session,
        user,
        scope,
    }))
}
