//! placeholder
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {}
pub async fn run(_ctx: &super::Ctx, _args: ApplyArgs) -> anyhow::Result<()> { Ok(()) }
