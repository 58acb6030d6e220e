//! Reading a container back: `inspect` joins its configuration with the live kernel state
//! (host pid, namespace inodes, cgroup files, mounts), `read_logs` parses its CRI log into
//! lines. [`Runtime::kernel_view`] and [`Runtime::sandbox_view`] are the same facts typed,
//! for the kubelet's `/inspect` API: a container is nothing but a process whose namespaces
//! (`/proc/<pid>/ns/*`, one inode each; the pod's net, ipc and uts joined from the sandbox's
//! pinned files), cgroup (limit files next to usage) and root (an overlay of image layers,
//! the init layer and a writable upper dir, whose whiteouts record deletions) the kernel can
//! show. Read next: `../exec.rs`.

use std::fs;
use std::io::{self, Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{alive, ContainerError, State, Status};
use crate::cgroups::{Hierarchy, Stats, Version};
use crate::error::io_err;
use crate::namespaces::{self, Kind};
use crate::rootfs::{BindMount, RootfsSpec};
use crate::{layer, logs, Runtime};

impl Runtime {
    /// The log text of a container (CRI records parsed back into lines), from byte `offset`.
    pub fn read_logs(
        &self,
        id: &str,
        offset: u64,
    ) -> Result<(Vec<(String, String)>, u64), ContainerError> {
        let spec = self.spec(id)?;
        let mut f = match fs::File::open(&spec.log_path) {
            Ok(f) => f,
            Err(_) => return Ok((Vec::new(), offset)),
        };
        f.seek(io::SeekFrom::Start(offset))
            .map_err(io_err("seek log", &spec.log_path))?;
        let mut buf = String::new();
        f.read_to_string(&mut buf)
            .map_err(io_err("read log", &spec.log_path))?;
        // only consume complete records
        let complete = buf.rfind('\n').map_or(0, |i| i + 1);
        let mut out = Vec::new();
        let mut partial = String::new();
        for line in buf[..complete].lines() {
            if let Some(r) = logs::parse(line) {
                partial.push_str(r.text);
                if !r.partial {
                    out.push((r.stream.to_string(), std::mem::take(&mut partial)));
                }
            }
        }
        Ok((out, offset + complete as u64))
    }

    /// Configuration plus live kernel state: host pid, namespace inodes, cgroup limit files,
    /// overlay directories and the container's mounts. `State` holds the recorded state and
    /// Docker's names for it (`Status`, `Running`, `Pid`, `ExitCode`, `OOMKilled`);
    /// `GraphDriver` is Docker's view of the overlay. Its merged directory is mounted only in
    /// the container's mount namespace (nothing to unmount on the host), so the host reaches
    /// it through the init's root, `/proc/<pid>/root` (with the container's own mounts on
    /// it: `/proc`, `/dev`, volumes), while the container runs; null once it has stopped.
    pub fn inspect(&self, id: &str) -> Result<serde_json::Value, ContainerError> {
        let spec = self.spec(id)?;
        let st = self.state(id)?;
        let live = st.pid.filter(|p| st.status != Status::Stopped && alive(*p));
        let ns: serde_json::Map<String, serde_json::Value> = match live {
            Some(pid) => Kind::ALL
                .iter()
                .filter_map(|k| {
                    namespaces::inode(pid, *k)
                        .map(|i| (k.proc_name().to_string(), serde_json::json!(i)))
                })
                .collect(),
            None => Default::default(),
        };
        let cgroups: Vec<serde_json::Value> = spec
            .cgroup_hierarchy
            .dirs(&spec.cgroup)
            .into_iter()
            .filter(|d| d.exists())
            .map(|d| serde_json::json!({ "path": d }))
            .collect();
        let limits: serde_json::Map<String, serde_json::Value> = spec
            .cgroup_hierarchy
            .limit_files(&spec.cgroup)
            .into_iter()
            .map(|(p, v)| (p.display().to_string(), serde_json::json!(v)))
            .collect();
        let stats = live.map(|_| spec.cgroup_hierarchy.stats(&spec.cgroup));
        let mounts: Vec<String> = live
            .and_then(|pid| fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok())
            .map(|s| {
                s.lines()
                    .map(|l| l.split(' ').nth(4).unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let merged = live.map(|pid| format!("/proc/{pid}/root"));
        let lower: Vec<String> = spec
            .rootfs
            .lowerdirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Ok(serde_json::json!({
            "Id": spec.id,
            "Name": spec.name,
            "Image": spec.image,
            "ImageManifest": spec.image_manifest,
            "Created": spec.created_at,
            "Args": spec.args,
            "Env": spec.env,
            "State": docker_state(&st, live),
            "HostPid": live,
            "Sandbox": spec.sandbox,
            "Namespaces": ns,
            "CgroupVersion": spec.cgroup_hierarchy.version,
            "Cgroup": spec.cgroup,
            "CgroupDirs": cgroups,
            "CgroupLimits": limits,
            "Resources": spec.resources,
            "Stats": stats,
            "Overlay": {
                "LowerDirs": spec.rootfs.lowerdirs,
                "UpperDir": spec.rootfs.upperdir,
                "WorkDir": spec.rootfs.workdir,
                "MergedDir": merged,
                "MountPoint": spec.rootfs.merged,
            },
            "GraphDriver": {
                "Name": "overlay",
                "Data": {
                    "LowerDir": lower.join(":"),
                    "UpperDir": spec.rootfs.upperdir,
                    "WorkDir": spec.rootfs.workdir,
                    "MergedDir": merged,
                },
            },
            "Volumes": spec.rootfs.volumes,
            "Mounts": mounts,
            "LogPath": spec.log_path,
            "PidInside": super::explain::pid_inside(live),
            "JoinedNamespaces": super::explain::joined(&spec),
            "OtherNamespaces": super::explain::other_namespaces(live),
            "Security": super::explain::security(&spec),
        }))
    }
}

/// The recorded state (its own field names, which scripts read) plus Docker's names for it.
fn docker_state(st: &State, live: Option<i32>) -> serde_json::Value {
    let mut v = serde_json::to_value(st).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        let status = match st.status {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "exited",
        };
        m.insert("Status".into(), status.into());
        m.insert("Running".into(), live.is_some().into());
        m.insert("Pid".into(), live.unwrap_or(0).into());
        m.insert("ExitCode".into(), st.exit_code.unwrap_or(0).into());
    }
    v
}

// --- the typed, live view: what the kubelet's `/inspect` API serves

/// A process as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessView {
    pub host_pid: i32,
    /// `/proc/<pid>/cmdline`, split at its NUL bytes.
    pub cmdline: Vec<String>,
    /// `NSpid` of `/proc/<pid>/status`: its pid in each pid namespace, outermost first; the
    /// last is the pid the container sees.
    pub ns_pids: Vec<i32>,
}

/// One namespace of a process (`ls -l /proc/<pid>/ns`: `net:[4026532…]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceView {
    pub kind: Kind,
    pub inode: u64,
    /// The pinned file of the sandbox it was joined from (setns(2)); `None`: its own.
    pub shared_from: Option<PathBuf>,
}

/// One limit file of a cgroup and its current value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitFile {
    pub path: PathBuf,
    pub value: String,
}

