//! `exec`: run another process inside a running container. We open the container init's
//! namespace files (`/proc/<pid>/ns/*`) and its cgroup, setns(2) into each, then fork: a
//! process never changes its own pid namespace, only its children are born into the joined
//! one. The child takes the container's user, capabilities, seccomp filter and environment
//! and execs the command. We mark ourselves non-dumpable first, so nothing inside the
//! container can open our memory or `/proc/self/exe` while we are in its namespaces
//! (CVE-2019-5736). A container with a user namespace of its own has it joined last, after
//! the others, which belong to the host's (see `own_user_namespace`).
//!
//! Entering the mount namespace puts us at *its* root, which is the container's only when the
//! init used pivot_root(2). A container entered with chroot(2) (`run --chroot`, an OCI bundle
//! without a mount namespace) keeps the host's root as its namespace's, so we take the root
//! as the init sees it: `/proc/<pid>/root`, opened before setns(2), then fchdir(2) and
//! chroot("."), which is a no-op after pivot_root. (runc's `--no-pivot` moves the rootfs onto
//! `/` with `MS_MOVE` before its chroot, so setns lands in it there; ours leaves the host's
//! root in place on purpose, for the labs' escape.)

use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;

use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use super::error::ContainerError;
use super::namespaces::{Kind, NamespacesError};
use super::process::{find_executable, load_seccomp, ProcessError};
use super::state::Status;
use super::wait::alive;
use super::{capabilities, tty, userns, Runtime};

/// Why an exec failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Namespaces(#[from] NamespacesError),
    /// The container does not run.
    #[error("container {id} is not running")]
    NotRunning { id: String },
    /// Opening the container's cgroup for joining failed.
    #[error("open cgroup {path:?}: {source}")]
    OpenCgroup {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tty(#[from] tty::TtyError),
    #[error(transparent)]
    Userns(#[from] userns::UsernsError),
    /// fork(2) failed.
    #[error("fork: {errno}")]
    Fork { errno: nix::Error },
    /// Opening or entering the root the container's init sees failed.
    #[error("enter the container's root {path:?}: {errno}")]
    Root {
        path: std::path::PathBuf,
        errno: nix::Error,
    },
}

/// Run `args` in container `id` with our stdio; returns its exit code.
pub fn exec(rt: &Runtime, id: &str, args: &[String]) -> Result<i32, ExecError> {
    exec_with(rt, id, args, None)
}

/// How `exec -t` connects our terminal to the command's.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    /// Forward our stdin (`-i`); our terminal goes into raw mode while the command runs.
    pub stdin: bool,
}

/// Run `args` in container `id`; with `terminal`, on a pty of the container's own devpts that
/// becomes the command's controlling terminal, relayed to our stdio.
pub fn exec_with(
    rt: &Runtime,
    id: &str,
    args: &[String],
    terminal: Option<Terminal>,
) -> Result<i32, ExecError> {
    let spec = rt.spec(id)?;
    let st = rt.state(id)?;
    let pid = match (st.status, st.pid) {
        (Status::Running, Some(pid)) if alive(pid) => pid,
        _ => return Err(ExecError::NotRunning { id: id.to_string() }),
    };
    // open everything we need from the host before entering any namespace
    let mut procs = Vec::new();
    // (the forked child is single-threaded: it moves itself, without a grace period on v1)
    for p in spec.cgroup_hierarchy.self_join_files(&spec.cgroup) {
        procs.push(
            fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(|source| ExecError::OpenCgroup { path: p, source })?,
        );
    }
    let order = [
        Kind::Cgroup,
        Kind::Ipc,
        Kind::Uts,
        Kind::Net,
        Kind::Pid,
        Kind::Mnt,
    ];
    let mut ns: Vec<NsFile> = Vec::new();
    for kind in order {
        let path = std::path::PathBuf::from(format!("/proc/{pid}/ns/{}", kind.proc_name()));
        let file = fs::File::open(&path).map_err(|source| NamespacesError::Open {
            path: path.clone(),
            source,
        })?;
        ns.push((kind, path, file));
    }
    let user = own_user_namespace(pid)?;
    // a pty we make is created as the host's root: owned by the host uid the user maps to
    let pty_owner = match user {
        Some(_) => userns::host_id(&userns::uid_mappings(pid)?, spec.uid).unwrap_or(spec.uid),
        None => spec.uid,
    };
    let root_path = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let root_err = |errno| ExecError::Root {
        path: root_path.clone(),
        errno,
    };
    let root = nix::fcntl::open(
        &root_path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(root_err)?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    for (kind, path, file) in &ns {
        nix::sched::setns(file, kind.flag()).map_err(|errno| NamespacesError::Setns {
            path: path.clone(),
            errno,
        })?;
    }
    // setns(CLONE_NEWNS) put us at the namespace's root: now the init's own
    nix::unistd::fchdir(&root).map_err(root_err)?;
    nix::unistd::chroot(".").map_err(root_err)?;
    drop(root);
    // this is the container's /dev/ptmx
    let pty = match terminal {
        Some(_) => {
            // SAFETY: fd 0 stays open for the life of the process.
            let size = tty::winsize(unsafe { BorrowedFd::borrow_raw(0) });
            Some(tty::open_in_root(pty_owner, size)?)
        }
        None => None,
    };
    if let Some((kind, path, file)) = &user {
        nix::sched::setns(file, kind.flag()).map_err(|errno| NamespacesError::Setns {
            path: path.clone(),
            errno,
        })?;
    }
    // SAFETY: the CLI is single-threaded when it execs, so the child may run arbitrary code.
    match unsafe { fork() }.map_err(|errno| ExecError::Fork { errno })? {
        ForkResult::Child => {
            let err = match &pty {
                Some(p) => match tty::make_controlling(p.slave.as_raw_fd()) {
                    Ok(()) => child(&spec, &procs, args),
                    Err(e) => e.into(),
                },
                None => child(&spec, &procs, args),
            };
            eprintln!("minik8s-runtime: exec: {err}");
            // SAFETY: _exit(2) ends the child immediately.
            unsafe { libc::_exit(err.exit_code()) }
        }
        ForkResult::Parent { child } if pty.is_some() => {
            let pty = pty.expect("checked");
            drop(pty.slave);
            let stdin = terminal.is_some_and(|t| t.stdin);
            let _raw = stdin.then(tty::RawMode::enable).flatten();
            Ok(tty::relay_until_exit(&pty.master, child, stdin))
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, c)) => return Ok(c),
                Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(errno) => return Err(ExecError::Fork { errno }),
            }
        },
    }
}

