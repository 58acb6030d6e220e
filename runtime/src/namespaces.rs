//! Namespaces give a process its own view of one kernel resource: `pid` (its own process
//! numbers, the command is PID 1), `mnt` (its own mount table), `uts` (hostname), `ipc`,
//! `net` (its own interfaces, ports, routes), `cgroup` (its cgroup appears as the root) and
//! `user` (its own user and group IDs, mapped onto the host's: `userns.rs`).
//! A pod (*sandbox*) owns net/ipc/uts namespaces that outlive any one container: we *pin* them
//! by bind-mounting `/proc/<tid>/ns/<kind>` onto files, as `ip netns add` does, and containers
//! join them with setns(2). Read next: `process.rs`, which creates or joins them for a container.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NamespacesError {
    /// unshare(2) failed.
    #[error("unshare {kinds}: {errno}")]
    Unshare { kinds: String, errno: nix::Error },
    /// Opening a namespace file failed.
    #[error("open namespace {path:?}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// setns(2) failed.
    #[error("join namespace {path:?}: {errno}")]
    Setns { path: PathBuf, errno: nix::Error },
    /// Bind-mounting a namespace file to pin it failed.
    #[error("pin namespace {path:?}: {errno}")]
    Pin { path: PathBuf, errno: nix::Error },
    /// Creating the pin file failed.
    #[error("create pin file {path:?}: {source}")]
    PinFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// sethostname(2) failed.
    #[error("set hostname {hostname:?}: {errno}")]
    Hostname { hostname: String, errno: nix::Error },
    /// Bringing loopback up failed.
    #[error(transparent)]
    Network(#[from] super::network::NetworkError),
    /// The helper thread panicked.
    #[error("namespace helper thread died")]
    Thread,
    /// A namespace path names a namespace of another kind (or none).
    #[error("namespace path {path:?} is {actual}, not a {expected} namespace")]
    WrongType {
        path: PathBuf,
        expected: &'static str,
        actual: String,
    },
}

/// A kind of namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Pid,
    Mnt,
    Uts,
    Ipc,
    Net,
    Cgroup,
    User,
}

impl Kind {
    /// The kinds every container has (a user namespace only when an OCI bundle asks for one).
    pub const ALL: [Kind; 6] = [
        Kind::Pid,
        Kind::Mnt,
        Kind::Uts,
        Kind::Ipc,
        Kind::Net,
        Kind::Cgroup,
    ];

    /// Name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::Pid => "pid",
            Kind::Mnt => "mnt",
            Kind::Uts => "uts",
            Kind::Ipc => "ipc",
            Kind::Net => "net",
            Kind::Cgroup => "cgroup",
            Kind::User => "user",
        }
    }

    pub fn flag(self) -> CloneFlags {
        match self {
            Kind::Pid => CloneFlags::CLONE_NEWPID,
            Kind::Mnt => CloneFlags::CLONE_NEWNS,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            Kind::User => CloneFlags::CLONE_NEWUSER,
        }
    }

    fn from_flag(flag: i32) -> Option<Kind> {
        [Kind::User]
            .into_iter()
            .chain(Kind::ALL)
            .find(|k| k.flag().bits() == flag)
    }
}

/// An OCI bundle's namespaces (`linux.namespaces`): the kinds created new; those joined by
/// path are in `ContainerSpec::join_namespaces`; every other kind stays the runtime's own. With
/// a new user namespace, its ID mappings (written by the shim, `userns.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamespacePlan {
    pub new: Vec<Kind>,
    #[serde(default)]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default)]
    pub gid_mappings: Vec<IdMapping>,
    /// Set the container's hostname in the uts namespace it joins by path (the bundle has one,
    /// as runc does); a new one always gets it.
    #[serde(default)]
    pub hostname_in_joined_uts: bool,
}