/// A cgroup: where it is, its limit files, its usage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CgroupView {
    pub version: Version,
    /// Relative to the hierarchy root (`minik8s/<pod>/<container>`).
    pub path: PathBuf,
    /// Its directories: one per v1 controller, one on v2.
    pub dirs: Vec<PathBuf>,
    pub limits: Vec<LimitFile>,
    pub usage: Stats,
}

/// What an entry of the writable (upper) layer means to the merged view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpperKind {
    /// A character device 0/0: the path was deleted from a lower layer.
    Whiteout,
    /// A directory with `trusted.overlay.opaque=y`: it hides the lower layers' contents.
    Opaque,
    Directory,
    File,
    Symlink,
    Other,
}

/// One entry of the writable layer: what the container changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpperEntry {
    /// As the container sees it (`/etc/motd`).
    pub path: String,
    pub kind: UpperKind,
    pub size: u64,
}

/// The root filesystem: an overlay of the image's layers, the init layer and the upper dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RootfsView {
    /// Image layers by diff id (`sha256:…`), top first, as overlayfs stacks them.
    pub layers: Vec<String>,
    /// The shared init layer (mount points), the lowest lowerdir.
    pub init_layer: Option<PathBuf>,
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: PathBuf,
    pub workdir: PathBuf,
    pub merged: PathBuf,
    /// The options of the live `/` mount in the container (`lowerdir=…,upperdir=…`).
    pub mount_options: Option<String>,
    /// The upper layer's entries, at most [`UPPER_ENTRIES`].
    pub upper: Vec<UpperEntry>,
    pub upper_truncated: bool,
}

/// A line of `/proc/<pid>/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountView {
    pub mount_point: String,
    /// The directory of the source filesystem that is mounted (a bind mount's source).
    pub root: String,
    pub fs_type: String,
    pub source: String,
    /// The mount's own options (`rw,nosuid,relatime`).
    pub options: String,
    /// The filesystem's options (an overlay's `lowerdir=…,upperdir=…,workdir=…`).
    pub super_options: String,
}

