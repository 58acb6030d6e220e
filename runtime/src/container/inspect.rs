//! Reading a container back: `inspect` joins its configuration with the live kernel state
//! (host pid, namespace inodes, cgroup files, mounts), `read_logs` parses its CRI log into
//! lines. Read next: `../exec.rs`.

use std::fs;
use std::io::{self, Read, Seek};

use super::{alive, ContainerError, Status};
use crate::error::io_err;
use crate::namespaces::{self, Kind};
use crate::{logs, Runtime};

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
    /// overlay directories and the container's mounts.
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
        Ok(serde_json::json!({
            "Id": spec.id,
            "Name": spec.name,
            "Image": spec.image,
            "ImageManifest": spec.image_manifest,
            "Created": spec.created_at,
            "Args": spec.args,
            "Env": spec.env,
            "State": st,
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
                "MergedDir": spec.rootfs.merged,
            },
            "Volumes": spec.rootfs.volumes,
            "Mounts": mounts,
            "LogPath": spec.log_path,
        }))
    }
}
