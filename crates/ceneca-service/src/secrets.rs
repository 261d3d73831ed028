//! Secrets at rest after they are written: reading one back for internal use, and
//! re-encrypting every stored secret under the active key after a rotation (`ceneca keys
//! rewrap`). Administrative paths: they read across tenants. Also how a secret is sealed on
//! its way in (`seal_secrets`, called by the rules of entities with secret fields) and
//! the associated data binding it to its row (`secret_context`).

use ceneca_crypto::KeyRing;
use ceneca_domain::schema::Kind;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Entity, Record, Value, model};
use ceneca_store::{Actor, ListQuery, WriteBatch, WriteOp};
use uuid::Uuid;

use crate::Services;
use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError};

/// What a rewrap did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Secrets seen.
    pub checked: u64,
    /// Secrets re-encrypted under the active key.
    pub rewrapped: u64,
    /// Secrets that no key in the ring decrypts (moved or damaged ciphertexts): left as they
    /// are and listed, never lost.
    pub unreadable: Vec<(String, Uuid)>,
}

/// The entities with secret fields, and those fields.
fn secret_fields() -> Vec<(&'static Entity, &'static str)> {
    let mut out = Vec::new();
    for entity in model::ALL.iter().copied() {
        for field in entity.fields.iter().filter(|f| f.kind == Kind::Secret) {
            out.push((entity, field.name));
        }
    }
    // MFA secrets are written by the server, not declared as input.
    out.push((&model::USERS, "mfa_secret"));
    out
}

/// The column holding `<field>_<suffix>` on `entity`, if it has one (a secret's
/// `_ciphertext`, `_key_id` and `_hint` columns).
pub(crate) fn column(entity: &Entity, field: &str, suffix: &str) -> Option<&'static str> {
    entity
        .columns()
        .map(|f| f.name)
        .find(|name| name.strip_prefix(field).and_then(|r| r.strip_prefix('_')) == Some(suffix))
}

/// The encryption context of a secret: the record's identity, so a ciphertext copied to
/// another row, field or tenant does not decrypt.
pub(crate) fn secret_context(entity: &Entity, id: Uuid, field: &str, record: &Record) -> Vec<u8> {
    let tenant = ["user_id", "organization_id", "workspace_id"]
        .iter()
        .find_map(|c| record.id_of(c))
        .map(|t| t.to_string())
        .unwrap_or_default();
    format!("{}/{id}/{field}/{tenant}", entity.table).into_bytes()
}

/// Replaces plaintext secret fields by ciphertext, key id and a masked hint.
pub(crate) fn seal_secrets(
    svc: &Services,
    entity: &Entity,
    id: Uuid,
    owner_row: &Record,
    set: &mut Record,
) {
    for field in entity.fields.iter().filter(|f| f.kind == Kind::Secret) {
        let Some(value) = set.remove(field.name) else {
            continue;
        };
        let (ciphertext, key_id, hint) = match value {
            Value::Text(plain) => {
                let ct = svc.keys.encrypt(
                    plain.as_bytes(),
                    &secret_context(entity, id, field.name, owner_row),
                );
                let chars: Vec<char> = plain.chars().collect();
                let hint = if chars.len() >= 12 {
                    format!("…{}", chars[chars.len() - 4..].iter().collect::<String>())
                } else {
                    "…".to_owned()
                };
                (
                    Value::Bytes(ct),
                    Value::Text(svc.keys.active_key_id().to_owned()),
                    Value::Text(hint),
                )
            }
            _ => (Value::Null, Value::Null, Value::Null),
        };
        for (suffix, v) in [
            ("ciphertext", ciphertext),
            ("key_id", key_id),
            ("hint", hint),
        ] {
            if let Some(column) = column(entity, field.name, suffix) {
                set.set(column, v);
            }
        }
    }
}

