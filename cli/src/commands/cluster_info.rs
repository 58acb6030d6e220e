//! `minikctl cluster-info`: where the control plane is. kubectl checks that the server answers
//! and prints its URL; so do we (`GET /version` is the cheapest question every apiserver
//! answers). Read next: `get.rs`.

use crate::printer::emit;

use super::Ctx;

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    ctx.client.apiserver_version().await?;
    let url = ctx.server.to_string();
    emit(&format!(
        "Kubernetes control plane is running at {}\n\n\
         To further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n",
        url.trim_end_matches('/')
    ))?;
    Ok(())
}
