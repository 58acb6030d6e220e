//! The node's own container runtime (what containerd + runc are to a real kubelet), knowing
//! nothing of Kubernetes. A container is: an *image* (`image.rs`, layers unpacked by `layer.rs`)
//! stacked by *overlayfs* (`overlay.rs`) into a root filesystem (`rootfs.rs`), a process in
//! fresh *namespaces* (`namespaces.rs`, `network.rs`) limited by *cgroups* (`cgroups.rs`) and
//! *capabilities* (`capabilities.rs`), started by a per-container *shim* (`shim.rs`) that forks
//! the init (`process.rs`) and keeps its logs (`logs.rs`). `container.rs` is the CRI-like API on
//! top; `exec.rs` enters a running container; `registry/` pulls images; `oci.rs` speaks the OCI
//! runtime command line. Start reading at `container.rs`.

pub mod capabilities;
pub mod cgroups;
pub mod container;
pub mod exec;
pub mod image;
pub mod layer;
pub mod logs;
pub mod namespaces;
pub mod network;
pub mod oci;
pub mod overlay;
pub mod pause;
pub mod process;
pub mod procfs;
pub mod registry;
pub mod rootfs;
pub mod shim;
pub mod tty;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use container::{Attach, ContainerError, ContainerSpec, CreateOptions, State, Status};
pub use image::{ImageError, ImageStore};

/// Default state directory.
pub const DEFAULT_ROOT: &str = "/var/lib/minik8s/runtime";

/// The runtime: a state directory, an image store and the host's cgroup hierarchy.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: PathBuf,
    pub images: ImageStore,
    pub cgroups: cgroups::Hierarchy,
    /// Cgroup under which pod cgroups go (relative to the hierarchy root).
    pub cgroup_parent: PathBuf,
    /// The binary started as shim (`<exe> --root R shim ID`).
    pub shim_exe: PathBuf,
}

impl Runtime {
    /// Open (and create) the runtime state under `root`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let images = ImageStore::open(root)?;
        for sub in ["containers", "sandboxes"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|source| ImageError::Io {
                step: "create state dir",
                path: p,
                source,
            })?;
        }
        Ok(Self {
            root: root.to_owned(),
            images,
            cgroups: cgroups::Hierarchy::host(),
            cgroup_parent: PathBuf::from("minik8s"),
            shim_exe: PathBuf::from("/proc/self/exe"),
        })
    }
}

/// `n` random bytes as hex (from /dev/urandom).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    layer::hex(&b)
}
