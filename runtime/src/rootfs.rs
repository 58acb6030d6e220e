//! The container's root filesystem, built inside its own mount namespace: make every mount
//! private (so nothing propagates back to the host), mount the overlay, then `/proc`, a tiny
//! `/dev`, a read-only `/sys`, the pod's `/etc/hosts`-family files, volumes and masks (`maskedpaths.rs`), and finally
//! `pivot_root(2)` into it. pivot_root really swaps the root of the mount namespace so the old
//! root can be detached; chroot only changes the path lookup start and is escapable, so it is
//! just the fallback. Read next: `process.rs`, which calls [`prepare`] in the container's init.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use serde::{Deserialize, Serialize};

use super::layer::{self, LayerError};
use super::maskedpaths::{self, MaskedPathsError, PathRules};
use super::mountopts::Mount;

/// Why building the root filesystem failed.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// Making the mount tree private failed.
    #[error("make mounts private: {errno}")]
    MakePrivate { errno: nix::Error },
    /// A mount(2) failed.
    #[error("mount {fstype} on {path:?}: {errno}")]
    Mount {
        fstype: &'static str,
        path: PathBuf,
        errno: nix::Error,
    },
    /// What had to run before the switch into the new root failed.
    #[error("{0}")]
    BeforePivot(#[source] BeforePivotError),
    /// A mount of an OCI bundle's `mounts` failed.
    #[error("mount {fstype} on {path:?}: {errno}")]
    MountListed {
        fstype: String,
        path: PathBuf,
        errno: nix::Error,
    },
    /// A bind mount failed.
    #[error("bind {source_path:?} on {path:?}: {errno}")]
    MountBind {
        source_path: PathBuf,
        path: PathBuf,
        errno: nix::Error,
    },
    /// Creating a mount point or device node failed.
    #[error("create {path:?}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// mknod(2) for a device failed.
    #[error("mknod {path:?}: {errno}")]
    Mknod { path: PathBuf, errno: nix::Error },
    /// A mount destination resolves outside the rootfs.
    #[error("mount destination {path:?}: {source}")]
    Resolve {
        path: PathBuf,
        #[source]
        source: LayerError,
    },
    /// pivot_root(2) and the chroot fallback both failed.
    #[error("pivot_root into {path:?}: {errno}")]
    PivotRoot { path: PathBuf, errno: nix::Error },
    /// Detaching the old root failed.
    #[error("detach old root: {errno}")]
    UmountOldRoot { errno: nix::Error },
    /// chdir(2) failed.
    #[error("chdir {path:?}: {errno}")]
    Chdir { path: PathBuf, errno: nix::Error },
    /// Remounting the root read-only failed.
    #[error("remount rootfs read-only: {errno}")]
    RemountReadonly { errno: nix::Error },
    /// A masked or read-only path could not be set up.
    #[error(transparent)]
    MaskedPaths(#[from] MaskedPathsError),
}

/// A bind mount from the host into the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
}

/// Everything [`prepare`] needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootfsSpec {
    /// Image layer directories, top layer first (overlayfs' lowerdir order).
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: PathBuf,
    pub workdir: PathBuf,
    /// Where the overlay is mounted (and pivoted into).
    pub merged: PathBuf,
    /// Files bound over `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, and runtime-made
    /// `/proc/meminfo`, `/proc/cpuinfo`; all read-only except the etc files.
    pub files: Vec<BindMount>,
    pub volumes: Vec<BindMount>,
    pub readonly: bool,
    /// Privileged: the cgroup view is writable (`cgroupns.rs`); its empty [`PathRules`] come
    /// from the caller.
    pub privileged: bool,
    /// Paths to mask and to make read-only (`maskedpaths.rs`).
    #[serde(default)]
    pub path_rules: PathRules,
    /// An OCI bundle's ready-made rootfs, bind-mounted instead of the overlay.
    #[serde(default)]
    pub bind_rootfs: Option<PathBuf>,
    /// How the init enters the new root.
    #[serde(default)]
    pub switch: RootSwitch,
    /// An OCI bundle's mounts and devices, in place of the runtime's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleFilesystems>,
}

