use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum Action {
    /// List migrations and whether each is applied.
    Status,
    /// Apply every pending migration.
    Up,
    /// Revert the newest applied migration (its data is lost).
    Down,
}

pub async fn run(config: Config, action: Action) -> anyhow::Result<()> {
    let store = super::open_store(&config).await?;
    match action {
        Action::Status => {
            println!("engine: {}", store.engine().as_str());
            for m in store.migration_status().await? {
                let state = match (&m.applied_at, m.modified) {
                    (Some(at), false) => format!("applied {at}"),
                    (Some(at), true) => {
                        format!("applied {at} (MODIFIED since: the file in this binary differs)")
                    }
                    (None, _) => "pending".into(),
                };
                println!("{:>4}  {:<20} {state}", m.version, m.name);
            }
        }
        Action::Up => {
            let applied = store.migrate_up().await?;
            if applied.is_empty() {
                println!("up to date");
            }
            for v in applied {
                println!("applied {v}");
            }
        }
        Action::Down => match store.migrate_down().await? {
            Some(v) => println!("reverted {v}"),
            None => println!("nothing to revert"),
        },
    }
    Ok(())
}
