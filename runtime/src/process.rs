//! The container's init process, stage by stage. The shim forks it *after* unsharing the pid
//! namespace, so it is PID 1 of a new one, and it is single-threaded, so it may call setns(2)
//! and unshare(CLONE_NEWNS) freely. It joins the pod's namespaces, unshares its own, builds the
//! rootfs, then waits until the shim has moved it into its cgroup (so every byte and cycle of
//! user code is accounted and limited; the move overlaps the setup, see `shim/`), enters a
//! cgroup namespace with its cgroups mounted at `/sys/fs/cgroup` (`cgroupns.rs`), sets up its
//! terminal (`tty.rs`), drops privileges, loads its seccomp filter and finally execve(2)s the
//! command.
//! Any failure is written to an error pipe the shim reads; a successful exec closes the pipe
//! (it is CLOEXEC), which is how the shim knows the command started. Read next: `shim/`.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{signal, SigHandler, Signal};

use super::capabilities::{self, CapabilitiesError};
use super::cgroupns::{CgroupView, CgroupnsError};
use super::hooks::{HookError, Phase};
use super::namespaces::{self, Kind, NamespacesError};
use super::ociprocess::OciProcessError;
use super::rootfs::{self, RootfsError};
use super::seccomp::{self, SeccompError};
use super::spec::ContainerSpec;
use super::tty::{self, TtyError};

