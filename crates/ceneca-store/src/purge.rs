//! Purge: rows in the bin longer than `retention.purge_after_days` deleted for good —
//! written once for both engines over [`Exec`].
//!
//! What a purged row takes with it, in the same transaction:
//! - the rows below it, by the schema's foreign keys (a thread's messages, their
//!   attachments; everything of a workspace), and their embeddings, by the triggers of
//!   migration 0011, whose vector outbox entries take the points out of the index;
//! - their full-text entries (FTS5's triggers on SQLite; the `tsvector` is a column of the
//!   row on PostgreSQL);
//! - their history: every change-log entry about them (whose payloads copy their values)
//!   and every sync conflict that kept a losing value of theirs. In its place the log gets
//!   one `purge` change per purged row, carrying nothing but its id, so a device drops its
//!   own copy from its bin; a purged workspace or organization is told to each user who
//!   could hold it as a revocation, as when they lose access;
//! - their files: the attachments' rows go here, and the caller deletes the blobs no row
//!   names any more after the commit.
//!
//! The storage counters lose what was still counted: rows in the bin were uncounted when
//! they went there, but an attachment is counted while its message is in the bin (it is
//! not soft-deleted itself), and a message restored in a thread still in the bin is live.
//! A purged workspace's counters go with it.
//!
//! Entities are purged top down ([`PURGED`]): an organization before its workspaces, a
//! thread before its messages, so the rows below a purged one go by its cascade, with one
//! change logged for the lot. Rows a parent does not cascade to (a project's documents
//! and threads, whose reference is set to `NULL`) are purged as rows of their own.

use ceneca_domain::schema::{Field, Kind, field};
use ceneca_domain::{Entity, Record, Value, model};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;
use crate::ops::Exec;
use crate::sql::{self, COUNT, Dialect, Sql};

/// The soft-deleted entities a purge deletes, in the order it takes them. Users are not
/// among them: deleting an account for good is an erasure (what the user authored in
/// shared workspaces is deleted or anonymised), never a cascade.
pub static PURGED: [&Entity; 6] = [
    &model::ORGANIZATIONS,
    &model::WORKSPACES,
    &model::PROJECTS,
    &model::THREADS,
    &model::DOCUMENTS,
    &model::MESSAGES,
];

/// Which of the rows a purge is given it deletes: each is checked again inside the purge's
/// transaction, with the rows locked, so a row that changed since it was chosen stays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PurgeRule {
    /// Rows in the bin since before this time, with nothing live below them (retention).
    InBinSince(OffsetDateTime),
    /// Whatever their state here: their upstream purged them (a local node).
    Upstream,
    /// What the account wrote alone, in the bin or not (an erase, `crate::erasure`):
    /// messages it wrote, threads it started where every message is its own, documents
    /// whose create the change log records as its. Files another account attached to a
    /// message or a document that goes are kept, detached from it.
    AuthoredBy(Uuid),
}

impl PurgeRule {
    fn deleted_before(&self) -> Option<OffsetDateTime> {
        match self {
            PurgeRule::InBinSince(at) => Some(*at),
            _ => None,
        }
    }
}

/// A page of one entity's rows in the bin since before `deleted_before`, in
/// `(deleted_at, id)` order after `after` (a dry run, which deletes nothing, pages on).
#[derive(Debug, Clone)]
pub struct PurgeQuery {
    pub entity: &'static Entity,
    pub deleted_before: OffsetDateTime,
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// A row a purge would delete, with its position in the candidates' order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PurgeCandidate {
    pub id: Uuid,
    pub deleted_at: OffsetDateTime,
}

/// What purging some rows deletes besides them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PurgeFootprint {
    /// Attachments (every one: with a file or without) and the bytes of the files kept.
    pub attachments: u64,
    pub attachment_bytes: i64,
    pub embeddings: u64,
    /// Messages below the rows (a thread's, a workspace's), in the bin or not.
    pub messages: u64,
    /// Change-log entries about them, which go with them.
    pub changes: u64,
}

