//! The change feed: what a caller may read of the change log after a cursor.

use ceneca_domain::Record;
use ceneca_domain::Value;
use ceneca_domain::model;
use ceneca_domain::scope::{Access, ScopeFilter};
use ceneca_store::changes::{FeedPart, FeedQuery};
use ceneca_wire::sync::{Change, ChangeOperation, PullPage};
use serde_json::Value as Json;

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

impl Services {
    /// The changes after `cursor` the caller may read, oldest first, at most `limit`.
    ///
    /// Each entity's changes are filtered by the caller's read filter for that entity
    /// (roles, permission rules, the credential's reach) in SQL, applied to the owners the
    /// change log keeps for each change; revocations addressed to the caller come too.
    pub async fn pull(&self, caller: &Caller, cursor: i64, limit: u32) -> Result<PullPage> {
        self.require_sync()?;
        let (parts, account) = feed_parts(caller);
        // Streams woken by one commit ask the same queries: each is read once.
        let read = self
            .read_feed(FeedQuery {
                after: cursor,
                limit: limit.saturating_add(1),
                parts,
                // Which workspaces the user lost, and the user's roles, are the account's
                // business: an API token, which reaches one workspace's content, is not
                // told.
                revocations_of: account.then_some(caller.user_id),
                memberships_of: account.then_some(caller.user_id),
                made_on: None,
                until: None,
            })
            .await?;
        // `last` was read before the feed: every change up to it is in the feed's view,
        // so a short page may move the cursor to `last` (a reader who sees little of a
        // busy log does not rescan it).
        let (last, rows) = (read.last, &read.rows);
        if cursor > last {
            return Err(ServiceError::Gone(format!(
                "the cursor {cursor} is beyond this server's change log (which ends at \
                 {last}): the device's copy comes from elsewhere or from before a restore; \
                 resynchronise from a snapshot"
            )));
        }
        self.note_device_seen(caller).await?;
        let has_more = rows.len() > limit as usize;
        let mut changes = Vec::with_capacity(rows.len().min(limit as usize));
        for row in rows.iter().take(limit as usize) {
            changes.push(self.feed_change(row)?);
        }
        self.attach_secrets(caller, &mut changes).await?;
        let next = match changes.last() {
            Some(_) if has_more => seq_of(&rows[limit as usize - 1]),
            Some(_) => last.max(seq_of(&rows[rows.len() - 1])),
            None => last,
        };
        Ok(PullPage {
            changes,
            cursor: next.to_string(),
            has_more,
        })
    }

    /// Adds to these changes the secrets the caller's device receives. The log never
    /// holds a secret (a rotation re-encrypts the rows, and a replaced or deleted key
    /// must not stay retrievable): a change that holds a secret's register brings the
    /// row's secret as it stands now, only while the row exists, and only to a device
    /// whose user may change the row *now* (the access is loaded again: a stream opened
    /// before a demotion must not carry the next key), over TLS or loopback; a reader of
    /// a shared provider setting uses it through the server. To every other device the
    /// change brings `null` for it, so a node drops a copy it may no longer hold (a key
    /// replaced or cleared, a user demoted). Sessions and API tokens never see the field.
    pub(super) async fn attach_secrets(
        &self,
        caller: &Caller,
        changes: &mut [Change],
    ) -> Result<()> {
        if !matches!(
            caller.credential,
            ceneca_domain::credential::Credential::Device { .. }
        ) {
            return Ok(());
        }
        let with_secrets = |c: &Change| {
            matches!(
                c.operation,
                ChangeOperation::Create | ChangeOperation::Update
            ) && ceneca_domain::sync::entity_named(&c.entity)
                .is_some_and(|e| ceneca_domain::sync::secrets(e).next().is_some())
        };
        let ids: Vec<uuid::Uuid> = changes
            .iter()
            .filter(|c| with_secrets(c))
            .map(|c| c.entity_id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let secure = self.sends_secrets_to(caller);
        let now = self.recheck(caller).await?;
        let (clocks, _) = self.row_clocks(ids).await?;
        for change in changes.iter_mut().filter(|c| with_secrets(c)) {
            let Some(entity) = ceneca_domain::sync::entity_named(&change.entity) else {
                continue;
            };
            let Some(registers) = clocks.get(&(entity.name.to_owned(), change.entity_id)) else {
                continue;
            };
            let stamp = ceneca_domain::sync::Stamp {
                hlc: change.hlc.parse().unwrap_or_default(),
                change: change.change_id,
            };
            let holds: Vec<_> = ceneca_domain::sync::secrets(entity)
                .filter(|(_, column)| registers.fields.get(*column) == Some(&stamp))
                .collect();
            if holds.is_empty() {
                continue;
            }
            let writable = match secure {
                true => {
                    self.store
                        .get(
                            entity,
                            change.entity_id,
                            now.filter(entity, Access::Write),
                            ceneca_domain::Deleted::Exclude,
                        )
                        .await?
                }
                false => None,
            };
            for (secret, column) in holds {
                let plain = match writable.as_ref().map(|row| (row, row.get(column))) {
                    Some((row, Some(Value::Bytes(sealed)))) => {
                        let context =
                            crate::secrets::secret_context(entity, change.entity_id, secret, row);
                        match self.keys.decrypt_str(sealed, &context) {
                            Ok(plain) => Json::String(plain),
                            Err(e) => {
                                tracing::warn!(
                                    entity = entity.table,
                                    id = %change.entity_id,
                                    error = %e,
                                    "a stored secret no key of the ring opens: not sent"
                                );
                                Json::Null
                            }
                        }
                    }
                    _ => Json::Null,
                };
                change.values.insert(secret.to_owned(), plain);
            }
        }
        Ok(())
    }

    /// An empty page at the newest cursor: where a stream that names no cursor starts.
    pub async fn pull_from_now(&self) -> Result<PullPage> {
        self.require_sync()?;
        Ok(PullPage {
            changes: Vec::new(),
            cursor: self.store.last_change().await?.to_string(),
            has_more: false,
        })
    }

    /// Wakes when a change commits on this node (the stream's trigger).
    pub fn change_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.change_signal()
    }

