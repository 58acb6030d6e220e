//! placeholder
#[derive(clap::Args, Debug)]
pub struct CreateArgs {}
pub async fn run(_ctx: &super::Ctx, _args: CreateArgs) -> anyhow::Result<()> { Ok(()) }