/// Why the container's init failed before exec.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Namespaces(#[from] NamespacesError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Capabilities(#[from] CapabilitiesError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// An OCI bundle's rlimits, sysctls or OOM score.
    #[error(transparent)]
    Bundle(#[from] OciProcessError),
    #[error(transparent)]
    Hook(#[from] HookError),
    /// `--init` could not fork the command.
    #[error(transparent)]
    Reaper(#[from] super::reaper::ReaperError),
    #[error(transparent)]
    Userns(#[from] super::userns::UsernsError),
    /// The shim did not confirm that we are in our cgroup (it failed to put us there).
    #[error("wait for the cgroup join: {errno:?}")]
    CgroupJoin { errno: Option<nix::Error> },
    /// Moving ourselves into our cgroup failed (cgroup v1).
    #[error(transparent)]
    Cgroups(#[from] super::cgroups::CgroupsError),
    /// The cgroup namespace or its view at /sys/fs/cgroup could not be made.
    #[error(transparent)]
    Cgroupns(#[from] CgroupnsError),
    /// Redirecting stdio failed.
    #[error("set up stdio: {errno}")]
    Stdio { errno: nix::Error },
    #[error(transparent)]
    Tty(#[from] TtyError),
    /// The working directory does not exist.
    #[error("chdir to working directory {path:?}: {errno}")]
    Chdir { path: PathBuf, errno: nix::Error },
    /// Switching to the container's user failed.
    #[error("switch to user {uid}:{gid}: {errno}")]
    SetUser {
        uid: u32,
        gid: u32,
        errno: nix::Error,
    },
    /// prctl(PR_SET_NO_NEW_PRIVS) failed.
    #[error("set no_new_privs: {errno}")]
    NoNewPrivs { errno: nix::Error },
    /// Waiting for `start` on the exec fifo failed.
    #[error("wait for start on {path:?}: {errno}")]
    WaitStart { path: PathBuf, errno: nix::Error },
    /// The command is not in the image.
    #[error("executable file not found in $PATH: {command:?}")]
    NotFound { command: String },
    /// execve(2) failed.
    #[error("exec {command:?}: {errno}")]
    Exec { command: String, errno: nix::Error },
}

impl ProcessError {
    /// Exit status the way shells and Docker report it: 127 not found, 126 not executable.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProcessError::NotFound { .. } => 127,
            ProcessError::Exec {
                errno: nix::Error::ENOENT,
                ..
            } => 127,
            ProcessError::Exec { .. } => 126,
            _ => 125,
        }
    }
}

/// File descriptors the init puts on 0/1/2.
pub struct InitStdio {
    /// Keep the inherited fd 0 (interactive) or replace it with /dev/null.
    pub keep_stdin: bool,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// With a tty: the unix socket over which the init sends the master end of the pty it
    /// allocates in the container's own devpts; the slave goes on 0, 1 and 2 and becomes the
    /// controlling terminal.
    pub console_socket: Option<RawFd>,
    /// The window size the pty starts with (the attached terminal's).
    pub winsize: Option<libc::winsize>,
    /// OCI `create`: the error pipe, on which [`READY`] goes just before the start wait.
    pub ready: Option<RawFd>,
    /// With a new user namespace: the pipe to say it is entered, and the one on which the
    /// shim says its maps are written (`userns.rs`).
    pub userns: Option<(OwnedFd, OwnedFd)>,
}

fn dup_onto(fd: RawFd, target: RawFd) -> Result<(), ProcessError> {
    // SAFETY: dup2(2) on descriptors we own; the target is one of 0/1/2.
    if unsafe { libc::dup2(fd, target) } < 0 {
        return Err(ProcessError::Stdio {
            errno: nix::Error::last(),
        });
    }
    Ok(())
}

/// What the init of an OCI `create` says when all is set up and it waits for `start`.
pub const READY: &[u8] = b"ready\n";

/// The search path of a container whose environment has no `PATH` (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find `command` as execvp(3) does, from inside the container's root (its mounts included):
/// a name with a `/` is used as it is, if it exists; any other is searched in `$PATH` of the
/// container's environment, the first executable regular file winning, else the first regular
/// file (whose exec then fails with EACCES: 126, as execvp's). Nothing: not found (127).
pub fn find_executable(command: &str, env: &[String]) -> Result<PathBuf, ProcessError> {
    use std::os::unix::fs::PermissionsExt;
    let not_found = || ProcessError::NotFound {
        command: command.to_string(),
    };
    if command.contains('/') {
        return match std::fs::metadata(command) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                Err(not_found())
            }
            _ => Ok(PathBuf::from(command)),
        };
    }
    if command.is_empty() {
        return Err(not_found());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut not_executable = None;
    // an empty entry is the working directory (execvp's legacy)
    for dir in path.split(':').map(|d| if d.is_empty() { "." } else { d }) {
        let candidate = Path::new(dir).join(command);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() {
                    return Ok(candidate);
                }
                not_executable.get_or_insert(candidate);
            }
            Ok(m) if m.is_file() => {
                not_executable.get_or_insert(candidate);
            }
            _ => {}
        }
    }
    not_executable.ok_or_else(not_found)
}

/// The init's command line and name (`comm`) until it execs: its own, not the shim's it was
/// forked from, so that `ps` tells an OCI container waiting for `start` from its shim (runc's
/// is `runc init`).
pub const INIT_TITLE: &str = "minik8s-runtime init";
pub const INIT_COMM: &str = "minik8s-init";

/// Become the container: runs in the freshly forked child and only returns on error. The
/// stages, one function each:
/// 0. its name ([`INIT_TITLE`], written over the shim's: one system call),
///    [`reset_signals`], then open the v1 cgroup directories (`prepare_self_join`: on v1 we
///    move ourselves in at stage 4, with no grace period to wait for, through directories
///    opened while we still see the host's; on v2 the shim moves us), and plan the
///    container's view of them ([`CgroupView::plan`]);
/// 1. [`enter_namespaces`]: the pod's, then our own;
/// 2. [`hold_start_fifo`]: OCI `create`'s exec fifo, held before the host disappears;
/// 3. the filesystem ([`rootfs::prepare`]);
/// 4. [`wait_for_cgroup`]: nothing of the container runs before it is in its cgroup; then the
///    cgroup namespace, whose root is the cgroup we are in, and its view at `/sys/fs/cgroup`
///    ([`CgroupView::enter`]);
/// 5. [`set_up_stdio`]: session, terminal, stdio, working directory; then
///    [`enter_user_namespace`], when the container has one of its own;
/// 6. [`wait_for_start`]: OCI `create` stops until `start` (an OCI bundle's `createContainer`
///    and `startContainer` hooks before and after; its rlimits, sysctls and OOM score were
///    set after stage 1: `ociprocess.rs`);
/// 7. [`drop_privileges`]: bounding set, user, remaining capabilities, no_new_privs, and the
///    seccomp filter (`seccomp/`);
/// 8. [`exec`] the command; with `--init` forked first, the init staying as its reaper
///    (`reaper.rs`, named while it may still rename itself, before stage 6).
pub fn init(
    spec: &ContainerSpec,
    stdio: InitStdio,
    cgroup_joined: OwnedFd,
    start_fifo: Option<&Path>,
) -> Result<Infallible, ProcessError> {
    super::proctitle::rename_inherited(INIT_COMM, INIT_TITLE);
    reset_signals();
    let self_join = match spec.creates(Kind::User) {
        // the shim moves us: writing the host's cgroup files is no business of the namespace
        true => None,
        false => spec.cgroup_hierarchy.prepare_self_join(&spec.cgroup)?,
    };
    let cgroup_view = CgroupView::plan(&spec.cgroup_hierarchy, spec.rootfs.privileged)?;
    enter_namespaces(spec)?;
    let bundle = spec.bundle_process.as_ref();
    let host_pid = bundle
        .map(|b| b.apply_limits().map(|()| host_pid()))
        .transpose()?;
    let fifo_fd = start_fifo.map(hold_start_fifo).transpose()?;
    let hooks = |phase| match (bundle, host_pid) {
        (Some(b), Some(pid)) => b.run_hooks(phase, &spec.id, spec.bundle.as_deref(), pid),
        _ => Ok(()),
    };
    // createContainer hooks: after the shim's createRuntime ones (it runs them before it
    // lets us go on), before pivot_root; nothing of this waits without them
    let mut joined = Some(cgroup_joined);
    rootfs::prepare_with(&spec.rootfs, || {
        if bundle.is_some_and(|b| !b.hooks.create_container.is_empty()) {
            wait_for_cgroup(joined.take().expect("once"))?;
            hooks(Phase::CreateContainer)?;
        }
        Ok(())
    })?;
    if let Some(joined) = joined {
        wait_for_cgroup(joined)?;
    }
    if let Some(j) = self_join {
        j.join()?;
    }
    cgroup_view.enter(spec.creates(Kind::Cgroup))?;
    set_up_stdio(spec, &stdio)?;
    enter_user_namespace(spec, stdio.userns, fifo_fd.as_ref())?;
    if spec.init {
        super::reaper::name(&spec.args, &spec.env);
    }
    // the start handshake still as root, whose fifo it is (runc orders it so too): a user
    // without access to it could never be started
    if let Some(fd) = fifo_fd {
        if let Some(ready) = stdio.ready {
            // SAFETY: the shim's error pipe, open until we exec (CLOEXEC).
            let _ = nix::unistd::write(unsafe { BorrowedFd::borrow_raw(ready) }, READY);
        }
        wait_for_start(&fd)?;
    }
    hooks(Phase::StartContainer)?;
    if let Some(b) = bundle {
        b.apply_umask();
    }
    drop_privileges(spec)?;
    if spec.init {
        super::reaper::fork_command()?;
    }
    exec(spec)
}

/// Stage 0: the shim ignores SIGPIPE (Rust does); ignored signals survive exec, so restore the
/// default, and unblock every signal.
fn reset_signals() {
    // SAFETY: installing SIG_DFL has no handler code that could run unsafely.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

/// Stage 1: the pod's namespaces (pinned files) or the bundle's paths, then our own: a mount
/// namespace, and net (loopback up), ipc and uts (our hostname) unless joined, or exactly
/// those a bundle lists (`ContainerSpec::creates`). A pid namespace is the shim's business
/// (only children enter one), a user namespace comes last ([`enter_user_namespace`]).
fn enter_namespaces(spec: &ContainerSpec) -> Result<(), ProcessError> {
    for (kind, path) in spec
        .join_namespaces
        .iter()
        .filter(|(k, _)| !matches!(k, Kind::Pid | Kind::User))
    {
        namespaces::join(path, *kind)?;
    }
    let kinds: Vec<Kind> = [Kind::Mnt, Kind::Net, Kind::Ipc, Kind::Uts]
        .into_iter()
        .filter(|k| spec.creates(*k))
        .collect();
    namespaces::create(&kinds)?;
    if kinds.contains(&Kind::Net) {
        super::network::loopback_up().map_err(NamespacesError::from)?;
    }
    let joined_uts = spec
        .namespaces
        .as_ref()
        .is_some_and(|p| p.hostname_in_joined_uts);
    if kinds.contains(&Kind::Uts) || joined_uts {
        nix::unistd::sethostname(&spec.hostname).map_err(|errno| NamespacesError::Hostname {
            hostname: spec.hostname.clone(),
            errno,
        })?;
    }
    Ok(())
}

/// Stage 5, continued: a user namespace, entered last so that everything above was made by
/// the host's root (`userns.rs`): a new one, whose maps the shim writes meanwhile, or one
/// joined by path. The exec fifo, which the user reopens at stage 7, becomes theirs.
fn enter_user_namespace(
    spec: &ContainerSpec,
    handshake: Option<(OwnedFd, OwnedFd)>,
    fifo: Option<&OwnedFd>,
) -> Result<(), ProcessError> {
    let joined = spec.join_namespaces.iter().find(|(k, _)| *k == Kind::User);
    if handshake.is_none() && joined.is_none() {
        return Ok(());
    }
    if let (Some(fifo), Some(plan)) = (fifo, &spec.namespaces) {
        let uid = super::userns::host_id(&plan.uid_mappings, spec.uid);
        let gid = super::userns::host_id(&plan.gid_mappings, spec.gid);
        // -1: unchanged
        let id = |i: Option<u32>| i.unwrap_or(u32::MAX);
        // SAFETY: fchownat(2) on the fifo's O_PATH descriptor, which AT_EMPTY_PATH names,
        // with a NUL-terminated empty path.
        unsafe {
            libc::fchownat(
                fifo.as_raw_fd(),
                c"".as_ptr(),
                id(uid),
                id(gid),
                libc::AT_EMPTY_PATH,
            )
        };
    }
    match (handshake, joined) {
        (Some((entered, written)), _) => super::userns::enter(entered, written)?,
        (None, Some((kind, path))) => namespaces::join(path, *kind)?,
        (None, None) => {}
    }
    Ok(())
}

/// Our pid as the host sees it, for an OCI bundle's hooks: its `/proc` is still mounted.
fn host_pid() -> i32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// Stage 2: the exec fifo lives on the host: hold it by O_PATH before the host disappears.
fn hold_start_fifo(path: &Path) -> Result<OwnedFd, ProcessError> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|errno| ProcessError::WaitStart {
        path: path.to_owned(),
        errno,
    })
}

