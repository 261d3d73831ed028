//! `ceneca export --user EMAIL --out FILE`: a user's data as a ZIP archive
//! (`ceneca_service::export`), beside a running server or not, with a progress line.
//! Written to `FILE.partial` and renamed once complete: a file at `FILE` is a whole
//! archive.

use std::path::{Path, PathBuf};

use crate::config::Config;

pub async fn run(config: Config, email: &str, out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!("{} exists: choose another file", out.display());
    }
    let (services, _) = super::open_services(&config).await?;
    // A `.partial` left by an export that was killed is this command's own: replaced.
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&partial)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", partial.display()))?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .expect("static template"),
    );
    bar.set_message("reading rows");
    let sink = std::io::BufWriter::with_capacity(1 << 20, file);
    let exported = services
        .export_user_by_email(email, Box::new(sink), &|so_far| {
            bar.set_message(format!(
                "{} rows, {} files ({} MiB)",
                so_far.rows,
                so_far.files,
                so_far.file_bytes >> 20
            ));
        })
        .await;
    bar.finish_and_clear();
    if let Err(e) = services.flush_audit_head() {
        tracing::warn!(error = %e, "the audit head file was not written");
    }
    let summary = match exported {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            anyhow::bail!("the export failed: {e}");
        }
    };
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, out)?;
    let rows: u64 = summary.rows.values().sum();
    println!(
        "exported user {}: {rows} rows in {} tables, {} files ({} bytes), archive {} bytes: {}",
        summary.user_id,
        summary.rows.len(),
        summary.files,
        summary.file_bytes,
        summary.archive_bytes,
        out.display()
    );
    Ok(())
}
