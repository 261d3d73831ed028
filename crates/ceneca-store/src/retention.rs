//! Retention: finding the threads a maintenance run may archive, measuring what archiving
//! them frees, and archiving them — written once for both engines over [`Exec`].
//!
//! Archiving a thread keeps it and its messages (unarchiving shows them again), removes
//! its attachments' files and their thumbnails (each row keeps what describes its file,
//! and says when the file went) and its messages' and attachments' embeddings (from SQL here; the vector outbox's
//! triggers take them out of the index). Every row changed is logged for sync and counted
//! off the storage counters in the same transaction.

use ceneca_domain::schema::{Field, Kind, field};
use ceneca_domain::{Record, Value, model};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;
use crate::ops::Exec;
use crate::sql::{self, COUNT, Dialect, Sql};

/// Which workspaces' threads an archive rule covers.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleScope {
    /// Workspaces outside any organization, and those of organizations without a policy of
    /// their own (`except`: the organizations that have one).
    ServerDefault { except: Vec<Uuid> },
    /// The workspaces of one organization with a policy of its own.
    Organization(Uuid),
}

/// The threads of `scope` idle since before `idle_before` (no message, no change to the
/// thread — one unarchived is idle again only from then — nor to its messages, their
/// attachments or their embeddings): neither pinned,
/// archived nor in the bin, in a workspace that is not in the bin. A page in `(last_message_at, id)` order,
/// after `after`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveQuery {
    pub scope: RuleScope,
    pub idle_before: OffsetDateTime,
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// A thread a rule would archive, with its position in the candidates' order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArchiveCandidate {
    pub thread: Uuid,
    pub last_message_at: OffsetDateTime,
}

/// What archiving some threads removes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Footprint {
    pub messages: u64,
    /// Attachment files and their bytes.
    pub attachment_files: u64,
    pub attachment_bytes: i64,
    pub embeddings: u64,
    pub embedding_bytes: i64,
}

/// The organizations with an archive policy of their own: `(organization, days)`, 0 days
/// meaning never.
pub(crate) async fn policies<E: Exec>(exec: &mut E) -> Result<Vec<(Uuid, i64)>> {
    static COLUMNS: [Field; 2] = [field("id", Kind::Uuid), field("days", COUNT)];
    let fields: Vec<&Field> = COLUMNS.iter().collect();
    let sql = Sql {
        text: "SELECT id, archive_after_days FROM organizations
               WHERE archive_after_days IS NOT NULL AND deleted_at IS NULL ORDER BY id"
            .into(),
        params: Vec::new(),
    };
    Ok(exec
        .fetch_columns(&fields, &sql)
        .await?
        .iter()
        .filter_map(|r| Some((r.id_of("id")?, r.get("days")?.as_int()?)))
        .collect())
}

