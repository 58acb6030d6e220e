//! `minikctl cluster pki`: a cluster's PKI and kubeconfigs written to a directory.
//! (Being written: see issue 13, docker-compose.yml.)

/// The arguments of `minikctl cluster pki`.
#[derive(clap::Args, Debug)]
pub struct PkiArgs {
    /// The directory to write to.
    #[arg(long)]
    pub dir: std::path::PathBuf,
}

pub fn run(_args: PkiArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl cluster pki: not written yet")
}
