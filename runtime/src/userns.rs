//! User namespaces: the container's user and group IDs are its own, each range mapped onto a
//! range of the host's (`linux.uidMappings`/`gidMappings` of an OCI bundle), so that its root
//! is an unprivileged user outside. Whoever writes a process's `uid_map` needs privileges over
//! the *parent* namespace, which the process inside no longer has: as runc does, the init
//! enters the new namespace and says so, its parent (the shim, still the host's root) writes
//! the maps, then the init goes on ([`enter`] on the init's side, [`write_maps`] on the shim's).
//!
//! The init enters it last, once its rootfs, cgroups and other namespaces are made: those
//! then belong to the host's user namespace, so the host's root builds them with no limit that
//! a user namespace puts on mounts, and the container's root gets no power over them (it
//! cannot remount its root read-write, say). Read next: `process.rs`, stage 5.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::namespaces::{self, IdMapping, Kind, NamespacesError};

/// Why the user namespace could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error(transparent)]
    Namespace(#[from] NamespacesError),
    /// Writing `uid_map`, `gid_map` (or `setgroups`) of the init failed.
    #[error("write {path:?} ({content:?}): {source}")]
    WriteMap {
        path: PathBuf,
        content: String,
        #[source]
        source: std::io::Error,
    },
    /// Reading a process's `uid_map` failed.
    #[error("read {path:?}: {source}")]
    ReadMap {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The other side of the handshake went away (it failed, and says why elsewhere).
    #[error("user namespace handshake: {step}: {errno:?}")]
    Handshake {
        step: &'static str,
        errno: Option<nix::Error>,
    },
}

/// The text of a `uid_map`/`gid_map`: one `inside outside size` line per mapping.
pub fn map_text(mappings: &[IdMapping]) -> String {
    mappings
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// The host ID that `id` inside maps to, if any.
pub fn host_id(mappings: &[IdMapping], id: u32) -> Option<u32> {
    mappings.iter().find_map(|m| {
        let offset = id.checked_sub(m.container_id)?;
        (offset < m.size).then(|| m.host_id + offset)
    })
}

/// The uid mappings of process `pid`'s user namespace, in our terms (`exec`, which creates
/// files in the container before it joins that namespace, owns them by the host uid a
/// container uid maps to).
pub fn uid_mappings(pid: i32) -> Result<Vec<IdMapping>, UsernsError> {
    let path = PathBuf::from(format!("/proc/{pid}/uid_map"));
    let text = fs::read_to_string(&path).map_err(|source| UsernsError::ReadMap {
        path: path.clone(),
        source,
    })?;
    Ok(parse_map(&text))
}

/// The mappings of a `uid_map`/`gid_map` text; a line that is not three numbers is skipped.
fn parse_map(text: &str) -> Vec<IdMapping> {
    text.lines()
        .filter_map(|l| {
            let mut n = l.split_whitespace().map(|f| f.parse::<u32>().ok());
            Some(IdMapping {
                container_id: n.next()??,
                host_id: n.next()??,
                size: n.next()??,
            })
        })
        .collect()
}

/// The shim's side: wait until the init `pid` has entered its new user namespace (a byte on
/// `entered`), write its maps, then let it go on (a byte on `written`). EOF on `entered`: the
/// init failed before, and reports why on its error pipe; nothing to do.
pub fn write_maps(
    pid: i32,
    uid: &[IdMapping],
    gid: &[IdMapping],
    entered: &OwnedFd,
    written: &OwnedFd,
) -> Result<(), UsernsError> {
    let mut byte = [0u8; 1];
    match nix::unistd::read(entered, &mut byte) {
        Ok(1) => {}
        Ok(_) => return Ok(()),
        Err(errno) => {
            return Err(UsernsError::Handshake {
                step: "wait for the init",
                errno: Some(errno),
            })
        }
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    for (file, mappings) in [("uid_map", uid), ("gid_map", gid)] {
        let path = proc.join(file);
        let content = map_text(mappings);
        fs::write(&path, &content).map_err(|source| UsernsError::WriteMap {
            path,
            content,
            source,
        })?;
    }
    nix::unistd::write(written, b"m").map_err(|errno| UsernsError::Handshake {
        step: "release the init",
        errno: Some(errno),
    })?;
    Ok(())
}

/// The init's side: unshare a new user namespace (whose creator holds every capability in
/// it) and wait until the shim has written its maps; later stages switch to the container's
/// user as usual, which the maps must cover.
pub fn enter(entered: OwnedFd, written: OwnedFd) -> Result<(), UsernsError> {
    namespaces::create(&[Kind::User])?;
    nix::unistd::write(&entered, b"u").map_err(|errno| UsernsError::Handshake {
        step: "tell the shim",
        errno: Some(errno),
    })?;
    drop(entered);
    let mut byte = [0u8; 1];
    match nix::unistd::read(&written, &mut byte) {
        Ok(1) => Ok(()),
        Ok(_) => Err(UsernsError::Handshake {
            step: "wait for the maps",
            errno: None,
        }),
        Err(errno) => Err(UsernsError::Handshake {
            step: "wait for the maps",
            errno: Some(errno),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_one_line_per_range_and_ids_map_within_them() {
        let m = [
            IdMapping {
                container_id: 0,
                host_id: 1000,
                size: 10,
            },
            IdMapping {
                container_id: 100,
                host_id: 5000,
                size: 1,
            },
        ];
        assert_eq!(map_text(&m), "0 1000 10\n100 5000 1\n");
        assert_eq!(host_id(&m, 0), Some(1000));
        assert_eq!(host_id(&m, 9), Some(1009));
        assert_eq!(host_id(&m, 10), None);
        assert_eq!(host_id(&m, 100), Some(5000));
        assert_eq!(parse_map(&map_text(&m)), m);
        let padded = parse_map("         0       1000       2000\n");
        assert_eq!(padded, [IdMapping { size: 2000, ..m[0] }]);
    }
}
