//! `ceneca maintenance run [--dry-run]`: retention (the purge of the bin, the archive, the
//! compression of old bodies), now, with a progress line
//! and a report of what was done (or, with --dry-run, would be). Waits for no server: it
//! takes the database's maintenance lease, so it refuses while a server's run is going.

use ceneca_wire::maintenance::{MaintenanceReport, MaintenanceTrigger};
use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Purge rows in the bin past the rule, archive idle threads (their files and
    /// embeddings go) and compress old bodies now; with --dry-run, report what would be
    /// done and change nothing.
    Run {
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(config: Config, action: Action) -> anyhow::Result<()> {
    match action {
        Action::Run { dry_run } => {
            // A local node's upstream decides what is archived: an archive made here
            // would never reach it, and the copies would part.
            if !config.sync.upstream_url.is_empty()
                || ceneca_node::NodeFiles::in_data_dir(&config.data_dir).enrolled()
            {
                anyhow::bail!(
                    "this data folder is a local node (enrolled with an upstream): its upstream \
                     decides what is archived; run maintenance there"
                );
            }
            let (services, _) = super::open_services(&config).await?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .expect("static template"),
            );
            bar.set_message("looking for idle threads");
            let verb = if dry_run { "would archive" } else { "archived" };
            let report = services
                .run_maintenance(MaintenanceTrigger::Manual, None, dry_run, &|so_far| {
                    bar.set_message(format!("{verb} {} threads", so_far.threads_archived));
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            bar.finish_and_clear();
            if let Err(e) = services.flush_audit_head() {
                tracing::warn!(error = %e, "the audit head file was not written");
            }
            print!("{}", summary(&report));
            Ok(())
        }
    }
}

/// The report as the command prints it.
fn summary(report: &MaintenanceReport) -> String {
    let (verb, go) = if report.dry_run {
        ("would archive", "would go")
    } else {
        ("archived", "removed")
    };
    let mut out = String::new();
    if report.erasures_finished > 0 {
        out.push_str(&format!(
            "finished {} interrupted account erases\n",
            report.erasures_finished
        ));
    }
    if report.purge_after_days == 0 {
        out.push_str("nothing is purged from the bin (retention.purge_after_days = 0)\n");
    } else {
        let purge = if report.dry_run {
            "would purge"
        } else {
            "purged"
        };
        let rows: Vec<String> = report
            .purged
            .iter()
            .map(|(table, n)| format!("{n} {table}"))
            .collect();
        let rows = if rows.is_empty() {
            "nothing".to_owned()
        } else {
            rows.join(", ")
        };
        out.push_str(&format!(
            "in the bin over {} days: {purge} {rows}; with them {} messages, {} attachments \
             ({} bytes), {} embeddings, {} change-log entries\n",
            report.purge_after_days,
            report.purged_messages_below,
            report.purged_attachments,
            report.purged_attachment_bytes,
            report.purged_embeddings,
            report.purged_changes,
        ));
    }
    for rule in &report.rules {
        let whose = match rule.organization_id {
            Some(id) => format!("organization {id}"),
            None => "server rule".to_owned(),
        };
        out.push_str(&format!(
            "{whose}: threads idle {} days: {verb} {}\n",
            rule.archive_after_days, rule.threads
        ));
    }
    if report.rules.is_empty() {
        out.push_str("no archive rule is in force (retention.archive_after_days = 0)\n");
    }
    out.push_str(&format!(
        "{verb} {} threads ({} messages kept); attachment files {go}: {} ({} bytes); \
         embeddings {go}: {} ({} bytes)\n",
        report.threads_archived,
        report.messages_in_archived_threads,
        report.attachment_files_removed,
        report.attachment_bytes_removed,
        report.embeddings_removed,
        report.embedding_bytes_removed,
    ));
    if report.compress_after_days == 0 {
        out.push_str("no message is compressed (retention.compress_after_days = 0)\n");
    } else {
        let compress = if report.dry_run {
            "would compress"
        } else {
            "compressed"
        };
        out.push_str(&format!(
            "bodies written over {} days ago: {compress} {} messages, {} bytes to {}\n",
            report.compress_after_days,
            report.messages_compressed,
            report.compressed_bytes_before,
            report.compressed_bytes_after,
        ));
    }
    if !report.dry_run {
        out.push_str(&format!(
            "database {:.1} ms; {} files deleted in {:.1} ms\n",
            report.database_us as f64 / 1000.0,
            report.blob_files_deleted,
            report.files_us as f64 / 1000.0
        ));
    }
    out
}
