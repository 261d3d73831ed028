//! Message and document content encrypted at rest (the `encrypt_content` setting).
//!
//! Provider keys and TOTP secrets are always encrypted and never shown again; content is
//! different: it is encrypted on the way in and decrypted for every reader who may see it.
//! A sealed value is stored as base64 text in its own column, and a `<field>_key_id`
//! column beside it names the key — `NULL` means plaintext. That marker, not the shape of
//! the text, decides: a user may well write text that looks like base64.
//!
//! The trade-off, documented for operators: the full-text index cannot read sealed text, so
//! with this setting on, search covers document titles (and metadata) only, never message
//! content or document bodies. The index triggers skip sealed values (migration 0002).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ceneca_crypto::KeyRing;
use ceneca_domain::output::{View, to_json};
use ceneca_domain::{Entity, Record, Value, model};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::Services;
use crate::error::{Result, ServiceError};

/// A content field that may be sealed, and the column naming its key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealedField {
    pub entity: &'static Entity,
    pub field: &'static str,
    pub key_column: &'static str,
}

/// Every field the setting covers.
pub(crate) const SEALED_FIELDS: [SealedField; 2] = [
    SealedField {
        entity: &model::MESSAGES,
        field: "content",
        key_column: "content_key_id",
    },
    SealedField {
        entity: &model::DOCUMENTS,
        field: "body",
        key_column: "body_key_id",
    },
];

/// The sealed field of `entity`, if it has one.
pub(crate) fn sealed_field(entity: &Entity) -> Option<SealedField> {
    SEALED_FIELDS
        .iter()
        .copied()
        .find(|s| s.entity.table == entity.table)
}

/// The associated data binding a sealed value to its row and tenant: a ciphertext copied
/// to another message, field or workspace does not decrypt.
fn context(entity: &Entity, id: Uuid, field: &str, workspace: Option<Uuid>) -> Vec<u8> {
    let workspace = workspace.map(|w| w.to_string()).unwrap_or_default();
    format!("{}/{id}/{field}/{workspace}", entity.table).into_bytes()
}

/// Encrypts one plaintext under the active key, as stored text.
pub(crate) fn seal_text(
    keys: &KeyRing,
    sealed: SealedField,
    id: Uuid,
    workspace: Option<Uuid>,
    plain: &str,
) -> String {
    let ct = keys.encrypt(
        plain.as_bytes(),
        &context(sealed.entity, id, sealed.field, workspace),
    );
    B64.encode(ct)
}

/// Decrypts one stored sealed text.
pub(crate) fn open_text(
    keys: &KeyRing,
    sealed: SealedField,
    id: Uuid,
    workspace: Option<Uuid>,
    stored: &str,
) -> Result<String> {
    let damaged = || {
        ServiceError::Internal(format!(
            "the sealed {} of {} {id} does not decrypt",
            sealed.field, sealed.entity.name
        ))
    };
    let ct = B64.decode(stored).map_err(|_| damaged())?;
    let plain = keys
        .decrypt(&ct, &context(sealed.entity, id, sealed.field, workspace))
        .map_err(|_| damaged())?;
    String::from_utf8(plain).map_err(|_| damaged())
}

/// Whether `row` holds a compressed body (retention's, see `ceneca_store::packing`).
fn is_packed(entity: &Entity, row: &Record) -> bool {
    ceneca_store::packing::packed_field(entity)
        .is_some_and(|p| matches!(row.get(p.packed), Some(Value::Bytes(_))))
}

/// Puts a compressed body's text back in its field: whoever reads a row gets its text.
fn unpack(entity: &Entity, row: &mut Record) -> Result<()> {
    ceneca_store::packing::unpack_record(entity, row).map_err(|e| {
        ServiceError::Internal(format!(
            "{} {}: {e}",
            entity.name,
            row.id().unwrap_or_default()
        ))
    })
}