    /// Whether the feed may carry secrets (provider API keys) to this caller at all: only
    /// to a device (a node, which seals them again under its own key ring), and only over
    /// a connection no one else can read, TLS or loopback. Everyone else gets the rest of
    /// the row: secrets stay write-only to clients.
    fn sends_secrets_to(&self, caller: &Caller) -> bool {
        let device = matches!(
            caller.credential,
            ceneca_domain::credential::Credential::Device { .. }
        );
        let loopback = caller
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| ip.is_loopback());
        device && (self.config.served_over_tls || loopback)
    }

    /// One change-log row as the feed shows it, sealed content opened.
    pub(super) fn feed_change(&self, row: &Record) -> Result<Change> {
        let text = |name: &str| row.get(name).and_then(Value::as_str).unwrap_or_default();
        let entity_type = text("entity_type");
        let entity_id = row
            .id_of("entity_id")
            .ok_or_else(|| ServiceError::Internal("a change without its row".into()))?;
        let operation = logged_operation(text("operation")).unwrap_or(ChangeOperation::Revoke);
        let workspace_id = row.id_of("scope_workspace_id");
        let mut values = match row.get("payload") {
            Some(Value::Json(Json::Object(map))) => map.clone(),
            _ => serde_json::Map::new(),
        };
        let entity = ceneca_domain::sync::entity_logged_as(entity_type)
            .ok_or_else(|| ServiceError::Internal(format!("a change of {entity_type}")))?;
        // A revoke's values are the server's own (the role a demotion leaves), not a row's;
        // a purge has none.
        if !matches!(operation, ChangeOperation::Revoke | ChangeOperation::Purge) {
            self.open_values(entity, entity_id, workspace_id, &mut values)?;
        }
        Ok(Change {
            cursor: seq_of(row).to_string(),
            change_id: row.id().unwrap_or_default(),
            entity: entity.table.to_owned(),
            entity_id,
            operation,
            hlc: hlc_text(row),
            device_id: row.id_of("device_id"),
            user_id: row.id_of("user_id"),
            workspace_id,
            organization_id: row.id_of("scope_organization_id"),
            values,
        })
    }
}

/// What the caller's feed reads: each changelogged entity its credential reaches, with
/// its read filter for that entity; and whether it is the account's (an API token, which
/// reaches one workspace's content, is not told about memberships or revocations).
///
/// The rows of the caller's workspaces in the bin come too (their own changes, not their
/// content's): reads leave a trashed workspace out, but its trashing is what tells a
/// device to move its copy to the bin, and its restore to bring it back.
pub(super) fn feed_parts(caller: &Caller) -> (Vec<FeedPart>, bool) {
    let account = !matches!(
        caller.credential,
        ceneca_domain::credential::Credential::ApiToken { .. }
    );
    let mut parts: Vec<FeedPart> = model::ALL
        .iter()
        .copied()
        .filter(|e| e.changelog && caller.credential.refuse_entity(e).is_none())
        .map(|entity| FeedPart {
            entity,
            filter: caller.filter(entity, Access::Read),
        })
        .collect();
    let trashed: Vec<uuid::Uuid> = caller
        .scope
        .deleted_workspaces
        .iter()
        .map(|(id, _)| *id)
        .collect();
    if account && !trashed.is_empty() {
        parts.push(FeedPart {
            entity: &model::WORKSPACES,
            filter: ScopeFilter::AnyOf(vec![("id", trashed)]),
        });
    }
    (parts, account)
}

/// The operation a change-log row records, as the protocol names it.
pub(super) fn logged_operation(text: &str) -> Option<ChangeOperation> {
    Some(match text {
        "create" => ChangeOperation::Create,
        "update" => ChangeOperation::Update,
        "delete" => ChangeOperation::Delete,
        "restore" => ChangeOperation::Restore,
        "revoke" => ChangeOperation::Revoke,
        "purge" => ChangeOperation::Purge,
        _ => return None,
    })
}

/// A change-log row's clock, as the protocol sends it (a decimal string).
pub(super) fn hlc_text(row: &Record) -> String {
    row.get("hlc")
        .and_then(Value::as_int)
        .unwrap_or_default()
        .to_string()
}

pub(super) fn seq_of(row: &Record) -> i64 {
    row.get("seq").and_then(Value::as_int).unwrap_or_default()
}
