//! Loading the key ring: `CENECA_ENCRYPTION_KEY`, a key file, or (embedded default only) a
//! key file generated once in the data folder with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ceneca_crypto::KeyRing;
use ceneca_crypto::keyring::{decode_key_base64, generate_key_base64};

use crate::config::Config;

/// The default key file of the embedded deployment.
pub fn default_key_file(config: &Config) -> PathBuf {
    config.data_dir.join("keys").join("master.key")
}

/// Parses a key file: `<id> <base64>` per line, `#` comments; the last key is active.
pub fn parse_key_file(text: &str) -> anyhow::Result<KeyRing> {
    let mut ring: Option<KeyRing> = None;
    let mut last = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, key) = line
            .split_once(char::is_whitespace)
            .with_context(|| format!("key file line {}: expected '<id> <base64 key>'", n + 1))?;
        let key = decode_key_base64(key).with_context(|| format!("key file line {}", n + 1))?;
        match &mut ring {
            None => {
                ring = Some(
                    KeyRing::new(id, &key).with_context(|| format!("key file line {}", n + 1))?,
                )
            }
            Some(r) => r
                .add(id, &key)
                .with_context(|| format!("key file line {}", n + 1))?,
        }
        last = Some(id.to_owned());
    }
    let mut ring = ring.context("the key file holds no key")?;
    if let Some(id) = last {
        ring.activate(&id)?;
    }
    Ok(ring)
}

/// The key ring the configuration names; generates the embedded default's key file once.
pub fn load(config: &Config) -> anyhow::Result<(KeyRing, String)> {
    if !config.encryption.key.is_empty() {
        let key = decode_key_base64(&config.encryption.key).context("CENECA_ENCRYPTION_KEY")?;
        let ring = KeyRing::new("env", &key).context("CENECA_ENCRYPTION_KEY")?;
        return Ok((ring, "CENECA_ENCRYPTION_KEY".into()));
    }
    let path = if config.encryption.key_file.is_empty() {
        if !config.is_embedded() {
            bail!(
                "no encryption key: on PostgreSQL every node must share one key, so set CENECA_ENCRYPTION_KEY \
                 (from `ceneca keys generate`) or encryption.key_file"
            );
        }
        let path = default_key_file(config);
        if !path.exists() {
            write_new_key_file(&path)?;
            tracing::info!(path = %path.display(), "generated a new encryption key file (keep a backup: secrets cannot be read without it)");
        }
        path
    } else {
        PathBuf::from(&config.encryption.key_file)
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    Ok((
        parse_key_file(&text).with_context(|| format!("key file {}", path.display()))?,
        path.display().to_string(),
    ))
}

/// The embedded database's SQLCipher keys: derived from the ring's keys (never the keys
/// themselves), the active key's first.
pub fn database_keys(ring: &KeyRing) -> ceneca_store::DatabaseKeys {
    let derived = |id: &str| {
        ring.database_key(id)
            .expect("every id the ring lists has a derived database key")
    };
    let active = ring.active_key_id();
    ring.key_ids().into_iter().filter(|id| *id != active).fold(
        ceneca_store::DatabaseKeys::new(active, derived(active)),
        |keys, id| keys.with_retired(id, derived(id)),
    )
}

fn write_new_key_file(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    let id = format!("k{}", time::OffsetDateTime::now_utc().unix_timestamp());
    writeln!(
        file,
        "# Ceneca encryption keys: <id> <base64 key>; the last line is the active key."
    )?;
    writeln!(file, "{id} {}", generate_key_base64())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_files_are_private_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let (ring, _) = load(&config).unwrap();
        let path = default_key_file(&config);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (again, _) = load(&config).unwrap();
        assert_eq!(
            ring.active_key_id(),
            again.active_key_id(),
            "generated once, then reused"
        );
    }

    #[test]
    fn weak_or_malformed_keys_refuse_to_load() {
        assert!(parse_key_file("k1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_err());
        assert!(parse_key_file("just-one-token").is_err());
        assert!(parse_key_file("# nothing\n").is_err());
        let mut config = Config::default();
        config.store.database_url = "postgres://h/db".into();
        assert!(
            load(&config)
                .unwrap_err()
                .to_string()
                .contains("CENECA_ENCRYPTION_KEY")
        );
    }
}
