//! Data-loss prevention on write (both editions). A policy — `off`, `flag`, `redact` or
//! `reject` — is set for the server (`[dlp] policy`), an organization and a workspace
//! (their `dlp_policy` field); the strictest of the three applies to a write, so neither
//! a workspace administrator nor an organization one can loosen what is set above them.
//!
//! What is looked at: every client-supplied text of a create or an update (text, URL,
//! slug and e-mail fields, every string and object key inside JSON fields, with the key a
//! value is stored under read as its label), after validation and authorization and
//! before the row is sealed or stored. Secret fields (a provider's API key, which the
//! service encrypts) are meant to hold secrets and are skipped; in an e-mail field the
//! address itself is not a finding.
//!
//! What is recorded: one audit entry per write with findings (`dlp.finding`, with the
//! policy applied), naming each field and the kind found, never the value — in the same
//! transaction as the write under `flag` and `redact` (outcome `success`), on its own
//! under `reject` (outcome `denied`; nothing else is stored).
//!
//! Audit entries that copy client text DLP has scanned (an API token's name) copy its
//! redacted form whenever it held a finding, whatever the policy.
//!
//! Cost: nothing when no policy applies anywhere in the caller's reach (the default); one
//! `RegexSet` pass over the texts otherwise (on the blocking pool above
//! [`LARGE_SCAN_BYTES`]), and the policy's look-up only when something was found.
//! Redaction reuses the findings of that pass.

use ceneca_domain::dlp::{self, DlpPolicy, Finding, FindingKind};
use ceneca_domain::error::{push_path_index, push_path_key};
use ceneca_domain::model;
use ceneca_domain::schema::{Field, Kind};
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Deleted, Entity, Record, ValidationError, Value};
use ceneca_store::WriteOp;
use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// The most (field, kind) lines one audit entry or one refusal lists.
const MAX_LISTED: usize = 20;

/// Who writes, for the audit entry: a signed-in caller, or an account being created.
#[derive(Clone, Copy)]
pub(crate) enum Actor<'a> {
    Caller(&'a Caller),
    NewUser(Uuid),
}

/// A finding in one field of a write: the field path (`metadata.card[0]`) and the kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldFinding {
    pub path: String,
    pub kind: FindingKind,
}

/// A text written outside the entity routes (an account's display name or e-mail, an API
/// token's name), for [`Services::apply_dlp_texts`].
pub(crate) struct ClientText<'a> {
    pub field: &'static str,
    /// An e-mail field: the address itself is not a finding.
    pub email: bool,
    pub text: &'a mut String,
}

/// The policy that applies to a write, and whether a finding lies in a field of a fixed
/// form (a slug, an e-mail address), which a placeholder would break.
struct Applied {
    policy: DlpPolicy,
    /// The fields of a fixed form that hold a finding.
    fixed_form: Vec<&'static str>,
}

/// Above this many bytes of text, a scan (DLP detection, the reference scanner) runs on
/// tokio's blocking pool instead of the async worker that took the request. Measured in
/// a release build on the 2-core development machine, detection reads 64 KiB of ASCII
/// prose in about 0.2 ms and 1 MB in about 3 ms (text that needs folding, such as Chinese
/// with full-width punctuation, about 1 ms per 100 KB). Below 64 KiB a scan costs about
/// what the hand-off would (a copy of the text, a wake-up of another thread), and the
/// chat messages and documents most writes carry stay inline without an extra
/// allocation; above it a worker would serve no other request for milliseconds per
/// megabyte.
pub(crate) const LARGE_SCAN_BYTES: usize = 64 * 1024;

/// Runs `scan` on the blocking pool. A task that fails (a panic in it) is an internal
/// error, answered 500 and logged, never a panic of the caller.
pub(crate) async fn scan_off_worker<T: Send + 'static>(
    what: &str,
    scan: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(scan)
        .await
        .map_err(|e| ServiceError::Internal(format!("{what} failed: {e}")))
}

/// What detection found in one field of a write: the findings of a text, or those of
/// each string of a JSON value by its place in a walk of the value (object keys and
/// strings, in order). Kept so that redaction does not detect twice.
enum Hits {
    Text(Vec<Finding>),
    Json(Vec<(usize, Vec<Finding>)>),
}

