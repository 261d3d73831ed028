//! Exports of a user's data (right of access and portability): a ZIP archive with one JSON
//! Lines file per entity (`<table>.jsonl`, every row that is the user's, as the API shows
//! it), the files of their attachments (`files/<attachment id>/<name>`), and a
//! `manifest.json` with the counts and the SHA-256 of every file.
//!
//! Which rows are the user's is read off the model (`ceneca_domain::export`): rows that
//! name them (account, memberships, devices, settings, what they wrote, the audit entries
//! of what they did), content that names nobody which the change log records them
//! creating (documents, files in shared workspaces), and everything in their personal
//! workspaces, in the bin too. Secrets
//! never leave: rows are written as a client reads them (hidden columns dropped, keys
//! shown as masked hints), sealed content opened, compressed bodies unpacked.
//!
//! The archive is written as the rows are read, page by page, and streamed (`archive.rs`):
//! memory stays flat whatever the size. Each export is audited (`user.export`), with the
//! counts, never the content.

mod archive;
mod jobs;

use std::collections::BTreeMap;

use ceneca_domain::credential::Credential;
use ceneca_domain::export::{created_per_log, exported_entities, in_workspace, user_columns};
use ceneca_domain::output::View;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Record, Value, model};
use ceneca_store::{Deleted, ListQuery};
use serde_json::json;
use uuid::Uuid;

pub use archive::{ArchivedFile, Written};
pub use jobs::{ExportJobContent, ExportJobs};

use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// The archive's format, named in its manifest.
pub const FORMAT: &str = "ceneca-export/1";

/// Rows read per page.
const PAGE: u32 = 500;

/// Rows written to the archive per piece (JSON lines are gathered up to this size).
const PIECE: usize = 256 * 1024;

/// Exports an account may run at once on this server, and the server in all: each holds
/// a blocking thread and its buffers for as long as its client takes to read.
const PER_ACCOUNT: usize = 2;
const IN_ALL: usize = 16;

/// The exports running on this server, by the account that asked.
#[derive(Default)]
pub(crate) struct ExportSlots(std::sync::Mutex<BTreeMap<Uuid, usize>>);

/// One running export; its slot is given back when dropped.
struct Slot {
    slots: std::sync::Arc<ExportSlots>,
    account: Uuid,
}

impl ExportSlots {
    fn take(self: &std::sync::Arc<Self>, account: Uuid) -> Result<Slot> {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = running.values().sum();
        let mine = running.get(&account).copied().unwrap_or(0);
        if mine >= PER_ACCOUNT || total >= IN_ALL {
            return Err(ServiceError::RateLimited {
                message: if mine >= PER_ACCOUNT {
                    format!(
                        "{PER_ACCOUNT} exports of this account are running; try again when one ends"
                    )
                } else {
                    "too many exports are running on this server; try again shortly".to_owned()
                },
                retry_after_secs: 10,
            });
        }
        *running.entry(account).or_default() += 1;
        Ok(Slot {
            slots: self.clone(),
            account,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = running.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.account);
            }
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default)]
pub struct ExportSummary {
    pub user_id: Uuid,
    /// Rows per table (tables with none are left out).
    pub rows: BTreeMap<String, u64>,
    /// Attachment files, and their bytes.
    pub files: u64,
    pub file_bytes: u64,
    /// Bytes of the archive.
    pub archive_bytes: u64,
}

/// How far an export is, for a progress bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportProgress {
    pub rows: u64,
    pub files: u64,
    pub file_bytes: u64,
}

/// An export allowed to run ([`Services::begin_export`]), holding its slot until it ends.
pub struct ExportPermit {
    actor: Uuid,
    source_ip: Option<String>,
    user: Uuid,
    _slot: Slot,
}

/// An attachment whose file goes into the archive.
struct FileToExport {
    id: Uuid,
    stored: String,
    size: u64,
    sealed: bool,
    name: String,
}

impl Services {
    /// Refuses (404, as for any account but one's own) a caller who may not export
    /// `user`: only the user, logged in as the whole account (never with an API or a
    /// device token), and system administrators; and an account that does not exist
    /// (answered before an archive starts: once it has, only a cut body can say so).
    pub async fn authorize_export(&self, caller: &Caller, user: Uuid) -> Result<()> {
        let whole_account = matches!(
            caller.credential,
            Credential::Session | Credential::Certificate
        );
        if !((caller.user_id == user && whole_account) || caller.system_admin) {
            return Err(ServiceError::NotFound("user"));
        }
        self.store
            .get(&model::USERS, user, ScopeFilter::All, Deleted::Include)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        Ok(())
    }