/// One page of the threads `query` covers.
pub(crate) async fn candidates<E: Exec>(
    exec: &mut E,
    query: &ArchiveQuery,
) -> Result<Vec<ArchiveCandidate>> {
    static COLUMNS: [Field; 2] = [
        field("id", Kind::Uuid),
        field("last_message_at", Kind::Time),
    ];
    let d = exec.dialect();
    let mut sql = Sql::default();
    let idle_before = sql.bind(d, Value::Time(query.idle_before), Kind::Time);
    let scope = match &query.scope {
        RuleScope::ServerDefault { except } => {
            let set = sql.bind(d, Value::IdSet(except.clone()), Kind::Uuid);
            format!(
                "(w.organization_id IS NULL OR NOT {})",
                d.in_set("w.organization_id", &set)
            )
        }
        RuleScope::Organization(organization) => {
            let mark = sql.bind(d, Value::Id(*organization), Kind::Uuid);
            format!("w.organization_id = {mark}")
        }
    };
    let after = match query.after {
        Some((at, id)) => {
            let at = sql.bind(d, Value::Time(at), Kind::Time);
            let id = sql.bind(d, Value::Id(id), Kind::Uuid);
            format!(" AND (t.last_message_at > {at} OR (t.last_message_at = {at} AND t.id > {id}))")
        }
        None => String::new(),
    };
    let quiet = quiet_since("t.id", &idle_before);
    // Spelled as the partial index `threads__archive_candidates` is (migration 0012).
    sql.text = format!(
        "SELECT t.id, t.last_message_at FROM threads t JOIN workspaces w ON w.id = t.workspace_id
         WHERE t.is_archived = false AND t.pinned = false AND t.deleted_at IS NULL
           AND t.last_message_at < {idle_before} AND t.updated_at < {idle_before}
           AND {quiet} AND w.deleted_at IS NULL AND {scope}{after}
         ORDER BY t.last_message_at, t.id LIMIT {}",
        query.limit
    );
    let fields: Vec<&Field> = COLUMNS.iter().collect();
    Ok(exec
        .fetch_columns(&fields, &sql)
        .await?
        .iter()
        .filter_map(|r| {
            Some(ArchiveCandidate {
                thread: r.id_of("id")?,
                last_message_at: r.get("last_message_at")?.as_time()?,
            })
        })
        .collect())
}

/// No message of the thread `thread` (a column), no attachment of its messages and no
/// embedding of either changed since `since` (a placeholder): an edit, a file uploaded to
/// an old message, a vector written for it is activity, as a new message is.
fn quiet_since(thread: &str, since: &str) -> String {
    // Each lookup goes through the thread's messages by index (`IN`, not a join the
    // planner may drive from the other side: a scan of every embedding per thread).
    let messages = format!("SELECT id FROM messages WHERE thread_id = {thread}");
    let attachments =
        format!("SELECT qa.id FROM attachments qa WHERE qa.message_id IN ({messages})");
    format!(
        "NOT EXISTS (SELECT 1 FROM messages qm WHERE qm.thread_id = {thread} AND qm.updated_at >= {since})
         AND NOT EXISTS (SELECT 1 FROM attachments qa WHERE qa.message_id IN ({messages}) AND qa.updated_at >= {since})
         AND NOT EXISTS (SELECT 1 FROM embedding_records qe WHERE qe.collection = 'messages'
                         AND qe.source_id IN ({messages}) AND qe.updated_at >= {since})
         AND NOT EXISTS (SELECT 1 FROM embedding_records qe WHERE qe.collection = 'attachments'
                         AND qe.source_id IN ({attachments}) AND qe.updated_at >= {since})"
    )
}

/// The messages of the threads bound at `threads`, as a subquery.
fn messages_of(d: &dyn Dialect, threads: &str) -> String {
    format!(
        "SELECT id FROM messages WHERE {}",
        d.in_set("thread_id", threads)
    )
}

/// The embeddings of those messages and of their attachments, as a condition.
fn embeddings_of(d: &dyn Dialect, threads: &str) -> String {
    let messages = messages_of(d, threads);
    format!(
        "((collection = 'messages' AND source_id IN ({messages}))
          OR (collection = 'attachments' AND source_id IN
              (SELECT id FROM attachments WHERE message_id IN ({messages}))))"
    )
}

/// The attachments with a file kept, of those messages, as a condition.
fn files_of(d: &dyn Dialect, threads: &str) -> String {
    format!(
        "storage_key IS NOT NULL AND message_id IN ({})",
        messages_of(d, threads)
    )
}

