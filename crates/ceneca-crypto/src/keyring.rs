//! AES-256-GCM with key ids.
//!
//! Ciphertext layout: `version (1) | key id length (1) | key id | nonce (12) | ciphertext+tag`.
//! The key id travels with the ciphertext so old keys keep decrypting after a rotation, and
//! the caller's *context* (table, row id, field, tenant) is bound as associated data, so a
//! ciphertext copied into another row or tenant fails to decrypt.
//!
//! Each key also yields a *derived* subkey for the audit chain's MAC
//! ([`KeyRing::audit_chain_key`]), so the chain never uses (or stores) a master key itself.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// The HKDF label (`info`) of the audit chain's MAC key. A fixed label gives a subkey that
/// is independent of the encryption key it comes from: knowing one reveals nothing of the
/// other, and a new chain version would take a new label.
pub const AUDIT_CHAIN_LABEL: &[u8] = b"ceneca audit chain v1";

/// The HKDF label of the embedded database's SQLCipher key ([`KeyRing::database_key`]):
/// the database file is encrypted with a subkey, never with a master key itself.
pub const DATABASE_LABEL: &[u8] = b"ceneca embedded database v1";

/// The HKDF label of the subkey files sealed at rest are keyed from
/// (`crate::sealed_file`).
pub const FILES_LABEL: &[u8] = b"ceneca sealed files v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRingError {
    #[error("encryption key '{0}' is not in the key ring")]
    UnknownKey(String),
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext does not decrypt: wrong key or wrong record")]
    Decrypt,
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

/// Keys by id, one of them active for new encryptions.
pub struct KeyRing {
    keys: HashMap<String, Aes256Gcm>,
    /// Per key id, the audit chain's MAC key derived from it (see [`KeyRing::audit_chain_key`]).
    audit_keys: HashMap<String, [u8; 32]>,
    /// Per key id, the embedded database's key derived from it (see [`KeyRing::database_key`]).
    database_keys: HashMap<String, [u8; 32]>,
    /// Per key id, the subkey of files sealed at rest ([`FILES_LABEL`]).
    file_keys: HashMap<String, [u8; 32]>,
    active: String,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("key_ids", &ids)
            .finish()
    }
}

impl KeyRing {
    /// A ring with one key. The key must be 32 bytes and not obviously weak.
    pub fn new(id: impl Into<String>, key: &[u8]) -> Result<Self, KeyRingError> {
        let id = id.into();
        let mut ring = KeyRing {
            keys: HashMap::new(),
            audit_keys: HashMap::new(),
            database_keys: HashMap::new(),
            file_keys: HashMap::new(),
            active: id.clone(),
        };
        ring.add(id, key)?;
        Ok(ring)
    }