impl Services {
    /// The plaintext of a stored secret (for calling a provider, for tests). Not exposed
    /// over HTTP: secrets are write-only to clients.
    pub async fn reveal_secret(
        &self,
        entity: &'static Entity,
        id: Uuid,
        field: &str,
    ) -> Result<Option<String>> {
        let row = self
            .store
            .lookup_unscoped(entity, "id", Value::Id(id))
            .await?
            .ok_or(ServiceError::NotFound(entity.name))?;
        let Some(ct_column) = column(entity, field, "ciphertext") else {
            return Ok(None);
        };
        let Some(Value::Bytes(ciphertext)) = row.get(ct_column) else {
            return Ok(None);
        };
        let plain = self
            .keys
            .decrypt(ciphertext, &secret_context(entity, id, field, &row))
            .map_err(|e| ServiceError::Internal(format!("secret of {} {id}: {e}", entity.name)))?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| ServiceError::Internal("secret is not UTF-8".into()))
    }

    /// Re-encrypts every secret not yet under the active key. Safe to interrupt and run
    /// again: rows already rewrapped are skipped. `progress(done, of_entity)` is called
    /// after each page.
    pub async fn rewrap_secrets(
        &self,
        keys: &KeyRing,
        mut progress: impl FnMut(u64),
    ) -> Result<RewrapReport> {
        let mut report = RewrapReport::default();
        let active = keys.active_key_id().to_owned();
        for (entity, field) in secret_fields() {
            let Some(ct_column) = column(entity, field, "ciphertext") else {
                continue;
            };
            let key_column = column(entity, field, "key_id");
            let mut after: Option<(Value, Uuid)> = None;
            loop {
                let mut q = ListQuery::new(ScopeFilter::All, "id", false, 500);
                q.deleted = ceneca_store::Deleted::Include;
                q.after = after.take();
                let mut rows = self.store.list(entity, q).await?;
                let more = rows.len() > 500;
                rows.truncate(500);
                let mut batch = WriteBatch::new(Actor::default());
                for row in &rows {
                    let Some(Value::Bytes(ciphertext)) = row.get(ct_column) else {
                        continue;
                    };
                    let Some(id) = row.id() else { continue };
                    report.checked += 1;
                    if KeyRing::key_id_of(ciphertext).is_ok_and(|k| k == active) {
                        continue;
                    }
                    let context = secret_context(entity, id, field, row);
                    match keys.decrypt(ciphertext, &context) {
                        Ok(plain) => {
                            let mut set = Record::new();
                            set.set(ct_column, Value::Bytes(keys.encrypt(&plain, &context)));
                            if let Some(key_column) = key_column {
                                set.set(key_column, Value::Text(active.clone()));
                            }
                            batch.ops.push(WriteOp::Update {
                                entity,
                                id,
                                filter: ScopeFilter::All,
                                set,
                            });
                            report.rewrapped += 1;
                        }
                        Err(_) => report.unreadable.push((entity.table.to_owned(), id)),
                    }
                }
                if !batch.ops.is_empty() {
                    self.store
                        .apply(batch)
                        .await
                        .map_err(|e| ServiceError::Internal(format!("rewrap: {e}")))?;
                }
                progress(report.checked);
                match rows.last() {
                    Some(last) if more => {
                        after = Some((
                            Value::Id(last.id().unwrap_or_default()),
                            last.id().unwrap_or_default(),
                        ))
                    }
                    _ => break,
                }
            }
        }
        self.rewrap_content(keys, &mut report, &mut progress)
            .await?;
        let event = AuditEvent::new("keys.rewrap", if report.unreadable.is_empty() { "success" } else { "failure" })
            .details(serde_json::json!({"active_key": active, "checked": report.checked, "rewrapped": report.rewrapped, "unreadable": report.unreadable.len()}));
        self.audit_now(event).await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use ceneca_crypto::KeyRing;
    use ceneca_crypto::keyring::{decode_key_base64, generate_key_base64};
    use ceneca_domain::model;
    use serde_json::json;

    use crate::testing::{id_of, services, sign_up};

    #[tokio::test]
    async fn a_secret_is_sealed_on_the_way_in_and_survives_a_rewrap() {
        let t = services().await;
        let svc = &t.svc;
        let (ann, _) = sign_up(svc, "ann@example.com").await;
        let config = svc
            .create(
                &ann,
                &model::AI_PROVIDER_CONFIGS,
                &json!({"provider": "openai", "name": "main", "api_key": "sk-0123456789abcdef"}),
                None,
            )
            .await
            .unwrap();
        assert!(config.get("api_key").is_none(), "secrets are write-only");
        assert_eq!(config["api_key_hint"], "…cdef");
        let id = id_of(&config);
        let reveal = || svc.reveal_secret(&model::AI_PROVIDER_CONFIGS, id, "api_key");
        assert_eq!(
            reveal().await.unwrap().as_deref(),
            Some("sk-0123456789abcdef")
        );

        // A second key becomes active: the rewrap moves the secret under it.
        let new_key = decode_key_base64(&generate_key_base64()).unwrap();
        let mut ring = KeyRing::new("test", &t.key).unwrap();
        ring.add("second", &new_key).unwrap();
        ring.activate("second").unwrap();
        let report = svc.rewrap_secrets(&ring, |_| {}).await.unwrap();
        assert_eq!(report.rewrapped, 1);
        assert!(report.unreadable.is_empty());
        let again = svc.rewrap_secrets(&ring, |_| {}).await.unwrap();
        assert_eq!(again.rewrapped, 0, "already under the active key");
    }
}
