//! `WriteOp::OwnershipChange`: who owns an organization changes one decision at a time,
//! on the memberships as committed. Written once for both engines over [`Exec`].

use ceneca_domain::schema::Field;
use ceneca_domain::{Value, model};
use uuid::Uuid;

use crate::ops::Exec;
use crate::sql::{Dialect, Sql};
use crate::{Result, StoreError};

const LAST_OWNER: &str = "an organization must keep at least one owner";
const OWNERS_ONLY: &str = "only owners may grant, change or remove the owner role";

/// Checks one change to `organization`'s owners; see `WriteOp::OwnershipChange`.
pub(crate) async fn check<E: Exec>(
    exec: &mut E,
    organization: Uuid,
    member: Option<Uuid>,
    actor: Option<Uuid>,
    grants_owner: bool,
) -> Result<()> {
    let id = id_field()?;
    let role = role_field()?;
    // The organization's row, locked until the commit: every change to its owners takes
    // it first (on SQLite the writer's lock already orders them).
    let d = exec.dialect();
    let mut lock = Sql::default();
    let mark = lock.bind(
        d,
        Value::Id(organization),
        ceneca_domain::schema::Kind::Uuid,
    );
    lock.text = format!(
        "SELECT id FROM organizations WHERE id = {mark}{}",
        d.lock_rows()
    );
    if exec.fetch_columns(&[id], &lock).await?.is_empty() {
        return Ok(()); // no such organization: the write itself finds nothing
    }
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
        let sql = other_owner(exec.dialect(), organization, member);
        if exec.fetch_columns(&[id], &sql).await?.is_empty() {
            return Err(StoreError::MustKeep(LAST_OWNER));
        }
    }
    Ok(())
}

fn id_field() -> Result<&'static Field> {
    model::ORGANIZATION_MEMBERS
        .field("id")
        .ok_or_else(|| StoreError::Backend("organization_members.id".into()))
}

fn role_field() -> Result<&'static Field> {
    model::ORGANIZATION_MEMBERS
        .field("role")
        .ok_or_else(|| StoreError::Backend("organization_members.role".into()))
}

fn is_owner(rows: &[ceneca_domain::Record]) -> bool {
    rows.first()
        .and_then(|row| row.get("role"))
        .and_then(Value::as_str)
        == Some("owner")
}

fn uuid(sql: &mut Sql, d: &dyn Dialect, id: Uuid) -> String {
    sql.bind(d, Value::Id(id), ceneca_domain::schema::Kind::Uuid)
}

/// The role of membership `member` of the organization, as committed.
fn member_role(d: &dyn Dialect, organization: Uuid, member: Uuid) -> Sql {
    let mut sql = Sql::default();
    let (m, o) = (uuid(&mut sql, d, member), uuid(&mut sql, d, organization));
    sql.text =
        format!("SELECT role FROM organization_members WHERE id = {m} AND organization_id = {o}");
    sql
}

/// The role in the organization of `user`, while their account is open.
fn actor_role(d: &dyn Dialect, organization: Uuid, user: Uuid) -> Sql {
    let mut sql = Sql::default();
    let (o, u) = (uuid(&mut sql, d, organization), uuid(&mut sql, d, user));
    sql.text = format!(
        "SELECT m.role FROM organization_members m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = {o} AND m.user_id = {u} AND u.deleted_at IS NULL"
    );
    sql
}

/// An owner's membership other than `member`, of an open account.
fn other_owner(d: &dyn Dialect, organization: Uuid, member: Option<Uuid>) -> Sql {
    let mut sql = Sql::default();
    let o = uuid(&mut sql, d, organization);
    let mut text = format!(
        "SELECT m.id FROM organization_members m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = {o} AND m.role = 'owner' AND u.deleted_at IS NULL"
    );
    if let Some(member) = member {
        let m = uuid(&mut sql, d, member);
        text.push_str(&format!(" AND m.id <> {m}"));
    }
    text.push_str(" LIMIT 1");
    sql.text = text;
    sql
}
