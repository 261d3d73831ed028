//! The data folder is private to the account that runs Ceneca.
//!
//! It holds the embedded database (every tenant's messages and documents, password
//! hashes, session digests), the key file and the vector index. Under the usual umask 022
//! files come out 0644 and folders 0755: readable by every local user. So the process
//! creates everything with umask 077 ([`restrict_umask`]), the SQLite store and the vector
//! index create their own folders and files private whatever the umask, and commands that
//! open the data folder first make what is already there private, warning about each entry
//! they had to fix ([`secure_data_folder`]): folders 0700, files 0600 (keeping only the
//! owner's bits).

use std::path::{Path, PathBuf};

use crate::config::Config;

/// Sets the process umask to 077 so every file and folder the process creates from now on
/// (the database's WAL and shared-memory files, the vector engine's segments, temporary
/// files) is private. Process-wide: call it before other threads start.
pub fn restrict_umask() {
    #[cfg(unix)]
    {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    }
}

/// What Ceneca keeps in (or for) the data folder: (path, whether it is a tree).
fn entries(config: &Config) -> Vec<(PathBuf, bool)> {
    let dir = &config.data_dir;
    let mut out = vec![
        (dir.join("keys"), true),
        (dir.join("vectors"), true),
        (dir.join("blobs"), true),
        (dir.join("exports"), true),
    ];
    if config.backup.directory.is_empty() {
        out.push((dir.join("backups"), true));
    }
    if let Some(db) = sqlite_file(config) {
        // The database, SQLite's files beside it, and the leases' lock files.
        for suffix in [
            "",
            "-wal",
            "-shm",
            "-journal",
            ".maintenance-lock",
            ".vector-indexer-lock",
            ".vector-rebuild-lock",
        ] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            out.push((PathBuf::from(name), false));
        }
    }
    out
}

/// The embedded database file, when the configuration uses SQLite (read as
/// `ceneca_store::open` reads the URL).
fn sqlite_file(config: &Config) -> Option<PathBuf> {
    let url = config.store_url();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    Some(PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(&url)))
}

/// Creates the data folder 0700 if the embedded database will live there, and makes the
/// folder and what Ceneca keeps in it private, warning (path and mode found) for each
/// entry that was readable or writable by others. An entry that cannot be changed (owned
/// by another account) is warned about and left; a symbolic link is not followed.
pub fn secure_data_folder(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    if !dir.exists() {
        if !config.is_embedded() {
            return Ok(());
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(dir)
            .map_err(|e| anyhow::anyhow!("cannot create the data folder {}: {e}", dir.display()))?;
    }
    make_private(dir);
    for (path, tree) in entries(config) {
        if tree {
            make_tree_private(&path);
        } else {
            make_private(&path);
        }
    }
    Ok(())
}

fn make_tree_private(path: &Path) {
    make_private(path);
    let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    if !is_dir {
        return;
    }
    let Ok(children) = std::fs::read_dir(path) else {
        return;
    };
    for child in children.flatten() {
        make_tree_private(&child.path());
    }
}

/// Removes group and other permissions from one file or folder, if it has any.
fn make_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if meta.file_type().is_symlink() {
            return;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return;
        }
        let private = mode & 0o700;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(private)) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:04o}"),
                now = format!("{private:04o}"),
                "other local users could access this data-folder entry; made it private"
            ),
            Err(e) => tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:04o}"),
                error = %e,
                "other local users can access this data-folder entry and it cannot be made private; fix its owner and mode"
            ),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn data_folder_world_readable_wide_modes_are_fixed() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let config = Config {
            data_dir: data.clone(),
            ..Config::default()
        };
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        std::fs::create_dir_all(data.join("vectors/messages/shard")).unwrap();
        std::fs::create_dir_all(data.join("keys")).unwrap();
        for (file, m) in [
            ("ceneca.db", 0o644),
            ("ceneca.db-wal", 0o664),
            ("ceneca.db-shm", 0o666),
            ("keys/master.key", 0o640),
            ("vectors/messages/CURRENT", 0o644),
            ("vectors/messages/shard/segment", 0o755),
        ] {
            std::fs::write(data.join(file), b"x").unwrap();
            set(&data.join(file), m);
        }
        for d in [
            "",
            "keys",
            "vectors",
            "vectors/messages",
            "vectors/messages/shard",
        ] {
            set(&data.join(d), 0o755);
        }
        // Not Ceneca's: left alone.
        std::fs::write(data.join("notes.txt"), b"x").unwrap();
        set(&data.join("notes.txt"), 0o644);
        let outside = root.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        set(&outside, 0o644);
        std::os::unix::fs::symlink(&outside, data.join("vectors/link")).unwrap();

        secure_data_folder(&config).unwrap();
        for d in [
            "",
            "keys",
            "vectors",
            "vectors/messages",
            "vectors/messages/shard",
        ] {
            assert_eq!(mode(&data.join(d)), 0o700, "{d}");
        }
        for file in [
            "ceneca.db",
            "ceneca.db-wal",
            "ceneca.db-shm",
            "keys/master.key",
            "vectors/messages/CURRENT",
        ] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
        assert_eq!(mode(&data.join("vectors/messages/shard/segment")), 0o700);
        assert_eq!(mode(&data.join("notes.txt")), 0o644);
        assert_eq!(mode(&outside), 0o644, "symbolic links are not followed");
    }

    #[test]
    fn a_missing_data_folder_is_created_private_only_for_the_embedded_database() {
        let root = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: root.path().join("a/b"),
            ..Config::default()
        };
        secure_data_folder(&config).unwrap();
        assert_eq!(mode(&root.path().join("a/b")), 0o700);
        let mut config = Config {
            data_dir: root.path().join("pg"),
            ..Config::default()
        };
        config.store.database_url = "postgres://h/db".into();
        secure_data_folder(&config).unwrap();
        assert!(!root.path().join("pg").exists());
    }
}