impl Services {
    /// Seals the content field `set` writes, when the setting is on; with it off, marks
    /// the new value as plaintext (it may replace a sealed one). `id` and `workspace`
    /// name the row the value belongs to.
    pub(crate) fn seal_content(
        &self,
        entity: &Entity,
        id: Uuid,
        workspace: Option<Uuid>,
        set: &mut Record,
    ) {
        let Some(sealed) = sealed_field(entity) else {
            return;
        };
        let Some(Value::Text(plain)) = set.get(sealed.field) else {
            return;
        };
        if self.config.encrypt_content {
            let text = seal_text(&self.keys, sealed, id, workspace, plain);
            set.set(sealed.field, Value::Text(text));
            set.set(
                sealed.key_column,
                Value::Text(self.keys.active_key_id().to_owned()),
            );
        } else {
            set.set(sealed.key_column, Value::Null);
        }
    }

    /// Whether updating `entity` with `set` needs the current row to seal its content.
    pub(crate) fn seals_on_update(&self, entity: &Entity, set: &Record) -> bool {
        self.config.encrypt_content
            && sealed_field(entity).is_some_and(|s| set.get(s.field).is_some())
    }

    /// Decrypts a row's sealed content in place (unpacking a compressed body first), whatever the setting is now (rows sealed
    /// while it was on stay readable after it is turned off).
    pub(crate) fn open_content(&self, entity: &Entity, row: &mut Record) -> Result<()> {
        unpack(entity, row)?;
        let Some(sealed) = sealed_field(entity) else {
            return Ok(());
        };
        if !matches!(row.get(sealed.key_column), Some(Value::Text(_))) {
            return Ok(());
        }
        let (Some(id), Some(Value::Text(stored))) = (row.id(), row.get(sealed.field)) else {
            return Ok(());
        };
        let plain = open_text(&self.keys, sealed, id, row.id_of("workspace_id"), stored)?;
        row.set(sealed.field, Value::Text(plain));
        Ok(())
    }

    /// A change's values as a client sees them: sealed content opened (the receiving
    /// node seals it again under its own keys), vectors as numbers, hidden columns
    /// dropped.
    pub(crate) fn open_values(
        &self,
        entity: &Entity,
        id: Uuid,
        workspace: Option<Uuid>,
        values: &mut serde_json::Map<String, Json>,
    ) -> Result<()> {
        if let Some(sealed) = sealed_field(entity)
            && let Some(Json::String(_)) = values.get(sealed.key_column)
            && let Some(Json::String(stored)) = values.get(sealed.field)
        {
            let plain = open_text(&self.keys, sealed, id, workspace, stored)?;
            values.insert(sealed.field.to_owned(), Json::String(plain));
        }
        ceneca_domain::sync::show_logged_values(entity, values).map_err(ServiceError::Internal)?;
        values.retain(|name, _| {
            entity
                .field(name)
                .is_some_and(|f| f.output != ceneca_domain::schema::Output::Never)
        });
        Ok(())
    }

    /// A row as a client sees it: a compressed body unpacked, content opened, hidden
    /// columns dropped.
    pub(crate) fn present(&self, entity: &Entity, row: &Record, view: View) -> Result<Json> {
        let unpacked;
        let row = if is_packed(entity, row) {
            let mut copy = row.clone();
            unpack(entity, &mut copy)?;
            unpacked = copy;
            &unpacked
        } else {
            row
        };
        match sealed_field(entity) {
            Some(sealed) if matches!(row.get(sealed.key_column), Some(Value::Text(_))) => {
                // Summaries of documents leave the body out: nothing to open.
                let shown = entity
                    .field(sealed.field)
                    .is_some_and(|f| f.output == ceneca_domain::schema::Output::Always)
                    || view == View::Detail;
                if !shown {
                    return Ok(to_json(entity, row, view));
                }
                let mut row = row.clone();
                self.open_content(entity, &mut row)?;
                Ok(to_json(entity, &row, view))
            }
            _ => Ok(to_json(entity, row, view)),
        }
    }
}

