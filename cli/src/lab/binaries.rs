//! The programs a lab runs: the components from one directory (by default minikctl's own,
//! where `cargo build` puts them side by side: apiserver, controller, scheduler, kubelet,
//! proxy, DNS) and etcd from `PATH`, each checked before anything is started.

use std::path::{Path, PathBuf};

use super::LabError;

/// The programs a lab runs.
pub struct Binaries {
    pub apiserver: PathBuf,
    pub controller: PathBuf,
    pub scheduler: PathBuf,
    pub kubelet: PathBuf,
    /// Each node's Service proxy and cluster DNS.
    pub proxy: PathBuf,
    pub dns: PathBuf,
    /// This program: the relay is `minikctl cluster forward`.
    pub minikctl: PathBuf,
    pub etcd: PathBuf,
}

impl Binaries {
    /// The components in `bin_dir` (default: beside this program), etcd on `PATH`.
    pub fn find(bin_dir: Option<&Path>) -> Result<Binaries, LabError> {
        let minikctl = std::env::current_exe()
            .map_err(|e| LabError::Other(format!("finding minikctl's own path: {e}")))?;
        let dir = match bin_dir {
            Some(d) => d.to_owned(),
            None => minikctl.parent().map(Path::to_owned).unwrap_or_default(),
        };
        let component = |name: &str| -> Result<PathBuf, LabError> {
            let p = dir.join(name);
            if !p.is_file() {
                return Err(LabError::Other(format!(
                    "{} is missing (cargo build -p {name}, or give --bin-dir)",
                    p.display()
                )));
            }
            Ok(p)
        };
        Ok(Binaries {
            apiserver: component("minik8s-apiserver")?,
            controller: component("minik8s-controller")?,
            scheduler: component("minik8s-scheduler")?,
            kubelet: component("minik8s-kubelet")?,
            proxy: component("minik8s-proxy")?,
            dns: component("minik8s-dns")?,
            minikctl,
            etcd: find_on_path("etcd").ok_or_else(|| {
                LabError::Other(
                    "etcd is not installed (Debian: apt-get install etcd-server)".into(),
                )
            })?,
        })
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
