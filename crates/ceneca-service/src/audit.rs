//! The audit trail: what is recorded for each use case, at which level, and verification.
//!
//! Writes carry their audit entry in the same transaction (a write that cannot be audited
//! does not happen); failed log-ins, refusals and — at level `enhanced` — reads append an
//! entry of their own before the answer goes out, and an audit failure fails the request.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ceneca_crypto::KeyRing;
use ceneca_domain::audit::{Anchor, AuditLevel, ChainBreak, ChainHead, ChainKey, ChainVerifier};
use ceneca_domain::clock::now;
use ceneca_domain::output::{View, to_json};
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::validate::fill_defaults;
use ceneca_domain::{Record, Value, model, new_id};
use ceneca_store::{Actor, ListQuery, WriteBatch, WriteOp};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use crate::audit_head::{self, HeadFile, HeadFileError};
use crate::error::{Result, ServiceError};
use crate::page::{ListParams, build_query};
use crate::{Caller, Services};

/// The chain MAC key derived from key `id` of the ring (see `KeyRing::audit_chain_key`
/// for why entries name their key rather than all using one).
pub(crate) fn chain_key(keys: &KeyRing, id: &str) -> ChainKey {
    ChainKey::new(
        id,
        keys.audit_chain_key(id)
            .expect("key ids come from the ring itself"),
    )
}

impl From<HeadFileError> for ServiceError {
    fn from(e: HeadFileError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

/// What the transport knows about a request that the audit trail records.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub source_ip: Option<String>,
}

/// One audit entry before it is chained.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: Option<Uuid>,
    pub source_ip: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub outcome: &'static str,
    pub details: Json,
    pub query_hash: Option<String>,
    pub data_sources: Vec<String>,
}

impl AuditEvent {
    pub fn new(action: impl Into<String>, outcome: &'static str) -> Self {
        Self {
            actor: None,
            source_ip: None,
            action: action.into(),
            resource_type: None,
            resource_id: None,
            outcome,
            details: json!({}),
            query_hash: None,
            data_sources: Vec::new(),
        }
    }
    pub fn by(mut self, caller: &Caller) -> Self {
        self.actor = Some(caller.user_id);
        self.source_ip = caller.source_ip.clone();
        self
    }
    pub fn on(mut self, resource_type: &str, id: Option<Uuid>) -> Self {
        self.resource_type = Some(resource_type.to_owned());
        self.resource_id = id;
        self
    }
    pub fn details(mut self, details: Json) -> Self {
        self.details = details;
        self
    }

    fn into_record(self) -> Record {
        let now = now();
        let opt_text = |s: Option<String>| s.map(Value::Text).unwrap_or(Value::Null);
        let mut r = Record::new();
        r.set("id", Value::Id(new_id()));
        r.set("created_at", Value::Time(now));
        r.set("updated_at", Value::Time(now));
        r.set("at", Value::Time(now));
        r.set("actor_id", self.actor.map(Value::Id).unwrap_or(Value::Null));
        r.set("source_ip", opt_text(self.source_ip));
        r.set("action", Value::Text(self.action));
        r.set("resource_type", opt_text(self.resource_type));
        r.set(
            "resource_id",
            self.resource_id.map(Value::Id).unwrap_or(Value::Null),
        );
        r.set("outcome", Value::Text(self.outcome.to_owned()));
        r.set("details", Value::Json(self.details));
        r.set("query_hash", opt_text(self.query_hash));
        r.set(
            "data_sources",
            Value::Json(Json::Array(
                self.data_sources.into_iter().map(Json::String).collect(),
            )),
        );
        fill_defaults(&model::AUDIT_LOG, &mut r, now);
        r
    }
}

/// The result of checking the whole trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries that verified (before the first broken one, if any).
    pub checked: u64,
    /// Of those, legacy entries: unkeyed, with plain SHA-256 hashes, written before the
    /// keyed chain. Anyone who can write the database can rewrite them.
    pub legacy: u64,
    /// The end of the entries that verified: what `ceneca audit head` prints.
    pub head: ChainHead,
    /// The heads recorded outside the database the chain was checked against.
    pub anchors: Vec<Anchor>,
    pub broken: Option<ChainBreak>,
}

