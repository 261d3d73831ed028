//! The tamper-evident audit trail: what an entry records, audit levels, and the chain.
//!
//! Each entry's `hash` is an HMAC-SHA256 over its content, its `sequence` and the previous
//! entry's MAC, with a key derived from the key ring and named by the entry's `mac_key_id`.
//! - *Keyed*, so that whoever can write the database but holds no key cannot change an
//!   entry and recompute the chain after it (plain SHA-256 anyone can recompute).
//! - *Sequence covered and checked for continuity* (the store numbers entries itself,
//!   under the chain lock), so a deleted entry shows as a gap, not only as a broken link.
//! - *Anchored outside the database*: no chain can tell by itself that its last entries
//!   were removed, so its end is compared with heads recorded elsewhere ([`Anchor`]: the
//!   head file beside the data, or a head an operator wrote down). A database *ahead* of
//!   an anchor is fine (it grew since); one that ends *before* it, or whose entry at the
//!   anchored sequence has another MAC, was cut or rewritten.
//!
//! **Legacy entries.** Entries written before the keyed chain have no `mac_key_id` and a
//! plain SHA-256 `hash` ([`chain_hash`]). They are accepted only as a prefix of the chain,
//! and counted: once a keyed entry has been seen, an unkeyed one is a downgrade and a
//! break. A chain downgraded as a whole verifies as legacy by itself, but not against an
//! anchor, whose MAC no longer matches. (Their gaps in `sequence` are tolerated:
//! PostgreSQL's identity column skipped values that rolled-back transactions took.)
//!
//! [`ChainVerifier`] walks entries in sequence order and names the first that does not
//! hold.

use std::fmt;

use hmac::{Hmac, Mac};
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

/// The content columns an entry's hash or MAC covers, in order. The keyed MAC adds the
/// sequence and key id itself; order is also protected by `prev_hash`.
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

/// The bytes of an entry's content the chain covers, each column length-prefixed.
fn content(entry: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for name in HASHED {
        let value = text(entry, name);
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The legacy link: SHA-256 (hex) of an entry's content chained to `prev_hash`. Kept to
/// verify entries written before the keyed chain; new entries never use it.
pub fn chain_hash(prev_hash: &str, entry: &Record) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(content(entry));
    to_hex(&hasher.finalize())
}

/// What every MAC input starts with: the chain version, so a MAC made for anything else
/// (or a later version) never verifies as one of these.
const MAC_DOMAIN: &[u8] = b"ceneca audit chain v1\0";

/// The chain's MAC key: a subkey derived from one key of the key ring, and that key's id.
#[derive(Clone, PartialEq, Eq)]
pub struct ChainKey {
    id: String,
    key: [u8; 32],
}

impl ChainKey {
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Self {
        Self { id: id.into(), key }
    }
    /// The key-ring id the subkey was derived from (stored as each entry's `mac_key_id`).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Never prints the key.
impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainKey").field("id", &self.id).finish()
    }
}

/// HMAC-SHA256 (hex) of an entry at `sequence`, chained to `prev` (the MAC before it), made
/// with `key`. Covers the key id too, so an entry cannot be re-labelled with another key.
pub fn chain_mac(key: &ChainKey, prev: &str, sequence: i64, entry: &Record) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&key.key).expect("HMAC accepts keys of any length");
    mac.update(MAC_DOMAIN);
    mac.update(&(key.id.len() as u64).to_le_bytes());
    mac.update(key.id.as_bytes());
    mac.update(&sequence.to_le_bytes());
    mac.update(&(prev.len() as u64).to_le_bytes());
    mac.update(prev.as_bytes());
    mac.update(&content(entry));
    to_hex(&mac.finalize().into_bytes())
}

/// Where a chain ends: its last entry's sequence and MAC (sequence 0 and [`GENESIS`] for
/// an empty chain). Written `<sequence>:<mac>`, the form of the head file, of
/// `ceneca audit head` and of `ceneca audit verify --expect-head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub sequence: i64,
    pub mac: String,
}

