//! `backup`: a backup of a 1 GiB data folder (10,000 messages and 1,024 files of 1 MiB,
//! incompressible), its verification and its restore, beside a plain copy of the same
//! files (`cp -r`), each once: the figures are throughputs of whole passes over the disk.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ceneca_service::ServiceConfig;
use ceneca_store::BlobStore;
use serde_json::json;

use crate::{Stats, row, services_with, sqlite_store, workspace_with_thread};

const MESSAGES: usize = 10_000;
const FILES: usize = 1024;
const FILE_BYTES: usize = 1024 * 1024;

pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let store = sqlite_store(&data, "ceneca.db").await?;
    let blobs = Arc::new(ceneca_store::FsBlobs::open(data.join("blobs"))?);
    let services = services_with(store, ServiceConfig::default())?.with_blobs(blobs.clone());
    let server = crate::Server::start(services.clone()).await?;
    let (_, thread) = workspace_with_thread(&server).await?;
    for batch in 0..MESSAGES / 1000 {
        let items: Vec<_> = (0..1000)
            .map(|i| json!({"role": "user", "content": format!("message {batch}-{i} about the plan")}))
            .collect();
        server
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/threads/{thread}/messages/batch"),
                Some(json!({ "items": items })),
            )
            .await?;
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for n in 0..FILES {
        let mut file = Vec::with_capacity(FILE_BYTES);
        while file.len() < FILE_BYTES {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            file.extend_from_slice(&state.to_le_bytes());
        }
        // A name of the blob folder's form (the content's hash does not matter here).
        let digest = format!("{:064x}", n + 1);
        let mut pending = blobs.begin().await?;
        pending.write(&file).await?;
        blobs.keep(pending, &digest).await?;
    }
    let folder_bytes = folder_size(&data);
    let mib = folder_bytes as f64 / (1024.0 * 1024.0);
    println!("a data folder of {mib:.0} MiB: {MESSAGES} messages and {FILES} files of 1 MiB");

    let started = Instant::now();
    let summary = services.create_backup(&dir.join("backups"), &data).await?;
    let backup = started.elapsed();
    let started = Instant::now();
    services.verify_backup(&summary.path).await?;
    let verify = started.elapsed();
    let started = Instant::now();
    services
        .restore_backup(&summary.path, &dir.join("restored"))
        .await?;
    let restore = started.elapsed();
    let started = Instant::now();
    copy_dir(&data, &dir.join("copy"))?;
    let copy = started.elapsed();

    let rate = |d: Duration| format!("{:.0} MiB/s", mib / d.as_secs_f64());
    println!(
        "backup {} ({}), verify {} ({}), restore {} ({}); cp -r {} ({})",
        ms(backup),
        rate(backup),
        ms(verify),
        rate(verify),
        ms(restore),
        rate(restore),
        ms(copy),
        rate(copy)
    );
    let copied = Stats::new(vec![copy]);
    row(
        "backup create (1 GiB)",
        &Stats::new(vec![backup]),
        Some(("cp -r of the folder", &copied)),
        "—",
    );
    row(
        "backup verify (1 GiB)",
        &Stats::new(vec![verify]),
        Some(("cp -r of the folder", &copied)),
        "—",
    );
    row(
        "backup restore (1 GiB)",
        &Stats::new(vec![restore]),
        Some(("cp -r of the folder", &copied)),
        "—",
    );
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn folder_size(path: &Path) -> u64 {
    crate::export::walk(path)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        }
    }
    Ok(())
}
