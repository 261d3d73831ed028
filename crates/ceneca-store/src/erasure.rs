//! Erasure of an account (right to be forgotten) — written once for both engines over
//! [`Exec`].
//!
//! The service erases in rounds, each its own transaction, so an erase of a large account
//! never holds the writer for long and resumes where it stopped ([`work`] says what is
//! left, from the data as it is): first what goes whole (the organizations and personal
//! workspaces that were the account's alone, the threads it started that nobody else
//! wrote in, the messages and documents it wrote, where the organization deletes them),
//! each by the
//! purge (`crate::purge`: rows below, files, vectors, history, one `purge` change each);
//! then, in one last transaction ([`erase_account`]), the account itself:
//! - organizations it created pass to another owner, workspaces of organizations it
//!   created to nobody (their organization's owners keep them);
//! - every row that goes with it by the schema's cascade (`ceneca_domain::erasure`), with
//!   its history in the change log and its sync conflicts; devices of other members are
//!   told each such row went (a `delete` change; a revocation for a membership);
//! - the personal fields of every audit entry by it or about it (chain version 2: the
//!   chain still verifies, `ceneca_domain::audit`), then the erase's own entry, which
//!   accounts for them;
//! - the account's row.

use ceneca_domain::erasure::{OnErase, references};
use ceneca_domain::schema::{Field, Kind, field};
use ceneca_domain::{Entity, Record, Value, model};
use serde_json::json;
use uuid::Uuid;

use crate::ops::Exec;
use crate::sql::{self, COUNT, Dialect, Sql};
use crate::{Result, StoreError};

/// What is left to erase of an account before its last transaction, a round's worth of
/// each kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErasureWork {
    /// Why the account cannot be erased as things stand (shared places it alone holds),
    /// each said so its holder knows what to do. Nothing is erased while there is one.
    pub blockers: Vec<String>,
    /// Organizations that were the account's alone (nobody else in them), to purge.
    pub organizations: Vec<Uuid>,
    /// Its personal workspaces (outside any organization), to purge.
    pub workspaces: Vec<Uuid>,
    /// Threads it started where no other user wrote, in workspaces that delete what an
    /// erased member wrote, to purge.
    pub threads: Vec<Uuid>,
    /// Messages it wrote there, to purge.
    pub messages: Vec<Uuid>,
    /// Documents it wrote there (the change log's create entry says who: a document has
    /// no author column), to purge.
    pub documents: Vec<Uuid>,
}

impl ErasureWork {
    /// Whether only the last transaction is left.
    pub fn rounds_done(&self) -> bool {
        self.organizations.is_empty()
            && self.workspaces.is_empty()
            && self.threads.is_empty()
            && self.messages.is_empty()
            && self.documents.is_empty()
    }
}

/// Binds the account's id once; `{u}` in `text` stands for it.
fn with_user(d: &dyn Dialect, user: Uuid, text: &str) -> Sql {
    let mut sql = Sql::default();
    let u = sql.bind(d, Value::Id(user), Kind::Uuid);
    sql.text = text.replace("{u}", &u);
    sql
}

/// The ids a query reads in its `id` column.
async fn ids_of<E: Exec>(exec: &mut E, sql: &Sql) -> Result<Vec<Uuid>> {
    static ID: [Field; 1] = [field("id", Kind::Uuid)];
    let fields: Vec<&Field> = ID.iter().collect();
    Ok(exec
        .fetch_columns(&fields, sql)
        .await?
        .iter()
        .filter_map(|r| r.id_of("id"))
        .collect())
}