/// A head that is not `<sequence>:<64 lowercase hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an audit head is written <sequence>:<64 hex digits>, got {0:?}")]
pub struct HeadFormatError(String);

impl ChainHead {
    /// The end of an empty chain.
    pub fn genesis() -> Self {
        Self {
            sequence: 0,
            mac: GENESIS.to_owned(),
        }
    }

    /// The head of the chain ending at `entry` (`None` if it has no sequence or MAC).
    pub fn of(entry: &Record) -> Option<Self> {
        Some(Self {
            sequence: entry.get("sequence").and_then(Value::as_int)?,
            mac: entry.get("hash").and_then(Value::as_str)?.to_owned(),
        })
    }

    /// Parses what [`fmt::Display`] writes.
    pub fn parse(text: &str) -> Result<Self, HeadFormatError> {
        let text = text.trim();
        let bad = || HeadFormatError(text.chars().take(100).collect());
        let (sequence, mac) = text.split_once(':').ok_or_else(bad)?;
        let sequence: i64 = sequence.parse().map_err(|_| bad())?;
        let mac = mac.to_ascii_lowercase();
        if sequence < 0 || mac.len() != 64 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Self { sequence, mac })
    }
}

impl fmt::Display for ChainHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.sequence, self.mac)
    }
}

/// Links `entry` to the chain ending at `prev`: sets its `sequence` (the next one),
/// `prev_hash`, `mac_key_id` and `hash` (its MAC under `key`). Returns the new end.
pub fn seal(key: &ChainKey, prev: &ChainHead, entry: &mut Record) -> ChainHead {
    let sequence = prev.sequence + 1;
    let mac = chain_mac(key, &prev.mac, sequence, entry);
    entry.set("sequence", Value::Int(sequence));
    entry.set("prev_hash", Value::Text(prev.mac.clone()));
    entry.set("mac_key_id", Value::Text(key.id.clone()));
    entry.set("hash", Value::Text(mac.clone()));
    ChainHead { sequence, mac }
}

/// A head recorded outside the database, and where it was recorded (for the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub head: ChainHead,
    /// "the head file /path", "the expected head".
    pub source: String,
}

/// Why an entry breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// Sequences `from..=to` are missing before this entry.
    Gap { from: i64, to: i64 },
    /// Its `prev_hash` is not the MAC of the entry before it.
    Unlinked,
    /// Its content does not match its MAC (or, for a legacy entry, its hash).
    Altered { keyed: bool },
    /// An unkeyed entry after keyed ones.
    Downgraded,
    /// Its MAC names a key the ring does not hold.
    UnknownKey(String),
    /// The chain ends at `last`, before the entry an anchor recorded.
    CutTail {
        last: i64,
        anchored: i64,
        source: String,
    },
    /// The entry at an anchored sequence is missing or has another MAC.
    AnchorMismatch { source: String },
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakKind::Gap { from, to } if from == to => {
                write!(f, "entry {from} before it is missing (deleted)")
            }
            BreakKind::Gap { from, to } => {
                write!(f, "entries {from} to {to} before it are missing (deleted)")
            }
            BreakKind::Unlinked => f.write_str(
                "does not follow the entry before it (an entry was deleted, inserted or reordered)",
            ),
            BreakKind::Altered { keyed: true } => f.write_str(
                "its content does not match its MAC (the entry was altered, or the chain re-forged without the key)",
            ),
            BreakKind::Altered { keyed: false } => f.write_str(
                "its content does not match its hash (the entry was altered)",
            ),
            BreakKind::Downgraded => f.write_str(
                "is an unkeyed (legacy) entry after keyed ones (the chain was re-forged with plain hashes)",
            ),
            BreakKind::UnknownKey(id) => write!(
                f,
                "its MAC was made with key '{id}', which is not in the key ring (keep retired keys in the key file to verify the entries they sealed)"
            ),
            BreakKind::CutTail {
                last: 0,
                anchored,
                source,
            } => write!(
                f,
                "the log is empty but {source} records entry {anchored}: every entry was deleted (the tail was cut)"
            ),
            BreakKind::CutTail {
                last,
                anchored,
                source,
            } => write!(
                f,
                "the log ends at entry {last} but {source} records entry {anchored}: the entries after {last} were deleted (the tail was cut)"
            ),
            BreakKind::AnchorMismatch { source } => write!(
                f,
                "it is not the entry {source} records (the chain was rewritten)"
            ),
        }
    }
}

