//! The error of the runtime's container operations, shared by every layer from the records on
//! tmpfs (`store/`) up to the CRI-like API (`container/`): a failed step says which file or
//! which kernel object it was about. Read next: `state.rs`.

use std::io;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::capabilities;
use super::cgroups::CgroupsError;
use super::image::ImageError;
use super::namespaces::NamespacesError;
use super::pause;
use super::rootfs::RootfsError;
use super::seccomp::SeccompError;
use super::state::Status;

/// Why a container operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Cgroups(#[from] CgroupsError),
    #[error(transparent)]
    Namespaces(#[from] NamespacesError),
    #[error(transparent)]
    Capabilities(#[from] capabilities::CapabilitiesError),
    #[error(transparent)]
    Pause(#[from] pause::PauseError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// No container matches the id or name.
    #[error("no such container: {id}")]
    NotFound { id: String },
    /// No sandbox of that id.
    #[error("no such sandbox: {id}")]
    SandboxNotFound { id: String },
    /// A prefix matches several containers.
    #[error("container id {id:?} is ambiguous")]
    Ambiguous { id: String },
    /// The name is taken.
    #[error("container name {name:?} is already in use")]
    NameInUse { name: String },
    /// A flag has a value we cannot use.
    #[error("invalid {flag}: {value:?} ({reason})")]
    InvalidOption {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The command is not in the image.
    #[error("executable file not found in $PATH: {command:?}")]
    CommandNotFound { command: String },
    /// The container is not in the state the operation needs.
    #[error("container {id} is {status:?}")]
    WrongState { id: String, status: Status },
    /// The shim reported that the container failed to start.
    #[error("{message}")]
    StartFailed { code: i32, message: String },
    /// Reading or writing the container's files failed.
    #[error("{step} {path:?}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Signalling the container failed.
    #[error("signal {signal} to pid {pid}: {errno}")]
    Signal {
        signal: Signal,
        pid: i32,
        errno: nix::Error,
    },
}

/// Wraps an I/O error as [`ContainerError::Io`] of `step` on `path`.
pub(crate) fn io_err<'a>(
    step: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ContainerError + 'a {
    move |source| ContainerError::Io {
        step,
        path: path.to_owned(),
        source,
    }
}
