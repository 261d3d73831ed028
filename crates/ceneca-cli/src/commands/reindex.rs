//! `ceneca reindex [--vectors [--check]]`: the derived indexes rebuilt from the tables,
//! or the vector index compared with them.

use crate::config::Config;

/// Rebuilds the full-text indexes.
pub async fn text(config: &Config) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    store.reindex_text().await?;
    println!("full-text indexes rebuilt ({})", store.engine().as_str());
    Ok(())
}

/// Rebuilds the full-text indexes and the vector index. The vector index is opened first,
/// so a run refused (the embedded index open in a running server) changes nothing.
pub async fn text_and_vectors(config: &Config) -> anyhow::Result<()> {
    let (services, _) = super::open_services(config).await?;
    // An explicit rebuild may change the dimensions: it builds the new content aside and
    // swaps it in, or leaves the collection as it was.
    let services =
        super::with_vectors(config, services, ceneca_vector::OnOtherDimensions::Replace).await?;
    services.store().reindex_text().await?;
    println!(
        "full-text indexes rebuilt ({})",
        services.store().engine().as_str()
    );
    for (collection, points) in services.reindex_vectors().await? {
        println!("vector collection {collection}: {points} points rebuilt");
    }
    Ok(())
}

/// Prints, per collection, what the index holds against SQL; fails (exit status 1) when
/// anything differs, so a monitoring job can run it.
pub async fn check_vectors(config: &Config) -> anyhow::Result<()> {
    // A check of a folder that holds nothing (a mistyped --data-dir) must not pass.
    let url = config.store_url();
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        let file = std::path::PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(&url));
        if !file.exists() {
            anyhow::bail!(
                "no database at {}: nothing to check (is the data folder right?)",
                file.display()
            );
        }
    }
    let (services, _) = super::open_services(config).await?;
    let services =
        super::with_vectors(config, services, ceneca_vector::OnOtherDimensions::Refuse).await?;
    let reports = services.check_vectors().await?;
    let mut drifted = 0;
    for r in &reports {
        println!(
            "vector collection {}: {} in SQL, {} in the index; missing {}, stale {}, extra {}{}",
            r.collection,
            r.sql_points,
            r.index_points,
            r.missing,
            r.stale,
            r.extra,
            if r.pending > 0 {
                format!(" ({} written during the check, on their way)", r.pending)
            } else {
                String::new()
            }
        );
        for (kind, id) in &r.examples {
            println!("  {} {id}", kind.as_str());
        }
        if r.drifted() {
            drifted += 1;
        }
    }
    if drifted > 0 {
        anyhow::bail!(
            "the vector index differs from SQL in {drifted} collection(s): rebuild it with \
             `ceneca reindex --vectors`"
        );
    }
    println!("the vector index matches SQL");
    Ok(())
}