impl Services {
    /// The write that appends `event`, for a batch that must not commit without it.
    pub(crate) fn audit_op(&self, event: AuditEvent) -> WriteOp {
        let (record, chain) = self.audit_parts(event);
        WriteOp::Audit { record, chain }
    }

    /// The entry `event` appends and the chain it links to, for an operation that
    /// appends its own account (`WriteOp::Archive`).
    pub(crate) fn audit_parts(&self, event: AuditEvent) -> (Record, ceneca_store::AuditChain) {
        (event.into_record(), self.audit_chain.clone())
    }

    /// Anchors the chain's end in the head file at `path` (normally
    /// `<data_dir>/audit.head`; see [`audit_head`] for what it guarantees), and checks the
    /// chain against it when verifying. A file whose head the database does not hold is
    /// kept, frozen, as evidence.
    pub async fn with_audit_head(mut self, path: PathBuf) -> Result<Self> {
        let contains = match audit_head::read(&path)? {
            Some(anchor) => Some(self.audit_log_holds(&anchor.head).await?),
            None => None,
        };
        let file = HeadFile::open(path, contains)?;
        self.audit_chain.watcher = Some(Arc::new(crate::metrics::CountingWatcher {
            metrics: self.metrics.clone(),
            next: Some(file.watcher()),
        }));
        self.audit_head = Some(Arc::new(file));
        Ok(self)
    }

    /// The head file, when the chain is anchored in one.
    pub fn audit_head_file(&self) -> Option<&Path> {
        self.audit_head.as_deref().map(HeadFile::path)
    }

    /// Writes the head file now instead of within its coalescing delay (shutdown, tests).
    pub fn flush_audit_head(&self) -> Result<()> {
        if let Some(file) = &self.audit_head {
            file.flush()?;
        }
        Ok(())
    }

    /// Whether the database holds the entry `head` records, with that MAC.
    async fn audit_log_holds(&self, head: &ChainHead) -> Result<bool> {
        if head.sequence == 0 {
            return Ok(*head == ChainHead::genesis());
        }
        let mut q = ListQuery::new(ScopeFilter::All, "sequence", false, 1);
        q.equals.push(("sequence", Value::Int(head.sequence)));
        let rows = self.store.list(&model::AUDIT_LOG, q).await?;
        Ok(rows.first().and_then(ChainHead::of).as_ref() == Some(head))
    }

    /// Appends `event` on its own (refusals, failed log-ins, reads).
    pub(crate) async fn audit_now(&self, event: AuditEvent) -> Result<()> {
        let actor = Actor {
            user_id: event.actor,
            device_id: None,
            replay: None,
        };
        self.store
            .apply(WriteBatch::new(actor).push(self.audit_op(event)))
            .await
            .map_err(|e| ServiceError::Internal(format!("audit append failed: {e}")))?;
        Ok(())
    }