/// The ids of the rows of `entity` the change log records `user` creating, oldest first
/// (whether they still exist or not): who wrote content that names nobody. The literal
/// `operation = 'create'` lets both engines read the partial index made for it
/// (`sync_events__user_creates`, migration 17).
pub(crate) async fn created_by<E: Exec>(
    exec: &mut E,
    user: Uuid,
    entity: &Entity,
) -> Result<Vec<Uuid>> {
    let d = exec.dialect();
    let mut sql = Sql::default();
    let u = sql.bind(d, Value::Id(user), Kind::Uuid);
    let kind = sql.bind(
        d,
        Value::Text(entity.name.to_owned()),
        Kind::Text { max: 50 },
    );
    sql.text = format!(
        "SELECT entity_id AS id FROM sync_events
         WHERE user_id = {u} AND entity_type = {kind} AND operation = 'create'
         ORDER BY seq"
    );
    ids_of(exec, &sql).await
}

/// Anyone but the account in the organization `o.id`: a member, or a member of one of
/// its workspaces.
const OTHERS_IN_ORGANIZATION: &str = "(EXISTS (SELECT 1 FROM organization_members om
        WHERE om.organization_id = o.id AND om.user_id <> {u})
     OR EXISTS (SELECT 1 FROM workspace_members wm JOIN workspaces ow ON ow.id = wm.workspace_id
        WHERE ow.organization_id = o.id AND wm.user_id <> {u}))";

/// The organizations the account holds: it created them, or it is one of their owners.
const HELD: &str = "(o.owner_user_id = {u} OR EXISTS (SELECT 1 FROM organization_members hm
        WHERE hm.organization_id = o.id AND hm.user_id = {u} AND hm.role = 'owner'))";

/// The workspaces where what an erased member wrote is kept without its author.
const ANONYMISING: &str = "(SELECT aw.id FROM workspaces aw JOIN organizations ao
        ON ao.id = aw.organization_id WHERE ao.erasure = 'anonymise')";

/// Whether the message or attachment `alias` was posted by the account `{u}`: its author,
/// or — for a row without one (an assistant's reply, a file) — the account whose change
/// created it, as the change log recorded. A row the log no longer tells about is taken
/// for someone else's: an erase keeps what it cannot prove was the account's.
fn posted_by(alias: &str, table: &str) -> String {
    // The entry must be about a row of this table: a client chooses the id of what it
    // creates (a pushed change), so a create of another entity under a message's id must
    // not pass for the message's.
    let kind = match table {
        "messages" => model::MESSAGES.name,
        "documents" => model::DOCUMENTS.name,
        _ => model::ATTACHMENTS.name,
    };
    let logged = format!(
        "EXISTS (SELECT 1 FROM sync_events pe WHERE pe.entity_id = {alias}.id
            AND pe.entity_type = '{kind}' AND pe.operation = 'create' AND pe.user_id = {{u}})"
    );
    match table {
        // Never unknown (a NULL author compared would be, and `NOT` of it too, which
        // would take a reply by someone else for the account's).
        "messages" => format!(
            "(({alias}.author_id IS NOT NULL AND {alias}.author_id = {{u}})
              OR ({alias}.author_id IS NULL AND {logged}))"
        ),
        _ => logged,
    }
}

/// Whether the row `alias` of `table` is what the account `{u}` wrote alone, which an
/// erase deletes (where the organization does not keep it): a message it wrote, a thread
/// it started in which every message was posted by it.
fn authored_alone(alias: &str, table: &str) -> String {
    match table {
        "threads" => format!(
            "{alias}.created_by = {{u}} AND NOT EXISTS (SELECT 1 FROM messages om
                WHERE om.thread_id = {alias}.id AND NOT {})",
            posted_by("om", "messages")
        ),
        "messages" => format!("{alias}.author_id = {{u}}"),
        "documents" => posted_by(alias, "documents"),
        _ => "1 = 0".to_owned(),
    }
}

