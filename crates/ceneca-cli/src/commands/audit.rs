use anyhow::bail;
use ceneca_domain::audit::ChainHead;
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum Action {
    /// Check the audit chain: every entry's MAC (with every key of the ring), its link to
    /// the one before, the continuity of sequence numbers, and that the log still reaches
    /// the head recorded in <data_dir>/audit.head. Names the first broken entry.
    Verify {
        /// Also require the head recorded earlier with `ceneca audit head`
        /// (`<sequence>:<mac>`): the log must still hold that entry, with that MAC.
        #[arg(long, value_name = "SEQUENCE:MAC", value_parser = ChainHead::parse)]
        expect_head: Option<ChainHead>,
    },
    /// Verify the chain, then print its head (`<sequence>:<mac>`) to record outside this
    /// machine and check later with `audit verify --expect-head`.
    Head,
}

pub async fn run(config: Config, action: Action) -> anyhow::Result<()> {
    let (services, _) = super::open_services(&config).await?;
    let expected = match &action {
        Action::Verify { expect_head } => expect_head.clone(),
        Action::Head => None,
    };
    let report = services
        .verify_audit_chain_expecting(expected)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(b) = report.broken {
        bail!(
            "audit log broken at entry {}: {} ({} entries before it verified)",
            b.sequence,
            b.kind,
            report.checked
        );
    }
    match action {
        Action::Head => println!("{}", report.head),
        Action::Verify { .. } => {
            println!(
                "audit log intact: {} entries verified, head {}",
                report.checked, report.head
            );
            if report.legacy > 0 {
                println!(
                    "note: the first {} entries predate the keyed chain (plain SHA-256, no MAC): \
                     their links are checked, but anyone who could write the database could have rewritten them",
                    report.legacy
                );
            }
            for anchor in &report.anchors {
                println!(
                    "reaches the head {} records (entry {})",
                    anchor.source, anchor.head.sequence
                );
            }
            if report.anchors.is_empty() {
                eprintln!(
                    "warning: no head file and no --expect-head: entries deleted from the end of the log cannot be detected"
                );
            }
        }
    }
    Ok(())
}
