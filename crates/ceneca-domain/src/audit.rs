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
//! **Erasable personal fields (version 2).** An entry's `source_ip` and `details` (an
//! e-mail typed at a failed log-in, a token's name) are personal data an erase must be
//! able to drop without breaking the chain. So the MAC of a version-2 entry covers them
//! only through a *commitment*: SHA-256 of a random salt and the two fields, stored with
//! the entry (`personal_commitment`, `personal_salt`). While the salt is there, the
//! verifier recomputes the commitment, so the fields are as tamper-evident as the rest.
//! An erase sets the fields to nothing and drops the salt: the MAC still verifies, and
//! without the salt the commitment cannot be tested against guesses (an IPv4 address
//! has only 2^32 values). An entry erased that way must be *accounted for*: a later
//! `user.erase` entry of its actor or of the account it is about, or the verifier reports
//! it — so whoever can write the database cannot quietly erase what an entry says about
//! anyone else. Entries sealed before version 2 keep their fields.
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

/// The columns of [`HASHED`] an erase may drop: a version-2 MAC covers them through
/// their commitment ([`personal_commitment`]).
const PERSONAL: &[&str] = &["source_ip", "details"];

/// The action of the entry that accounts for the erased entries of an account.
pub const ERASE_ACTION: &str = "user.erase";

fn put(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    out.extend_from_slice(value);
}

/// The bytes of an entry's content the chain covers, each column length-prefixed. With a
/// commitment (version 2), the personal columns are left out and the commitment stands
/// for them.
fn content(entry: &Record, commitment: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for name in HASHED {
        if commitment.is_some() && PERSONAL.contains(name) {
            continue;
        }
        put(&mut out, text(entry, name).as_bytes());
    }
    if let Some(commitment) = commitment {
        put(&mut out, commitment.as_bytes());
    }
    out
}

/// The commitment to an entry's personal columns under `salt`: SHA-256 (hex) of the salt
/// and the columns, each length-prefixed, after a domain of its own.
pub fn personal_commitment(salt: &str, entry: &Record) -> String {
    let mut bytes = b"ceneca audit personal fields v2\0".to_vec();
    put(&mut bytes, salt.as_bytes());
    for name in PERSONAL {
        put(&mut bytes, text(entry, name).as_bytes());
    }
    to_hex(&Sha256::digest(&bytes))
}

/// Whether an entry's personal columns hold nothing, as an erase leaves them.
fn personal_fields_empty(entry: &Record) -> bool {
    text(entry, "source_ip").is_empty() && matches!(text(entry, "details").as_str(), "" | "{}")
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The legacy link: SHA-256 (hex) of an entry's content chained to `prev_hash`. Kept to
/// verify entries written before the keyed chain; new entries never use it.
pub fn chain_hash(prev_hash: &str, entry: &Record) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(content(entry, None));
    to_hex(&hasher.finalize())
}

/// What every MAC input starts with: the chain version, so a MAC made for anything else
/// (or another version) never verifies as one of these.
const MAC_DOMAIN: &[u8] = b"ceneca audit chain v1\0";
const MAC_DOMAIN_V2: &[u8] = b"ceneca audit chain v2\0";

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
/// An entry with a `personal_commitment` is a version-2 entry: its MAC covers the
/// commitment in place of the personal columns (and another domain, so an entry cannot be
/// passed off as the other version).
pub fn chain_mac(key: &ChainKey, prev: &str, sequence: i64, entry: &Record) -> String {
    let commitment = text(entry, "personal_commitment");
    let commitment = (!commitment.is_empty()).then_some(commitment.as_str());
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&key.key).expect("HMAC accepts keys of any length");
    mac.update(match commitment {
        Some(_) => MAC_DOMAIN_V2,
        None => MAC_DOMAIN,
    });
    mac.update(&(key.id.len() as u64).to_le_bytes());
    mac.update(key.id.as_bytes());
    mac.update(&sequence.to_le_bytes());
    mac.update(&(prev.len() as u64).to_le_bytes());
    mac.update(prev.as_bytes());
    mac.update(&content(entry, commitment));
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