/// Stage 4: the shim creates our cgroup meanwhile (v1; then we move ourselves in) or moves us
/// into it (v2), and writes one byte when it has; EOF means it failed.
fn wait_for_cgroup(cgroup_joined: OwnedFd) -> Result<(), ProcessError> {
    let mut byte = [0u8; 1];
    match nix::unistd::read(&cgroup_joined, &mut byte) {
        Ok(1) => Ok(()),
        Ok(_) => Err(ProcessError::CgroupJoin { errno: None }),
        Err(errno) => Err(ProcessError::CgroupJoin { errno: Some(errno) }),
    }
}

/// Stage 5: a new session with, for a tty, a pty from the container's devpts (mounted by
/// `prepare`, so inside it is /dev/pts/0; the shim gets the master, we keep the slave as our
/// controlling terminal), else the shim's pipes on 1 and 2 and /dev/null or the caller's
/// stdin on 0; then the working directory.
fn set_up_stdio(spec: &ContainerSpec, stdio: &InitStdio) -> Result<(), ProcessError> {
    if let Some(socket) = stdio.console_socket {
        let pty = tty::open_in_root(spec.uid, stdio.winsize)?;
        tty::bind_console(&pty)?;
        // SAFETY: the shim created the socket before fork and it stays open until we exec.
        let socket = unsafe { BorrowedFd::borrow_raw(socket) };
        tty::send_fd(socket, pty.master.as_fd())?;
        drop(pty.master);
        tty::make_controlling(pty.slave.as_raw_fd())?;
    } else {
        nix::unistd::setsid().map_err(|errno| ProcessError::Stdio { errno })?;
        if !stdio.keep_stdin {
            let null = nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDONLY,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|errno| ProcessError::Stdio { errno })?;
            dup_onto(null.as_raw_fd(), 0)?;
        }
        dup_onto(stdio.stdout, 1)?;
        dup_onto(stdio.stderr, 2)?;
    }
    let cwd = Path::new(&spec.cwd);
    nix::unistd::chdir(cwd).map_err(|errno| ProcessError::Chdir {
        path: cwd.to_owned(),
        errno,
    })
}

