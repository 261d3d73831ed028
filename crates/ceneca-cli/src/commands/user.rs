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
    }
    Ok(())
}