    /// Authorizes an export of `user` by `caller` ([`Services::authorize_export`]) and
    /// takes one of the caller's export slots (429 when they are all taken), before any
    /// byte of an archive is answered: after that, only a cut body can say anything.
    pub async fn begin_export(&self, caller: &Caller, user: Uuid) -> Result<ExportPermit> {
        self.authorize_export(caller, user).await?;
        Ok(ExportPermit {
            actor: caller.user_id,
            source_ip: caller.source_ip.clone(),
            user,
            _slot: self.exports.take(caller.user_id)?,
        })
    }

    /// Writes the export `permit` allows into `sink`. The sink gets a complete archive,
    /// or one without its central directory (which no reader opens) when the export
    /// fails midway.
    pub async fn export_user(
        &self,
        permit: ExportPermit,
        sink: Box<dyn std::io::Write + Send>,
        progress: &(dyn Fn(ExportProgress) + Sync),
    ) -> Result<ExportSummary> {
        let ExportPermit {
            actor,
            source_ip,
            user,
            _slot,
        } = permit;
        self.export_for((Some(actor), source_ip), user, sink, progress)
            .await
    }

    /// The export of the account with `email`, by the command line (no caller: whoever
    /// runs it holds the data folder).
    pub async fn export_user_by_email(
        &self,
        email: &str,
        sink: Box<dyn std::io::Write + Send>,
        progress: &(dyn Fn(ExportProgress) + Sync),
    ) -> Result<ExportSummary> {
        let email = email.trim().to_lowercase();
        let user = self
            .store
            .lookup_unscoped(&model::USERS, "email", Value::Text(email))
            .await?
            .and_then(|row| row.id())
            .ok_or(ServiceError::NotFound("user"))?;
        self.export_for((None, None), user, sink, progress).await
    }

    /// Writes the export and audits it, whatever the outcome.
    async fn export_for(
        &self,
        (actor, source_ip): (Option<Uuid>, Option<String>),
        user: Uuid,
        sink: Box<dyn std::io::Write + Send>,
        progress: &(dyn Fn(ExportProgress) + Sync),
    ) -> Result<ExportSummary> {
        let outcome = self.write_export(user, sink, progress).await;
        let mut event = AuditEvent::new(
            "user.export",
            if outcome.is_ok() {
                "success"
            } else {
                "failure"
            },
        )
        .on("users", Some(user));
        if let Ok(summary) = &outcome {
            event = event.details(json!({
                "rows": summary.rows,
                "files": summary.files,
                "file_bytes": summary.file_bytes,
                "archive_bytes": summary.archive_bytes,
            }));
        }
        event.actor = actor;
        event.source_ip = source_ip;
        self.audit_now(event).await?;
        outcome
    }

    async fn write_export(
        &self,
        user: Uuid,
        sink: Box<dyn std::io::Write + Send>,
        progress: &(dyn Fn(ExportProgress) + Sync),
    ) -> Result<ExportSummary> {
        self.store
            .get(&model::USERS, user, ScopeFilter::All, Deleted::Include)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let archive = archive::Archive::new(sink);
        let mut summary = ExportSummary {
            user_id: user,
            ..ExportSummary::default()
        };
        match self
            .write_contents(&archive, user, &mut summary, progress)
            .await
        {
            Ok(()) => {}
            Err(e) => {
                // The sink's own failure (a client gone) says more than what followed.
                return Err(match archive.abandon().await {
                    Some(io) => ServiceError::Internal(format!("the export was not written: {io}")),
                    None => e,
                });
            }
        }
        let entities: BTreeMap<&str, u64> = exported_entities()
            .map(|e| (e.table, summary.rows.get(e.table).copied().unwrap_or(0)))
            .collect();
        let header = json!({
            "format": FORMAT,
            "user_id": user,
            "exported_at": ceneca_domain::output::format_time(ceneca_domain::clock::now()),
            "entities": entities,
            "attachment_files": summary.files,
        });
        let written = archive
            .finish(header)
            .await
            .map_err(|e| ServiceError::Internal(format!("the export was not written: {e}")))?;
        summary.archive_bytes = written.archive_bytes;
        Ok(summary)
    }

