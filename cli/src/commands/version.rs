//! `minikctl version`: this client's version and the server's (`GET /version`, the build
//! information every apiserver serves without authentication). Read next: `api_resources.rs`.

use crate::printer::emit;

use super::Ctx;

/// `version [--client]`.
#[derive(clap::Args, Debug)]
pub struct VersionArgs {
    /// Print the client version only; do not contact the server.
    #[arg(long)]
    pub client: bool,
}

pub async fn run(ctx: &Ctx, args: VersionArgs) -> anyhow::Result<()> {
    emit(&format!("Client Version: v{}\n", env!("CARGO_PKG_VERSION")))?;
    if args.client {
        return Ok(());
    }
    let info = ctx.client.apiserver_version().await?;
    emit(&format!("Server Version: {}\n", info.git_version))?;
    Ok(())
}