/// What an OCI bundle says of the filesystem beyond its rootfs (`oci.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BundleFilesystems {
    /// `mounts`, in order: `/proc`, `/dev`, `/sys` are mounted only if listed.
    pub mounts: Vec<Mount>,
    /// `linux.devices`: nodes made after the default ones.
    pub devices: Vec<DeviceNode>,
    /// `linux.rootfsPropagation` (`MsFlags` bits), applied to the new root.
    pub root_propagation: Option<u64>,
}

/// The kind of a device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// A device node the container gets (`linux.devices`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: NodeKind,
    pub major: u64,
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// How a process enters its new root (step 8 of [`prepare`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootSwitch {
    /// pivot_root(2), then detach the old root: nothing of the host is left to climb to.
    #[default]
    PivotRoot,
    /// chroot(2) alone (`run --chroot`, for the labs): the old root stays mounted above the
    /// new one, and a process with CAP_SYS_CHROOT whose working directory is outside its root
    /// (a second chroot(2) leaves it there) walks `..` up to the host's `/`.
    Chroot,
    /// No mount namespace of its own (an OCI bundle that lists none, as runc allows): the
    /// mounts are made in the runtime's namespace, below the rootfs, which is made private
    /// first so that nothing of them propagates, and stay there until `delete` detaches them
    /// (`store/cleanup.rs`); then chroot(2), as [`RootSwitch::Chroot`].
    HostChroot,
}

/// Mount points every container needs, as files (`true`: directory) of the *init layer*.
const INIT_LAYER: [(&str, bool); 6] = [
    ("proc", true),
    ("dev", true),
    ("sys", true),
    ("etc/hosts", false),
    ("etc/hostname", false),
    ("etc/resolv.conf", false),
];

/// Where the runtime mounts something of its own in every container (the init layer's mount
/// points), as absolute paths: what the image has there is never what the container sees.
pub fn mount_points() -> impl Iterator<Item = PathBuf> {
    INIT_LAYER.iter().map(|(name, _)| Path::new("/").join(name))
}

/// The init layer under `root` (created once, atomically): the lowest, read-only overlay layer
/// of every container, holding the mount points of [`prepare`] (`/proc`, `/etc/hosts`...).
/// Like Docker's init layer, it saves creating them in each container's writable layer: an
/// overlay copy-up and several journaled writes on the host filesystem per start.
pub fn init_layer(root: &Path) -> Result<PathBuf, RootfsError> {
    let dir = root.join("init-layer");
    if dir.is_dir() {
        return Ok(dir);
    }
    let create = |path: &Path| {
        let path = path.to_owned();
        move |source| RootfsError::Create { path, source }
    };
    // a name of this call's own: the kubelet's pod workers are threads of one process, and
    // two of them starting the first containers of a node at once must not share a tmp dir
    let tmp = root.join(format!(
        "init-layer.tmp{}-{}",
        std::process::id(),
        super::random_hex(6)
    ));
    for (name, is_dir) in INIT_LAYER {
        let p = tmp.join(name);
        if is_dir {
            fs::create_dir_all(&p).map_err(create(&p))?;
        } else {
            let parent = p.parent().expect("a file in a directory");
            fs::create_dir_all(parent).map_err(create(parent))?;
            fs::File::create(&p).map_err(create(&p))?;
        }
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // another `create` won the race: use its layer
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(source) => Err(RootfsError::Create { path: dir, source }),
    }
}

/// The overlay mount options for these layers.
pub fn overlay_options(spec: &RootfsSpec) -> String {
    let lower: Vec<String> = spec
        .lowerdirs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        spec.upperdir.display(),
        spec.workdir.display()
    )
}