    /// The rows, then the files.
    async fn write_contents(
        &self,
        archive: &archive::Archive,
        user: Uuid,
        summary: &mut ExportSummary,
        progress: &(dyn Fn(ExportProgress) + Sync),
    ) -> Result<()> {
        let io = |e: std::io::Error| ServiceError::Internal(format!("the export stopped: {e}"));
        let personal = self.personal_workspaces(user).await?;
        let mut so_far = ExportProgress::default();
        let mut files = Vec::new();
        for entity in exported_entities() {
            let mut clauses: Vec<(&'static str, Vec<Uuid>)> = user_columns(entity)
                .into_iter()
                .map(|column| (column, vec![user]))
                .collect();
            if in_workspace(entity) && !personal.is_empty() {
                clauses.push(("workspace_id", personal.clone()));
            }
            if created_per_log(entity) {
                let mut created = self.store.created_by(user, entity).await?;
                created.sort();
                created.dedup();
                if !created.is_empty() {
                    clauses.push(("id", created));
                }
            }
            if clauses.is_empty() {
                continue;
            }
            let mut after = None;
            let mut started = false;
            loop {
                let mut query = ListQuery::new(
                    ScopeFilter::AnyOf(clauses.clone()),
                    "created_at",
                    false,
                    PAGE,
                );
                query.deleted = Deleted::Include;
                query.after = after.take();
                let mut page = self.store.list(entity, query).await?;
                // A list answers one row more than asked when there are more.
                let more = page.len() > PAGE as usize;
                page.truncate(PAGE as usize);
                if page.is_empty() {
                    break;
                }
                if !started {
                    archive
                        .start(format!("{}.jsonl", entity.table), true)
                        .await
                        .map_err(io)?;
                    started = true;
                }
                let mut piece = Vec::with_capacity(PIECE);
                for row in &page {
                    // A conflict as `/sync/conflicts` shows it: the lost values opened.
                    let shown = if std::ptr::eq(entity, &model::SYNC_CONFLICTS) {
                        serde_json::to_value(self.conflict_record(row)?)
                            .map_err(|e| ServiceError::Internal(e.to_string()))?
                    } else {
                        self.present(entity, row, View::Detail)?
                    };
                    serde_json::to_writer(&mut piece, &shown)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?;
                    piece.push(b'\n');
                    if piece.len() >= PIECE {
                        archive
                            .write(std::mem::replace(&mut piece, Vec::with_capacity(PIECE)))
                            .await
                            .map_err(io)?;
                    }
                    if std::ptr::eq(entity, &model::ATTACHMENTS)
                        && let Some(file) = file_of(row)
                    {
                        files.push(file);
                    }
                }
                if !piece.is_empty() {
                    archive.write(piece).await.map_err(io)?;
                }
                *summary.rows.entry(entity.table.to_owned()).or_default() += page.len() as u64;
                so_far.rows += page.len() as u64;
                progress(so_far);
                let last = page.last().expect("a page with rows");
                match (more, last.get("created_at"), last.id()) {
                    (true, Some(at), Some(id)) => after = Some((at.clone(), id)),
                    _ => break,
                }
            }
        }
        for file in files {
            let mut source = self
                .stored_content(file.id, &file.stored, file.size, file.sealed)
                .await?;
            archive
                .start(
                    format!("files/{}/{}", file.id, archive_name(&file.name)),
                    false,
                )
                .await
                .map_err(io)?;
            while let Some(piece) = source.next_chunk().await.map_err(io)? {
                so_far.file_bytes += piece.len() as u64;
                archive.write(piece).await.map_err(io)?;
            }
            summary.files += 1;
            summary.file_bytes += file.size;
            so_far.files += 1;
            progress(so_far);
        }
        Ok(())
    }

    /// The workspaces `user` owns outside any organization, in the bin too.
    async fn personal_workspaces(&self, user: Uuid) -> Result<Vec<Uuid>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let mut query = ListQuery::new(
                ScopeFilter::AnyOf(vec![("owner_user_id", vec![user])]),
                "created_at",
                false,
                PAGE,
            );
            query.deleted = Deleted::Include;
            query.after = after.take();
            let mut page = self.store.list(&model::WORKSPACES, query).await?;
            let more = page.len() > PAGE as usize;
            page.truncate(PAGE as usize);
            out.extend(
                page.iter()
                    .filter(|w| matches!(w.get("organization_id"), None | Some(Value::Null)))
                    .filter_map(Record::id),
            );
            match (more, page.last()) {
                (true, Some(last)) => {
                    after = last.get("created_at").cloned().zip(last.id());
                }
                _ => return Ok(out),
            }
        }
    }
}

/// The file of an attachment row, when one is kept.
fn file_of(row: &Record) -> Option<FileToExport> {
    let stored = row.get("storage_key").and_then(Value::as_str)?.to_owned();
    Some(FileToExport {
        id: row.id()?,
        stored,
        size: row
            .get("size_bytes")
            .and_then(Value::as_int)
            .unwrap_or(0)
            .max(0) as u64,
        sealed: row.get("encrypted").and_then(Value::as_bool) == Some(true),
        name: row
            .get("file_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// A client's file name as a name inside the archive: no directories, nothing a reader
/// could take for a path or a control character; `file` when nothing is left.
fn archive_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| c == '.' || c == ' ');
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::archive_name;

    #[test]
    fn archive_names_are_never_paths() {
        assert_eq!(archive_name("plan.png"), "plan.png");
        assert_eq!(archive_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(archive_name("a/b\\c\u{0}d"), "a_b_c_d");
        assert_eq!(archive_name(".."), "file");
        assert_eq!(archive_name(""), "file");
        assert_eq!(archive_name("résumé 2026.pdf"), "résumé 2026.pdf");
    }
}