/// Stage 6: the bounding set while still root, then the user, then the remaining capability
/// sets, then no_new_privs; the seccomp filter as late as the kernel allows (see
/// [`load_seccomp`]).
fn drop_privileges(spec: &ContainerSpec) -> Result<(), ProcessError> {
    let (uid, gid) = (spec.uid, spec.gid);
    capabilities::drop_bounding(spec.capabilities)?;
    if !spec.no_new_privs {
        load_seccomp(spec)?;
    }
    let set_user = |errno| ProcessError::SetUser { uid, gid, errno };
    let bundle = spec.bundle_process.as_ref();
    let mut groups = vec![nix::unistd::Gid::from_raw(gid)];
    groups.extend(
        bundle
            .iter()
            .flat_map(|b| &b.additional_gids)
            .map(|g| nix::unistd::Gid::from_raw(*g)),
    );
    nix::unistd::setgroups(&groups).map_err(set_user)?;
    if bundle.is_some() {
        capabilities::keep_across_setuid()?;
    }
    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)).map_err(set_user)?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(set_user)?;
    match bundle {
        Some(b) => capabilities::set_all(&b.capabilities)?,
        None if uid == 0 => capabilities::set(spec.capabilities)?,
        None => {}
    }
    if spec.no_new_privs {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(ProcessError::NoNewPrivs {
                errno: nix::Error::last(),
            });
        }
        load_seccomp(spec)?;
    }
    Ok(())
}

