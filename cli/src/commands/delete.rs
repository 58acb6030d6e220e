//! placeholder
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {}
pub async fn run(_ctx: &super::Ctx, _args: DeleteArgs) -> anyhow::Result<()> { Ok(()) }