    /// Adds a key that can decrypt (and becomes active with [`KeyRing::activate`]).
    pub fn add(&mut self, id: impl Into<String>, key: &[u8]) -> Result<(), KeyRingError> {
        let id = id.into();
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(KeyRingError::InvalidKey(
                "key ids are 1-64 letters, digits, '-' or '_'".into(),
            ));
        }
        check_strength(key)?;
        let cipher = Aes256Gcm::new_from_slice(key)
            .map_err(|_| KeyRingError::InvalidKey("must be 32 bytes".into()))?;
        self.audit_keys
            .insert(id.clone(), derive(key, AUDIT_CHAIN_LABEL));
        self.database_keys
            .insert(id.clone(), derive(key, DATABASE_LABEL));
        self.file_keys.insert(id.clone(), derive(key, FILES_LABEL));
        self.keys.insert(id, cipher);
        Ok(())
    }

    pub fn activate(&mut self, id: &str) -> Result<(), KeyRingError> {
        if !self.keys.contains_key(id) {
            return Err(KeyRingError::UnknownKey(id.to_owned()));
        }
        self.active = id.to_owned();
        Ok(())
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Every key id in the ring, sorted.
    pub fn key_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    /// The audit chain's MAC key derived from key `id`: HKDF-SHA256 of the key with the
    /// label [`AUDIT_CHAIN_LABEL`].
    ///
    /// Why per key id rather than one key for ever: no key in the ring is stable — a
    /// rotation makes a new key active, and `CENECA_ENCRYPTION_KEY` deployments move to a
    /// key file to rotate. So, as with ciphertexts, each audit entry names the key id its
    /// MAC was made with, new entries use the active key, and verifying old entries needs
    /// their (retired) key to stay in the ring. The subkey lives only in memory; neither
    /// it nor the master key is ever written to the database.
    pub fn audit_chain_key(&self, id: &str) -> Option<[u8; 32]> {
        self.audit_keys.get(id).copied()
    }

    /// The embedded database's SQLCipher key derived from key `id`: HKDF-SHA256 of the key
    /// with the label [`DATABASE_LABEL`]. Like the audit chain's key, one per key id: the
    /// database is opened with the active key's, and a file still encrypted under an
    /// older key's is re-keyed when it is opened. Lives only in memory.
    pub fn database_key(&self, id: &str) -> Option<[u8; 32]> {
        self.database_keys.get(id).copied()
    }

    /// A key for one use of files sealed at rest, derived from key `id`'s file subkey with
    /// `label`; `None` when the ring has no such key.
    pub(crate) fn file_subkey(&self, id: &str, label: &[u8]) -> Option<[u8; 32]> {
        self.file_keys.get(id).map(|key| derive(key, label))
    }

    /// Encrypts `plaintext` under the active key, bound to `context`.
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let cipher = &self.keys[&self.active];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("AES-GCM encryption of in-memory data cannot fail");
        let id = self.active.as_bytes();
        let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + sealed.len());
        out.push(FORMAT_VERSION);
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`KeyRing::encrypt`] produced with the same `context`.
    pub fn decrypt(&self, ciphertext: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyRingError> {
        let (id, nonce, sealed) = split(ciphertext)?;
        let cipher = self
            .keys
            .get(id)
            .ok_or_else(|| KeyRingError::UnknownKey(id.to_owned()))?;
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context,
                },
            )
            .map_err(|_| KeyRingError::Decrypt)
    }

    /// Encrypts a string (the seed's `encrypt(plaintext)`).
    pub fn encrypt_str(&self, plaintext: &str, context: &[u8]) -> Vec<u8> {
        self.encrypt(plaintext.as_bytes(), context)
    }

    /// Decrypts what [`KeyRing::encrypt_str`] produced.
    pub fn decrypt_str(&self, ciphertext: &[u8], context: &[u8]) -> Result<String, KeyRingError> {
        String::from_utf8(self.decrypt(ciphertext, context)?).map_err(|_| KeyRingError::Malformed)
    }

    /// Encrypts any serializable value as JSON (the seed's `encryptObject`).
    pub fn encrypt_json<T: serde::Serialize>(
        &self,
        value: &T,
        context: &[u8],
    ) -> Result<Vec<u8>, KeyRingError> {
        let json = serde_json::to_vec(value).map_err(|_| KeyRingError::Malformed)?;
        Ok(self.encrypt(&json, context))
    }

    /// Decrypts what [`KeyRing::encrypt_json`] produced.
    pub fn decrypt_json<T: serde::de::DeserializeOwned>(
        &self,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<T, KeyRingError> {
        serde_json::from_slice(&self.decrypt(ciphertext, context)?)
            .map_err(|_| KeyRingError::Malformed)
    }

    /// The id of the key a ciphertext was made with.
    pub fn key_id_of(ciphertext: &[u8]) -> Result<&str, KeyRingError> {
        split(ciphertext).map(|(id, _, _)| id)
    }
}

fn split(ciphertext: &[u8]) -> Result<(&str, &[u8], &[u8]), KeyRingError> {
    let (&version, rest) = ciphertext.split_first().ok_or(KeyRingError::Malformed)?;
    if version != FORMAT_VERSION {
        return Err(KeyRingError::Malformed);
    }
    let (&id_len, rest) = rest.split_first().ok_or(KeyRingError::Malformed)?;
    let id_len = id_len as usize;
    if rest.len() < id_len + NONCE_LEN + 16 {
        return Err(KeyRingError::Malformed);
    }
    let id = std::str::from_utf8(&rest[..id_len]).map_err(|_| KeyRingError::Malformed)?;
    let nonce = &rest[id_len..id_len + NONCE_LEN];
    Ok((id, nonce, &rest[id_len + NONCE_LEN..]))
}