/// Where a chain stops holding: the first bad entry's sequence (for a cut tail, the first
/// missing one) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {sequence}: {kind}")]
pub struct ChainBreak {
    pub sequence: i64,
    pub kind: BreakKind,
}

/// Checks a chain entry by entry, oldest first, so it can be fed page by page; then
/// [`ChainVerifier::finish`] checks the anchors its end must reach.
#[derive(Debug)]
pub struct ChainVerifier<'k> {
    keys: &'k [ChainKey],
    anchors: Vec<(Anchor, bool)>,
    head: ChainHead,
    keyed_seen: bool,
    checked: u64,
    legacy: u64,
}

impl<'k> ChainVerifier<'k> {
    /// A verifier of a chain from its start, with the keys entries may name and the
    /// anchors its entries must match.
    pub fn new(keys: &'k [ChainKey], anchors: Vec<Anchor>) -> Self {
        Self {
            keys,
            anchors: anchors.into_iter().map(|a| (a, false)).collect(),
            head: ChainHead::genesis(),
            keyed_seen: false,
            checked: 0,
            legacy: 0,
        }
    }

    /// The end of the entries checked so far.
    pub fn head(&self) -> &ChainHead {
        &self.head
    }
    /// Entries checked (and found good).
    pub fn checked(&self) -> u64 {
        self.checked
    }
    /// Of those, the unkeyed legacy prefix.
    pub fn legacy(&self) -> u64 {
        self.legacy
    }

    /// Checks the next entry (in sequence order).
    pub fn push(&mut self, entry: &Record) -> Result<(), ChainBreak> {
        let sequence = entry.get("sequence").and_then(Value::as_int).unwrap_or(-1);
        let broken = |kind| Err(ChainBreak { sequence, kind });
        let key_id = text(entry, "mac_key_id");
        let keyed = !key_id.is_empty();
        if sequence <= self.head.sequence {
            return broken(BreakKind::Unlinked);
        }
        if keyed && sequence != self.head.sequence + 1 {
            return broken(BreakKind::Gap {
                from: self.head.sequence + 1,
                to: sequence - 1,
            });
        }
        if !keyed && self.keyed_seen {
            return broken(BreakKind::Downgraded);
        }
        if text(entry, "prev_hash") != self.head.mac {
            return broken(BreakKind::Unlinked);
        }
        let expected = if keyed {
            let Some(key) = self.keys.iter().find(|k| k.id == key_id) else {
                return broken(BreakKind::UnknownKey(key_id));
            };
            chain_mac(key, &self.head.mac, sequence, entry)
        } else {
            chain_hash(&self.head.mac, entry)
        };
        if text(entry, "hash") != expected {
            return broken(BreakKind::Altered { keyed });
        }
        for (anchor, seen) in &mut self.anchors {
            if anchor.head.sequence == sequence {
                if anchor.head.mac != expected {
                    return broken(BreakKind::AnchorMismatch {
                        source: anchor.source.clone(),
                    });
                }
                *seen = true;
            }
        }
        self.head = ChainHead {
            sequence,
            mac: expected,
        };
        self.keyed_seen |= keyed;
        self.checked += 1;
        if !keyed {
            self.legacy += 1;
        }
        Ok(())
    }

