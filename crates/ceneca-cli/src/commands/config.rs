use clap::Subcommand;

use crate::config::{Config, EXAMPLE};

#[derive(Subcommand)]
pub enum Action {
    /// Print a commented ceneca.toml with every setting and its default.
    Example,
    /// Print the configuration in effect (flags, environment, file and defaults merged),
    /// in sections, with secrets masked.
    Show,
}

/// `config example`: needs no configuration, so a broken one can be fixed from it.
pub fn example() {
    print!("{EXAMPLE}");
}

/// `config show`.
pub fn show(config: &Config) -> anyhow::Result<()> {
    print!("{}", toml::to_string(&config.masked())?);
    Ok(())
}