/// A container now: its processes, namespaces, cgroup, root filesystem and mounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelView {
    /// The container's init, while it runs.
    pub init: Option<ProcessView>,
    /// PID 1 of the container's pid namespace: the init itself, or the pod's pause process
    /// when the pod shares one pid namespace.
    pub pid_one: Option<ProcessView>,
    pub namespaces: Vec<NamespaceView>,
    pub cgroup: CgroupView,
    pub rootfs: RootfsView,
    pub mounts: Vec<MountView>,
    /// Host directories bound into the container (the pod's volumes).
    pub volumes: Vec<BindMount>,
}

/// A pod sandbox now: its pinned namespaces, pause process and pod-level cgroup.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxView {
    pub id: String,
    pub hostname: String,
    pub pause: Option<ProcessView>,
    /// The pinned namespace files (`net`, `ipc`, `uts`, and `pid` with a pause process).
    pub namespaces: Vec<(Kind, PathBuf, u64)>,
    pub cgroup: CgroupView,
}

/// At most this many upper-layer entries are listed.
pub const UPPER_ENTRIES: usize = 500;

impl Runtime {
    /// The live view of container `id` (see [`KernelView`]).
    pub fn kernel_view(&self, id: &str) -> Result<KernelView, ContainerError> {
        let spec = self.spec(id)?;
        let st = self.state(id)?;
        let live = st.pid.filter(|p| st.status != Status::Stopped && alive(*p));
        let mounts = live.map(mountinfo).unwrap_or_default();
        let shared = |k: Kind| {
            spec.join_namespaces
                .iter()
                .find(|(j, _)| *j == k)
                .map(|(_, p)| p.clone())
        };
        let namespaces = live.map_or_else(Vec::new, |pid| {
            Kind::ALL
                .iter()
                .filter_map(|k| {
                    Some(NamespaceView {
                        kind: *k,
                        inode: namespaces::inode(pid, *k)?,
                        shared_from: shared(*k),
                    })
                })
                .collect()
        });
        let root_options = mounts
            .iter()
            .find(|m| m.mount_point == "/")
            .map(|m| m.super_options.clone());
        Ok(KernelView {
            init: live.and_then(process_view),
            pid_one: live.and_then(pid_one),
            namespaces,
            cgroup: cgroup_view(&spec.cgroup_hierarchy, &spec.cgroup),
            rootfs: rootfs_view(&self.root, &spec.rootfs, root_options),
            mounts,
            volumes: spec.rootfs.volumes.clone(),
        })
    }

    /// The live view of sandbox `id` (see [`SandboxView`]).
    pub fn sandbox_view(&self, id: &str) -> Result<SandboxView, ContainerError> {
        let sb = self.sandbox(id)?;
        let dir = self.sandbox_dir(id);
        let namespaces = [Kind::Net, Kind::Ipc, Kind::Uts, Kind::Pid]
            .into_iter()
            .filter_map(|k| {
                let path = dir.join(k.proc_name());
                let inode = fs::metadata(&path).ok()?.ino();
                Some((k, path, inode))
            })
            .collect();
        Ok(SandboxView {
            id: sb.id,
            hostname: sb.hostname,
            pause: sb.pause_pid.filter(|p| alive(*p)).and_then(process_view),
            namespaces,
            cgroup: cgroup_view(&self.cgroups, &sb.cgroup),
        })
    }
}

/// Command line and pid chain of `pid`, if it exists.
pub fn process_view(pid: i32) -> Option<ProcessView> {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let ns_pids = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Some(ProcessView {
        host_pid: pid,
        cmdline: cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
        ns_pids,
    })
}

/// PID 1 of `pid`'s pid namespace: `pid` itself if it is, else the host's process that is.
fn pid_one(pid: i32) -> Option<ProcessView> {
    let me = process_view(pid)?;
    if me.ns_pids.last() == Some(&1) {
        return Some(me);
    }
    let ns = namespaces::inode(pid, Kind::Pid)?;
    fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| namespaces::inode(*p, Kind::Pid) == Some(ns))
        .filter_map(process_view)
        .find(|v| v.ns_pids.last() == Some(&1))
}

fn cgroup_view(h: &Hierarchy, rel: &Path) -> CgroupView {
    CgroupView {
        version: h.version,
        path: rel.to_owned(),
        dirs: h.dirs(rel).into_iter().filter(|d| d.exists()).collect(),
        limits: h
            .limit_files(rel)
            .into_iter()
            .map(|(path, value)| LimitFile { path, value })
            .collect(),
        usage: h.stats(rel),
    }
}