fn mnt(
    source: Option<&str>,
    target: &Path,
    fstype: &'static str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), RootfsError> {
    mount(source, target, Some(fstype), flags, data).map_err(|errno| {
        tracing::debug!(path = ?target, fstype, ?errno, "mount failed");
        RootfsError::Mount {
            fstype,
            path: target.to_owned(),
            errno,
        }
    })
}

fn bind(source: &Path, target: &Path, readonly: bool) -> Result<(), RootfsError> {
    let err = |errno| RootfsError::MountBind {
        source_path: source.to_owned(),
        path: target.to_owned(),
        errno,
    };
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err)?;
    if readonly {
        // MS_RDONLY is ignored on the first bind; it takes a remount of the new mount
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(err)?;
    }
    Ok(())
}

/// Resolve `dest` inside `root` (symlinks stay inside) and create it as a dir or an empty file.
pub fn ensure_target(root: &Path, dest: &Path, dir: bool) -> Result<PathBuf, RootfsError> {
    let rel = dest.strip_prefix("/").unwrap_or(dest);
    let path =
        layer::resolve_in_root(root, rel, dest, true).map_err(|source| RootfsError::Resolve {
            path: dest.to_owned(),
            source,
        })?;
    let create = |source| RootfsError::Create {
        path: path.clone(),
        source,
    };
    if dir {
        fs::create_dir_all(&path).map_err(create)?;
    } else if !path.exists() {
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).map_err(|source| RootfsError::Create {
                path: p.to_owned(),
                source,
            })?;
        }
        fs::File::create(&path).map_err(create)?;
    }
    Ok(path)
}

/// Build the container's filesystem and enter it. Must run in a fresh mount namespace. The
/// recipe, one function per step:
/// 1. [`make_mounts_private`]: nothing we mount reaches the host, nothing of the host follows;
/// 2. [`mount_root`]: the overlay of the image layers (or an OCI bundle's rootfs);
/// 3. [`mount_proc`]: `/proc` of the new pid namespace;
/// 4. [`mount_dev`]: a minimal `/dev`;
/// 5. [`mount_sys`]: `/sys`, read-only; (3-5: an OCI bundle's mounts instead, and its
///    devices, [`mount_bundle`]);
/// 6. [`bind_files_and_volumes`]: the pod's `/etc` files, generated `/proc` files, volumes;
/// 7. [`maskedpaths::apply`]: hide or freeze what leaks or reconfigures the host;
/// 8. [`enter`] the new root, then [`remount_readonly`] if asked.
pub fn prepare(spec: &RootfsSpec) -> Result<(), RootfsError> {
    prepare_with(spec, || Ok(()))
}

/// What [`prepare_with`] runs before the switch into the new root may fail with.
pub type BeforePivotError = Box<dyn std::error::Error + Send + Sync>;

/// [`prepare`], running `before_pivot` once everything is mounted and before step 8: an OCI
/// bundle's `createContainer` hooks, which run in the container's namespaces with the host's
/// paths.
pub fn prepare_with(
    spec: &RootfsSpec,
    before_pivot: impl FnOnce() -> Result<(), BeforePivotError>,
) -> Result<(), RootfsError> {
    let root = &spec.merged;
    if spec.switch == RootSwitch::HostChroot {
        mount_root(spec)?;
        mount(
            None::<&str>,
            root,
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|errno| RootfsError::MakePrivate { errno })?;
    } else {
        make_mounts_private()?;
        mount_root(spec)?;
    }
    let dev = match &spec.bundle {
        None => {
            mount_proc(root)?;
            let dev = mount_dev(root)?;
            mount_sys(root)?;
            dev
        }
        Some(bundle) => mount_bundle(root, bundle)?,
    };
    bind_files_and_volumes(root, spec)?;
    maskedpaths::apply(root, &dev.join("null"), &spec.path_rules)?;
    before_pivot().map_err(RootfsError::BeforePivot)?;
    enter(root, spec.switch)?;
    if let Some(p) = spec.bundle.as_ref().and_then(|b| b.root_propagation) {
        let flags = MsFlags::from_bits_truncate(p as libc::c_ulong);
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(|errno| RootfsError::MakePrivate { errno })?;
    }
    if spec.readonly {
        remount_readonly()?;
    }
    Ok(())
}