/// One page of the rows `query` covers.
pub(crate) async fn candidates<E: Exec>(
    exec: &mut E,
    query: &PurgeQuery,
) -> Result<Vec<PurgeCandidate>> {
    static COLUMNS: [Field; 2] = [field("id", Kind::Uuid), field("deleted_at", Kind::Time)];
    let d = exec.dialect();
    let mut sql = Sql::default();
    let before = sql.bind(d, Value::Time(query.deleted_before), Kind::Time);
    let after = match query.after {
        Some((at, id)) => {
            let at = sql.bind(d, Value::Time(at), Kind::Time);
            let id = sql.bind(d, Value::Id(id), Kind::Uuid);
            format!(" AND (r.deleted_at > {at} OR (r.deleted_at = {at} AND r.id > {id}))")
        }
        None => String::new(),
    };
    // A row whose parent is purged too goes with it, by the parent's cascade (taken
    // first): not a candidate of its own, or a dry run would count it twice.
    let places_purged = format!(
        "(SELECT w.id FROM workspaces w WHERE w.deleted_at < {before}
             OR w.organization_id IN (SELECT o.id FROM organizations o WHERE o.deleted_at < {before}))"
    );
    let table = query.entity.table;
    let with_no_purged_parent = match table {
        "organizations" => String::new(),
        "workspaces" => format!(
            " AND (r.organization_id IS NULL OR r.organization_id NOT IN
                   (SELECT o.id FROM organizations o WHERE o.deleted_at < {before}))"
        ),
        "messages" => format!(
            " AND r.workspace_id NOT IN {places_purged}
              AND r.thread_id NOT IN (SELECT t.id FROM threads t WHERE t.deleted_at < {before})"
        ),
        _ => format!(" AND r.workspace_id NOT IN {places_purged}"),
    };
    let nothing_live = nothing_live_below(table);
    // Spelled as the partial indexes `<table>__purge` are (migration 0015).
    sql.text = format!(
        "SELECT r.id, r.deleted_at FROM {table} r
         WHERE r.deleted_at IS NOT NULL AND r.deleted_at < {before}{after}{with_no_purged_parent}
           AND {nothing_live}
         ORDER BY r.deleted_at, r.id LIMIT {}",
        query.limit
    );
    let fields: Vec<&Field> = COLUMNS.iter().collect();
    Ok(exec
        .fetch_columns(&fields, &sql)
        .await?
        .iter()
        .filter_map(|r| {
            Some(PurgeCandidate {
                id: r.id_of("id")?,
                deleted_at: r.get("deleted_at")?.as_time()?,
            })
        })
        .collect())
}

/// That the row `r` of `table` has nothing live below it that its cascade would take: a
/// workspace restored out of an organization in the bin, a thread out of a workspace in
/// the bin, a message out of a thread in the bin. Such a row stays in the bin (its
/// deletion never reached what was restored) until what is live below it goes too.
fn nothing_live_below(table: &str) -> String {
    let content_in = |workspaces: &str| {
        ["projects", "threads", "documents", "messages"]
            .map(|t| {
                format!(
                    "NOT EXISTS (SELECT 1 FROM {t} lc WHERE lc.deleted_at IS NULL AND lc.workspace_id IN ({workspaces}))"
                )
            })
            .join(" AND ")
    };
    match table {
        "organizations" => format!(
            "NOT EXISTS (SELECT 1 FROM workspaces lw WHERE lw.organization_id = r.id AND lw.deleted_at IS NULL)
             AND {}",
            content_in("SELECT lo.id FROM workspaces lo WHERE lo.organization_id = r.id")
        ),
        "workspaces" => content_in("r.id"),
        "threads" => "NOT EXISTS (SELECT 1 FROM messages lm WHERE lm.thread_id = r.id AND lm.deleted_at IS NULL)"
            .to_owned(),
        _ => "1 = 1".to_owned(),
    }
}

/// The rows of `entity` whose ids the subquery `roots` yields, and what goes with them,
/// each as a subquery of ids: what the change log and the sync conflicts may name.
struct Doomed<'a> {
    entity: &'static Entity,
    roots: &'a str,
}