/// The init's user namespace when it is not ours (an OCI bundle's `user`), to join last: the
/// init made its other namespaces as the host's root and entered its user namespace after them
/// (`userns.rs`), so they belong to the host's; joining them needs the host's root, which we
/// no longer are once inside. (runc joins it first, as its other namespaces belong to it.)
/// We make the pty of `exec -t` before, still the host's root. Once in, we hold every
/// capability there and switch to the container's user just as the
/// init did, so `uid_map`, `id` and `CapEff` read the same as the init's.
fn own_user_namespace(pid: i32) -> Result<Option<NsFile>, NamespacesError> {
    let path = std::path::PathBuf::from(format!("/proc/{pid}/ns/user"));
    let open_err = |source| NamespacesError::Open {
        path: path.clone(),
        source,
    };
    let ours = fs::metadata("/proc/self/ns/user").map_err(open_err)?;
    let file = fs::File::open(&path).map_err(open_err)?;
    let theirs = file.metadata().map_err(open_err)?;
    if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
        return Ok(None);
    }
    Ok(Some((Kind::User, path, file)))
}

/// A namespace to join: its kind, its `/proc/<pid>/ns/*` path and the file opened on it.
type NsFile = (Kind, std::path::PathBuf, fs::File);

fn child(spec: &super::ContainerSpec, procs: &[fs::File], args: &[String]) -> ProcessError {
    use std::io::Write;
    for mut f in procs {
        if let Err(e) = f.write_all(b"0") {
            return ProcessError::Stdio {
                errno: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            };
        }
    }
    let run = || -> Result<std::convert::Infallible, ProcessError> {
        // SAFETY: restoring the default disposition installs no handler code.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
        nix::unistd::chdir(spec.cwd.as_str()).map_err(|errno| ProcessError::Chdir {
            path: spec.cwd.clone().into(),
            errno,
        })?;
        capabilities::drop_bounding(spec.capabilities)?;
        if !spec.no_new_privs {
            load_seccomp(spec)?;
        }
        let set_user = |errno| ProcessError::SetUser {
            uid: spec.uid,
            gid: spec.gid,
            errno,
        };
        nix::unistd::setgroups(&[nix::unistd::Gid::from_raw(spec.gid)]).map_err(set_user)?;
        nix::unistd::setgid(nix::unistd::Gid::from_raw(spec.gid)).map_err(set_user)?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(spec.uid)).map_err(set_user)?;
        if spec.uid == 0 {
            capabilities::set(spec.capabilities)?;
        }
        if spec.no_new_privs {
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            load_seccomp(spec)?;
        }
        let command = args.first().cloned().unwrap_or_default();
        let exe = find_executable(&command, &spec.env)?;
        let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
        let argv: Vec<_> = args.iter().map(|a| c(a)).collect();
        let envp: Vec<_> = spec.env.iter().map(|e| c(e)).collect();
        let errno = nix::unistd::execve(&c(&exe.to_string_lossy()), &argv, &envp).unwrap_err();
        Err(ProcessError::Exec { command, errno })
    };
    match run() {
        Ok(never) => match never {},
        Err(e) => e,
    }
}