/// What archiving `threads` would remove.
pub(crate) async fn footprint<E: Exec>(exec: &mut E, threads: &[Uuid]) -> Result<Footprint> {
    static COUNTS: [Field; 2] = [field("n", COUNT), field("bytes", COUNT)];
    static FILES: [Field; 1] = [field("size_bytes", COUNT)];
    let mut out = Footprint::default();
    if threads.is_empty() {
        return Ok(out);
    }
    let ids = Value::IdSet(threads.to_vec());
    out.messages = messages_in(exec, ids.clone()).await?;

    let d = exec.dialect();
    let mut sql = Sql::default();
    let set = sql.bind(d, ids.clone(), Kind::Uuid);
    sql.text = format!(
        "SELECT size_bytes FROM attachments WHERE {}",
        files_of(d, &set)
    );
    let fields: Vec<&Field> = FILES.iter().collect();
    for row in exec.fetch_columns(&fields, &sql).await? {
        out.attachment_files += 1;
        out.attachment_bytes += row.get("size_bytes").and_then(Value::as_int).unwrap_or(0);
    }

    let d = exec.dialect();
    let mut sql = Sql::default();
    let set = sql.bind(d, ids, Kind::Uuid);
    sql.text = format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM({}), 0) AS BIGINT) FROM embedding_records WHERE {}",
        d.byte_length("vector"),
        embeddings_of(d, &set)
    );
    let counts: Vec<&Field> = COUNTS.iter().collect();
    let (n, bytes) = count_and_bytes(&exec.fetch_columns(&counts, &sql).await?);
    out.embeddings = n;
    out.embedding_bytes = bytes;
    Ok(out)
}

/// How many messages the threads bound as `threads` (an id set) hold.
async fn messages_in<E: Exec>(exec: &mut E, threads: Value) -> Result<u64> {
    static N: [Field; 1] = [field("n", COUNT)];
    let d = exec.dialect();
    let mut sql = Sql::default();
    let set = sql.bind(d, threads, Kind::Uuid);
    sql.text = format!(
        "SELECT COUNT(*) FROM messages WHERE {}",
        d.in_set("thread_id", &set)
    );
    let fields: Vec<&Field> = N.iter().collect();
    Ok(count_and_bytes(&exec.fetch_columns(&fields, &sql).await?).0)
}

fn count_and_bytes(rows: &[Record]) -> (u64, i64) {
    let row = rows.first();
    let int = |name: &str| {
        row.and_then(|r| r.get(name))
            .and_then(Value::as_int)
            .unwrap_or(0)
    };
    (int("n").max(0) as u64, int("bytes"))
}

/// What [`archive`] changed, for the change log, the counters and the audit entry.
pub(crate) struct Archived {
    pub threads: Vec<Record>,
    /// Each pruned attachment as it was, and as it is now.
    pub files: Vec<(Record, Record)>,
    pub embeddings: Vec<Record>,
    /// Messages in the archived threads (kept).
    pub messages: u64,
}

impl Archived {
    /// The audit entry's account of it: ids and counts, never content.
    pub(crate) fn details(&self, idle_before: OffsetDateTime) -> serde_json::Value {
        let threads: Vec<String> = self
            .threads
            .iter()
            .filter_map(Record::id)
            .map(|id| id.to_string())
            .collect();
        let file_bytes: i64 = self
            .files
            .iter()
            .filter_map(|(before, _)| before.get("size_bytes").and_then(Value::as_int))
            .sum();
        let embedding_bytes: usize = self
            .embeddings
            .iter()
            .map(|row| match row.get("vector") {
                Some(Value::Bytes(bytes)) => bytes.len(),
                _ => 0,
            })
            .sum();
        let format = &time::format_description::well_known::Rfc3339;
        json!({
            "idle_before": idle_before.format(format).unwrap_or_default(),
            "threads": threads,
            "messages_kept": self.messages,
            "attachment_files_removed": self.files.len(),
            "attachment_bytes_removed": file_bytes,
            "embeddings_removed": self.embeddings.len(),
            "embedding_bytes_removed": embedding_bytes,
        })
    }
}

