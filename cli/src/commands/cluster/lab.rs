//! `minikctl cluster up|down|status`: the command-line face of [`crate::lab`].
//! (Being written: see issue 13.)

/// The arguments of `minikctl cluster up`.
#[derive(clap::Args, Debug)]
pub struct UpArgs {}
/// The arguments of `minikctl cluster down`.
#[derive(clap::Args, Debug)]
pub struct DownArgs {}
/// The arguments of `minikctl cluster status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {}
/// The arguments of `minikctl cluster forward`.
#[derive(clap::Args, Debug)]
pub struct ForwardArgs {}

pub async fn up(_args: UpArgs) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
pub async fn down(_args: DownArgs) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
pub async fn status(_args: StatusArgs) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
pub async fn forward(_args: ForwardArgs) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
