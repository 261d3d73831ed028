//! `WriteOp::OwnershipChange` and `WriteOp::AccountCloses`: who owns an organization
//! changes one decision at a time, on the memberships as committed. Written once for both
//! engines over [`Exec`].
//!
//! Locks are always taken in one order, so two batches never wait on each other in a
//! circle: a user's row (the account closing, or the one made an owner), then
//! organizations' rows in id order. On SQLite the writer's lock orders everything.

use ceneca_domain::schema::{Field, Kind, field};
use ceneca_domain::{Value, model};
use uuid::Uuid;

use crate::ops::Exec;
use crate::sql::{Dialect, Sql};
use crate::write::WriteOp;
use crate::{Result, StoreError};

const LAST_OWNER: &str = "an organization must keep at least one owner whose account is active";
const OWNERS_ONLY: &str = "only owners may grant, change or remove the owner role";
const OWNER_CLOSED: &str = "an owner must be an active account";
const CLOSING_OWNER: &str = "this account is the last active owner of an organization: hand it \
     over to another owner, or delete the organization, before closing the account";

/// An account that may act: not closed, not suspended.
const ACTIVE: &str = "u.deleted_at IS NULL AND u.status = 'active'";

static ID: Field = field("id", Kind::Uuid);
static ORGANIZATION: Field = field("organization_id", Kind::Uuid);

/// Checks every ownership operation of a batch, locks in the one order.
pub(crate) async fn check_batch<E: Exec>(exec: &mut E, ops: &[WriteOp]) -> Result<()> {
    for op in ops {
        if let WriteOp::AccountCloses { user } = op {
            account_closes(exec, *user).await?;
        }
    }
    let mut changes: Vec<_> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::OwnershipChange {
                organization,
                member,
                actor,
                grants_owner,
                grantee,
            } => Some((*organization, *member, *actor, *grants_owner, *grantee)),
            _ => None,
        })
        .collect();
    changes.sort_by_key(|c| c.0);
    for (organization, member, actor, grants_owner, grantee) in changes {
        change(exec, organization, member, actor, grants_owner, grantee).await?;
    }
    Ok(())
}

fn bind_id(sql: &mut Sql, d: &dyn Dialect, id: Uuid) -> String {
    sql.bind(d, Value::Id(id), Kind::Uuid)
}

/// Locks a row of `table` until the commit; whether it exists.
async fn lock<E: Exec>(exec: &mut E, table: &str, id: Uuid) -> Result<bool> {
    let d = exec.dialect();
    let mut sql = Sql::default();
    let mark = bind_id(&mut sql, d, id);
    sql.text = format!("SELECT id FROM {table} WHERE id = {mark}{}", d.lock_rows());
    Ok(!exec.fetch_columns(&[&ID], &sql).await?.is_empty())
}

/// Checks one change to `organization`'s owners; see `WriteOp::OwnershipChange`.
async fn change<E: Exec>(
    exec: &mut E,
    organization: Uuid,
    member: Option<Uuid>,
    actor: Option<Uuid>,
    grants_owner: bool,
    grantee: Option<Uuid>,
) -> Result<()> {
    if grants_owner && let Some(grantee) = grantee {
        // The user's row first: an account closing holds it while it checks the
        // organizations it owns, so it cannot miss an ownership granted meanwhile.
        lock(exec, "users", grantee).await?;
        if !is_active(exec, grantee).await? {
            return Err(StoreError::Refused(OWNER_CLOSED));
        }
    }
    if !lock(exec, "organizations", organization).await? {
        return Ok(()); // no such organization: the write itself finds nothing
    }
    let role = model::ORGANIZATION_MEMBERS
        .field("role")
        .ok_or_else(|| StoreError::Backend("organization_members.role".into()))?;
    let was_owner = match member {
        Some(member) => {
            let sql = member_role(exec.dialect(), organization, member);
            is_owner(&exec.fetch_columns(&[role], &sql).await?)
        }
        None => false,
    };
    if !was_owner && !grants_owner {
        return Ok(());
    }
    if let Some(actor) = actor {
        let sql = actor_role(exec.dialect(), organization, actor);
        if !is_owner(&exec.fetch_columns(&[role], &sql).await?) {
            return Err(StoreError::Refused(OWNERS_ONLY));
        }
    }
    if was_owner && !grants_owner {
        let sql = other_owner(exec.dialect(), organization, Leaving::Member(member));
        if exec.fetch_columns(&[&ID], &sql).await?.is_empty() {
            return Err(StoreError::MustKeep(LAST_OWNER));
        }
    }
    Ok(())
}

