//! The `ceneca` binary: `serve`, `migrate`, `user`, `device`, `keys`, `db`, `config`, `bench`.

mod commands;
mod config;
mod keys;
mod private;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "ceneca",
    version,
    about = "Secure, local-first storage for AI workspace and chat applications"
)]
struct Cli {
    /// A configuration file (default: ./ceneca.toml if it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data folder (database, key file).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// `postgres://...` to use PostgreSQL instead of the embedded SQLite.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database first).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8787.
        #[arg(long)]
        listen: Option<String>,
        /// enterprise or zero-sync.
        #[arg(long)]
        edition: Option<String>,
    },
    /// Show, apply or revert database migrations.
    Migrate {
        #[command(subcommand)]
        action: commands::migrate::Action,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: commands::user::Action,
    },
    /// Create certificates for TLS and mutual TLS.
    Certs {
        #[command(subcommand)]
        action: commands::certs::Action,
    },
    /// Check the audit trail.
    Audit {
        #[command(subcommand)]
        action: commands::audit::Action,
    },
    /// Make this data folder a local node of an upstream Ceneca.
    Device {
        #[command(subcommand)]
        action: commands::device::Action,
    },
    /// Encrypt or decrypt the embedded database in place (Ceneca stopped).
    Db {
        #[command(subcommand)]
        action: commands::db::Action,
    },
    /// Manage encryption keys.
    Keys {
        #[command(subcommand)]
        action: commands::keys::Action,
    },
    /// Print the configuration: a commented example, or the one in effect.
    Config {
        #[command(subcommand)]
        action: commands::config::Action,
    },
    /// Maintenance: purge the bin, archive idle threads and compress old bodies now
    /// (retention), or see what a run would do.
    Maintenance {
        #[command(subcommand)]
        action: commands::maintenance::Action,
    },
    /// Export a user's data (right of access): a ZIP archive with every row that is
    /// theirs as JSON lines, their attachments' files and a manifest of checksums.
    Export {
        /// The account's e-mail address.
        #[arg(long)]
        user: String,
        /// The archive to write (refused if it exists).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Backups of the embedded database and the attachment files, sealed with a key
    /// derived from the key ring: create (while the server runs), verify, restore.
    Backup {
        #[command(subcommand)]
        action: commands::backup::Action,
    },
    /// Storage counters: recount them from the data.
    Storage {
        #[command(subcommand)]
        action: commands::storage::Action,
    },
    /// Rebuild the derived indexes from the tables: full text, and with --vectors the
    /// vector index too (beside a running server on a Qdrant server; the embedded index
    /// is rebuilt with the server stopped). With --vectors --check, rebuild nothing:
    /// compare the vector index with SQL and say what differs (exit status 1 if anything).
    Reindex {
        #[arg(long)]
        vectors: bool,
        #[arg(long, requires = "vectors")]
        check: bool,
    },
    /// Measure the hot paths against raw SQLite in the same run.
    Bench(ceneca_bench::Args),
    /// Print the API's OpenAPI 3.1 document (the one served at /api/v1/openapi.json).
    Openapi,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        ..Overrides::default()
    };
    if let Command::Serve { listen, edition } = &cli.command {
        overrides.listen = listen.clone();
        overrides.edition = edition.clone();
    }
    let result = (|| -> anyhow::Result<()> {
        if let Command::Config {
            action: commands::config::Action::Example,
        } = &cli.command
        {
            commands::config::example();
            return Ok(());
        }
        if let Command::Openapi = &cli.command {
            print!("{}", ceneca_server::openapi::document_json());
            return Ok(());
        }
        if let Command::Certs { action } = &cli.command {
            return commands::certs::run(action);
        }
        if let Command::Keys {
            action: commands::keys::Action::Generate,
        } = &cli.command
        {
            commands::keys::generate();
            return Ok(());
        }
        let config = Config::load(cli.config.as_deref(), &overrides)?;
        if let Command::Config {
            action: commands::config::Action::Show,
        } = &cli.command
        {
            return commands::config::show(&config);
        }
        commands::init_logging(&config);
        // Everything from here on may write to the data folder: private files only.
        private::restrict_umask();
        if !matches!(cli.command, Command::Bench(_)) {
            private::secure_data_folder(&config)?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            match cli.command {
                Command::Serve { .. } => commands::serve::run(config).await,
                Command::Migrate { action } => commands::migrate::run(config, action).await,
                Command::User { action } => commands::user::run(config, action).await,
                Command::Audit { action } => commands::audit::run(config, action).await,
                Command::Keys { action } => commands::keys::run(config, action).await,
                Command::Db { action } => commands::db::run(config, action).await,
                Command::Device { action } => commands::device::run(config, action).await,
                Command::Storage { action } => commands::storage::run(config, action).await,
                Command::Backup { action } => commands::backup::run(config, action).await,
                Command::Export { user, out } => commands::export::run(config, &user, &out).await,
                Command::Maintenance { action } => commands::maintenance::run(config, action).await,
                Command::Bench(args) => ceneca_bench::run(args, &std::env::current_exe()?).await,
                Command::Openapi => Ok(()),
                Command::Reindex {
                    vectors: true,
                    check: true,
                } => commands::reindex::check_vectors(&config).await,
                Command::Reindex { vectors: false, .. } => commands::reindex::text(&config).await,
                Command::Reindex { vectors: true, .. } => {
                    commands::reindex::text_and_vectors(&config).await
                }
                Command::Config { .. } | Command::Certs { .. } => unreachable!("handled above"),
            }
        })
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
