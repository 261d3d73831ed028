use anyhow::Context;
use ceneca_node::{EnrollRequest, NodeFiles};
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum Action {
    /// Make this data folder a local node of an upstream Ceneca: log in there once,
    /// register this device, and keep its token (sealed) and the account (for offline
    /// log-in) here. Then run `ceneca serve` with `sync.upstream_url` set to the same URL.
    /// The password is read from the first line of standard input, or from the variable
    /// named by --password-env (never from a flag: flags show in process lists).
    Enroll {
        /// The upstream's address: https://host[:port] (http only on loopback).
        #[arg(long, value_name = "URL")]
        upstream: String,
        #[arg(long)]
        email: String,
        /// The device's name, as its user sees it upstream (default: this host's name).
        #[arg(long)]
        name: Option<String>,
        /// The name of an environment variable holding the password.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// The account's current one-time code, when it uses MFA.
        #[arg(long, value_name = "CODE")]
        mfa_code: Option<String>,
        /// PEM file of the private CA that signed the upstream's certificate.
        #[arg(long, value_name = "FILE")]
        ca: Option<std::path::PathBuf>,
        /// PEM files of this device's client certificate and key (mutual TLS).
        #[arg(long, value_name = "FILE", requires = "client_key")]
        client_cert: Option<std::path::PathBuf>,
        #[arg(long, value_name = "FILE", requires = "client_cert")]
        client_key: Option<std::path::PathBuf>,
        /// Also sync once and print a local API token with this name, for scripts on
        /// this device, limited to the content of --workspace (on this node only).
        #[arg(long, value_name = "NAME", requires = "workspace")]
        api_token: Option<String>,
        /// The workspace the --api-token reaches.
        #[arg(long, value_name = "ID", requires = "api_token")]
        workspace: Option<uuid::Uuid>,
    },
}

pub async fn run(config: Config, action: Action) -> anyhow::Result<()> {
    let Action::Enroll {
        upstream,
        email,
        name,
        password_env,
        mfa_code,
        ca,
        client_cert,
        client_key,
        api_token,
        workspace,
    } = action;
    let checked = super::check_upstream(&config, &upstream).await?;
    let password = match password_env {
        Some(var) => {
            let password = std::env::var(&var).with_context(|| format!("{var} is not set"))?;
            anyhow::ensure!(!password.is_empty(), "{var} is empty");
            password
        }
        None => super::read_password_line(&format!("password of {email} on {upstream}"))?,
    };
    let read = |path: Option<std::path::PathBuf>| -> anyhow::Result<Option<String>> {
        path.map(|p| {
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
        })
        .transpose()
    };
    let (services, _) = super::open_services(&config).await?;
    let (keys, _) = crate::keys::load(&config)?;
    let files = NodeFiles::in_data_dir(&config.data_dir);
    let device_name = name.unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "local node".to_owned())
    });
    let enrolled = ceneca_node::enroll(
        &services,
        &keys,
        &files,
        EnrollRequest {
            upstream: checked,
            email: email.clone(),
            password: password.clone(),
            mfa_code,
            device_name,
            ca_pem: read(ca)?,
            client_cert_pem: read(client_cert)?,
            client_key_pem: read(client_key)?,
        },
    )
    .await?;
    println!("enrolled with {upstream}");
    println!("device_id: {}", enrolled.device_id);
    println!("user_id: {}", enrolled.user_id);
    drop(services);
    if let (Some(name), Some(workspace)) = (api_token, workspace) {
        let token = local_api_token(&config, &email, &password, name, workspace).await?;
        println!("api_token: {token}");
    }
    println!(
        "next: ceneca serve with sync.upstream_url (CENECA_UPSTREAM_URL) = {upstream}; log in \
         to it with the same e-mail and password"
    );
    Ok(())
}

/// Syncs the new node once (so the workspace is here), then issues a local API token for
/// it as the enrolled user, through a log-in session on this node that ends at once.
async fn local_api_token(
    config: &Config,
    email: &str,
    password: &str,
    name: String,
    workspace: uuid::Uuid,
) -> anyhow::Result<String> {
    use ceneca_service::audit::RequestMeta;
    let files = NodeFiles::in_data_dir(&config.data_dir);
    let (keys, _) = crate::keys::load(config)?;
    let credentials = files.load_credentials(&keys)?;
    let checked = super::check_upstream(config, &credentials.upstream).await?;
    let (services, _) = super::open_node_services(
        config,
        Some(ceneca_service::sync::LocalNode {
            upstream: credentials.upstream.clone(),
            device_id: credentials.device_id,
            user_id: credentials.user_id,
        }),
    )
    .await?;
    let upstream = ceneca_node::Upstream::new(&checked, &credentials)?;
    ceneca_node::Replicator::new(
        services.clone(),
        upstream,
        credentials,
        files,
        config.sync.interval(),
    )
    .sync_once()
    .await
    .context("the first sync with the upstream failed: the device is enrolled; run `ceneca serve` and create the token through its API")?;
    let meta = RequestMeta::default();
    let login = services
        .login(
            &ceneca_wire::auth::LoginRequest {
                email: email.to_owned(),
                password: password.to_owned(),
                mfa_code: None,
                recovery_code: None,
            },
            &meta,
        )
        .await
        .map_err(|e| anyhow::anyhow!("logging in to this node: {e}"))?;
    let caller = services
        .authenticate(&login.token, &meta)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let issued = services
        .create_api_token(
            &caller,
            &ceneca_wire::auth::ApiTokenRequest {
                name,
                workspace_id: workspace,
                expires_in_days: None,
            },
        )
        .await;
    services
        .logout(&caller)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let issued = issued.map_err(|e| anyhow::anyhow!("the API token was refused: {e}"))?;
    issued["token"]
        .as_str()
        .map(str::to_owned)
        .context("the API token was issued without its token")
}
