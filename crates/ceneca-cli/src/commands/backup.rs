//! `ceneca backup create|verify|restore` (`ceneca_service::backup`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum Action {
    /// Back up the embedded database (a consistent snapshot, while the server runs) and
    /// the attachment files into a new folder under DIR, each file sealed with a key
    /// derived from the key ring (the key itself is never in the backup).
    Create {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
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
    /// Restore a backup into a new, empty data folder (the global --data-dir), then
    /// rebuild its vector index from the database.
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
            if !config.is_embedded() {
                bail!(
                    "on PostgreSQL, back the database up with pg_dump or point-in-time recovery (see the README); `ceneca backup` covers the embedded database"
                );
            }
            // A backup of what is there: never of a folder (or a key) made up on the spot
            // because a path was mistyped.
            let database = config.data_dir.join("ceneca.db");
            if !database.exists() {
                bail!(
                    "no database at {}: nothing to back up (is --data-dir right?)",
                    database.display()
                );
            }
            ring(&config, None)?;
            let (services, _) = super::open_services(&config).await?;
            let services = services.with_blobs(Arc::new(
                ceneca_store::FsBlobs::open(config.data_dir.join("blobs"))
                    .context("cannot open the blob folder")?,
            ));
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
        Action::Verify { dir, key_file } => {
            let keys = ring(&config, key_file.as_deref())?;
            let manifest = ceneca_service::backup::verify_backup(keys, &dir).await?;
            println!(
                "backup {} is whole: the database and {} files open and match the manifest (taken {}, key {}, audit head {})",
                dir.display(),
                manifest.blobs.len(),
                manifest.created_at,
                manifest.key_id,
                manifest.audit_head,
            );
        }
        Action::Restore { dir, key_file } => {
            if !config.store.database_url.is_empty() {
                bail!(
                    "a backup restores into an embedded data folder (--data-dir, its database as ceneca.db): unset store.database_url"
                );
            }
            let keys = ring(&config, key_file.as_deref())?;
            // Where the embedded store keeps its database (`StoreSettings::url`).
            let manifest =
                ceneca_service::backup::restore_backup(keys, &dir, &config.data_dir, "ceneca.db")
                    .await?;
            if let Some(file) = key_file {
                let target = crate::keys::default_key_file(&config);
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
            let (services, _) = super::open_services(&config).await?;
            let services = super::with_vectors(&config, services).await?;
            let mut points = 0;
            for (_, n) in services.reindex_vectors().await? {
                points += n;
            }
            println!(
                "restored backup {} into {}: the database and {} files; {points} vectors rebuilt; check it with `ceneca audit verify --expect-head {}`",
                manifest.id,
                config.data_dir.display(),
                manifest.blobs.len(),
                manifest.audit_head,
            );
        }
    }
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