fn rootfs_view(root: &Path, spec: &RootfsSpec, mount_options: Option<String>) -> RootfsView {
    let layers_dir = root.join("layers");
    let layers = spec
        .lowerdirs
        .iter()
        .filter(|d| d.parent() == Some(layers_dir.as_path()))
        .filter_map(|d| Some(format!("sha256:{}", d.file_name()?.to_str()?)))
        .collect();
    let mut upper = Vec::new();
    let upper_truncated = walk_upper(&spec.upperdir, &spec.upperdir, &mut upper);
    RootfsView {
        layers,
        init_layer: spec
            .lowerdirs
            .iter()
            .find(|d| d.file_name().is_some_and(|n| n == "init-layer"))
            .cloned(),
        lowerdirs: spec.lowerdirs.clone(),
        upperdir: spec.upperdir.clone(),
        workdir: spec.workdir.clone(),
        merged: spec.merged.clone(),
        mount_options,
        upper,
        upper_truncated,
    }
}

/// Append the entries under `dir` of the upper layer rooted at `top`, depth first in name
/// order; true when [`UPPER_ENTRIES`] cut the list short.
fn walk_upper(top: &Path, dir: &Path, out: &mut Vec<UpperEntry>) -> bool {
    let Ok(rd) = fs::read_dir(dir) else {
        return false;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if out.len() >= UPPER_ENTRIES {
            return true;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let kind = if layer::is_whiteout(&meta) {
            UpperKind::Whiteout
        } else if meta.is_dir() && layer::is_opaque(&path) {
            UpperKind::Opaque
        } else if meta.is_dir() {
            UpperKind::Directory
        } else if meta.is_file() {
            UpperKind::File
        } else if meta.file_type().is_symlink() {
            UpperKind::Symlink
        } else {
            UpperKind::Other
        };
        let rel = path.strip_prefix(top).unwrap_or(&path);
        out.push(UpperEntry {
            path: format!("/{}", rel.display()),
            kind,
            size: if meta.is_file() { meta.len() } else { 0 },
        });
        if meta.is_dir() && walk_upper(top, &path, out) {
            return true;
        }
    }
    false
}

/// `/proc/<pid>/mountinfo` (proc(5)): `id parent maj:min root mountpoint opts [tags] - type
/// source superopts`, octal escapes (`\040`) decoded.
fn mountinfo(pid: i32) -> Vec<MountView> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .map(|s| s.lines().filter_map(parse_mountinfo_line).collect())
        .unwrap_or_default()
}

fn parse_mountinfo_line(line: &str) -> Option<MountView> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    let (root, mount_point, opts) = (l.get(3)?, l.get(4)?, l.get(5)?);
    let (fs_type, source, super_opts) = (r.first()?, r.get(1)?, r.get(2).unwrap_or(&""));
    Some(MountView {
        mount_point: unescape(mount_point),
        root: unescape(root),
        fs_type: fs_type.to_string(),
        source: unescape(source),
        options: opts.to_string(),
        super_options: super_opts.to_string(),
    })
}

/// Decode mountinfo's `\ooo` escapes (space, tab, newline, backslash).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (b[i], oct) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse_with_escapes() {
        let m = parse_mountinfo_line(
            "36 35 98:0 /vol\\040a /data rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
        )
        .unwrap();
        assert_eq!(m.root, "/vol a");
        assert_eq!(m.mount_point, "/data");
        assert_eq!(m.fs_type, "ext3");
        assert_eq!(m.source, "/dev/root");
        assert_eq!(m.options, "rw,noatime");
        assert_eq!(m.super_options, "rw,errors=continue");
        assert!(parse_mountinfo_line("garbage").is_none());
    }

    #[test]
    fn this_process_has_a_view() {
        let me = process_view(std::process::id() as i32).unwrap();
        assert!(!me.cmdline.is_empty());
        assert_eq!(me.ns_pids.first(), Some(&(std::process::id() as i32)));
    }

    #[test]
    fn upper_layer_lists_files_dirs_and_symlinks() {
        let dir = std::env::temp_dir().join(format!("upper-{}", crate::random_hex(8)));
        fs::create_dir_all(dir.join("etc/app")).unwrap();
        fs::write(dir.join("etc/app/conf"), "abc").unwrap();
        std::os::unix::fs::symlink("conf", dir.join("etc/app/link")).unwrap();
        let mut out = Vec::new();
        let truncated = walk_upper(&dir, &dir, &mut out);
        fs::remove_dir_all(&dir).unwrap();
        assert!(!truncated);
        let got: Vec<(&str, UpperKind, u64)> = out
            .iter()
            .map(|e| (e.path.as_str(), e.kind, e.size))
            .collect();
        assert_eq!(
            got,
            [
                ("/etc", UpperKind::Directory, 0),
                ("/etc/app", UpperKind::Directory, 0),
                ("/etc/app/conf", UpperKind::File, 3),
                ("/etc/app/link", UpperKind::Symlink, 0),
            ]
        );
    }
}
