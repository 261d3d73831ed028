//! `ceneca storage reconcile`: recounts what every workspace stores from the data and
//! reports where the counters writes keep have drifted (rows a foreign key's cascade
//! removed, rows a replica forgot); `--fix` replaces them, in the same transaction.

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Recount what every workspace stores and report drift; with --fix, correct it.
    Reconcile {
        #[arg(long)]
        fix: bool,
    },
}

pub async fn run(config: Config, action: Action) -> anyhow::Result<()> {
    match action {
        Action::Reconcile { fix } => {
            let store = super::open_store(&config).await?;
            let drift = store.reconcile_storage(fix).await?;
            for d in &drift {
                println!(
                    "workspace {} {}: counted {} rows, {} bytes; the data holds {} rows, {} bytes",
                    d.workspace_id,
                    d.category.as_str(),
                    d.counted.0,
                    d.counted.1,
                    d.actual.0,
                    d.actual.1
                );
            }
            match (drift.len(), fix) {
                (0, _) => println!("storage counters match the data"),
                (n, true) => println!("{n} counters corrected"),
                (n, false) => {
                    // A failure for scripts and monitoring: the counters are wrong.
                    anyhow::bail!("{n} counters differ from the data: run with --fix")
                }
            }
            Ok(())
        }
    }
}
