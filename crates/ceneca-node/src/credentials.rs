//! What a local node keeps in its data folder, under `node/`:
//!
//! - `credentials`: the enrolment (upstream, device, its token, the TLS material), sealed
//!   with the key ring under associated data naming the file, so it opens only with this
//!   node's keys and only as what it is;
//! - `cursors.json`: how far replication went both ways (not secret). Written after the
//!   work it records, so a crash repeats work (which replication recognises) and never
//!   skips any.
//!
//! Files are written to a temporary name, flushed to disk, then renamed over the old one.

use std::path::{Path, PathBuf};

use ceneca_crypto::KeyRing;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::NodeError;

/// The enrolment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Credentials {
    /// The upstream's address as enrolled (`https://host:port`).
    pub upstream: String,
    pub device_id: Uuid,
    pub device_token: String,
    pub user_id: Uuid,
    pub email: String,
    /// PEM: the private CA that signed the upstream's certificate, when it is not a
    /// public one; the device's client certificate and key, for mutual TLS.
    pub ca_pem: Option<String>,
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
}

/// How far replication went: the upstream's cursor applied here, and the `seq` of this
/// node's own log pushed up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCursors {
    pub pulled: i64,
    pub pushed: i64,
}

/// The node's files in a data folder.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    dir: PathBuf,
}

const CREDENTIALS: &str = "credentials";
const CURSORS: &str = "cursors.json";
/// Binds the sealed enrolment to what it is: it cannot be passed off as other data
/// sealed with the same keys, nor other data as it.
const CONTEXT: &[u8] = b"ceneca node credentials v1";

impl NodeFiles {
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("node"),
        }
    }

    /// Whether an enrolment is stored.
    pub fn enrolled(&self) -> bool {
        self.dir.join(CREDENTIALS).exists()
    }

    pub fn load_credentials(&self, keys: &KeyRing) -> Result<Credentials, NodeError> {
        let path = self.dir.join(CREDENTIALS);
        let sealed = std::fs::read(&path).map_err(|e| {
            NodeError::NotEnrolled(format!(
                "this data folder is not enrolled with an upstream ({}: {e}): run `ceneca \
                 device enroll --upstream URL --email E` first",
                path.display()
            ))
        })?;
        keys.decrypt_json(&sealed, CONTEXT).map_err(|e| {
            NodeError::Files(format!(
                "{} does not open with this node's keys ({e}): enrol again",
                path.display()
            ))
        })
    }

    pub fn save_credentials(
        &self,
        keys: &KeyRing,
        credentials: &Credentials,
    ) -> Result<(), NodeError> {
        let sealed = keys
            .encrypt_json(credentials, CONTEXT)
            .map_err(|e| NodeError::Files(e.to_string()))?;
        self.write(CREDENTIALS, &sealed)
    }

    /// The cursors, zero when none are stored yet.
    pub fn load_cursors(&self) -> Result<SyncCursors, NodeError> {
        let path = self.dir.join(CURSORS);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| NodeError::Files(format!("{} is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncCursors::default()),
            Err(e) => Err(NodeError::Files(format!("{}: {e}", path.display()))),
        }
    }

    pub fn save_cursors(&self, cursors: SyncCursors) -> Result<(), NodeError> {
        let bytes = serde_json::to_vec(&cursors).map_err(|e| NodeError::Files(e.to_string()))?;
        self.write(CURSORS, &bytes)
    }

    /// Forgets the enrolment and the cursors (a failed or replaced enrolment).
    pub fn clear(&self) -> Result<(), NodeError> {
        for name in [CREDENTIALS, CURSORS] {
            match std::fs::remove_file(self.dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NodeError::Files(e.to_string())),
            }
        }
        Ok(())
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), NodeError> {
        use std::io::Write;
        let fail = |e: std::io::Error| NodeError::Files(format!("{}: {e}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        let temporary = self.dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::File::create(&temporary).map_err(fail)?;
        file.write_all(bytes).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        std::fs::rename(&temporary, self.dir.join(name)).map_err(fail)?;
        // The rename itself must reach the disk too.
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_sealed_and_open_only_with_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let files = NodeFiles::in_data_dir(dir.path());
        assert!(!files.enrolled());
        let keys =
            KeyRing::new("k1", &std::array::from_fn::<u8, 32, _>(|i| i as u8 * 7 + 1)).unwrap();
        let credentials = Credentials {
            upstream: "https://10.0.0.1".into(),
            device_token: "secret-device-token".into(),
            ..Credentials::default()
        };
        files.save_credentials(&keys, &credentials).unwrap();
        assert!(files.enrolled());
        let raw = std::fs::read(dir.path().join("node/credentials")).unwrap();
        assert!(
            !raw.windows(19).any(|w| w == b"secret-device-token"),
            "the token is never stored in the clear"
        );
        assert_eq!(
            files.load_credentials(&keys).unwrap().device_token,
            "secret-device-token"
        );
        let other =
            KeyRing::new("k2", &std::array::from_fn::<u8, 32, _>(|i| i as u8 * 5 + 3)).unwrap();
        assert!(files.load_credentials(&other).is_err());
        assert_eq!(files.load_cursors().unwrap(), SyncCursors::default());
        let cursors = SyncCursors {
            pulled: 5,
            pushed: 9,
        };
        files.save_cursors(cursors).unwrap();
        assert_eq!(files.load_cursors().unwrap(), cursors);
        files.clear().unwrap();
        assert!(!files.enrolled());
    }
}