/// Archives those of `threads` still idle since before `idle_before` (and neither pinned,
/// archived nor in the bin, however long ago they were chosen): the threads are marked,
/// their attachments' files let go, their embeddings deleted.
pub(crate) async fn archive<E: Exec>(
    exec: &mut E,
    threads: &[Uuid],
    idle_before: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Archived> {
    let mut out = Archived {
        threads: Vec::new(),
        files: Vec::new(),
        embeddings: Vec::new(),
        messages: 0,
    };
    if threads.is_empty() {
        return Ok(out);
    }
    let d = exec.dialect();
    let mut sql = Sql::default();
    let at = sql.bind(d, Value::Time(now), Kind::Time);
    let before = sql.bind(d, Value::Time(idle_before), Kind::Time);
    let set = sql.bind(d, Value::IdSet(threads.to_vec()), Kind::Uuid);
    sql.text = format!(
        "UPDATE threads SET is_archived = true, archived_at = {at}, updated_at = {at}
         WHERE {} AND is_archived = false AND pinned = false AND deleted_at IS NULL
           AND last_message_at < {before} AND updated_at < {before} AND {}
         RETURNING {}",
        d.in_set("id", &set),
        quiet_since("threads.id", &before),
        sql::column_list(&model::THREADS)
    );
    out.threads = exec.fetch(&model::THREADS, &sql).await?;
    let archived: Vec<Uuid> = out.threads.iter().filter_map(Record::id).collect();
    if archived.is_empty() {
        return Ok(out);
    }
    let archived = Value::IdSet(archived);

    out.messages = messages_in(exec, archived.clone()).await?;

    // The files: read as they were (locked), for the counters, then let go.
    let attachments = &model::ATTACHMENTS;
    let d = exec.dialect();
    let mut sql = Sql::default();
    let set = sql.bind(d, archived.clone(), Kind::Uuid);
    sql.text = format!(
        "SELECT {} FROM attachments WHERE {}{}",
        sql::column_list(attachments),
        files_of(d, &set),
        d.lock_rows()
    );
    let before_rows = exec.fetch(attachments, &sql).await?;
    // Written since the threads were judged idle (another transaction committed between
    // this statement and the threads' update): left as it is.
    let before_rows: Vec<Record> = before_rows
        .into_iter()
        .filter(|row| {
            row.get("updated_at")
                .and_then(Value::as_time)
                .is_some_and(|at| at < idle_before)
        })
        .collect();
    if !before_rows.is_empty() {
        let ids: Vec<Uuid> = before_rows.iter().filter_map(Record::id).collect();
        let d = exec.dialect();
        let mut sql = Sql::default();
        let at = sql.bind(d, Value::Time(now), Kind::Time);
        let set = sql.bind(d, Value::IdSet(ids), Kind::Uuid);
        sql.text = format!(
            "UPDATE attachments SET storage_key = NULL, thumbnail = NULL, thumbnail_key = NULL,
                 content_removed_at = {at}, updated_at = {at}
             WHERE {} RETURNING {}",
            d.in_set("id", &set),
            sql::column_list(attachments)
        );
        let after_rows = exec.fetch(attachments, &sql).await?;
        out.files = pair_by_id(before_rows, after_rows);
    }

    let d = exec.dialect();
    let mut sql = Sql::default();
    let set = sql.bind(d, archived, Kind::Uuid);
    let before = sql.bind(d, Value::Time(idle_before), Kind::Time);
    sql.text = format!(
        "DELETE FROM embedding_records WHERE {} AND updated_at < {before} RETURNING {}",
        embeddings_of(d, &set),
        sql::column_list(&model::EMBEDDING_RECORDS)
    );
    out.embeddings = exec.fetch(&model::EMBEDDING_RECORDS, &sql).await?;
    Ok(out)
}

fn pair_by_id(before: Vec<Record>, after: Vec<Record>) -> Vec<(Record, Record)> {
    let mut after: std::collections::HashMap<Uuid, Record> = after
        .into_iter()
        .filter_map(|r| Some((r.id()?, r)))
        .collect();
    before
        .into_iter()
        .filter_map(|b| {
            let a = after.remove(&b.id()?)?;
            Some((b, a))
        })
        .collect()
}