/// The findings of a write: by field path and kind (for the audit entry and a refusal),
/// and where they are (for redaction).
#[derive(Default)]
struct Scan {
    found: Vec<FieldFinding>,
    hits: Vec<(&'static str, Hits)>,
}

/// Detection over `fields` (name, whether an e-mail field, value).
fn scan_fields(detector: &dlp::Detector, fields: &[(&'static str, bool, &Value)]) -> Scan {
    let mut scan = Scan::default();
    for &(name, email, value) in fields {
        match value {
            Value::Text(text) => {
                let findings = if email {
                    detector.find_in_address(text)
                } else {
                    detector.find(text)
                };
                if !findings.is_empty() {
                    scan.found.extend(findings.iter().map(|f| FieldFinding {
                        path: name.to_owned(),
                        kind: f.kind,
                    }));
                    scan.hits.push((name, Hits::Text(findings)));
                }
            }
            Value::Json(value) => {
                let mut hits = Vec::new();
                let mut walk = JsonWalk {
                    detector,
                    next: 0,
                    found: &mut scan.found,
                    hits: &mut hits,
                };
                walk.value(value, None, &mut name.to_owned());
                if !hits.is_empty() {
                    scan.hits.push((name, Hits::Json(hits)));
                }
            }
            _ => {}
        }
    }
    scan
}

/// The bytes of text in `value` (strings and object keys).
fn text_len(value: &Value) -> usize {
    match value {
        Value::Text(text) => text.len(),
        Value::Json(value) => json_text_len(value),
        _ => 0,
    }
}

/// The bytes of text in a JSON value: strings and object keys, at any depth. What decides
/// whether a scan (DLP, the reference scanner) runs off the async worker.
pub(crate) fn json_text_len(value: &Json) -> usize {
    match value {
        Json::String(s) => s.len(),
        Json::Array(items) => items.iter().map(json_text_len).sum(),
        Json::Object(map) => map.iter().map(|(k, v)| k.len() + json_text_len(v)).sum(),
        _ => 0,
    }
}

impl Services {
    /// Whether any DLP policy can apply to a write by `caller`: the server's, or one set
    /// where the caller works. Callers who may reach workspaces outside their own scope
    /// (system administrators, holders of permission sets) are checked whenever anything is
    /// found, as the policy there is not in their scope.
    pub(crate) fn dlp_may_apply(&self, caller: &Caller) -> bool {
        self.config.dlp_policy != DlpPolicy::Off
            || caller.scope.sets_dlp()
            || caller.system_admin
            || !caller.scope.permissions.is_empty()
    }

    /// Applies the DLP policy to the client-supplied fields `supplied` of `record`, a row
    /// of `entity` being created or updated: under `redact` the findings are replaced in
    /// `record`; under `flag` and `redact` an audit entry is pushed onto `ops`; under
    /// `reject` the attempt is recorded and the write refused, naming each field and kind.
    /// `row` is the stored row, for an update (its tenancy decides the policy).
    pub(crate) async fn apply_dlp<'a>(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        supplied: impl Iterator<Item = &'a str>,
        record: &mut Record,
        row: Option<&Record>,
        ops: &mut Vec<WriteOp>,
    ) -> Result<()> {
        if !self.dlp_may_apply(caller) {
            return Ok(());
        }
        let mut scanned: Vec<&'static Field> = Vec::new();
        for name in supplied {
            if let Some(field) = entity.field(name)
                && scanned_kind(&field.kind)
                && !scanned.iter().any(|f| f.name == field.name)
            {
                scanned.push(field);
            }
        }
        let fields: Vec<(&'static str, bool, &Value)> = scanned
            .iter()
            .filter_map(|f| {
                let value = record.get(f.name)?;
                Some((f.name, matches!(f.kind, Kind::Email), value))
            })
            .collect();
        let scan = if fields.iter().map(|(_, _, v)| text_len(v)).sum::<usize>() > LARGE_SCAN_BYTES {
            let owned: Vec<(&'static str, bool, Value)> = fields
                .iter()
                .map(|(name, email, value)| (*name, *email, (*value).clone()))
                .collect();
            let detector = self.dlp_detector_cell();
            scan_off_worker("data-loss prevention", move || {
                let fields: Vec<(&'static str, bool, &Value)> =
                    owned.iter().map(|(n, e, v)| (*n, *e, v)).collect();
                scan_fields(detector.get(), &fields)
            })
            .await?
        } else {
            scan_fields(self.dlp_detector(), &fields)
        };
        if scan.found.is_empty() {
            return Ok(());
        }
        let policy = self.dlp_policy_for(caller, entity, record, row).await?;
        let id = record.id().or_else(|| row.and_then(Record::id));
        let who = Actor::Caller(caller);
        let fixed_form = scan
            .hits
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| {
                scanned
                    .iter()
                    .any(|f| f.name == *name && matches!(f.kind, Kind::Slug | Kind::Email))
            })
            .collect();
        let applied = Applied { policy, fixed_form };
        self.dlp_outcome(who, entity.table, id, applied, &scan.found, ops)
            .await?;
        if policy == DlpPolicy::Redact {
            for (name, hits) in scan.hits {
                let redacted = match (record.get(name), hits) {
                    (Some(Value::Text(text)), Hits::Text(findings)) => {
                        let mut text = dlp::redact(text, &findings);
                        if scanned
                            .iter()
                            .any(|f| f.name == name && matches!(f.kind, Kind::Email))
                        {
                            // E-mail fields are stored lower-cased.
                            text = text.to_lowercase();
                        }
                        Value::Text(text)
                    }
                    (Some(Value::Json(value)), Hits::Json(hits)) => {
                        let mut value = value.clone();
                        redact_json(&mut value, &hits, &mut 0);
                        Value::Json(value)
                    }
                    _ => continue,
                };
                record.set(name, redacted);
            }
        }
        Ok(())
    }

    /// [`Self::apply_dlp`] for texts written outside the entity routes (an account's
    /// display name and e-mail, an API token's name): the policy is the server's, and
    /// `workspace`'s when the texts belong to one. Under `redact`, each text holding a
    /// finding is replaced. These texts are short (a name, an address), so they are
    /// scanned inline.
    ///
    /// Answers, for each text, its redacted form when it held a finding (whatever the
    /// policy): what an audit entry that copies the text must copy instead, as the audit
    /// trail never holds a matched value.
    pub(crate) async fn apply_dlp_texts(
        &self,
        who: Actor<'_>,
        resource: (&str, Option<Uuid>),
        workspace: Option<Uuid>,
        texts: &mut [ClientText<'_>],
        ops: &mut Vec<WriteOp>,
    ) -> Result<Vec<Option<String>>> {
        let mut redacted = vec![None; texts.len()];
        let in_reach = match who {
            Actor::Caller(caller) => self.dlp_may_apply(caller),
            Actor::NewUser(_) => self.config.dlp_policy != DlpPolicy::Off,
        };
        if !in_reach {
            return Ok(redacted);
        }
        let detector = self.dlp_detector();
        let mut found: Vec<FieldFinding> = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let findings = if text.email {
                detector.find_in_address(text.text.as_str())
            } else {
                detector.find(text.text.as_str())
            };
            if findings.is_empty() {
                continue;
            }
            found.extend(findings.iter().map(|f| FieldFinding {
                path: text.field.to_owned(),
                kind: f.kind,
            }));
            let mut safe = dlp::redact(text.text.as_str(), &findings);
            if text.email {
                safe = safe.to_lowercase();
            }
            redacted[i] = Some(safe);
        }
        if found.is_empty() {
            return Ok(redacted);
        }
        let set = match (workspace, who) {
            (Some(w), Actor::Caller(caller)) => match caller.scope.workspace_dlp_policy(w) {
                Some(policy) => policy,
                None => self.stored_dlp_policy(&model::WORKSPACES, w).await?,
            },
            (Some(w), Actor::NewUser(_)) => self.stored_dlp_policy(&model::WORKSPACES, w).await?,
            (None, _) => DlpPolicy::Off,
        };
        let policy = self.config.dlp_policy.max(set);
        let fixed_form = texts
            .iter()
            .zip(&redacted)
            .filter(|(text, safe)| text.email && safe.is_some())
            .map(|(text, _)| text.field)
            .collect();
        let applied = Applied { policy, fixed_form };
        self.dlp_outcome(who, resource.0, resource.1, applied, &found, ops)
            .await?;
        if policy == DlpPolicy::Redact {
            for (text, safe) in texts.iter_mut().zip(&redacted) {
                if let Some(safe) = safe {
                    safe.clone_into(text.text);
                }
            }
        }
        Ok(redacted)
    }

    /// An account's e-mail, read back from the store, as an audit entry may copy it:
    /// redacted when the server's policy is on (accounts follow the server's) and it holds
    /// a finding, as one stored under `flag` can.
    pub(crate) fn dlp_audit_email<'t>(&self, email: &'t str) -> std::borrow::Cow<'t, str> {
        if self.config.dlp_policy == DlpPolicy::Off {
            return std::borrow::Cow::Borrowed(email);
        }
        let findings = self.dlp_detector().find_in_address(email);
        if findings.is_empty() {
            std::borrow::Cow::Borrowed(email)
        } else {
            std::borrow::Cow::Owned(dlp::redact(email, &findings).to_lowercase())
        }
    }

    /// What `policy` does with `found`: nothing (`off`), an audit entry in the write's
    /// batch (`flag`, `redact`: the caller redacts), or the attempt recorded and a 422
    /// naming each field and kind (`reject`).
    async fn dlp_outcome(
        &self,
        who: Actor<'_>,
        table: &str,
        id: Option<Uuid>,
        applied: Applied,
        found: &[FieldFinding],
        ops: &mut Vec<WriteOp>,
    ) -> Result<()> {
        let Applied { policy, fixed_form } = applied;
        // One line per field and kind, with a count, and a bounded number of lines: a
        // text of repeated findings cannot inflate the audit trail. Ordered by field and
        // kind, so the entry is the same whatever order the fields were scanned in.
        let mut counted: BTreeMap<(&str, FindingKind), usize> = BTreeMap::new();
        for f in found {
            *counted.entry((f.path.as_str(), f.kind)).or_default() += 1;
        }
        let fields = counted.len();
        let mut listed: Vec<Json> = counted
            .iter()
            .take(MAX_LISTED)
            .map(|((path, kind), n)| {
                if *n == 1 {
                    json!({ "field": path, "kind": kind.as_str() })
                } else {
                    json!({ "field": path, "kind": kind.as_str(), "count": n })
                }
            })
            .collect();
        if fields > MAX_LISTED {
            listed.push(json!({ "more": fields - MAX_LISTED }));
        }
        let event = |outcome: &'static str| {
            let id = match who {
                Actor::NewUser(_) if outcome == "denied" => None,
                _ => id,
            };
            let event = AuditEvent::new("dlp.finding", outcome)
                .on(table, id)
                .details(json!({ "policy": policy.as_str(), "findings": listed }));
            match who {
                Actor::Caller(caller) => event.by(caller),
                // A refused account does not exist: the entry names no actor.
                Actor::NewUser(_) if outcome == "denied" => event,
                Actor::NewUser(user) => {
                    let mut event = event;
                    event.actor = Some(user);
                    event
                }
            }
        };
        // A slug or an e-mail address with a placeholder in it is no longer one (nor
        // unique, nor usable to log in): such a value is refused rather than redacted.
        let refused_redaction = policy == DlpPolicy::Redact && !fixed_form.is_empty();
        match policy {
            DlpPolicy::Off => Ok(()),
            DlpPolicy::Flag | DlpPolicy::Redact if !refused_redaction => {
                ops.push(self.audit_op(event("success")));
                Ok(())
            }
            DlpPolicy::Flag | DlpPolicy::Redact | DlpPolicy::Reject => {
                self.audit_now(event("denied")).await?;
                let mut errors = ValidationError::new();
                let mut by_field: BTreeMap<&str, BTreeSet<FindingKind>> = BTreeMap::new();
                for f in found {
                    by_field.entry(&f.path).or_default().insert(f.kind);
                }
                // A refused redaction names only the fields that could not be redacted:
                // the others would have been.
                let listed = by_field
                    .into_iter()
                    .filter(|(path, _)| !refused_redaction || fixed_form.contains(path));
                for (path, kinds) in listed.take(MAX_LISTED) {
                    let kinds: Vec<&str> = kinds.into_iter().map(FindingKind::describe).collect();
                    errors.add(
                        path,
                        if refused_redaction {
                            format!(
                                "holds {}, which the data-loss prevention policy redacts; a slug or \
                                 an e-mail address cannot be redacted, so it is refused",
                                kinds.join(" and ")
                            )
                        } else {
                            format!(
                                "holds {}, which the data-loss prevention policy refuses to store",
                                kinds.join(" and ")
                            )
                        },
                    );
                }
                Err(errors.into())
            }
        }
    }

    /// The strictest of the server's policy and those of the organization and workspace
    /// the row belongs to. Read from the caller's scope; from the store only when the row
    /// lies outside it (a system administrator's or a permission set's reach).
    async fn dlp_policy_for(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        record: &Record,
        row: Option<&Record>,
    ) -> Result<DlpPolicy> {
        let server = self.config.dlp_policy;
        let of = |name: &str| {
            record
                .id_of(name)
                .or_else(|| row.and_then(|r| r.id_of(name)))
        };
        let own_id = record.id().or_else(|| row.and_then(Record::id));
        let (workspace, organization) = if std::ptr::eq(entity, &model::WORKSPACES) {
            // A new workspace follows its organization; a stored one, itself.
            (row.and(own_id), of("organization_id"))
        } else if std::ptr::eq(entity, &model::ORGANIZATIONS) {
            (None, row.and(own_id))
        } else {
            (of("workspace_id"), of("organization_id"))
        };
        let set = match (workspace, organization) {
            (Some(w), _) => match caller.scope.workspace_dlp_policy(w) {
                Some(policy) => policy,
                None => self.stored_dlp_policy(&model::WORKSPACES, w).await?,
            },
            (None, Some(o)) => match caller.scope.organization_dlp_policy(o) {
                Some(policy) => policy,
                None => self.stored_dlp_policy(&model::ORGANIZATIONS, o).await?,
            },
            (None, None) => DlpPolicy::Off,
        };
        Ok(server.max(set))
    }

    /// A workspace's policy (the stricter of its own and its organization's) or an
    /// organization's, read from the store.
    async fn stored_dlp_policy(&self, entity: &'static Entity, id: Uuid) -> Result<DlpPolicy> {
        let row = self
            .store
            .get(entity, id, ScopeFilter::All, Deleted::Include)
            .await?;
        let Some(row) = row else {
            return Ok(DlpPolicy::Off);
        };
        let own = DlpPolicy::from_column(row.get("dlp_policy").and_then(Value::as_str));
        match row.id_of("organization_id") {
            Some(org) if std::ptr::eq(entity, &model::WORKSPACES) => {
                let parent = Box::pin(self.stored_dlp_policy(&model::ORGANIZATIONS, org)).await?;
                Ok(own.max(parent))
            }
            _ => Ok(own),
        }
    }

    fn dlp_detector(&self) -> &dlp::Detector {
        self.dlp_detector
            .get_or_init(|| dlp::Detector::new(self.config.dlp_contact_details))
    }

    /// The detector, to move into a task of the blocking pool.
    fn dlp_detector_cell(&self) -> DetectorCell {
        DetectorCell {
            cell: self.dlp_detector.clone(),
            contact_details: self.config.dlp_contact_details,
        }
    }
}

/// The server's detector, built on first use, owned by a task of the blocking pool.
struct DetectorCell {
    cell: std::sync::Arc<std::sync::OnceLock<dlp::Detector>>,
    contact_details: bool,
}

impl DetectorCell {
    fn get(&self) -> &dlp::Detector {
        self.cell
            .get_or_init(|| dlp::Detector::new(self.contact_details))
    }
}

/// Text-bearing kinds: text, URLs, slugs, e-mail addresses (a card number or a token can
/// be written in a slug or an address's local part; the address itself is not a finding
/// there) and JSON. Secrets are meant to hold secrets, and are encrypted.
fn scanned_kind(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Text { .. }
            | Kind::Url
            | Kind::Slug
            | Kind::Email
            | Kind::Object
            | Kind::Array
            | Kind::Any
            | Kind::Strings(_)
    )
}