impl Doomed<'_> {
    /// The workspaces that go (a workspace's purge, an organization's), as a subquery.
    fn workspaces(&self) -> Option<String> {
        let roots = self.roots;
        if std::ptr::eq(self.entity, &model::WORKSPACES) {
            Some(roots.to_owned())
        } else if std::ptr::eq(self.entity, &model::ORGANIZATIONS) {
            Some(format!(
                "SELECT id FROM workspaces WHERE organization_id IN ({roots})"
            ))
        } else {
            None
        }
    }

    /// The messages that go, as a subquery.
    fn messages(&self) -> Option<String> {
        let roots = self.roots;
        if std::ptr::eq(self.entity, &model::MESSAGES) {
            Some(roots.to_owned())
        } else if std::ptr::eq(self.entity, &model::THREADS) {
            Some(format!(
                "SELECT id FROM messages WHERE thread_id IN ({roots})"
            ))
        } else {
            self.workspaces()
                .map(|w| format!("SELECT id FROM messages WHERE workspace_id IN ({w})"))
        }
    }

    /// The condition on `attachments` of those that go.
    fn attachments(&self) -> Option<String> {
        if std::ptr::eq(self.entity, &model::DOCUMENTS) {
            return Some(format!("document_id IN ({})", self.roots));
        }
        if let Some(workspaces) = self.workspaces() {
            return Some(format!("workspace_id IN ({workspaces})"));
        }
        self.messages()
            .map(|messages| format!("message_id IN ({messages})"))
    }

    /// The condition on `embedding_records` of those that go.
    fn embeddings(&self) -> Option<String> {
        if let Some(workspaces) = self.workspaces() {
            return Some(format!("workspace_id IN ({workspaces})"));
        }
        let mut sources = Vec::new();
        if std::ptr::eq(self.entity, &model::DOCUMENTS) {
            sources.push(format!(
                "(collection = 'documents' AND source_id IN ({}))",
                self.roots
            ));
        }
        if let Some(messages) = self.messages() {
            sources.push(format!(
                "(collection = 'messages' AND source_id IN ({messages}))"
            ));
        }
        if let Some(attachments) = self.attachments() {
            sources.push(format!(
                "(collection = 'attachments' AND source_id IN (SELECT id FROM attachments WHERE {attachments}))"
            ));
        }
        (!sources.is_empty()).then(|| format!("({})", sources.join(" OR ")))
    }

    /// The change-log scopes that go whole, as conditions on `sync_events`: a purged
    /// workspace's, an organization's and its workspaces'.
    fn scopes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(workspaces) = self.workspaces() {
            out.push(format!("scope_workspace_id IN ({workspaces})"));
        }
        if std::ptr::eq(self.entity, &model::ORGANIZATIONS) {
            out.push(format!("scope_organization_id IN ({})", self.roots));
        }
        out
    }

    /// Every row that goes, as subqueries of ids (the roots first), for the change log
    /// and the sync conflicts. A workspace takes every row that names it (whatever scope
    /// its changes were logged under: a user's AI interaction in it, say), an
    /// organization every row that names it and its workspaces'.
    fn rows(&self) -> Vec<String> {
        let mut out = vec![self.roots.to_owned()];
        let named_by = |column: &str, set: &str, out: &mut Vec<String>| {
            for entity in model::ALL.iter().filter(|e| e.changelog) {
                if entity.has_column(column) && !std::ptr::eq(*entity, self.entity) {
                    out.push(format!(
                        "SELECT id FROM {} WHERE {column} IN ({set})",
                        entity.table
                    ));
                }
            }
        };
        if std::ptr::eq(self.entity, &model::ORGANIZATIONS) {
            named_by("organization_id", self.roots, &mut out);
        }
        if let Some(workspaces) = self.workspaces() {
            named_by("workspace_id", &workspaces, &mut out);
            return out;
        }
        if let Some(messages) = self.messages()
            && !std::ptr::eq(self.entity, &model::MESSAGES)
        {
            out.push(messages);
        }
        if let Some(attachments) = self.attachments() {
            out.push(format!("SELECT id FROM attachments WHERE {attachments}"));
        }
        if let Some(embeddings) = self.embeddings() {
            out.push(format!(
                "SELECT id FROM embedding_records WHERE {embeddings}"
            ));
        }
        out
    }
}

