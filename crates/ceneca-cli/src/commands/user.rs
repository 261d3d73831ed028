use anyhow::bail;
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum Action {
    /// Create an account. The password is read from the first line of standard input, or
    /// from CENECA_NEW_USER_PASSWORD (never from a flag: flags show in process lists).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Make the account a system administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Erase an account for good (right to be forgotten): the account and everything that
    /// goes with it, its personal workspaces and organizations it alone was in, what it
    /// wrote in shared workspaces (deleted, or kept without its author where the
    /// organization's `erasure` is `anonymise`), files, vectors, full-text entries, and
    /// the personal fields of its audit entries. Resumes an erase that was interrupted;
    /// run again once done, it finds nothing and says so.
    Erase {
        /// The account's e-mail.
        email: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(config: Config, action: Action) -> anyhow::Result<()> {
    let (services, _) = super::open_services(&config).await?;
    match action {
        Action::Create {
            email,
            display_name,
            admin,
        } => {
            let password = match std::env::var("CENECA_NEW_USER_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                Ok(_) => bail!("CENECA_NEW_USER_PASSWORD is empty"),
                Err(_) => super::read_password_line("password")?,
            };
            let name = display_name
                .unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_owned());
            let user = services
                .create_user(&email, &name, &password, admin)
                .await
                .map_err(|e| match e {
                    ceneca_service::ServiceError::Validation(v) => {
                        anyhow::anyhow!("{}", v.summary())
                    }
                    other => anyhow::anyhow!("{other}"),
                })?;
            println!("{}", serde_json::to_string_pretty(&user)?);
        }
        Action::Erase { email, yes } => {
            if email.trim().is_empty() {
                bail!("give the e-mail of the account to erase");
            }
            if !yes {
                use std::io::IsTerminal;
                if !std::io::stdin().is_terminal() {
                    bail!("erasing an account cannot be undone: pass --yes to confirm");
                }
                eprint!(
                    "Erase {email} for good? This cannot be undone. Type the e-mail to confirm: "
                );
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                if line.trim() != email.trim() {
                    bail!("not confirmed: nothing was erased");
                }
            }
            match services.erase_user_by_email(&email).await {
                Ok(Some(report)) => println!("{}", serde_json::to_string_pretty(&report)?),
                Ok(None) => eprintln!("no account has the e-mail {email}: nothing to erase"),
                Err(e) => bail!("{e}"),
            }
        }
    }
    Ok(())
}
