//! The tamper-evident audit trail: what an entry records, audit levels, and the hash chain.
//!
//! Each entry's `hash` is SHA-256 over its content and the previous entry's hash, so
//! altering an entry breaks its own hash, and deleting, inserting or reordering entries
//! breaks the link of the entry after. [`verify_chain`] walks entries in sequence order and
//! names the first that does not hold.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::output::format_time;
use crate::value::{Record, Value};

/// How much is audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditLevel {
    /// Authentication events and every write.
    #[default]
    Basic,
    /// Also every read.
    Enhanced,
    /// Also the SHA-256 of each query and the data sources it touched.
    Maximum,
}

impl AuditLevel {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "basic" => Some(AuditLevel::Basic),
            "enhanced" => Some(AuditLevel::Enhanced),
            "maximum" => Some(AuditLevel::Maximum),
            _ => None,
        }
    }
}

/// The hash of the chain before its first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn text(record: &Record, name: &str) -> String {
    match record.get(name) {
        Some(Value::Text(s)) => s.clone(),
        Some(Value::Id(id)) => id.to_string(),
        Some(Value::Time(t)) => format_time(*t),
        Some(Value::Json(j)) => canonical_json(j),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// JSON with object keys sorted, so the same content always hashes the same on both
/// engines (PostgreSQL's `jsonb` does not keep key order).
pub fn canonical_json(json: &Json) -> String {
    match json {
        Json::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Json::String((*k).clone()),
                        canonical_json(&map[*k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Json::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// The columns an entry's hash covers, in order. `sequence` is not among them (the
/// database assigns it); order is protected by `prev_hash`.
const HASHED: &[&str] = &[
    "id",
    "at",
    "actor_id",
    "source_ip",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "details",
    "query_hash",
    "data_sources",
];

/// SHA-256 (hex) of an entry's content chained to `prev_hash`.
pub fn chain_hash(prev_hash: &str, entry: &Record) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    for name in HASHED {
        let value = text(entry, name);
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a chain stops holding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub sequence: i64,
    pub reason: String,
}

/// Checks entries (in `sequence` order, continuing from `prev_hash`); returns the last
/// hash, or the first broken entry.
pub fn verify_chain<'a>(
    prev_hash: &str,
    entries: impl IntoIterator<Item = &'a Record>,
) -> Result<String, ChainBreak> {
    let mut prev = prev_hash.to_owned();
    for entry in entries {
        let sequence = entry.get("sequence").and_then(Value::as_int).unwrap_or(-1);
        let stored_prev = text(entry, "prev_hash");
        if stored_prev != prev {
            return Err(ChainBreak {
                sequence,
                reason: "does not follow the entry before it (an entry was deleted, inserted or reordered)".into(),
            });
        }
        let expected = chain_hash(&prev, entry);
        if text(entry, "hash") != expected {
            return Err(ChainBreak {
                sequence,
                reason: "its content does not match its hash (the entry was altered)".into(),
            });
        }
        prev = expected;
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str, action: &str) -> Record {
        let mut r = Record::new();
        r.set("sequence", Value::Int(seq));
        r.set("id", Value::Id(uuid::Uuid::from_u128(seq as u128)));
        r.set("action", Value::Text(action.into()));
        r.set("outcome", Value::Text("success".into()));
        r.set(
            "details",
            Value::Json(serde_json::json!({"b": 1, "a": [1, {"y": 2, "x": 1}]})),
        );
        r.set("prev_hash", Value::Text(prev.into()));
        let h = chain_hash(prev, &r);
        r.set("hash", Value::Text(h));
        r
    }

    fn chain(n: i64) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for i in 1..=n {
            let prev = out
                .last()
                .map(|e| text(e, "hash"))
                .unwrap_or_else(|| GENESIS.into());
            out.push(entry(i, &prev, &format!("action{i}")));
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert!(verify_chain(GENESIS, &chain(5)).is_ok());
    }

    #[test]
    fn alteration_deletion_and_reordering_are_detected() {
        let mut altered = chain(5);
        altered[2].set("action", Value::Text("nothing to see".into()));
        assert_eq!(verify_chain(GENESIS, &altered).unwrap_err().sequence, 3);

        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(verify_chain(GENESIS, &deleted).unwrap_err().sequence, 3);

        let mut reordered = chain(5);
        reordered.swap(3, 4);
        assert_eq!(verify_chain(GENESIS, &reordered).unwrap_err().sequence, 5);
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Json = serde_json::from_str(r#"{"b": 1, "a": {"d": [1, 2], "c": null}}"#).unwrap();
        let b: Json = serde_json::from_str(r#"{"a": {"c": null, "d": [1, 2]}, "b": 1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }
}
