use clap::Subcommand;

#[derive(Subcommand)]
pub enum Action {
    /// Print a new random 32-byte key, base64-encoded (for CENECA_ENCRYPTION_KEY).
    Generate,
}

pub fn run(action: &Action) -> anyhow::Result<()> {
    match action {
        Action::Generate => println!("{}", ceneca_crypto::keyring::generate_key_base64()),
    }
    Ok(())
}