impl Services {
    /// Re-encrypts sealed content not under the active key of `keys`, and seals plaintext
    /// content written before the setting was turned on (when it is on now). Resumable like
    /// the secrets' rewrap: rows already done are skipped.
    pub(crate) async fn rewrap_content(
        &self,
        keys: &KeyRing,
        report: &mut crate::secrets::RewrapReport,
        progress: &mut impl FnMut(u64),
    ) -> Result<()> {
        use ceneca_domain::scope::ScopeFilter;
        use ceneca_store::{Actor, Deleted, ListQuery, WriteBatch, WriteOp};

        const PAGE: usize = 500;
        let active = keys.active_key_id().to_owned();
        for sealed in SEALED_FIELDS {
            let mut after: Option<(Value, Uuid)> = None;
            loop {
                let mut q = ListQuery::new(ScopeFilter::All, "id", false, PAGE as u32);
                q.deleted = Deleted::Include;
                q.after = after.take();
                let mut rows = self.store.list(sealed.entity, q).await?;
                let more = rows.len() > PAGE;
                rows.truncate(PAGE);
                // Compressed bodies are read unpacked and stored packed again (below); one
                // that does not unpack is reported, as one that does not decrypt.
                let mut packed = std::collections::HashSet::new();
                for row in &mut rows {
                    if is_packed(sealed.entity, row) {
                        let id = row.id().unwrap_or_default();
                        if unpack(sealed.entity, row).is_err() {
                            report.unreadable.push((sealed.entity.table.to_owned(), id));
                            row.set(sealed.field, Value::Null);
                            continue;
                        }
                        packed.insert(id);
                    }
                }
                let mut batch = WriteBatch::new(Actor::default());
                for row in &rows {
                    let (Some(id), Some(Value::Text(stored))) = (row.id(), row.get(sealed.field))
                    else {
                        continue;
                    };
                    let workspace = row.id_of("workspace_id");
                    let plain = match row.get(sealed.key_column) {
                        Some(Value::Text(key)) => {
                            report.checked += 1;
                            if *key == active {
                                continue;
                            }
                            match open_text(keys, sealed, id, workspace, stored) {
                                Ok(plain) => plain,
                                Err(_) => {
                                    report.unreadable.push((sealed.entity.table.to_owned(), id));
                                    continue;
                                }
                            }
                        }
                        _ if self.config.encrypt_content => {
                            report.checked += 1;
                            stored.clone()
                        }
                        _ => continue,
                    };
                    let mut set = Record::new();
                    let text = seal_text(keys, sealed, id, workspace, &plain);
                    // A compressed body stays compressed: a key rotation must not grow
                    // what is stored (found by the attack).
                    match packed
                        .contains(&id)
                        .then(|| ceneca_store::packing::pack(&text))
                        .flatten()
                    {
                        Some(frame) => {
                            let p = ceneca_store::packing::MESSAGE_CONTENT;
                            set.set(sealed.field, Value::Text(String::new()));
                            set.set(p.packed, Value::Bytes(frame));
                            set.set(p.flag, Value::Bool(true));
                        }
                        None => set.set(sealed.field, Value::Text(text)),
                    }
                    set.set(sealed.key_column, Value::Text(active.clone()));
                    batch.ops.push(WriteOp::Update {
                        entity: sealed.entity,
                        id,
                        filter: ScopeFilter::All,
                        set,
                    });
                    report.rewrapped += 1;
                }
                if !batch.ops.is_empty() {
                    self.store
                        .apply(batch)
                        .await
                        .map_err(|e| ServiceError::Internal(format!("rewrap: {e}")))?;
                }
                progress(report.checked);
                match rows.last().and_then(Record::id) {
                    Some(last) if more => after = Some((Value::Id(last), last)),
                    _ => break,
                }
            }
        }
        Ok(())
    }
}