    /// After the last entry: every anchor must have been reached and matched. An anchor
    /// past the end means the tail was cut; one the chain passed without an entry at its
    /// sequence means the chain was rewritten.
    pub fn finish(&self) -> Result<(), ChainBreak> {
        let mut unmatched: Vec<&Anchor> = self
            .anchors
            .iter()
            .filter(|(a, seen)| !seen && a.head != ChainHead::genesis())
            .map(|(a, _)| a)
            .collect();
        unmatched.sort_by_key(|a| a.head.sequence);
        let Some(anchor) = unmatched.first() else {
            return Ok(());
        };
        let last = self.head.sequence;
        if anchor.head.sequence > last {
            // The highest anchor past the end says the most about what was cut.
            let furthest = unmatched.last().expect("not empty");
            return Err(ChainBreak {
                sequence: last + 1,
                kind: BreakKind::CutTail {
                    last,
                    anchored: furthest.head.sequence,
                    source: furthest.source.clone(),
                },
            });
        }
        Err(ChainBreak {
            sequence: anchor.head.sequence,
            kind: BreakKind::AnchorMismatch {
                source: anchor.source.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, seed: u8) -> ChainKey {
        ChainKey::new(id, [seed; 32])
    }

    fn content_of(seq: i64) -> Record {
        let mut r = Record::new();
        r.set("id", Value::Id(uuid::Uuid::from_u128(seq as u128)));
        r.set("action", Value::Text(format!("action{seq}")));
        r.set("outcome", Value::Text("success".into()));
        r.set(
            "details",
            Value::Json(serde_json::json!({"b": 1, "a": [1, {"y": 2, "x": 1}]})),
        );
        r
    }

    /// `n` entries sealed with `key`, as the store writes them.
    fn chain(key: &ChainKey, n: i64) -> Vec<Record> {
        extend(key, Vec::new(), n)
    }

    fn extend(key: &ChainKey, mut entries: Vec<Record>, n: i64) -> Vec<Record> {
        for _ in 0..n {
            let prev = entries
                .last()
                .and_then(ChainHead::of)
                .unwrap_or_else(ChainHead::genesis);
            let mut entry = content_of(prev.sequence + 1);
            seal(key, &prev, &mut entry);
            entries.push(entry);
        }
        entries
    }

    /// Legacy entries (plain SHA-256, no key id), numbered as given.
    fn legacy(sequences: &[i64]) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for &seq in sequences {
            let prev = out
                .last()
                .map(|e| text(e, "hash"))
                .unwrap_or_else(|| GENESIS.into());
            let mut entry = content_of(seq);
            entry.set("sequence", Value::Int(seq));
            entry.set("prev_hash", Value::Text(prev.clone()));
            let hash = chain_hash(&prev, &entry);
            entry.set("hash", Value::Text(hash));
            out.push(entry);
        }
        out
    }

    fn verify(
        keys: &[ChainKey],
        anchors: Vec<Anchor>,
        entries: &[Record],
    ) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::new(keys, anchors);
        for e in entries {
            v.push(e)?;
        }
        v.finish()?;
        Ok(v.checked())
    }

    fn anchor(entries: &[Record], index: usize) -> Anchor {
        Anchor {
            head: ChainHead::of(&entries[index]).unwrap(),
            source: "the head file".into(),
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let k = key("k1", 1);
        let entries = chain(&k, 5);
        let mut v = ChainVerifier::new(std::slice::from_ref(&k), vec![anchor(&entries, 4)]);
        for e in &entries {
            v.push(e).unwrap();
        }
        v.finish().unwrap();
        assert_eq!(v.checked(), 5);
        assert_eq!(v.legacy(), 0);
        assert_eq!(v.head(), &ChainHead::of(&entries[4]).unwrap());
        assert_eq!(verify(&[k], vec![], &[]), Ok(0), "an empty chain is intact");
    }

    #[test]
    fn alteration_is_detected() {
        let k = key("k1", 1);
        let mut altered = chain(&k, 5);
        altered[2].set("action", Value::Text("nothing to see".into()));
        let err = verify(std::slice::from_ref(&k), vec![], &altered).unwrap_err();
        assert_eq!(err.sequence, 3);
        assert_eq!(err.kind, BreakKind::Altered { keyed: true });
    }

    #[test]
    fn a_middle_deletion_is_a_gap() {
        let k = key("k1", 1);
        let mut deleted = chain(&k, 6);
        deleted.remove(1);
        deleted.remove(1);
        let err = verify(&[k], vec![], &deleted).unwrap_err();
        assert_eq!(err.sequence, 4);
        assert_eq!(err.kind, BreakKind::Gap { from: 2, to: 3 });
        assert!(err.to_string().contains("deleted"), "{err}");
    }

    #[test]
    fn audit_sequence_gap_is_reported() {
        // Renumbering the last entry keeps every link; only the sequence shows it.
        let k = key("k1", 1);
        let mut entries = chain(&k, 5);
        entries[4].set("sequence", Value::Int(9));
        let err = verify(&[k], vec![], &entries).unwrap_err();
        assert_eq!(err.sequence, 9);
        assert_eq!(err.kind, BreakKind::Gap { from: 5, to: 8 });
    }

    #[test]
    fn reordering_is_detected() {
        // Swapping two entries' sequence numbers, as the database would then list them.
        let k = key("k1", 1);
        let mut entries = chain(&k, 5);
        entries[3].set("sequence", Value::Int(5));
        entries[4].set("sequence", Value::Int(4));
        entries.swap(3, 4);
        let err = verify(&[k], vec![], &entries).unwrap_err();
        assert_eq!(err.sequence, 4);
        assert_eq!(err.kind, BreakKind::Unlinked);
    }

    #[test]
    fn audit_tail_cut_is_reported_against_an_anchor() {
        let k = key("k1", 1);
        let entries = chain(&k, 30);
        let head = anchor(&entries, 29);
        // Without an anchor a cut tail cannot be told from a shorter log.
        assert!(verify(std::slice::from_ref(&k), vec![], &entries[..5]).is_ok());
        let err = verify(std::slice::from_ref(&k), vec![head.clone()], &entries[..5]).unwrap_err();
        assert_eq!(err.sequence, 6);
        assert_eq!(
            err.kind,
            BreakKind::CutTail {
                last: 5,
                anchored: 30,
                source: "the head file".into()
            }
        );
        let err = verify(std::slice::from_ref(&k), vec![head], &[]).unwrap_err();
        assert_eq!(err.sequence, 1, "all deleted");
        assert!(matches!(err.kind, BreakKind::CutTail { last: 0, .. }));
    }

    #[test]
    fn a_database_ahead_of_its_anchor_is_fine() {
        let k = key("k1", 1);
        let entries = chain(&k, 10);
        let anchors = vec![anchor(&entries, 3), anchor(&entries, 6)];
        assert_eq!(verify(&[k], anchors, &entries), Ok(10));
        let genesis = Anchor {
            head: ChainHead::genesis(),
            source: "x".into(),
        };
        assert!(verify(&[key("k1", 1)], vec![genesis], &entries).is_ok());
    }

    #[test]
    fn audit_reforged_chain_with_plain_hashes_is_reported() {
        let k = key("k1", 1);
        let entries = chain(&k, 6);
        // From entry 3 on, recomputed as unkeyed entries: a downgrade.
        let mut reforged = entries[..2].to_vec();
        let mut prev = text(&reforged[1], "hash");
        for e in &entries[2..] {
            let mut e = e.clone();
            e.set("action", Value::Text("rewritten".into()));
            e.set("mac_key_id", Value::Null);
            e.set("prev_hash", Value::Text(prev.clone()));
            prev = chain_hash(&prev, &e);
            e.set("hash", Value::Text(prev.clone()));
            reforged.push(e);
        }
        let err = verify(std::slice::from_ref(&k), vec![], &reforged).unwrap_err();
        assert_eq!((err.sequence, err.kind), (3, BreakKind::Downgraded));

        // Rewritten from the start as legacy, it is self-consistent; its anchor is not.
        let whole = legacy(&[1, 2, 3, 4, 5, 6]);
        assert!(verify(std::slice::from_ref(&k), vec![], &whole).is_ok());
        let err = verify(std::slice::from_ref(&k), vec![anchor(&entries, 5)], &whole).unwrap_err();
        assert_eq!(err.sequence, 6);
        assert!(matches!(err.kind, BreakKind::AnchorMismatch { .. }));
    }

    #[test]
    fn audit_reforged_chain_with_a_wrong_key_is_reported() {
        let k = key("k1", 1);
        let entries = chain(&k, 3);
        let forger = key("k1", 2);
        let mut reforged = entries[..1].to_vec();
        let mut prev = ChainHead::of(&reforged[0]).unwrap();
        for _ in 1..3 {
            let mut e = content_of(prev.sequence + 1);
            e.set("action", Value::Text("forged".into()));
            prev = seal(&forger, &prev, &mut e);
            reforged.push(e);
        }
        let err = verify(std::slice::from_ref(&k), vec![], &reforged).unwrap_err();
        assert_eq!(
            (err.sequence, err.kind),
            (2, BreakKind::Altered { keyed: true })
        );
        // Claiming a key the ring does not hold verifies nothing either.
        let mut renamed = entries.clone();
        renamed[2].set("mac_key_id", Value::Text("k9".into()));
        let err = verify(&[k], vec![], &renamed).unwrap_err();
        assert_eq!(
            (err.sequence, err.kind),
            (3, BreakKind::UnknownKey("k9".into()))
        );
    }

    #[test]
    fn a_legacy_prefix_is_accepted_and_counted_then_the_chain_is_keyed() {
        let k = key("k1", 1);
        // Legacy sequences may skip (identity values of rolled-back transactions).
        let entries = extend(&k, legacy(&[1, 2, 4]), 3);
        assert_eq!(text(&entries[3], "prev_hash"), text(&entries[2], "hash"));
        assert_eq!(entries[3].get("sequence"), Some(&Value::Int(5)));
        let mut v = ChainVerifier::new(std::slice::from_ref(&k), vec![anchor(&entries, 5)]);
        for e in &entries {
            v.push(e).unwrap();
        }
        v.finish().unwrap();
        assert_eq!((v.checked(), v.legacy()), (6, 3));

        // A legacy entry appended after keyed ones is a downgrade.
        let mut appended = entries.clone();
        let last = ChainHead::of(&entries[5]).unwrap();
        let mut e = content_of(8);
        e.set("sequence", Value::Int(8));
        e.set("prev_hash", Value::Text(last.mac.clone()));
        let hash = chain_hash(&last.mac, &e);
        e.set("hash", Value::Text(hash));
        appended.push(e);
        let err = verify(&[k], vec![], &appended).unwrap_err();
        assert_eq!((err.sequence, err.kind), (8, BreakKind::Downgraded));
    }

    #[test]
    fn entries_name_their_key_so_rotation_keeps_them_verifiable() {
        let (k1, k2) = (key("k1", 1), key("k2", 2));
        let entries = extend(&k2, chain(&k1, 3), 3);
        assert_eq!(verify(&[k1.clone(), k2.clone()], vec![], &entries), Ok(6));
        let err = verify(&[k2], vec![], &entries).unwrap_err();
        assert_eq!(
            (err.sequence, err.kind),
            (1, BreakKind::UnknownKey("k1".into()))
        );
        assert!(!format!("{k1:?}").contains("1, 1"), "Debug hides the key");
    }

    #[test]
    fn heads_parse_what_they_print() {
        let head = ChainHead {
            sequence: 42,
            mac: "ab".repeat(32),
        };
        assert_eq!(ChainHead::parse(&format!("{head}\n")), Ok(head.clone()));
        assert_eq!(
            ChainHead::parse(&format!("42:{}", "AB".repeat(32))),
            Ok(head)
        );
        for bad in [
            "",
            "42",
            "x:ab",
            "-1:00",
            "42:abc",
            &format!("42:{}", "g".repeat(64)),
        ] {
            assert!(ChainHead::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Json = serde_json::from_str(r#"{"b": 1, "a": {"d": [1, 2], "c": null}}"#).unwrap();
        let b: Json = serde_json::from_str(r#"{"a": {"c": null, "d": [1, 2]}, "b": 1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }
}