    /// Records a refusal, then returns it (or an internal error if it cannot be recorded).
    pub(crate) async fn audit_refusal(
        &self,
        caller: &Caller,
        action: String,
        resource_type: &str,
        id: Option<Uuid>,
        error: ServiceError,
    ) -> ServiceError {
        if !matches!(error, ServiceError::Forbidden(_)) {
            return error;
        }
        let event = AuditEvent::new(action, "denied")
            .by(caller)
            .on(resource_type, id)
            .details(json!({ "reason": error.to_string() }));
        match self.audit_now(event).await {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    /// Records a read at level `enhanced` and above; at `maximum` with the SHA-256 of the
    /// query and the tables it touched.
    ///
    /// `query` describes the query for its hash; callers build it only when
    /// [`Services::hashes_queries`] says it will be used, keeping it off the read path
    /// otherwise.
    pub(crate) async fn audit_read(
        &self,
        caller: &Caller,
        action: String,
        table: &str,
        id: Option<Uuid>,
        query: Option<String>,
    ) -> Result<()> {
        if self.config.audit_level < AuditLevel::Enhanced {
            return Ok(());
        }
        let mut event = AuditEvent::new(action, "success").by(caller).on(table, id);
        if let Some(query) = query.filter(|_| self.hashes_queries()) {
            event.query_hash = Some(ceneca_crypto::token::sha256_hex(query.as_bytes()));
            event.data_sources = vec![table.to_owned()];
        }
        self.audit_now(event).await
    }

    /// Whether read audit entries carry a query hash (audit level `maximum`).
    pub(crate) fn hashes_queries(&self) -> bool {
        self.config.audit_level >= AuditLevel::Maximum
    }

    /// Checks the whole chain, oldest first, page by page, against the head file (when
    /// the chain is anchored in one; written first, so it holds this process's last
    /// append). An administrative path: reads every entry regardless of tenant.
    pub async fn verify_audit_chain(&self) -> Result<AuditReport> {
        self.verify_audit_chain_expecting(None).await
    }

    /// [`Services::verify_audit_chain`], also against a head recorded earlier (`ceneca
    /// audit head`, kept outside this machine).
    pub async fn verify_audit_chain_expecting(
        &self,
        expected: Option<ChainHead>,
    ) -> Result<AuditReport> {
        let mut anchors = Vec::new();
        if let Some(file) = &self.audit_head {
            file.flush()?;
            anchors.extend(audit_head::read(file.path())?);
        }
        anchors.extend(expected.map(|head| Anchor {
            head,
            source: "the expected head".into(),
        }));
        self.verify_audit_chain_with(anchors).await
    }

    /// Checks the whole chain against the given anchors: its MACs (with every key of the
    /// ring), its links, the continuity of its sequence, its legacy prefix, and that it
    /// reaches and matches each anchor.
    pub async fn verify_audit_chain_with(&self, anchors: Vec<Anchor>) -> Result<AuditReport> {
        const PAGE: usize = 1000;
        let keys: Vec<ChainKey> = self
            .keys
            .key_ids()
            .into_iter()
            .map(|id| chain_key(&self.keys, id))
            .collect();
        let mut verifier = ChainVerifier::new(&keys, anchors.clone());
        let report = |verifier: &ChainVerifier, broken| AuditReport {
            checked: verifier.checked(),
            legacy: verifier.legacy(),
            head: verifier.head().clone(),
            anchors: anchors.clone(),
            broken,
        };
        let mut after: Option<(Value, Uuid)> = None;
        loop {
            let mut q = ListQuery::new(ScopeFilter::All, "sequence", false, PAGE as u32);
            q.after = after.take();
            let mut rows = self.store.list(&model::AUDIT_LOG, q).await?;
            let more = rows.len() > PAGE;
            rows.truncate(PAGE);
            for row in &rows {
                if let Err(broken) = verifier.push(row) {
                    return Ok(report(&verifier, Some(broken)));
                }
            }
            match rows.last() {
                Some(last) if more => {
                    after = Some((
                        last.get("sequence").cloned().unwrap_or(Value::Null),
                        last.id().unwrap_or_default(),
                    ))
                }
                _ => break,
            }
        }
        Ok(report(&verifier, verifier.finish().err()))
    }

    /// The entries an administrator asks for, as JSON lines (oldest first unless sorted).
    pub async fn export_audit(&self, caller: &Caller, params: &ListParams) -> Result<String> {
        if !caller.system_admin {
            return Err(ServiceError::NotFound("audit entry"));
        }
        let mut params = params.clone();
        params.limit = 200;
        // Chain order unless asked otherwise (the list endpoint shows the newest first).
        params.sort.get_or_insert_with(|| "sequence".into());
        let mut out = String::new();
        loop {
            let mut q = ListQuery::new(ScopeFilter::All, "sequence", false, 200);
            build_query(&model::AUDIT_LOG, &params, &mut q)?;
            let (sort, descending) = (q.sort, q.descending);
            let mut rows = self.store.list(&model::AUDIT_LOG, q).await?;
            let more = rows.len() > 200;
            rows.truncate(200);
            for row in &rows {
                out.push_str(&to_json(&model::AUDIT_LOG, row, View::Detail).to_string());
                out.push('\n');
            }
            match rows.last() {
                Some(last) if more => {
                    params.cursor =
                        crate::page::encode_cursor(&model::AUDIT_LOG, last, sort, descending)
                }
                _ => break,
            }
        }
        self.audit_read(
            caller,
            "audit_log.export".into(),
            "audit_log",
            None,
            self.hashes_queries()
                .then(|| format!("{:?}", params.filters)),
        )
        .await?;
        Ok(out)
    }
}
