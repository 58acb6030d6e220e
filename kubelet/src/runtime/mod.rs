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

/// Default root directory: images, layers, and each container's writable layer and log.
pub const DEFAULT_ROOT: &str = "/var/lib/minik8s/runtime";

/// The runtime: a root directory on disk, a state directory on tmpfs, an image store and the
/// host's cgroup hierarchy.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// On disk: images, layers, `containers/<id>/{upper,work,container.log}`.
    pub root: PathBuf,
    /// On tmpfs: `containers/<id>/` (config.json, state.json, generated /etc and /proc files,
    /// the rootfs mount point) and `sandboxes/<id>/` (pinned namespaces, pod /etc files).
    pub state: PathBuf,
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
        let state = state_dir_for(root);
        for p in [
            root.join("containers"),
            state.join("containers"),
            state.join("sandboxes"),
        ] {
            std::fs::create_dir_all(&p).map_err(|source| ImageError::Io {
                step: "create state dir",
                path: p,
                source,
            })?;
        }
        Ok(Self {
            root: root.to_owned(),
            state,
            images,
            cgroups: cgroups::Hierarchy::host(),
            cgroup_parent: PathBuf::from("minik8s"),
            shim_exe: PathBuf::from("/proc/self/exe"),
        })
    }
}

/// The state directory of the runtime rooted at `root`: on tmpfs, like runc's `/run/runc` and
/// containerd's `/run/containerd`. A container's start then writes nothing to the node's disk
/// but its writable layer and log (on ext4, allocating and freeing a dozen inodes per container
/// cost more than the rest of a start), and a reboot, which ends every container, also forgets
/// them. The base is `/run/minik8s` where `/run` is a tmpfs (most distributions), else
/// `/dev/shm/minik8s` (VMs and containers whose `/run` is on disk), else `ROOT/state`; in it
/// `runtime` for `DEFAULT_ROOT` and `runtime-<hash of the root's path>` for any other root (a
/// test's, a lab's second node).
pub fn state_dir_for(root: &Path) -> PathBuf {
    let Some(base) = ["/run", "/dev/shm"]
        .into_iter()
        .find(|d| on_tmpfs(Path::new(d)))
        .map(|d| Path::new(d).join("minik8s"))
        .filter(|b| private_dir(b))
    else {
        return root.join("state");
    };
    if root == Path::new(DEFAULT_ROOT) {
        return base.join("runtime");
    }
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let digest = <sha2::Sha256 as sha2::Digest>::digest(canonical.as_os_str().as_encoded_bytes());
    base.join(format!("runtime-{}", layer::hex(&digest[..8])))
}

fn on_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false)
}

/// Create `dir` (mode 0700) or accept it if it already is a directory of ours that nobody else
/// may enter: `/dev/shm` is writable by every user, who must not be able to plant it for us.
fn private_dir(dir: &Path) -> bool {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    std::fs::symlink_metadata(dir).is_ok_and(|m| {
        m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o077 == 0
    })
}

/// `n` random bytes as hex (from /dev/urandom).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    layer::hex(&b)
}
