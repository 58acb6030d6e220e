//! Named network namespaces, as `ip netns add NAME` makes them: a namespace lives as long as
//! a process is in it *or* a file refers to it, so a new one is bind-mounted on
//! `/run/netns/NAME` (the nsfs file of the thread that made it). `ip netns exec NAME ...`,
//! `ip -n NAME ...` and `nsenter --net=/run/netns/NAME` all find it there, which is what
//! makes the lab explorable by hand.
//!
//! Everything here runs on short-lived OS threads: unshare(2) and setns(2) of a network
//! namespace change only the calling thread, and a child forked from that thread starts in
//! the thread's namespace. No tokio worker ever changes namespace.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::{io_err, LabError};

/// Where named namespaces are pinned.
pub const NETNS_DIR: &str = "/run/netns";

/// The pin of namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether namespace `name` exists (its pin is a mount point).
pub fn exists(name: &str) -> bool {
    let p = path(name);
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy();
    mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mount_point| mount_point == want)
}

/// Make `/run/netns` a mount point of its own with shared propagation, as `ip netns add`
/// does before its first pin: a pin made on the plain directory would be hidden the moment
/// another tool mounts the directory over itself, and could then be neither seen nor removed.
fn shared_dir() -> Result<(), LabError> {
    std::fs::create_dir_all(NETNS_DIR).map_err(io_err("create", NETNS_DIR))?;
    let fail = |step| {
        move |errno| LabError::Netns {
            name: NETNS_DIR.into(),
            step,
            errno,
        }
    };
    let share = || {
        mount(
            None::<&str>,
            NETNS_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match share() {
        Ok(()) => Ok(()),
        // not a mount point yet: bind it onto itself, then share it
        Err(nix::Error::EINVAL) => {
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(fail("bind onto itself"))?;
            share().map_err(fail("make shared"))
        }
        Err(errno) => Err(fail("make shared")(errno)),
    }
}

/// Create namespace `name` (`ip netns add`); its loopback stays down, as in a new one.
pub fn create(name: &str) -> Result<PathBuf, LabError> {
    shared_dir()?;
    let pin = path(name);
    if exists(name) {
        return Err(LabError::Other(format!(
            "network namespace {name} already exists (a lab of that name is up, or was not taken down: minikctl cluster down)"
        )));
    }
    File::create(&pin).map_err(io_err("create", &pin))?;
    let target = pin.clone();
    let fail = |step| {
        let name = name.to_string();
        move |errno| LabError::Netns { name, step, errno }
    };
    let made = std::thread::spawn(move || -> Result<(), nix::Error> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join()
    .unwrap_or(Err(nix::Error::EINTR));
    if let Err(errno) = made {
        let _ = std::fs::remove_file(&pin);
        return Err(fail("create")(errno));
    }
    Ok(pin)
}

/// Remove namespace `name` (`ip netns del`): unpin it; it goes away with its interfaces once
/// no process is left in it. Nothing to do when it does not exist.
pub fn delete(name: &str) -> Result<(), LabError> {
    let pin = path(name);
    if exists(name) {
        umount2(&pin, MntFlags::MNT_DETACH).map_err(|errno| LabError::Netns {
            name: name.to_string(),
            step: "unmount",
            errno,
        })?;
    }
    match std::fs::remove_file(&pin) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", &pin)(e)),
        _ => Ok(()),
    }
}

/// Start `cmd` inside the namespace pinned at `netns` (`ip netns exec`, without its private
/// /sys): the fork happens on a thread that joined the namespace first.
pub fn spawn_in(netns: &Path, mut cmd: Command) -> Result<Child, LabError> {
    let ns = File::open(netns).map_err(io_err("open", netns))?;
    let what = format!("{:?}", cmd.get_program());
    std::thread::spawn(move || -> std::io::Result<Child> {
        setns(&ns, CloneFlags::CLONE_NEWNET)?;
        cmd.spawn()
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("spawning thread panicked")))
    .map_err(|source| LabError::Spawn { what, source })
}

/// Whether a TCP connection to `addr` succeeds from inside the namespace pinned at `netns`
/// (a readiness probe of a lab process; a thread of its own joins the namespace).
pub fn can_connect(netns: &Path, addr: std::net::SocketAddr) -> bool {
    let Ok(ns) = File::open(netns) else {
        return false;
    };
    std::thread::spawn(move || {
        setns(&ns, CloneFlags::CLONE_NEWNET).is_ok()
            && std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
                .is_ok()
    })
    .join()
    .unwrap_or(false)
}