/// Those of `ids` (rows of `entity`, locked by the caller) the account `user` still wrote
/// alone ([`authored_alone`]).
pub(crate) async fn still_authored_alone<E: Exec>(
    exec: &mut E,
    entity: &Entity,
    user: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Uuid>> {
    let d = exec.dialect();
    let mut sql = Sql::default();
    let u = sql.bind(d, Value::Id(user), Kind::Uuid);
    let set = sql.bind(d, Value::IdSet(ids.to_vec()), Kind::Uuid);
    sql.text = format!(
        "SELECT r.id FROM {} r WHERE {} AND {}",
        entity.table,
        d.in_set("r.id", &set),
        authored_alone("r", entity.table).replace("{u}", &u)
    );
    ids_of(exec, &sql).await
}

/// Keeps the files another account attached to the messages that go with `ids` (rows of
/// `entity`: messages, or threads and their messages), detached from them; returns them
/// as they are now.
pub(crate) async fn detach_others_files<E: Exec>(
    exec: &mut E,
    entity: &Entity,
    user: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Record>> {
    let d = exec.dialect();
    let mut sql = Sql::default();
    let u = sql.bind(d, Value::Id(user), Kind::Uuid);
    let set = sql.bind(d, Value::IdSet(ids.to_vec()), Kind::Uuid);
    // The column that ties a file to what goes, and the rows it names.
    let (column, parents) = match entity.table {
        "messages" => (
            "message_id",
            format!("SELECT id FROM messages WHERE {}", d.in_set("id", &set)),
        ),
        "threads" => (
            "message_id",
            format!(
                "SELECT id FROM messages WHERE {}",
                d.in_set("thread_id", &set)
            ),
        ),
        "documents" => (
            "document_id",
            format!("SELECT id FROM documents WHERE {}", d.in_set("id", &set)),
        ),
        _ => return Ok(Vec::new()),
    };
    let attachments = &model::ATTACHMENTS;
    sql.text = format!(
        "UPDATE attachments SET {column} = NULL
         WHERE {column} IN ({parents}) AND NOT {}
         RETURNING {}",
        posted_by("attachments", "attachments").replace("{u}", &u),
        sql::column_list(attachments)
    );
    exec.fetch(attachments, &sql).await
}

/// What is left to erase of `user`, at most `limit` rows of each kind.
pub(crate) async fn work<E: Exec>(exec: &mut E, user: Uuid, limit: u32) -> Result<ErasureWork> {
    let d = exec.dialect();
    let mut out = ErasureWork::default();
    let blocked_organizations = ids_of(
        exec,
        &with_user(
            d,
            user,
            &format!(
                "SELECT o.id FROM organizations o WHERE {HELD} AND {OTHERS_IN_ORGANIZATION}
                 AND NOT EXISTS (SELECT 1 FROM organization_members km JOIN users ku ON ku.id = km.user_id
                    WHERE km.organization_id = o.id AND km.user_id <> {{u}} AND km.role = 'owner'
                      AND ku.deleted_at IS NULL AND ku.erasing_since IS NULL)
                 ORDER BY o.id"
            ),
        ),
    )
    .await?;
    for id in blocked_organizations {
        out.blockers.push(format!(
            "organization {id} has other people in it and no other owner: make one of them an owner first"
        ));
    }
    let d = exec.dialect();
    let blocked_workspaces = ids_of(
        exec,
        &with_user(
            d,
            user,
            "SELECT w.id FROM workspaces w WHERE w.owner_user_id = {u} AND w.organization_id IS NULL
               AND EXISTS (SELECT 1 FROM workspace_members m WHERE m.workspace_id = w.id AND m.user_id <> {u})
             ORDER BY w.id",
        ),
    )
    .await?;
    for id in blocked_workspaces {
        out.blockers.push(format!(
            "workspace {id} is the account's own and has other members: remove them first (what they wrote there is the owner's and goes with it)"
        ));
    }
    if !out.blockers.is_empty() {
        return Ok(out);
    }
    let queries = [
        format!(
            "SELECT o.id FROM organizations o WHERE {HELD} AND NOT {OTHERS_IN_ORGANIZATION}
             ORDER BY o.id LIMIT {limit}"
        ),
        format!(
            "SELECT w.id FROM workspaces w WHERE w.owner_user_id = {{u}} AND w.organization_id IS NULL
             ORDER BY w.id LIMIT {limit}"
        ),
        // Its messages and the replies of assistants it posted go with the thread; a
        // thread another account posted in is theirs too and stays (without its author).
        // The same conditions the purge checks again (`still_authored_alone`).
        format!(
            "SELECT t.id FROM threads t WHERE {} AND t.workspace_id NOT IN {ANONYMISING}
             ORDER BY t.id LIMIT {limit}",
            authored_alone("t", "threads")
        ),
        format!(
            "SELECT m.id FROM messages m WHERE {} AND m.workspace_id NOT IN {ANONYMISING}
             ORDER BY m.id LIMIT {limit}",
            authored_alone("m", "messages")
        ),
        format!(
            "SELECT d.id FROM documents d WHERE {} AND d.workspace_id NOT IN {ANONYMISING}
             ORDER BY d.id LIMIT {limit}",
            authored_alone("d", "documents")
        ),
    ];
    let mut found = Vec::with_capacity(queries.len());
    for text in &queries {
        let sql = with_user(exec.dialect(), user, text);
        found.push(ids_of(exec, &sql).await?);
    }
    let mut found = found.into_iter();
    out.organizations = found.next().unwrap_or_default();
    out.workspaces = found.next().unwrap_or_default();
    out.threads = found.next().unwrap_or_default();
    out.messages = found.next().unwrap_or_default();
    out.documents = found.next().unwrap_or_default();
    Ok(out)
}

/// Refuses (`StoreError::MustKeep`) to bring back an account whose erase began: its row
/// is locked first, so an erase beginning at the same moment is decided before or after,
/// never in between.
pub(crate) async fn refuse_if_erasing<E: Exec>(exec: &mut E, user: Uuid) -> Result<()> {
    static SINCE: [Field; 1] = [field("erasing_since", Kind::Time)];
    let lock = exec.dialect().lock_rows();
    let sql = with_user(
        exec.dialect(),
        user,
        &format!("SELECT erasing_since FROM users WHERE id = {{u}}{lock}"),
    );
    let fields: Vec<&Field> = SINCE.iter().collect();
    let erasing = exec
        .fetch_columns(&fields, &sql)
        .await?
        .first()
        .and_then(|r| r.get("erasing_since"))
        .is_some_and(|v| !v.is_null());
    if erasing {
        return Err(StoreError::MustKeep(
            "the account is being erased: it cannot be restored",
        ));
    }
    Ok(())
}

/// The accounts whose erase began and did not end.
pub(crate) async fn pending<E: Exec>(exec: &mut E) -> Result<Vec<Uuid>> {
    let sql = Sql {
        text: "SELECT id FROM users WHERE erasing_since IS NOT NULL ORDER BY erasing_since, id"
            .into(),
        ..Sql::default()
    };
    ids_of(exec, &sql).await
}

/// What the last transaction of an erase did, for the change log and the audit entry.
pub(crate) struct ErasedAccount {
    /// Organizations and workspaces handed over, as they are now (`owner_user_id`
    /// changed).
    pub handed_over: Vec<(&'static Entity, Record)>,
    /// Rows that went with the account (by the schema's cascade), as they were; their
    /// history is gone and each is logged as deleted.
    pub gone: Vec<(&'static Entity, Record)>,
    /// Rows that stay without the account as their author, creator or inviter (the
    /// reference set to `NULL`), as they are now, with the column: logged as changed, so
    /// devices forget the account too.
    pub unlinked: Vec<(&'static Entity, &'static str, Record)>,
    /// Change-log entries and sync conflicts dropped with them.
    pub changes_dropped: u64,
    pub conflicts_dropped: u64,
    /// Audit entries whose personal fields were erased, and those sealed before the
    /// chain could erase them (version 1), which keep theirs.
    pub audit_erased: u64,
    pub audit_kept: u64,
}

impl ErasedAccount {
    /// The erase's audit entry: ids and counts, never what was erased.
    pub(crate) fn details(&self, rounds: serde_json::Value) -> serde_json::Value {
        let mut removed = by_table(self.gone.iter().map(|(entity, _)| *entity));
        removed.insert("users", 1);
        let unlinked = by_table(self.unlinked.iter().map(|(entity, _, _)| *entity));
        let handed: Vec<String> = self
            .handed_over
            .iter()
            .filter_map(|(e, r)| Some(format!("{}/{}", e.table, r.id()?)))
            .collect();
        json!({
            "removed": removed,
            "unlinked": unlinked,
            "handed_over": handed,
            "changes_dropped": self.changes_dropped,
            "conflicts_dropped": self.conflicts_dropped,
            "audit_entries_erased": self.audit_erased,
            "audit_entries_kept": self.audit_kept,
            "rounds": rounds,
        })
    }
}

/// Deletes the change-log entries and sync conflicts `about` selects (on `entity_id`; the
/// change log also those `and_changes` adds), counting them into `out`.
async fn drop_history<E: Exec>(
    exec: &mut E,
    user: Uuid,
    about: &str,
    and_changes: &str,
    out: &mut ErasedAccount,
) -> Result<()> {
    let sql = with_user(
        exec.dialect(),
        user,
        &format!("DELETE FROM sync_events WHERE {about}{and_changes}"),
    );
    out.changes_dropped += exec.execute(&sql).await?;
    let sql = with_user(
        exec.dialect(),
        user,
        &format!("DELETE FROM sync_conflicts WHERE {about}"),
    );
    out.conflicts_dropped += exec.execute(&sql).await?;
    Ok(())
}

/// How many rows each table has in `rows`.
fn by_table<'a>(
    rows: impl Iterator<Item = &'a Entity>,
) -> std::collections::BTreeMap<&'a str, u64> {
    let mut out = std::collections::BTreeMap::new();
    for entity in rows {
        *out.entry(entity.table).or_insert(0) += 1;
    }
    out
}

/// The last transaction of an erase of `user` (see the module): refused with
/// `StoreError::MustKeep` while a place it holds would be left without an owner, and
/// `StoreError::NotFound` when the account is not being erased (or no longer exists).
/// The erase's audit entry is appended by the caller after this, so it is not erased.
pub(crate) async fn erase_account<E: Exec>(exec: &mut E, user: Uuid) -> Result<ErasedAccount> {
    let d = exec.dialect();
    let lock = d.lock_rows();
    let sql = with_user(
        d,
        user,
        &format!("SELECT id FROM users WHERE id = {{u}} AND erasing_since IS NOT NULL{lock}"),
    );
    if ids_of(exec, &sql).await?.is_empty() {
        return Err(StoreError::NotFound);
    }
    let mut out = ErasedAccount {
        handed_over: Vec::new(),
        gone: Vec::new(),
        unlinked: Vec::new(),
        changes_dropped: 0,
        conflicts_dropped: 0,
        audit_erased: 0,
        audit_kept: 0,
    };

    // Hand over what it created: organizations to their longest-standing other owner
    // with an open account, workspaces of organizations to nobody.
    let organizations = &model::ORGANIZATIONS;
    let sql = with_user(
        exec.dialect(),
        user,
        &format!(
            "UPDATE organizations SET owner_user_id = (
                SELECT m.user_id FROM organization_members m JOIN users x ON x.id = m.user_id
                WHERE m.organization_id = organizations.id AND m.user_id <> {{u}} AND m.role = 'owner'
                  AND x.deleted_at IS NULL AND x.erasing_since IS NULL
                ORDER BY m.created_at, m.user_id LIMIT 1)
             WHERE owner_user_id = {{u}} AND EXISTS (
                SELECT 1 FROM organization_members m JOIN users x ON x.id = m.user_id
                WHERE m.organization_id = organizations.id AND m.user_id <> {{u}} AND m.role = 'owner'
                  AND x.deleted_at IS NULL AND x.erasing_since IS NULL)
             RETURNING {}",
            sql::column_list(organizations)
        ),
    );
    for row in exec.fetch(organizations, &sql).await? {
        out.handed_over.push((organizations, row));
    }
    let workspaces = &model::WORKSPACES;
    let sql = with_user(
        exec.dialect(),
        user,
        &format!(
            "UPDATE workspaces SET owner_user_id = NULL
             WHERE owner_user_id = {{u}} AND organization_id IS NOT NULL
             RETURNING {}",
            sql::column_list(workspaces)
        ),
    );
    for row in exec.fetch(workspaces, &sql).await? {
        out.handed_over.push((workspaces, row));
    }
    // Whatever it still holds would go with it by the cascade: an organization others are
    // in with no other owner, a personal workspace (the rounds purge those first).
    let sql = with_user(
        exec.dialect(),
        user,
        "SELECT id FROM organizations WHERE owner_user_id = {u}
         UNION ALL SELECT id FROM workspaces WHERE owner_user_id = {u}",
    );
    if !ids_of(exec, &sql).await?.is_empty() {
        return Err(StoreError::MustKeep(
            "the account still holds an organization or a workspace that others are in: hand it over first",
        ));
    }

    // What stays without the account: the reference cleared here rather than by the
    // schema, so each change is logged and devices clear it too.
    for (entity, column, on) in references() {
        if on != OnErase::Unlinked || !entity.changelog {
            continue;
        }
        let sql = with_user(
            exec.dialect(),
            user,
            &format!(
                "UPDATE {table} SET {column} = NULL WHERE {column} = {{u}} RETURNING {}",
                sql::column_list(entity),
                table = entity.table
            ),
        );
        for row in exec.fetch(entity, &sql).await? {
            out.unlinked.push((entity, column, row));
        }
    }

    // What goes with the account: read (to tell other devices), then its history.
    for (entity, column, on) in references() {
        if on != OnErase::Goes || entity.table == "users" {
            continue;
        }
        let sql = with_user(
            exec.dialect(),
            user,
            &format!(
                "SELECT {} FROM {} WHERE {column} = {{u}}",
                sql::column_list(entity),
                entity.table
            ),
        );
        let rows = exec.fetch(entity, &sql).await?;
        if rows.is_empty() {
            continue;
        }
        let rows_of = format!("SELECT id FROM {} WHERE {column} = {{u}}", entity.table);
        drop_history(
            exec,
            user,
            &format!("entity_id IN ({rows_of})"),
            "",
            &mut out,
        )
        .await?;
        out.gone.extend(rows.into_iter().map(|row| (entity, row)));
    }
    // The account's own history, and every change logged for it alone.
    drop_history(
        exec,
        user,
        "entity_id = {u}",
        " OR scope_user_id = {u}",
        &mut out,
    )
    .await?;

    // The audit trail keeps the ids and drops what is personal.
    let d = exec.dialect();
    let mut sql = Sql::default();
    let u = sql.bind(d, Value::Id(user), Kind::Uuid);
    let empty = sql.bind(d, Value::Json(json!({})), Kind::Object);
    sql.text = format!(
        "UPDATE audit_log SET source_ip = NULL, details = {empty}, personal_salt = NULL
         WHERE (actor_id = {u} OR resource_id = {u})
           AND personal_commitment IS NOT NULL AND personal_salt IS NOT NULL"
    );
    out.audit_erased = exec.execute(&sql).await?;
    static N: [Field; 1] = [field("n", COUNT)];
    let fields: Vec<&Field> = N.iter().collect();
    let sql = with_user(
        exec.dialect(),
        user,
        "SELECT COUNT(*) AS n FROM audit_log
         WHERE (actor_id = {u} OR resource_id = {u}) AND personal_commitment IS NULL",
    );
    out.audit_kept = exec
        .fetch_columns(&fields, &sql)
        .await?
        .first()
        .and_then(|r| r.get("n"))
        .and_then(Value::as_int)
        .unwrap_or(0)
        .max(0) as u64;

    let sql = with_user(exec.dialect(), user, "DELETE FROM users WHERE id = {u}");
    if exec.execute(&sql).await? != 1 {
        return Err(StoreError::NotFound);
    }
    Ok(out)
}