/// A statement about the rows of `entity` whose ids are `roots`: `text` is given what
/// goes with them ([`Doomed`], over the roots bound once as an id set), `None` when it
/// has nothing to say.
fn about(
    d: &dyn Dialect,
    entity: &'static Entity,
    roots: &[Uuid],
    text: impl Fn(&Doomed<'_>) -> Option<String>,
) -> Option<Sql> {
    let mut sql = Sql::default();
    let set = sql.bind(d, Value::IdSet(roots.to_vec()), Kind::Uuid);
    let roots = format!(
        "SELECT id FROM {} WHERE {}",
        entity.table,
        d.in_set("id", &set)
    );
    sql.text = text(&Doomed {
        entity,
        roots: &roots,
    })?;
    Some(sql)
}

/// A count, and a sum of bytes, read by `sql`.
async fn count_and_bytes<E: Exec>(exec: &mut E, sql: Option<Sql>) -> Result<(u64, i64)> {
    static COUNTS: [Field; 2] = [field("n", COUNT), field("bytes", COUNT)];
    let Some(sql) = sql else {
        return Ok((0, 0));
    };
    let fields: Vec<&Field> = COUNTS.iter().collect();
    let rows = exec.fetch_columns(&fields, &sql).await?;
    let int = |name: &str| {
        rows.first()
            .and_then(|r| r.get(name))
            .and_then(Value::as_int)
            .unwrap_or(0)
    };
    Ok((int("n").max(0) as u64, int("bytes")))
}

/// What purging the rows of `entity` whose ids are `ids` deletes besides them.
pub(crate) async fn footprint<E: Exec>(
    exec: &mut E,
    entity: &'static Entity,
    ids: &[Uuid],
) -> Result<PurgeFootprint> {
    let mut out = PurgeFootprint::default();
    if ids.is_empty() {
        return Ok(out);
    }
    let sql = about(exec.dialect(), entity, ids, |doomed| {
        doomed.attachments().map(|c| {
            format!(
                "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN storage_key IS NULL THEN 0 ELSE size_bytes END), 0) AS BIGINT)
                 FROM attachments WHERE {c}"
            )
        })
    });
    (out.attachments, out.attachment_bytes) = count_and_bytes(exec, sql).await?;
    let sql = about(exec.dialect(), entity, ids, |doomed| {
        doomed
            .embeddings()
            .map(|c| format!("SELECT COUNT(*), CAST(0 AS BIGINT) FROM embedding_records WHERE {c}"))
    });
    out.embeddings = count_and_bytes(exec, sql).await?.0;
    if !std::ptr::eq(entity, &model::MESSAGES) {
        let sql = about(exec.dialect(), entity, ids, |doomed| {
            doomed.messages().map(|m| {
                format!("SELECT COUNT(*), CAST(0 AS BIGINT) FROM messages WHERE id IN ({m})")
            })
        });
        out.messages = count_and_bytes(exec, sql).await?.0;
    }
    let sql = about(exec.dialect(), entity, ids, |doomed| {
        let mut conditions: Vec<String> = doomed
            .rows()
            .into_iter()
            .map(|source| format!("entity_id IN ({source})"))
            .collect();
        conditions.extend(doomed.scopes());
        Some(format!(
            "SELECT COUNT(*), CAST(0 AS BIGINT) FROM sync_events WHERE {}",
            conditions.join(" OR ")
        ))
    });
    out.changes = count_and_bytes(exec, sql).await?.0;
    Ok(out)
}

/// What [`purge`] deleted, for the change log, the counters and the audit entry.
pub(crate) struct Purged {
    pub entity: &'static Entity,
    /// The rows purged, as they were.
    pub rows: Vec<Record>,
    /// The attachments that went with them, as they were (their files are for the caller
    /// to delete once no row names them).
    pub attachments: Vec<Record>,
    /// Messages below the rows that were not in the bin (counted until now).
    pub live_messages: Vec<Record>,
    /// Whose devices are told a workspace or an organization went: membership-shaped
    /// rows (`workspace_id` or `organization_id`, and `user_id`) of the members table
    /// they stand for.
    pub told: Vec<(&'static Entity, Record)>,
    pub footprint: PurgeFootprint,
    /// Change-log entries and sync conflicts dropped.
    pub changes_dropped: u64,
    pub conflicts_dropped: u64,
    /// Attachments of another account that were on a message that went, kept without it
    /// (`message_id` now `NULL`), as they are now.
    pub detached: Vec<Record>,
}

impl Purged {
    /// The audit entry's account of it: ids and counts, never content.
    pub(crate) fn details(&self, rule: PurgeRule) -> serde_json::Value {
        let deleted_before = rule.deleted_before();
        let ids: Vec<String> = self
            .rows
            .iter()
            .filter_map(Record::id)
            .map(|id| id.to_string())
            .collect();
        let format = &time::format_description::well_known::Rfc3339;
        json!({
            "entity": self.entity.table,
            "deleted_before": deleted_before.and_then(|at| at.format(format).ok()),
            "ids": ids,
            "attachments": self.footprint.attachments,
            "attachment_bytes": self.footprint.attachment_bytes,
            "embeddings": self.footprint.embeddings,
            "messages": self.footprint.messages,
            "changes_dropped": self.changes_dropped,
            "conflicts_dropped": self.conflicts_dropped,
            "attachments_kept": self.detached.len(),
        })
    }

    /// Whether the rows' own workspaces go with them (their counters go too).
    pub(crate) fn takes_workspaces(&self) -> bool {
        std::ptr::eq(self.entity, &model::WORKSPACES)
            || std::ptr::eq(self.entity, &model::ORGANIZATIONS)
    }
}

/// Purges those of `ids` (rows of `entity`, one of [`PURGED`]) that `rule` still covers,
/// however long ago they were chosen: a row restored meanwhile, or a thread another
/// account wrote in since, stays.
pub(crate) async fn purge<E: Exec>(
    exec: &mut E,
    entity: &'static Entity,
    ids: &[Uuid],
    rule: PurgeRule,
) -> Result<Purged> {
    let deleted_before = rule.deleted_before();
    let mut out = Purged {
        entity,
        rows: Vec::new(),
        attachments: Vec::new(),
        live_messages: Vec::new(),
        told: Vec::new(),
        footprint: PurgeFootprint::default(),
        changes_dropped: 0,
        conflicts_dropped: 0,
        detached: Vec::new(),
    };
    if ids.is_empty() || !PURGED.iter().any(|e| std::ptr::eq(*e, entity)) {
        return Ok(out);
    }
    // The rows still in the bin, locked until the commit (a restore waits, then finds
    // nothing).
    static ID: [Field; 1] = [field("id", Kind::Uuid)];
    let d = exec.dialect();
    let mut sql = Sql::default();
    let set = sql.bind(d, Value::IdSet(ids.to_vec()), Kind::Uuid);
    // Upstream's word (no cutoff) is final; here, a row is purged only if it is still
    // in the bin past the cutoff with nothing live below it.
    let in_bin = match deleted_before {
        Some(before) => {
            let before = sql.bind(d, Value::Time(before), Kind::Time);
            format!(
                " AND r.deleted_at IS NOT NULL AND r.deleted_at < {before} AND {}",
                nothing_live_below(entity.table)
            )
        }
        None => String::new(),
    };
    sql.text = format!(
        "SELECT r.id FROM {} r WHERE {}{in_bin}{}",
        entity.table,
        d.in_set("r.id", &set),
        d.lock_rows()
    );
    let fields: Vec<&Field> = ID.iter().collect();
    let mut roots: Vec<Uuid> = exec
        .fetch_columns(&fields, &sql)
        .await?
        .iter()
        .filter_map(|r| r.id_of("id"))
        .collect();
    if let PurgeRule::AuthoredBy(user) = rule
        && !roots.is_empty()
    {
        // Checked with the rows locked, in a statement of its own (on PostgreSQL, one that
        // sees every write committed before the locks were granted): a message another
        // account posts into a thread from now on waits for this transaction.
        roots = crate::erasure::still_authored_alone(exec, entity, user, &roots).await?;
        if !roots.is_empty() {
            out.detached = crate::erasure::detach_others_files(exec, entity, user, &roots).await?;
        }
    }
    if roots.is_empty() {
        return Ok(out);
    }
    out.footprint = footprint(exec, entity, &roots).await?;

    let attachments = &model::ATTACHMENTS;
    let sql = about(exec.dialect(), entity, &roots, |doomed| {
        let c = doomed.attachments()?;
        Some(format!(
            "SELECT {} FROM attachments WHERE {c}",
            sql::column_list(attachments)
        ))
    });
    if let Some(sql) = sql {
        out.attachments = exec.fetch(attachments, &sql).await?;
    }
    if std::ptr::eq(entity, &model::THREADS) {
        let messages = &model::MESSAGES;
        let sql = about(exec.dialect(), entity, &roots, |doomed| {
            let m = doomed.messages()?;
            Some(format!(
                "SELECT {} FROM messages WHERE id IN ({m}) AND deleted_at IS NULL",
                sql::column_list(messages)
            ))
        });
        if let Some(sql) = sql {
            out.live_messages = exec.fetch(messages, &sql).await?;
        }
    }
    out.told = told(exec, entity, &roots).await?;

    // The history, before the rows: the subqueries read them. One statement per source
    // of ids, so each finds its entries by the `entity_id` indexes.
    let sources = Doomed { entity, roots: "" }.rows().len();
    for n in 0..sources {
        for table in ["sync_events", "sync_conflicts"] {
            let sql = about(exec.dialect(), entity, &roots, |doomed| {
                let source = doomed.rows().into_iter().nth(n)?;
                Some(format!("DELETE FROM {table} WHERE entity_id IN ({source})"))
            });
            let Some(sql) = sql else { continue };
            let dropped = exec.execute(&sql).await?;
            match table {
                "sync_events" => out.changes_dropped += dropped,
                _ => out.conflicts_dropped += dropped,
            }
        }
    }
    // And every change logged in the workspaces' or organizations' scope.
    let sql = about(exec.dialect(), entity, &roots, |doomed| {
        let scopes = doomed.scopes();
        (!scopes.is_empty())
            .then(|| format!("DELETE FROM sync_events WHERE {}", scopes.join(" OR ")))
    });
    if let Some(sql) = sql {
        out.changes_dropped += exec.execute(&sql).await?;
    }

    let d = exec.dialect();
    let mut sql = Sql::default();
    let set = sql.bind(d, Value::IdSet(roots), Kind::Uuid);
    sql.text = format!(
        "DELETE FROM {} WHERE {} RETURNING {}",
        entity.table,
        d.in_set("id", &set),
        sql::column_list(entity)
    );
    out.rows = exec.fetch(entity, &sql).await?;
    Ok(out)
}

/// Who may hold a copy of the workspaces or organizations `roots` (rows of `entity`):
/// their members, their owners, and for a workspace of an organization the
/// organization's owners and administrators (a plain member reaches only the workspaces
/// they are a member of, and must not learn of the others); as rows of the members table
/// each stands for.
async fn told<E: Exec>(
    exec: &mut E,
    entity: &'static Entity,
    roots: &[Uuid],
) -> Result<Vec<(&'static Entity, Record)>> {
    static PAIRS: [Field; 2] = [field("place", Kind::Uuid), field("user_id", Kind::Uuid)];
    let (workspaces, organizations) = if std::ptr::eq(entity, &model::WORKSPACES) {
        (
            "SELECT w.id, m.user_id FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id WHERE {w}
             UNION SELECT w.id, w.owner_user_id FROM workspaces w WHERE {w} AND w.owner_user_id IS NOT NULL
             UNION SELECT w.id, m.user_id FROM workspaces w JOIN organization_members m ON m.organization_id = w.organization_id
                   WHERE {w} AND m.role IN ('owner', 'admin')",
            None,
        )
    } else if std::ptr::eq(entity, &model::ORGANIZATIONS) {
        (
            "SELECT w.id, m.user_id FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id WHERE {o}",
            Some(
                "SELECT o.id, m.user_id FROM organizations o JOIN organization_members m ON m.organization_id = o.id WHERE {id}
                 UNION SELECT o.id, o.owner_user_id FROM organizations o WHERE {id}",
            ),
        )
    } else {
        return Ok(Vec::new());
    };
    let fields: Vec<&Field> = PAIRS.iter().collect();
    let mut out = Vec::new();
    for (members, template, column) in [
        (&model::WORKSPACE_MEMBERS, Some(workspaces), "workspace_id"),
        (
            &model::ORGANIZATION_MEMBERS,
            organizations,
            "organization_id",
        ),
    ] {
        let Some(template) = template else { continue };
        let d = exec.dialect();
        let mut sql = Sql::default();
        let set = sql.bind(d, Value::IdSet(roots.to_vec()), Kind::Uuid);
        sql.text = template
            .replace("{w}", &d.in_set("w.id", &set))
            .replace("{o}", &d.in_set("w.organization_id", &set))
            .replace("{id}", &d.in_set("o.id", &set));
        for pair in exec.fetch_columns(&fields, &sql).await? {
            let (Some(place), Some(user)) = (pair.id_of("place"), pair.id_of("user_id")) else {
                continue;
            };
            let mut row = Record::with_capacity(2);
            row.set(column, Value::Id(place));
            row.set("user_id", Value::Id(user));
            out.push((members, row));
        }
    }
    Ok(out)
}
