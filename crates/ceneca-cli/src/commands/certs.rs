use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ceneca_crypto::pki::Authority;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum Action {
    /// Create a private CA, a server certificate and client certificates for mutual TLS.
    Init {
        /// Folder for the files (created; existing files are not overwritten).
        #[arg(long, default_value = "./ceneca_certs")]
        dir: PathBuf,
        /// DNS names or IP addresses of the server (repeatable).
        #[arg(long = "server-name", default_values_t = vec!["localhost".to_owned(), "127.0.0.1".to_owned()])]
        server_names: Vec<String>,
        /// A client certificate to issue, by name (repeatable), e.g. web, agent.
        #[arg(long = "client", default_values_t = vec!["web".to_owned(), "agent".to_owned()])]
        clients: Vec<String>,
    },
}

fn write(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {} (it may exist already)", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

pub fn run(action: &Action) -> anyhow::Result<()> {
    match action {
        Action::Init {
            dir,
            server_names,
            clients,
        } => {
            if clients.iter().any(|c| {
                c.is_empty()
                    || !c
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            }) {
                bail!("client names are letters, digits, '-' and '_'");
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let ca = Authority::new("Ceneca private CA")?;
            let ca_pem = ca.pem();
            write(&dir.join("ca.pem"), &ca_pem.cert, false)?;
            write(&dir.join("ca.key"), &ca_pem.key, true)?;
            let server = ca.server(server_names)?;
            write(&dir.join("server.pem"), &server.cert, false)?;
            write(&dir.join("server.key"), &server.key, true)?;
            for name in clients {
                let client = ca.client(name)?;
                write(&dir.join(format!("{name}.pem")), &client.cert, false)?;
                write(&dir.join(format!("{name}.key")), &client.key, true)?;
            }
            println!(
                "wrote a CA, a server certificate ({}) and client certificates ({}) to {}",
                server_names.join(", "),
                clients.join(", "),
                dir.display()
            );
            println!(
                "serve with: tls_cert_file = server.pem, tls_key_file = server.key, tls_client_ca_file = ca.pem"
            );
            println!("keep ca.key offline: it issues certificates the server trusts");
        }
    }
    Ok(())
}