/// Links `entry` to the chain ending at `prev`, as a version-2 entry: sets its
/// `personal_salt` (random) and `personal_commitment`, its `sequence` (the next one),
/// `prev_hash`, `mac_key_id` and `hash` (its MAC under `key`). Returns the new end.
pub fn seal(key: &ChainKey, prev: &ChainHead, entry: &mut Record) -> ChainHead {
    let salt = to_hex(&rand::random::<[u8; 16]>());
    let commitment = personal_commitment(&salt, entry);
    entry.set("personal_salt", Value::Text(salt));
    entry.set("personal_commitment", Value::Text(commitment));
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
    /// Its personal fields were erased, but no later erase of its actor or of the account
    /// it is about is recorded.
    ErasedUnaccounted,
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
            BreakKind::ErasedUnaccounted => f.write_str(
                "its personal fields were erased, but no later erase of its actor or of the account it is about is recorded (they were removed by hand)",
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
    /// Entries whose personal fields were erased, with their actor and subject ids, to be
    /// accounted for by a later erase ([`ChainVerifier::finish`]).
    erased: Vec<(i64, [String; 2])>,
    /// The accounts erased, and where (the last erase of each).
    erasures: std::collections::HashMap<String, i64>,
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
            erased: Vec::new(),
            erasures: std::collections::HashMap::new(),
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
        let commitment = text(entry, "personal_commitment");
        if keyed && !commitment.is_empty() {
            let salt = text(entry, "personal_salt");
            if !salt.is_empty() {
                // The personal fields are as sealed.
                if personal_commitment(&salt, entry) != commitment {
                    return broken(BreakKind::Altered { keyed });
                }
            } else if personal_fields_empty(entry) {
                self.erased.push((
                    sequence,
                    [text(entry, "actor_id"), text(entry, "resource_id")],
                ));
            } else {
                // Fields without their salt cannot be checked: they were put there.
                return broken(BreakKind::Altered { keyed });
            }
            if text(entry, "action") == ERASE_ACTION
                && text(entry, "outcome") == "success"
                && text(entry, "resource_type") == "users"
            {
                self.erasures.insert(text(entry, "resource_id"), sequence);
            }
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
        // Every erased entry is accounted for by a later erase of its actor or subject.
        for (sequence, subjects) in &self.erased {
            let accounted = subjects
                .iter()
                .any(|id| !id.is_empty() && self.erasures.get(id).is_some_and(|at| at > sequence));
            if !accounted {
                return Err(ChainBreak {
                    sequence: *sequence,
                    kind: BreakKind::ErasedUnaccounted,
                });
            }
        }
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

    /// A chain whose entry 2 is by (and entry 3 about) account `who`, with an address and
    /// an e-mail in its personal fields, then an erase of `who` at entry `erase_at` (none
    /// when 0), entries after it sealed as the store seals them.
    fn chain_with_personal_fields(k: &ChainKey, who: uuid::Uuid, erase_at: i64) -> Vec<Record> {
        let mut entries: Vec<Record> = Vec::new();
        for seq in 1..=6 {
            let prev = entries
                .last()
                .and_then(ChainHead::of)
                .unwrap_or_else(ChainHead::genesis);
            let mut entry = content_of(seq);
            if seq == 2 {
                entry.set("actor_id", Value::Id(who));
                entry.set("source_ip", Value::Text("203.0.113.7".into()));
                entry.set(
                    "details",
                    Value::Json(serde_json::json!({"email": "ann@example.com"})),
                );
            }
            if seq == 3 {
                entry.set("resource_type", Value::Text("users".into()));
                entry.set("resource_id", Value::Id(who));
            }
            if seq == erase_at {
                entry.set("action", Value::Text(ERASE_ACTION.into()));
                entry.set("resource_type", Value::Text("users".into()));
                entry.set("resource_id", Value::Id(who));
            }
            seal(k, &prev, &mut entry);
            entries.push(entry);
        }
        entries
    }

    /// What an erase does to an entry: its personal fields and salt go.
    fn erase_fields(entry: &mut Record) {
        entry.set("source_ip", Value::Null);
        entry.set("details", Value::Json(serde_json::json!({})));
        entry.set("personal_salt", Value::Null);
    }

    #[test]
    fn erased_personal_fields_verify_when_a_later_erase_accounts_for_them() {
        let k = key("k1", 1);
        let who = uuid::Uuid::from_u128(77);
        let mut entries = chain_with_personal_fields(&k, who, 5);
        assert_eq!(verify(std::slice::from_ref(&k), vec![], &entries), Ok(6));
        erase_fields(&mut entries[1]);
        erase_fields(&mut entries[2]);
        assert_eq!(
            verify(
                std::slice::from_ref(&k),
                vec![anchor(&entries, 5)],
                &entries
            ),
            Ok(6)
        );
        assert_eq!(
            text(&entries[1], "actor_id"),
            who.to_string(),
            "the id stays"
        );
    }

    #[test]
    fn audit_personal_fields_erased_without_an_erase_are_reported() {
        let k = key("k1", 1);
        let who = uuid::Uuid::from_u128(77);
        // No erase at all.
        let mut entries = chain_with_personal_fields(&k, who, 0);
        erase_fields(&mut entries[1]);
        let err = verify(std::slice::from_ref(&k), vec![], &entries).unwrap_err();
        assert_eq!((err.sequence, err.kind), (2, BreakKind::ErasedUnaccounted));
        // An erase of another account does not account for it.
        let mut entries = chain_with_personal_fields(&k, uuid::Uuid::from_u128(78), 5);
        entries[1].set("actor_id", Value::Id(who));
        let mut entries = {
            // Re-sealed with who as the actor, as if written so.
            let mut out: Vec<Record> = Vec::new();
            for mut e in entries.drain(..) {
                let prev = out
                    .last()
                    .and_then(ChainHead::of)
                    .unwrap_or_else(ChainHead::genesis);
                seal(&k, &prev, &mut e);
                out.push(e);
            }
            out
        };
        erase_fields(&mut entries[1]);
        let err = verify(std::slice::from_ref(&k), vec![], &entries).unwrap_err();
        assert_eq!((err.sequence, err.kind), (2, BreakKind::ErasedUnaccounted));
        // An erase before the entry does not account for it either.
        let mut entries = chain_with_personal_fields(&k, who, 1);
        erase_fields(&mut entries[1]);
        let err = verify(std::slice::from_ref(&k), vec![], &entries).unwrap_err();
        assert_eq!((err.sequence, err.kind), (2, BreakKind::ErasedUnaccounted));
    }

    #[test]
    fn audit_personal_fields_changed_or_planted_are_reported() {
        let k = key("k1", 1);
        let who = uuid::Uuid::from_u128(77);
        let sealed = chain_with_personal_fields(&k, who, 5);
        let keyed = BreakKind::Altered { keyed: true };
        // Changed, salt kept: the commitment does not match.
        let mut entries = sealed.clone();
        entries[1].set("source_ip", Value::Text("198.51.100.1".into()));
        let err = verify(std::slice::from_ref(&k), vec![], &entries).unwrap_err();
        assert_eq!((err.sequence, &err.kind), (2, &keyed));
        // Salt dropped but fields written: nothing vouches for them.
        let mut entries = sealed.clone();
        entries[1].set("personal_salt", Value::Null);
        let err = verify(std::slice::from_ref(&k), vec![], &entries).unwrap_err();
        assert_eq!((err.sequence, &err.kind), (2, &keyed));
        // The commitment dropped (read as a version-1 entry): the MAC does not match.
        let mut entries = sealed.clone();
        entries[1].set("personal_commitment", Value::Null);
        let err = verify(std::slice::from_ref(&k), vec![], &entries).unwrap_err();
        assert_eq!((err.sequence, &err.kind), (2, &keyed));
        // Another commitment: the MAC does not match.
        let mut entries = sealed;
        let salt = "00".repeat(16);
        entries[1].set("personal_salt", Value::Text(salt.clone()));
        let commitment = personal_commitment(&salt, &entries[1]);
        entries[1].set("personal_commitment", Value::Text(commitment));
        let err = verify(std::slice::from_ref(&k), vec![], &entries).unwrap_err();
        assert_eq!((err.sequence, err.kind), (2, keyed));
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