/// Mount flags of the pseudo filesystems that hold no programs or devices.
const NODEV: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NODEV);

/// Step 1: make every mount private, recursively (`MS_REC|MS_PRIVATE`): nothing we mount may
/// propagate to the host, and host mounts must not follow us.
fn make_mounts_private() -> Result<(), RootfsError> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|errno| RootfsError::MakePrivate { errno })
}

/// Step 2: the overlay: image layers read-only below, the container's own upper dir on top.
/// `volatile` (Linux 5.10): no fsync/syncfs reaches the upper filesystem. Without it the
/// overlay's unmount when the container exits syncs the *whole* host filesystem its upper dir
/// is on, costing the exit milliseconds to seconds on a busy node. A writable layer is mounted
/// once and never survives a host crash in Kubernetes anyway (CRI-O and podman `--rm` mount
/// the same way). An OCI bundle's ready-made rootfs is bind-mounted instead.
fn mount_root(spec: &RootfsSpec) -> Result<(), RootfsError> {
    let root = &spec.merged;
    if let Some(dir) = &spec.bind_rootfs {
        return bind(dir, root, false);
    }
    let options = overlay_options(spec);
    let volatile = format!("{options},volatile");
    let overlay = |data: &str| {
        mnt(
            Some("overlay"),
            root,
            "overlay",
            MsFlags::empty(),
            Some(data),
        )
    };
    // an older kernel: the plain overlay
    overlay(&volatile).or_else(|_| overlay(&options))
}

/// Step 3: `/proc` for the new pid namespace.
fn mount_proc(root: &Path) -> Result<(), RootfsError> {
    let proc = ensure_target(root, Path::new("/proc"), true)?;
    mnt(Some("proc"), &proc, "proc", NODEV, None)
}

