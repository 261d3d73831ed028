//! `ceneca db encrypt` and `ceneca db decrypt`: the embedded database converted in place
//! (`ceneca_store::sqlite::convert`), with Ceneca stopped. Interrupted, a run continues
//! where it stopped when started again.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use ceneca_store::sqlite::convert::{self, ConvertOptions, Direction};
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum Action {
    /// Encrypt the embedded database (SQLCipher, a key derived from the key ring), in
    /// place; then set store.encrypt_database = true.
    Encrypt,
    /// Decrypt the embedded database back to plain SQLite, in place; then set
    /// store.encrypt_database = false.
    Decrypt,
}

pub async fn run(config: Config, action: Action) -> anyhow::Result<()> {
    if !config.is_embedded() {
        bail!(
            "the database is PostgreSQL: `ceneca db encrypt` and `decrypt` apply to the embedded database only"
        );
    }
    let url = config.store_url();
    let path = std::path::PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(&url));
    let (ring, key_source) = crate::keys::load(&config)?;
    let keys = crate::keys::database_keys(&ring);
    let direction = match action {
        Action::Encrypt => Direction::Encrypt,
        Action::Decrypt => Direction::Decrypt,
    };
    // Test hooks (not settings): smaller chunks, and a run stopped after some of them.
    let number = |name: &str| -> anyhow::Result<Option<u64>> {
        std::env::var(name)
            .ok()
            .map(|v| {
                v.parse()
                    .with_context(|| format!("{name} must be a number"))
            })
            .transpose()
    };
    let mut options = ConvertOptions::default();
    if let Some(rows) = number("CENECA_TEST_CONVERT_CHUNK_ROWS")? {
        options.chunk_rows = rows;
    }
    options.stop_after_chunks = number("CENECA_TEST_CONVERT_STOP_AFTER_CHUNKS")?;

    let work = convert::work_path(&path, direction);
    let report = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut progress = Progress::new();
            let report = convert::convert(&path, direction, &keys, &options, &mut |done, total| {
                progress.show(done, total)
            });
            progress.finish();
            report
        })
        .await?
    };
    let report = match report {
        Ok(report) => report,
        Err(e @ ceneca_store::StoreError::Encryption(_)) => return Err(e.into()),
        Err(e) => {
            return Err(anyhow::Error::from(e).context(format!(
                "the database was not converted (the original is unchanged; run this again to continue from {})",
                work.display()
            )));
        }
    };
    let (done, setting) = match direction {
        Direction::Encrypt => (
            "encrypted",
            "store.encrypt_database = true (CENECA_ENCRYPT_DATABASE=true)",
        ),
        Direction::Decrypt => (
            "plaintext",
            "store.encrypt_database = false (CENECA_ENCRYPT_DATABASE=false)",
        ),
    };
    if report.already {
        println!(
            "the database at {} is already {done}: nothing to do",
            path.display()
        );
    } else {
        println!(
            "the database at {} is now {done}: {} tables, {} rows copied and verified{}",
            path.display(),
            report.tables,
            report.rows,
            if report.resumed {
                " (an interrupted run continued)"
            } else {
                ""
            }
        );
        if direction == Direction::Encrypt {
            println!(
                "key: derived from the active key {} of the key ring ({key_source}); keep the key file: the database cannot be read without it",
                ring.active_key_id()
            );
        }
    }
    if config.store.encrypt_database != (direction == Direction::Encrypt) {
        println!("before starting Ceneca, set {setting}");
    }
    Ok(())
}

/// Progress on stderr: a bar on a terminal, a line per tenth otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    printed: Option<u64>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {percent:>3}% {pos}/{len} rows {elapsed}",
                )
                .expect("static template"),
            );
            bar
        });
        Self { bar, printed: None }
    }

    fn show(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            return;
        }
        let tenth = (done * 10).checked_div(total).unwrap_or(10);
        if self.printed != Some(tenth) {
            self.printed = Some(tenth);
            eprintln!("{}% ({done} of {total} rows)", tenth * 10);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
