//! `ceneca reindex --vectors --check`: the vector index compared with SQL.

use crate::config::Config;

/// Prints, per collection, what the index holds against SQL; fails (exit status 1) when
/// anything differs, so a monitoring job can run it.
pub async fn check_vectors(config: &Config) -> anyhow::Result<()> {
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