/// One line of `/proc/<pid>/uid_map` or `gid_map`: the `size` IDs from `container_id` on in
/// the namespace are those from `host_id` on outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// Check that `path` is a namespace of `kind` (ioctl `NS_GET_NSTYPE`): setns(2) would refuse
/// another kind only once the container is half made, and not at all for a pid namespace the
/// shim joins on behalf of its children.
pub fn check_type(path: &Path, kind: Kind) -> Result<(), NamespacesError> {
    /// `NS_GET_NSTYPE` of `linux/nsfs.h`: `_IO(0xb7, 0x3)`.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let file = fs::File::open(path).map_err(|source| NamespacesError::Open {
        path: path.to_owned(),
        source,
    })?;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns an int; the fd is open for the call.
    let typ = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), NS_GET_NSTYPE) };
    let actual = match Kind::from_flag(typ) {
        Some(k) if k == kind => return Ok(()),
        Some(k) => format!("a {} namespace", k.proc_name()),
        None => "no namespace file".to_string(),
    };
    Err(NamespacesError::WrongType {
        path: path.to_owned(),
        expected: kind.proc_name(),
        actual,
    })
}

/// The inode number identifying the namespace of `kind` that `pid` is in.
pub fn inode(pid: i32, kind: Kind) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/{}", kind.proc_name()))
        .ok()
        .map(|m| m.ino())
}

/// Join the namespace pinned or exposed at `path` (setns(2)).
pub fn join(path: &Path, kind: Kind) -> Result<(), NamespacesError> {
    let file = fs::File::open(path).map_err(|source| NamespacesError::Open {
        path: path.to_owned(),
        source,
    })?;
    setns(&file, kind.flag()).map_err(|errno| {
        tracing::debug!(?path, ?errno, "setns failed");
        NamespacesError::Setns {
            path: path.to_owned(),
            errno,
        }
    })
}

/// unshare(2) the given kinds for the calling thread/process.
pub fn create(kinds: &[Kind]) -> Result<(), NamespacesError> {
    let flags = kinds.iter().fold(CloneFlags::empty(), |f, k| f | k.flag());
    unshare(flags).map_err(|errno| NamespacesError::Unshare {
        kinds: kinds
            .iter()
            .map(|k| k.proc_name())
            .collect::<Vec<_>>()
            .join(","),
        errno,
    })
}

/// Keep the namespace behind `source` (a `/proc/.../ns/<kind>` file) alive without a process:
/// bind-mount it onto a new empty file `target`. setns(2) on `target` later joins it; unmounting
/// `target` lets it go.
pub fn pin_file(source: &str, target: &Path) -> Result<(), NamespacesError> {
    fs::File::create(target).map_err(|source| NamespacesError::PinFile {
        path: target.to_path_buf(),
        source,
    })?;
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|errno| NamespacesError::Pin {
        path: target.to_path_buf(),
        errno,
    })
}

/// Create new net, ipc and uts namespaces and pin them as files `dir/{net,ipc,uts}`.
/// Runs on a short-lived thread: unshare of these kinds affects only the calling thread, so the
/// caller's own namespaces never change (safe even in a multi-threaded program).
pub fn create_pinned(dir: &Path, hostname: &str) -> Result<(), NamespacesError> {
    let dir = dir.to_owned();
    let hostname = hostname.to_string();
    std::thread::spawn(move || -> Result<(), NamespacesError> {
        let kinds = [Kind::Net, Kind::Ipc, Kind::Uts];
        create(&kinds)?;
        nix::unistd::sethostname(&hostname).map_err(|errno| NamespacesError::Hostname {
            hostname: hostname.clone(),
            errno,
        })?;
        super::network::loopback_up()?;
        let tid = nix::unistd::gettid();
        for kind in kinds {
            let source = format!("/proc/self/task/{tid}/ns/{}", kind.proc_name());
            pin_file(&source, &dir.join(kind.proc_name()))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| NamespacesError::Thread)?
}

/// Unpin namespaces pinned in `dir`; the kernel frees each once nothing else uses it.
pub fn remove_pinned(dir: &Path) {
    for kind in [Kind::Net, Kind::Ipc, Kind::Uts] {
        let target = dir.join(kind.proc_name());
        if target.exists() {
            if let Err(errno) = umount2(&target, MntFlags::MNT_DETACH) {
                tracing::debug!(path = ?target, ?errno, "unpin namespace");
            }
            let _ = fs::remove_file(&target);
        }
    }
}
