use std::io::Write;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum Action {
    /// Print a new random 32-byte key, base64-encoded (for CENECA_ENCRYPTION_KEY).
    Generate,
    /// Add a new key to the key file and make it the active one; older keys keep decrypting.
    Rotate,
    /// Re-encrypt every stored secret under the active key (resumable: run it again after
    /// an interruption and it continues where it stopped).
    Rewrap,
}

/// `keys generate` needs no configuration.
pub fn generate() {
    println!("{}", ceneca_crypto::keyring::generate_key_base64());
}

pub async fn run(config: Config, action: Action) -> anyhow::Result<()> {
    match action {
        Action::Generate => generate(),
        Action::Rotate => rotate(&config)?,
        Action::Rewrap => rewrap(&config).await?,
    }
    Ok(())
}

fn rotate(config: &Config) -> anyhow::Result<()> {
    if !config.encryption.key.is_empty() {
        bail!(
            "the key comes from CENECA_ENCRYPTION_KEY, which holds one key: to rotate, put the current key \
             in a key file (`<id> <base64>` per line) under the id `env` (which stored secrets and audit \
             entries name), set encryption.key_file, and run this again"
        );
    }
    let path = if config.encryption.key_file.is_empty() {
        crate::keys::default_key_file(config)
    } else {
        config.encryption.key_file.clone().into()
    };
    let current = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    crate::keys::parse_key_file(&current)
        .with_context(|| format!("key file {}", path.display()))?;
    let id = format!(
        "k{}",
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
    );
    let mut next = current.clone();
    if !next.ends_with('\n') {
        next.push('\n');
    }
    next.push_str(&format!(
        "{id} {}\n",
        ceneca_crypto::keyring::generate_key_base64()
    ));
    crate::keys::parse_key_file(&next)?;
    // Write beside, then rename: the key file is never half-written.
    let tmp = path.with_extension("key.tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(next.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    println!("new active key {id} in {}", path.display());
    println!(
        "restart ceneca (every node, with this file) and run `ceneca keys rewrap` to re-encrypt stored secrets"
    );
    println!(
        "keep the older keys in the file: audit entries name the key their MAC was made with, and `ceneca audit verify` needs it"
    );
    Ok(())
}

async fn rewrap(config: &Config) -> anyhow::Result<()> {
    let (services, _) = super::open_services(config).await?;
    let (keys, source) = crate::keys::load(config)?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} secrets checked {elapsed}")
            .expect("static template"),
    );
    let report = services
        .rewrap_secrets(&keys, |checked| bar.set_position(checked))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    println!(
        "{} secrets checked, {} re-encrypted under key {} ({source})",
        report.checked,
        report.rewrapped,
        keys.active_key_id()
    );
    if !report.unreadable.is_empty() {
        for (table, id) in &report.unreadable {
            eprintln!("unreadable: {table} {id} (no key in the ring decrypts it for this record)");
        }
        bail!(
            "{} secrets could not be decrypted and were left as they are",
            report.unreadable.len()
        );
    }
    Ok(())
}