/// Step 4: a minimal `/dev`: a tmpfs with only harmless devices, the usual links, and its own
/// `pts` (a devpts instance of the container's own), `shm` and `mqueue`. Returns its path.
fn mount_dev(root: &Path) -> Result<PathBuf, RootfsError> {
    let dev = ensure_target(root, Path::new("/dev"), true)?;
    mnt(
        Some("tmpfs"),
        &dev,
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    make_devices(&dev)?;
    for (link, target) in DEV_LINKS {
        symlink(target, dev.join(link)).map_err(|source| RootfsError::Create {
            path: dev.join(link),
            source,
        })?;
    }
    for (d, fstype, flags, data) in [
        (
            "pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
        ("shm", "tmpfs", NODEV, "mode=1777,size=65536k"),
        ("mqueue", "mqueue", NODEV, ""),
    ] {
        let p = dev.join(d);
        fs::create_dir(&p).map_err(|source| RootfsError::Create {
            path: p.clone(),
            source,
        })?;
        mnt(
            Some(fstype),
            &p,
            fstype,
            flags,
            if data.is_empty() { None } else { Some(data) },
        )?;
    }
    Ok(dev)
}

/// The links in `/dev` (runtime-spec `runtime-linux.md`, "Dev symbolic links").
const DEV_LINKS: [(&str, &str); 5] = [
    ("ptmx", "pts/ptmx"),
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// The device nodes of step 4: null, zero, full, random, urandom and tty, mode 0666.
fn make_devices(dev: &Path) -> Result<(), RootfsError> {
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = dev.join(name);
        let mknod_err = |errno| RootfsError::Mknod {
            path: p.clone(),
            errno,
        };
        mknod(
            &p,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .map_err(mknod_err)?;
        // mknod honours the umask; set the mode explicitly
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &p,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(mknod_err)?;
    }
    Ok(())
}

/// Steps 3-5 for an OCI bundle: the runtime's `/proc`, `/dev` and `/sys` where the bundle
/// mounts nothing there (runc would leave them out; the runtime's own tests' bundles count on
/// them), then its mounts in order, then in its `/dev` the default devices and links (where
/// it has none of its own) and its `linux.devices`. Returns `/dev`.
fn mount_bundle(root: &Path, bundle: &BundleFilesystems) -> Result<PathBuf, RootfsError> {
    let listed = |d: &str| bundle.mounts.iter().any(|m| m.destination == Path::new(d));
    if !listed("/proc") {
        mount_proc(root)?;
    }
    if !listed("/dev") {
        mount_dev(root)?;
    }
    if !listed("/sys") {
        mount_sys(root)?;
    }
    for m in &bundle.mounts {
        mount_listed(root, m)?;
    }
    let dev = ensure_target(root, Path::new("/dev"), true)?;
    if !dev.join("null").exists() {
        make_devices(&dev)?;
    }
    for (link, target) in DEV_LINKS {
        if fs::symlink_metadata(dev.join(link)).is_err() {
            symlink(target, dev.join(link)).map_err(|source| RootfsError::Create {
                path: dev.join(link),
                source,
            })?;
        }
    }
    for d in &bundle.devices {
        make_node(root, d)?;
    }
    Ok(dev)
}

/// One mount of a bundle: a bind (remounted for its flags), or a filesystem; then its
/// propagation changes. A `cgroup` mount is the cgroup view's (`cgroupns.rs`).
fn mount_listed(root: &Path, m: &Mount) -> Result<(), RootfsError> {
    if m.fstype == "cgroup" || m.fstype == "cgroup2" {
        return Ok(());
    }
    let flags = m.ms_flags();
    let data = (!m.data.is_empty()).then_some(m.data.as_str());
    let target = match m.bind {
        Some(recursive) => {
            let source = Path::new(&m.source);
            let target = ensure_target(root, &m.destination, source.is_dir())?;
            let err = |errno| RootfsError::MountBind {
                source_path: source.to_owned(),
                path: target.clone(),
                errno,
            };
            let rec = if recursive {
                MsFlags::MS_REC
            } else {
                MsFlags::empty()
            };
            mount(
                Some(source),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | rec,
                data,
            )
            .map_err(err)?;
            if !flags.is_empty() {
                let again = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
                mount(None::<&str>, &target, None::<&str>, again, data).map_err(err)?;
            }
            target
        }
        None => {
            let target = ensure_target(root, &m.destination, true)?;
            mount(
                Some(m.source.as_str()),
                &target,
                Some(m.fstype.as_str()),
                flags,
                data,
            )
            .map_err(|errno| RootfsError::MountListed {
                fstype: m.fstype.clone(),
                path: m.destination.clone(),
                errno,
            })?;
            target
        }
    };
    for p in &m.propagation {
        let p = MsFlags::from_bits_truncate(*p as libc::c_ulong);
        mount(None::<&str>, &target, None::<&str>, p, None::<&str>).map_err(|errno| {
            RootfsError::MountListed {
                fstype: "propagation".into(),
                path: m.destination.clone(),
                errno,
            }
        })?;
    }
    Ok(())
}

/// A device node of `linux.devices`, replacing whatever is at its path.
fn make_node(root: &Path, d: &DeviceNode) -> Result<(), RootfsError> {
    let path = ensure_target(root, &d.path, false)?;
    let _ = fs::remove_file(&path);
    let kind = match d.kind {
        NodeKind::Char => SFlag::S_IFCHR,
        NodeKind::Block => SFlag::S_IFBLK,
        NodeKind::Fifo => SFlag::S_IFIFO,
    };
    let mode = Mode::from_bits_truncate(d.mode & 0o7777);
    let err = |errno| RootfsError::Mknod {
        path: d.path.clone(),
        errno,
    };
    mknod(&path, kind, mode, makedev(d.major, d.minor)).map_err(err)?;
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &path,
        mode,
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .map_err(err)?;
    nix::unistd::chown(
        &path,
        Some(nix::unistd::Uid::from_raw(d.uid)),
        Some(nix::unistd::Gid::from_raw(d.gid)),
    )
    .map_err(err)
}

/// Step 5: `/sys`, read-only.
fn mount_sys(root: &Path) -> Result<(), RootfsError> {
    let sys = ensure_target(root, Path::new("/sys"), true)?;
    mnt(
        Some("sysfs"),
        &sys,
        "sysfs",
        NODEV | MsFlags::MS_RDONLY,
        None,
    )
}

/// Step 6: per-pod files (`/etc/hosts`...), generated `/proc` files, then volumes.
fn bind_files_and_volumes(root: &Path, spec: &RootfsSpec) -> Result<(), RootfsError> {
    for f in &spec.files {
        let target = ensure_target(root, &f.destination, false)?;
        bind(&f.source, &target, f.readonly)?;
    }
    for v in &spec.volumes {
        let target = ensure_target(root, &v.destination, v.source.is_dir())?;
        bind(&v.source, &target, v.readonly)?;
    }
    Ok(())
}

/// After step 8: `readOnlyRootFilesystem`, the root remounted read-only (mounts below it keep
/// their own flags).
fn remount_readonly() -> Result<(), RootfsError> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(|errno| RootfsError::RemountReadonly { errno })
}

/// Step 8: pivot_root(".", ".") stacks the old root on top of the new one at "/", and umount2
/// detaches it: the runc recipe that needs no temporary directory. Falls back to MS_MOVE + chroot.
fn enter(root: &Path, switch: RootSwitch) -> Result<(), RootfsError> {
    nix::unistd::chdir(root).map_err(|errno| RootfsError::Chdir {
        path: root.to_owned(),
        errno,
    })?;
    let pivot = match switch {
        RootSwitch::PivotRoot => nix::unistd::pivot_root(".", "."),
        RootSwitch::Chroot | RootSwitch::HostChroot => Err(nix::Error::ENOTSUP),
    };
    match pivot {
        Err(_) if switch != RootSwitch::PivotRoot => {
            nix::unistd::chroot(".").map_err(|errno| RootfsError::PivotRoot {
                path: root.to_owned(),
                errno,
            })?;
        }
        Ok(()) => {
            umount2(".", MntFlags::MNT_DETACH)
                .map_err(|errno| RootfsError::UmountOldRoot { errno })?;
        }
        Err(errno) => {
            tracing::warn!(?errno, "pivot_root failed, falling back to chroot");
            mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(
                |errno| RootfsError::PivotRoot {
                    path: root.to_owned(),
                    errno,
                },
            )?;
            nix::unistd::chroot(".").map_err(|errno| RootfsError::PivotRoot {
                path: root.to_owned(),
                errno,
            })?;
        }
    }
    nix::unistd::chdir("/").map_err(|errno| RootfsError::Chdir {
        path: "/".into(),
        errno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_layer_is_complete_when_many_threads_create_it_at_once() {
        for round in 0..30 {
            let root = std::env::temp_dir().join(format!(
                "minik8s-init-layer-{}-{round}",
                crate::random_hex(6)
            ));
            fs::create_dir_all(&root).unwrap();
            let results: Vec<_> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..8).map(|_| s.spawn(|| init_layer(&root))).collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let missing: Vec<&str> = INIT_LAYER
                .iter()
                .map(|(name, _)| *name)
                .filter(|name| !root.join("init-layer").join(name).exists())
                .collect();
            let leftovers: Vec<_> = fs::read_dir(&root)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| n != "init-layer")
                .collect();
            fs::remove_dir_all(&root).unwrap();
            for r in results {
                r.unwrap();
            }
            assert!(missing.is_empty(), "round {round}: missing {missing:?}");
            assert!(leftovers.is_empty(), "round {round}: left {leftovers:?}");
        }
    }
}