/// Checks an account closing; see `WriteOp::AccountCloses`.
async fn account_closes<E: Exec>(exec: &mut E, user: Uuid) -> Result<()> {
    lock(exec, "users", user).await?;
    // The organizations it owns, as committed; those in the bin do not need an owner.
    let d = exec.dialect();
    let mut sql = Sql::default();
    let u = bind_id(&mut sql, d, user);
    sql.text = format!(
        "SELECT m.organization_id FROM organization_members m \
         JOIN organizations o ON o.id = m.organization_id \
         WHERE m.user_id = {u} AND m.role = 'owner' AND o.deleted_at IS NULL \
         ORDER BY m.organization_id"
    );
    let owned: Vec<Uuid> = exec
        .fetch_columns(&[&ORGANIZATION], &sql)
        .await?
        .iter()
        .filter_map(|row| row.id_of("organization_id"))
        .collect();
    for organization in owned {
        lock(exec, "organizations", organization).await?;
        let sql = other_owner(exec.dialect(), organization, Leaving::User(user));
        if exec.fetch_columns(&[&ID], &sql).await?.is_empty() {
            return Err(StoreError::MustKeep(CLOSING_OWNER));
        }
    }
    Ok(())
}

fn is_owner(rows: &[ceneca_domain::Record]) -> bool {
    rows.first()
        .and_then(|row| row.get("role"))
        .and_then(Value::as_str)
        == Some("owner")
}

async fn is_active<E: Exec>(exec: &mut E, user: Uuid) -> Result<bool> {
    let d = exec.dialect();
    let mut sql = Sql::default();
    let u = bind_id(&mut sql, d, user);
    sql.text = format!("SELECT u.id FROM users u WHERE u.id = {u} AND {ACTIVE}");
    Ok(!exec.fetch_columns(&[&ID], &sql).await?.is_empty())
}

/// The role of membership `member` of the organization, as committed.
fn member_role(d: &dyn Dialect, organization: Uuid, member: Uuid) -> Sql {
    let mut sql = Sql::default();
    let (m, o) = (
        bind_id(&mut sql, d, member),
        bind_id(&mut sql, d, organization),
    );
    sql.text =
        format!("SELECT role FROM organization_members WHERE id = {m} AND organization_id = {o}");
    sql
}

/// The role in the organization of `user`, while their account is active.
fn actor_role(d: &dyn Dialect, organization: Uuid, user: Uuid) -> Sql {
    let mut sql = Sql::default();
    let (o, u) = (
        bind_id(&mut sql, d, organization),
        bind_id(&mut sql, d, user),
    );
    sql.text = format!(
        "SELECT m.role FROM organization_members m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = {o} AND m.user_id = {u} AND {ACTIVE}"
    );
    sql
}

/// Who leaves the owners.
enum Leaving {
    /// A membership (none: nobody, a new one).
    Member(Option<Uuid>),
    /// Every membership of a user (an account closing).
    User(Uuid),
}

/// An owner's membership of an active account, other than what leaves.
fn other_owner(d: &dyn Dialect, organization: Uuid, leaving: Leaving) -> Sql {
    let mut sql = Sql::default();
    let o = bind_id(&mut sql, d, organization);
    let mut text = format!(
        "SELECT m.id FROM organization_members m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = {o} AND m.role = 'owner' AND {ACTIVE}"
    );
    match leaving {
        Leaving::Member(Some(member)) => {
            let m = bind_id(&mut sql, d, member);
            text.push_str(&format!(" AND m.id <> {m}"));
        }
        Leaving::Member(None) => {}
        Leaving::User(user) => {
            let u = bind_id(&mut sql, d, user);
            text.push_str(&format!(" AND m.user_id <> {u}"));
        }
    }
    text.push_str(" LIMIT 1");
    sql.text = text;
    sql
}