/// The seccomp filter, if any. Installing one needs CAP_SYS_ADMIN or no_new_privs, and we set
/// no_new_privs only when asked (as runc): without it the filter goes in while we are still
/// root with every capability, before the user and capability changes, which the filter must
/// then allow (the default profile does); with it, last, so that the filter sees nothing of
/// ours but the start wait and execve(2).
pub fn load_seccomp(spec: &ContainerSpec) -> Result<(), ProcessError> {
    match &spec.seccomp {
        Some(compiled) => Ok(seccomp::load(compiled)?),
        None => Ok(()),
    }
}

/// Stage 7: OCI `create` stops here: opening the fifo for writing blocks until `start` opens
/// it for reading.
fn wait_for_start(fifo: &OwnedFd) -> Result<(), ProcessError> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let w = nix::fcntl::open(
        path.as_str(),
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|errno| ProcessError::WaitStart {
        path: path.clone().into(),
        errno,
    })?;
    let _ = nix::unistd::write(&w, b"0");
    Ok(())
}

/// Stage 8: execve(2) the command, found in the container's `$PATH`.
fn exec(spec: &ContainerSpec) -> Result<Infallible, ProcessError> {
    let command = spec.args.first().cloned().unwrap_or_default();
    let exe = find_executable(&command, &spec.env)?;
    let c = |s: &[u8]| CString::new(s).unwrap_or_default();
    let argv: Vec<CString> = spec.args.iter().map(|a| c(a.as_bytes())).collect();
    let envp: Vec<CString> = spec.env.iter().map(|e| c(e.as_bytes())).collect();
    let errno = nix::unistd::execve(&c(exe.as_os_str().as_bytes()), &argv, &envp).unwrap_err();
    Err(ProcessError::Exec { command, errno })
}
