use clap::Subcommand;

#[derive(Subcommand)]
pub enum Action {
    /// Print a commented ceneca.toml with every setting and its default.
    Example,
}

pub fn run(action: &Action) -> anyhow::Result<()> {
    match action {
        Action::Example => print!("{}", crate::config::EXAMPLE),
    }
    Ok(())
}