/// A walk of one JSON field, numbering its strings (object keys and string values, in
/// order) so that redaction finds each again without detecting twice.
struct JsonWalk<'a> {
    detector: &'a dlp::Detector,
    next: usize,
    found: &'a mut Vec<FieldFinding>,
    hits: &'a mut Vec<(usize, Vec<Finding>)>,
}

impl JsonWalk<'_> {
    /// One string's findings, recorded under `path`.
    fn string(&mut self, findings: Vec<Finding>, path: &str) {
        let n = self.next;
        self.next += 1;
        if findings.is_empty() {
            return;
        }
        self.found.extend(findings.iter().map(|f| FieldFinding {
            path: path.to_owned(),
            kind: f.kind,
        }));
        self.hits.push((n, findings));
    }

    /// `value`, at `path` (grown and cut back in place, so a long key above a long list
    /// is not copied per item); `key` is the object key it is stored under, directly or as
    /// an item of a list (a label, such as `aws_secret_access_key`, can say what the value
    /// is).
    fn value(&mut self, value: &Json, key: Option<&str>, path: &mut String) {
        match value {
            Json::String(text) => {
                let findings = match key {
                    Some(key) => self.detector.find_under_key(key, text),
                    None => self.detector.find(text),
                };
                self.string(findings, path);
            }
            Json::Array(items) => {
                // The items of a list stored under a label are labelled by it too
                // (`{"aws_secret_access_key": ["…", "…"]}`, an old key and a new one).
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    push_path_index(path, i);
                    self.value(item, key, path);
                    path.truncate(len);
                }
            }
            Json::Object(map) => {
                for (key, item) in map {
                    // A key can hold a finding too; paths name it redacted, so neither an
                    // error nor an audit entry carries the value.
                    let findings = self.detector.find(key);
                    let len = path.len();
                    if findings.is_empty() {
                        push_path_key(path, key);
                    } else {
                        push_path_key(path, &dlp::redact(key, &findings));
                    }
                    self.string(findings, path);
                    self.value(item, Some(key), path);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
}

/// The findings of string number `n` of a walk, if it has any.
fn hits_of(hits: &[(usize, Vec<Finding>)], n: usize) -> Option<&[Finding]> {
    hits.binary_search_by_key(&n, |(i, _)| *i)
        .ok()
        .map(|i| hits[i].1.as_slice())
}

/// Redacts `value` in place where the walk that numbered its strings from `next` found
/// something (`hits`, by string number).
fn redact_json(value: &mut Json, hits: &[(usize, Vec<Finding>)], next: &mut usize) {
    match value {
        Json::String(text) => {
            if let Some(findings) = hits_of(hits, *next) {
                *text = dlp::redact(text, findings);
            }
            *next += 1;
        }
        Json::Array(items) => {
            for item in items {
                redact_json(item, hits, next);
            }
        }
        Json::Object(map) => {
            let mut renamed: BTreeMap<String, String> = BTreeMap::new();
            for (key, item) in map.iter_mut() {
                if let Some(findings) = hits_of(hits, *next) {
                    renamed.insert(key.clone(), dlp::redact(key, findings));
                }
                *next += 1;
                redact_json(item, hits, next);
            }
            if renamed.is_empty() {
                return;
            }
            // Keys holding findings are renamed; two that redact alike keep both values
            // (`[REDACTED:payment_card]`, `[REDACTED:payment_card] #2`).
            // Every key goes through the loop: a key sent as `[REDACTED:payment_card]`
            // must not overwrite a renamed one either.
            for (key, item) in std::mem::take(map) {
                let key = renamed.remove(&key).unwrap_or(key);
                let mut unique = key.clone();
                let mut n = 1;
                while map.contains_key(&unique) {
                    n += 1;
                    unique = format!("{key} #{n}");
                }
                map.insert(unique, item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans one JSON field and redacts it from the scan, as `apply_dlp` does under
    /// `redact`.
    fn scan_and_redact(detector: &dlp::Detector, value: Json) -> (Vec<FieldFinding>, Json) {
        let field = Value::Json(value.clone());
        let scan = scan_fields(detector, &[("metadata", false, &field)]);
        let mut value = value;
        for (_, hits) in &scan.hits {
            let Hits::Json(hits) = hits else {
                panic!("a JSON field gives JSON hits")
            };
            redact_json(&mut value, hits, &mut 0);
        }
        (scan.found, value)
    }

    /// Review item: redaction reuses the findings of the one detection pass. The walk
    /// numbers keys and strings alike, so a finding in a key, in a value under a label,
    /// and in a nested value all land where they were found.
    #[test]
    fn redaction_from_one_scan_lands_where_the_findings_were() {
        let detector = dlp::Detector::new(false);
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let (found, redacted) = scan_and_redact(
            &detector,
            json!({
                "4111111111111111": "card as a key",
                "[REDACTED:payment_card]": "sent as a placeholder",
                "deploy": {"AWS_SECRET_ACCESS_KEY": secret, "region": "eu-west-1"},
                "rotation": {"aws-secret-key": ["old", secret]},
                "notes": ["fine", "id AKIAIOSFODNN7EXAMPLE", {"k": "123-45-6789"}],
                "clean": "nothing",
            }),
        );
        let mut got = redacted.as_object().unwrap().clone();
        // Two keys that redact alike keep both values; which one gets `#2` follows the
        // map's order.
        let mut pair = [
            got.remove("[REDACTED:payment_card]").unwrap(),
            got.remove("[REDACTED:payment_card] #2").unwrap(),
        ];
        pair.sort_by_key(Json::to_string);
        assert_eq!(
            pair,
            [json!("card as a key"), json!("sent as a placeholder")]
        );
        assert_eq!(
            Json::Object(got),
            json!({
                "deploy": {"AWS_SECRET_ACCESS_KEY": "[REDACTED:aws_secret_access_key]", "region": "eu-west-1"},
                "rotation": {"aws-secret-key": ["old", "[REDACTED:aws_secret_access_key]"]},
                "notes": ["fine", "id [REDACTED:aws_access_key_id]", {"k": "[REDACTED:us_social_security_number]"}],
                "clean": "nothing",
            })
        );
        let mut paths: Vec<(&str, FindingKind)> =
            found.iter().map(|f| (f.path.as_str(), f.kind)).collect();
        paths.sort();
        assert_eq!(
            paths,
            vec![
                ("metadata.[REDACTED:payment_card]", FindingKind::PaymentCard),
                (
                    "metadata.deploy.AWS_SECRET_ACCESS_KEY",
                    FindingKind::AwsSecretAccessKey
                ),
                ("metadata.notes[1]", FindingKind::AwsAccessKeyId),
                ("metadata.notes[2].k", FindingKind::UsSocialSecurityNumber),
                (
                    "metadata.rotation.aws-secret-key[1]",
                    FindingKind::AwsSecretAccessKey
                ),
            ]
        );
    }

    /// Gap 4: in an e-mail field the address is not a finding, what its local part holds is.
    #[test]
    fn email_fields_report_what_the_address_holds_not_the_address() {
        let detector = dlp::Detector::new(true);
        let plain = Value::Text("jane.doe@example.org".into());
        let card = Value::Text("4111111111111111@example.org".into());
        let scan = scan_fields(&detector, &[("email", true, &plain)]);
        assert!(scan.found.is_empty());
        let scan = scan_fields(&detector, &[("email", true, &card)]);
        assert_eq!(
            scan.found,
            vec![FieldFinding {
                path: "email".into(),
                kind: FindingKind::PaymentCard
            }]
        );
        // Elsewhere, with contact details on, an address is one.
        let scan = scan_fields(&detector, &[("note", false, &plain)]);
        assert_eq!(scan.found.len(), 1);
    }

    /// Gap 7: a scan task that fails is an internal error for the request, not a panic of
    /// the worker that awaits it.
    #[tokio::test]
    async fn a_failed_scan_task_is_an_internal_error() {
        let result: Result<()> = scan_off_worker("the test scan", || panic!("boom")).await;
        assert!(
            matches!(&result, Err(ServiceError::Internal(m)) if m.contains("the test scan")),
            "{result:?}"
        );
        assert_eq!(scan_off_worker("a scan", || 7).await.unwrap(), 7);
    }

    #[test]
    fn text_len_counts_strings_and_keys() {
        assert_eq!(text_len(&Value::Text("abcd".into())), 4);
        assert_eq!(
            text_len(&Value::Json(json!({"ab": ["cde", 12, {"f": "g"}]}))),
            2 + 3 + 1 + 1
        );
    }
}