fn derive(key: &[u8], label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(None, key)
        .expand(label, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// Refuses keys that are the wrong length or obviously not random (all one byte, or fewer
/// than 16 distinct bytes — a random 32-byte key has ~27).
fn check_strength(key: &[u8]) -> Result<(), KeyRingError> {
    if key.len() != 32 {
        return Err(KeyRingError::InvalidKey(format!(
            "must be 32 bytes, got {}",
            key.len()
        )));
    }
    let mut seen = [false; 256];
    key.iter().for_each(|b| seen[*b as usize] = true);
    if seen.iter().filter(|s| **s).count() < 16 {
        return Err(KeyRingError::InvalidKey(
            "looks weak (too few distinct bytes); generate one with `ceneca keys generate`".into(),
        ));
    }
    Ok(())
}

/// A new random 32-byte key, base64-encoded (the format of `CENECA_ENCRYPTION_KEY`).
pub fn generate_key_base64() -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    STANDARD.encode(key)
}

/// Decodes a base64 key.
pub fn decode_key_base64(text: &str) -> Result<Vec<u8>, KeyRingError> {
    STANDARD
        .decode(text.trim())
        .map_err(|_| KeyRingError::InvalidKey("not valid base64".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> Vec<u8> {
        (0..32u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn round_trip_and_context_binding() {
        let ring = KeyRing::new("k1", &key(1)).unwrap();
        let ct = ring.encrypt(b"sk-secret", b"ai_provider_configs/1/api_key");
        assert_eq!(
            ring.decrypt(&ct, b"ai_provider_configs/1/api_key").unwrap(),
            b"sk-secret"
        );
        assert_eq!(
            ring.decrypt(&ct, b"ai_provider_configs/2/api_key"),
            Err(KeyRingError::Decrypt)
        );
        assert_eq!(KeyRing::key_id_of(&ct).unwrap(), "k1");
    }

    #[test]
    fn nonces_never_repeat_over_a_million_encryptions() {
        let ring = KeyRing::new("k1", &key(1)).unwrap();
        let mut seen = std::collections::HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let ct = ring.encrypt(b"x", b"ctx");
            let (_, nonce, _) = split(&ct).unwrap();
            assert!(
                seen.insert(<[u8; NONCE_LEN]>::try_from(nonce).unwrap()),
                "nonce repeated"
            );
        }
    }

    #[test]
    fn strings_and_objects_round_trip() {
        let ring = KeyRing::new("k1", &key(1)).unwrap();
        let ct = ring.encrypt_str("héllo", b"c");
        assert_eq!(ring.decrypt_str(&ct, b"c").unwrap(), "héllo");
        let obj = serde_json::json!({"a": [1, 2], "b": "x"});
        let ct = ring.encrypt_json(&obj, b"c").unwrap();
        assert_eq!(
            ring.decrypt_json::<serde_json::Value>(&ct, b"c").unwrap(),
            obj
        );
        assert!(ring.decrypt_json::<serde_json::Value>(&ct, b"d").is_err());
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable() {
        let mut ring = KeyRing::new("k1", &key(1)).unwrap();
        let old = ring.encrypt(b"x", b"ctx");
        ring.add("k2", &key(2)).unwrap();
        ring.activate("k2").unwrap();
        let new = ring.encrypt(b"y", b"ctx");
        assert_eq!(KeyRing::key_id_of(&new).unwrap(), "k2");
        assert_eq!(ring.decrypt(&old, b"ctx").unwrap(), b"x");
        assert_eq!(ring.decrypt(&new, b"ctx").unwrap(), b"y");
    }

    #[test]
    fn audit_chain_keys_are_derived_per_key_and_differ_from_the_key() {
        let mut ring = KeyRing::new("k1", &key(1)).unwrap();
        ring.add("k2", &key(2)).unwrap();
        let k1 = ring.audit_chain_key("k1").unwrap();
        let k2 = ring.audit_chain_key("k2").unwrap();
        assert_ne!(k1, k2);
        assert_ne!(k1.as_slice(), key(1).as_slice(), "a subkey, not the key");
        assert_eq!(
            KeyRing::new("other-id", &key(1))
                .unwrap()
                .audit_chain_key("other-id"),
            Some(k1),
            "derived from the key alone: the same on every node"
        );
        assert_eq!(ring.audit_chain_key("k3"), None);
        assert_eq!(ring.key_ids(), vec!["k1", "k2"]);
    }

    #[test]
    fn database_keys_are_derived_per_key_and_differ_from_every_other_key() {
        let mut ring = KeyRing::new("k1", &key(1)).unwrap();
        ring.add("k2", &key(2)).unwrap();
        let d1 = ring.database_key("k1").unwrap();
        assert_ne!(d1, ring.database_key("k2").unwrap());
        assert_ne!(d1.as_slice(), key(1).as_slice(), "a subkey, not the key");
        assert_ne!(d1, ring.audit_chain_key("k1").unwrap(), "not the audit key");
        assert_eq!(
            KeyRing::new("x", &key(1)).unwrap().database_key("x"),
            Some(d1)
        );
        assert_eq!(ring.database_key("k3"), None);
    }

    #[test]
    fn tampering_and_weak_keys_are_refused() {
        let ring = KeyRing::new("k1", &key(1)).unwrap();
        let mut ct = ring.encrypt(b"x", b"ctx");
        let last = ct.len() - 1;
        ct[last] ^= 1;
        assert_eq!(ring.decrypt(&ct, b"ctx"), Err(KeyRingError::Decrypt));
        assert_eq!(ring.decrypt(&[1, 2], b"ctx"), Err(KeyRingError::Malformed));
        assert!(KeyRing::new("k", &[0u8; 32]).is_err());
        assert!(KeyRing::new("k", &[7u8; 16]).is_err());
        let generated = decode_key_base64(&generate_key_base64()).unwrap();
        assert!(KeyRing::new("k", &generated).is_ok());
    }
}
