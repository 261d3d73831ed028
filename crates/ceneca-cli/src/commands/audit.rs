use anyhow::bail;
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum Action {
    /// Recompute the hash chain of the whole audit log; name the first broken entry.
    Verify,
}

pub async fn run(config: Config, action: Action) -> anyhow::Result<()> {
    let (services, _) = super::open_services(&config).await?;
    match action {
        Action::Verify => {
            let report = services
                .verify_audit_chain()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            match report.broken {
                None => println!("audit log intact: {} entries verified", report.checked),
                Some(b) => bail!(
                    "audit log broken at entry {}: {} ({} entries before it verified)",
                    b.sequence,
                    b.reason,
                    report.checked
                ),
            }
        }
    }
    Ok(())
}
