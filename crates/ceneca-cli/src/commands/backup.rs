//! `ceneca backup create|verify|restore` (`ceneca_service::backup`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ceneca_service::backup::RestoreTarget;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum Action {
    /// Back up the database (a consistent snapshot while the server runs: on SQLite the
    /// database file, on PostgreSQL a logical export of every table) and the attachment
    /// files into a new folder under DIR (default: backup.directory), each file sealed
    /// with a key derived from the key ring (the key itself is never in the backup).
    Create {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// List the complete backups under DIR (default: backup.directory), newest first.
    List {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Open and check every file of a backup against its sealed manifest (needs the key
    /// ring that wrote it).
    Verify {
        /// The backup's folder (`ceneca-backup-…`).
        dir: PathBuf,
        /// The key file of the folder that was backed up, when neither
        /// CENECA_ENCRYPTION_KEY nor encryption.key_file gives it.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Restore a backup into a new, empty data folder (the global --data-dir) — and, for a
    /// backup taken on PostgreSQL, into the new, empty database store.database_url names —
    /// then rebuild its vector index from the database.
    Restore {
        /// The backup's folder (`ceneca-backup-…`).
        dir: PathBuf,
        /// The key file of the folder that was backed up, when neither
        /// CENECA_ENCRYPTION_KEY nor encryption.key_file gives it; copied into the new
        /// folder.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
}

pub async fn run(config: Config, action: Action) -> anyhow::Result<()> {
    match action {
        Action::Create { out } => {
            // A backup of what is there: never of a folder (or a key) made up on the spot
            // because a path was mistyped.
            let database = config.data_dir.join("ceneca.db");
            if config.is_embedded() && !database.exists() {
                bail!(
                    "no database at {}: nothing to back up (is --data-dir right?)",
                    database.display()
                );
            }
            if !config.data_dir.is_dir() {
                bail!(
                    "no data folder at {}: the snapshot is taken there (is --data-dir right?)",
                    config.data_dir.display()
                );
            }
            ring(&config, None)?;
            let out = out.unwrap_or_else(|| config.backup_dir());
            let (services, _) = super::open_services(&config).await?;
            let started = std::time::Instant::now();
            let summary = services.create_backup(&out, &config.data_dir).await?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "backup {} written: the database ({} bytes) and {} files ({} bytes of content, {} on disk) in {seconds:.2} s ({:.0} MiB/s); audit head {}",
                summary.path.display(),
                summary.manifest.database.size,
                summary.manifest.blobs.len(),
                summary.content_bytes,
                summary.sealed_bytes,
                summary.content_bytes as f64 / (1024.0 * 1024.0) / seconds.max(1e-9),
                summary.manifest.audit_head,
            );
        }
        Action::List { dir } => {
            let dir = dir.unwrap_or_else(|| config.backup_dir());
            let keys = ring(&config, None)?;
            let items = ceneca_service::backup::list_backups(keys, &dir).await?;
            if items.is_empty() {
                println!(
                    "no complete backup of this deployment under {} (a backup is listed when its manifest opens with this key ring)",
                    dir.display()
                );
            }
            for item in items {
                println!(
                    "{}  {}  key {}  {} bytes",
                    item.name, item.created_at, item.key_id, item.bytes
                );
            }
        }
        Action::Verify { dir, key_file } => {
            let keys = ring(&config, key_file.as_deref())?;
            let manifest = ceneca_service::backup::verify_backup(keys, &dir).await?;
            println!(
                "backup {} is whole: the {} database and {} files open and match the manifest (taken {}, key {}, audit head {})",
                dir.display(),
                manifest.engine,
                manifest.blobs.len(),
                manifest.created_at,
                manifest.key_id,
                manifest.audit_head,
            );
        }
        Action::Restore { dir, key_file } => restore(&config, &dir, key_file).await?,
    }
    Ok(())
}

async fn restore(config: &Config, dir: &Path, key_file: Option<PathBuf>) -> anyhow::Result<()> {
    let keys = ring(config, key_file.as_deref())?;
    let target = if config.is_embedded() {
        RestoreTarget {
            engine: "sqlite",
            database_encrypted: config.store.encrypt_database,
        }
    } else {
        RestoreTarget {
            engine: "postgres",
            database_encrypted: false,
        }
    };
    let manifest =
        ceneca_service::backup::restore_backup(keys, dir, &config.data_dir, target).await?;
    if let Some(file) = key_file {
        let target = crate::keys::default_key_file(config);
        if let Some(folder) = target.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)
                .with_context(|| format!("cannot create {}", folder.display()))?;
        }
        std::fs::copy(&file, &target)
            .with_context(|| format!("cannot copy the key file to {}", target.display()))?;
    }
    if !config.is_embedded() {
        // The rows into the new database, before anything reads its audit chain; a
        // database that is not new is refused before it is migrated.
        let export = config
            .data_dir
            .join(ceneca_service::backup::POSTGRES_EXPORT);
        let loaded = async {
            let store = super::open_store(config).await?;
            store
                .check_restore_target()
                .await
                .context("nothing was restored")?;
            store
                .migrate_up()
                .await
                .context("cannot migrate the database")?;
            store
                .restore_snapshot(export.clone())
                .await
                .context("nothing was restored (the load is all or nothing)")
        }
        .await;
        let _ = std::fs::remove_file(&export);
        if let Err(e) = loaded {
            // The data folder was empty: what the restore put there goes, so it can be
            // run again.
            ceneca_service::backup::empty_restored_folder(&config.data_dir);
            return Err(e);
        }
    }
    let (services, _) = super::open_services(config).await?;
    // The restored folder's index is rebuilt from the restored rows at once.
    let services =
        super::with_vectors(config, services, ceneca_vector::OnOtherDimensions::Replace).await?;
    let mut points = 0;
    for (_, n) in services.reindex_vectors().await? {
        points += n;
    }
    println!(
        "restored backup {} into {}{}: the database and {} files; {points} vectors rebuilt; check it with `ceneca audit verify --expect-head {}`",
        manifest.id,
        config.data_dir.display(),
        if config.is_embedded() {
            String::new()
        } else {
            format!(
                " and {}",
                crate::config::redact_url(&config.store.database_url)
            )
        },
        manifest.blobs.len(),
        manifest.audit_head,
    );
    Ok(())
}

/// The key ring that wrote a backup: the configured one, or the key file given. Never a
/// new one (a generated key opens no backup).
fn ring(config: &Config, key_file: Option<&Path>) -> anyhow::Result<Arc<ceneca_crypto::KeyRing>> {
    if let Some(path) = key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?;
        return Ok(Arc::new(
            crate::keys::parse_key_file(&text)
                .with_context(|| format!("key file {}", path.display()))?,
        ));
    }
    let configured = !config.encryption.key.is_empty()
        || !config.encryption.key_file.is_empty()
        || crate::keys::default_key_file(config).exists();
    if !configured {
        bail!(
            "no key ring: give the key file of the folder that was backed up (--key-file) or set CENECA_ENCRYPTION_KEY"
        );
    }
    Ok(Arc::new(crate::keys::load(config)?.0))
}
