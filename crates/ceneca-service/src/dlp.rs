//! Data-loss prevention on write (both editions). A policy — `off`, `flag`, `redact` or
//! `reject` — is set for the server (`[dlp] policy`), an organization and a workspace
//! (their `dlp_policy` field); the strictest of the three applies to a write, so neither
//! a workspace administrator nor an organization one can loosen what is set above them.
//!
//! What is looked at: every client-supplied text of a create or an update (text and URL
//! fields, every string inside JSON fields), after validation and authorization and
//! before the row is sealed or stored. Secret fields (a provider's API key, which the
//! service encrypts) are meant to hold secrets and are skipped, as are e-mail fields.
//!
//! What is recorded: one audit entry per write with findings (`dlp.finding`, with the
//! policy applied), naming each field and the kind found, never the value — in the same
//! transaction as the write under `flag` and `redact` (outcome `success`), on its own
//! under `reject` (outcome `denied`; nothing else is stored).
//!
//! Cost: nothing when no policy applies anywhere in the caller's reach (the default); one
//! `RegexSet` pass over the texts otherwise, and the policy's look-up only when something
//! was found.

use ceneca_domain::dlp::{self, DlpPolicy, Finding, FindingKind};
use ceneca_domain::model;
use ceneca_domain::schema::Kind;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Deleted, Entity, Record, ValidationError, Value};
use ceneca_store::WriteOp;
use serde_json::{Value as Json, json};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::error::Result;
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
        let detector = self.dlp_detector();
        let mut found = Vec::new();
        let mut scanned: Vec<&'static str> = Vec::new();
        for name in supplied {
            let Some(field) = entity.field(name) else {
                continue;
            };
            if !scanned_kind(&field.kind) || scanned.contains(&field.name) {
                continue;
            }
            scanned.push(field.name);
            match record.get(field.name) {
                Some(Value::Text(text)) => {
                    for finding in detector.find(text) {
                        found.push(FieldFinding {
                            path: field.name.to_string(),
                            kind: finding.kind,
                        });
                    }
                }
                Some(Value::Json(value)) => {
                    find_in_json(detector, value, field.name.to_string(), &mut found)
                }
                _ => {}
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        let policy = self.dlp_policy_for(caller, entity, record, row).await?;
        let id = record.id().or_else(|| row.and_then(Record::id));
        let who = Actor::Caller(caller);
        self.dlp_outcome(who, entity.table, id, policy, &found, ops)
            .await?;
        if policy == DlpPolicy::Redact {
            for name in scanned {
                match record.get(name) {
                    Some(Value::Text(text)) => {
                        let findings = detector.find(text);
                        if !findings.is_empty() {
                            let redacted = dlp::redact(text, &findings);
                            record.set(name, Value::Text(redacted));
                        }
                    }
                    Some(Value::Json(value)) => {
                        let mut value = value.clone();
                        if redact_json(detector, &mut value) {
                            record.set(name, Value::Json(value));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// [`Self::apply_dlp`] for one text written outside the entity routes (an account's
    /// display name, an API token's name): the policy is the server's, and `workspace`'s
    /// when the text belongs to one. Under `redact`, `text` is replaced.
    pub(crate) async fn apply_dlp_text(
        &self,
        who: Actor<'_>,
        resource: (&str, Option<Uuid>),
        workspace: Option<Uuid>,
        field: &str,
        text: &mut String,
        ops: &mut Vec<WriteOp>,
    ) -> Result<()> {
        let in_reach = match who {
            Actor::Caller(caller) => self.dlp_may_apply(caller),
            Actor::NewUser(_) => self.config.dlp_policy != DlpPolicy::Off,
        };
        if !in_reach {
            return Ok(());
        }
        let detector = self.dlp_detector();
        let findings = detector.find(text);
        if findings.is_empty() {
            return Ok(());
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
        let found: Vec<FieldFinding> = findings
            .iter()
            .map(|f| FieldFinding {
                path: field.to_owned(),
                kind: f.kind,
            })
            .collect();
        self.dlp_outcome(who, resource.0, resource.1, policy, &found, ops)
            .await?;
        if policy == DlpPolicy::Redact {
            *text = dlp::redact(text, &findings);
        }
        Ok(())
    }

    /// What `policy` does with `found`: nothing (`off`), an audit entry in the write's
    /// batch (`flag`, `redact`: the caller redacts), or the attempt recorded and a 422
    /// naming each field and kind (`reject`).
    async fn dlp_outcome(
        &self,
        who: Actor<'_>,
        table: &str,
        id: Option<Uuid>,
        policy: DlpPolicy,
        found: &[FieldFinding],
        ops: &mut Vec<WriteOp>,
    ) -> Result<()> {
        // One line per field and kind, with a count, and a bounded number of lines: a
        // text of repeated findings cannot inflate the audit trail.
        let mut counted: Vec<(&str, FindingKind, usize)> = Vec::new();
        for f in found {
            match counted
                .iter_mut()
                .find(|(path, kind, _)| *path == f.path && *kind == f.kind)
            {
                Some((_, _, n)) => *n += 1,
                None => counted.push((&f.path, f.kind, 1)),
            }
        }
        let fields = counted.len();
        let mut listed: Vec<Json> = counted
            .iter()
            .take(MAX_LISTED)
            .map(|(path, kind, n)| {
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
        match policy {
            DlpPolicy::Off => Ok(()),
            DlpPolicy::Flag | DlpPolicy::Redact => {
                ops.push(self.audit_op(event("success")));
                Ok(())
            }
            DlpPolicy::Reject => {
                self.audit_now(event("denied")).await?;
                let mut errors = ValidationError::new();
                let mut by_field: Vec<(String, Vec<&'static str>)> = Vec::new();
                for f in found {
                    match by_field.iter_mut().find(|(p, _)| *p == f.path) {
                        Some((_, kinds)) if !kinds.contains(&f.kind.describe()) => {
                            kinds.push(f.kind.describe())
                        }
                        Some(_) => {}
                        None => by_field.push((f.path.clone(), vec![f.kind.describe()])),
                    }
                }
                for (path, kinds) in by_field.into_iter().take(MAX_LISTED) {
                    errors.add(
                        path,
                        format!(
                            "holds {}, which the data-loss prevention policy refuses to store",
                            kinds.join(" and ")
                        ),
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
        let own = policy_of(&row);
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
}

fn policy_of(row: &Record) -> DlpPolicy {
    row.get("dlp_policy")
        .and_then(Value::as_str)
        .and_then(|text| text.parse().ok())
        .unwrap_or_default()
}

/// Text-bearing kinds. Secrets are meant to hold secrets (and are encrypted); e-mail
/// fields hold an e-mail address by definition.
fn scanned_kind(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Text { .. } | Kind::Url | Kind::Object | Kind::Array | Kind::Any | Kind::Strings(_)
    )
}

/// The findings in every string of `value`, with paths under `path`.
fn find_in_json(detector: &dlp::Detector, value: &Json, path: String, out: &mut Vec<FieldFinding>) {
    match value {
        Json::String(text) => {
            out.extend(
                detector
                    .find(text)
                    .into_iter()
                    .map(|f: Finding| FieldFinding {
                        path: path.clone(),
                        kind: f.kind,
                    }),
            )
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_in_json(detector, item, format!("{path}[{i}]"), out);
            }
        }
        Json::Object(map) => {
            for (key, item) in map {
                // A key can hold a finding too; paths name it redacted, so neither an
                // error nor an audit entry carries the value.
                let findings = detector.find(key);
                let at = if findings.is_empty() {
                    format!("{path}.{key}")
                } else {
                    format!("{path}.{}", dlp::redact(key, &findings))
                };
                out.extend(findings.iter().map(|f| FieldFinding {
                    path: at.clone(),
                    kind: f.kind,
                }));
                find_in_json(detector, item, at, out);
            }
        }
        _ => {}
    }
}

/// Redacts every string of `value` in place; whether anything changed.
fn redact_json(detector: &dlp::Detector, value: &mut Json) -> bool {
    match value {
        Json::String(text) => {
            let findings = detector.find(text);
            if findings.is_empty() {
                return false;
            }
            *text = dlp::redact(text, &findings);
            true
        }
        Json::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= redact_json(detector, item);
            }
            changed
        }
        Json::Object(map) => {
            let mut changed = false;
            for item in map.values_mut() {
                changed |= redact_json(detector, item);
            }
            if map.keys().all(|key| detector.find(key).is_empty()) {
                return changed;
            }
            // Keys holding findings are renamed; two that redact alike keep both values
            // (`[REDACTED:payment_card]`, `[REDACTED:payment_card] #2`).
            // Every key goes through the loop: a key sent as `[REDACTED:payment_card]`
            // must not overwrite a renamed one either.
            for (key, item) in std::mem::take(map) {
                let findings = detector.find(&key);
                let key = if findings.is_empty() {
                    key
                } else {
                    dlp::redact(&key, &findings)
                };
                let mut unique = key.clone();
                let mut n = 1;
                while map.contains_key(&unique) {
                    n += 1;
                    unique = format!("{key} #{n}");
                }
                map.insert(unique, item);
            }
            true
        }
        _ => false,
    }
}
