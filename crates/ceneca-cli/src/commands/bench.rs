use crate::config::Config;
#[derive(clap::Args)]
pub struct Args {}
pub async fn run(_c: Config, _a: Args) -> anyhow::Result<()> {
    Ok(())
}
