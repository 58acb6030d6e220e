//! Pod sandboxes: what the containers of one pod share. A sandbox pins the pod's net, ipc and
//! uts namespaces as bind-mounted files (`namespaces.rs`) that each container setns(2)s into,
//! holds the pod's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, and owns the pod-level
//! cgroup; with `shareProcessNamespace` a pause process (`pause.rs`) is PID 1 of a shared pid
//! namespace. Read next: `create.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ContainerError, Status};
use crate::error::io_err;
use crate::store::{read_json, write_json};
use crate::{logs, namespaces, pause, Runtime};

/// A pod sandbox: pinned namespaces, per-pod /etc files and the pod cgroup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    pub hostname: String,
    pub cgroup: PathBuf,
    pub created_at: String,
    /// Host pid of the pause process, PID 1 of the pod's shared pid namespace (`pause.rs`);
    /// `None`: every container gets its own pid namespace.
    #[serde(default)]
    pub pause_pid: Option<i32>,
}

/// Options of `sandbox create`: the pod-level part of a PodSpec.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Defaults to the sandbox id.
    pub hostname: Option<String>,
    /// `shareProcessNamespace: true`: all containers in one pid namespace.
    pub share_pid: bool,
}

impl Runtime {
    /// The sandbox's directory on tmpfs: pinned namespaces, pod /etc files, `sandbox.json`.
    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.state.join("sandboxes").join(id)
    }

    /// Create a sandbox: pinned net/ipc/uts namespaces (loopback up), /etc files, pod cgroup.
    pub fn create_sandbox(
        &self,
        id: &str,
        hostname: Option<&str>,
    ) -> Result<Sandbox, ContainerError> {
        let opts = SandboxOptions {
            hostname: hostname.map(str::to_string),
            share_pid: false,
        };
        self.create_sandbox_with(id, &opts)
    }

    /// Create a sandbox with `opts`; with `share_pid` also its pid namespace and pause process.
    pub fn create_sandbox_with(
        &self,
        id: &str,
        opts: &SandboxOptions,
    ) -> Result<Sandbox, ContainerError> {
        let hostname = opts.hostname.as_deref();
        let dir = self.sandbox_dir(id);
        if dir.exists() {
            return Err(ContainerError::NameInUse {
                name: id.to_string(),
            });
        }
        fs::create_dir_all(&dir).map_err(io_err("create sandbox dir", &dir))?;
        let hostname = hostname.unwrap_or(id).to_string();
        let mut sb = Sandbox {
            id: id.to_string(),
            hostname: hostname.clone(),
            cgroup: self.cgroup_parent.join(id),
            created_at: logs::now(),
            pause_pid: None,
        };
        let result = (|| {
            write_etc_files(&dir, &hostname)?;
            namespaces::create_pinned(&dir, &hostname)?;
            self.cgroups.create(&sb.cgroup)?;
            if opts.share_pid {
                let pid = pause::spawn(&self.shim_exe, &self.root, &dir)?;
                sb.pause_pid = Some(pid);
                if let Err(e) = pause::pin(pid, &dir) {
                    pause::remove(Some(pid), &dir);
                    return Err(e.into());
                }
            }
            write_json(&dir.join("sandbox.json"), &sb)
        })();
        if let Err(e) = result {
            let _ = self.remove_sandbox(id, true);
            return Err(e);
        }
        Ok(sb)
    }

    pub fn sandbox(&self, id: &str) -> Result<Sandbox, ContainerError> {
        let path = self.sandbox_dir(id).join("sandbox.json");
        if !path.exists() {
            return Err(ContainerError::SandboxNotFound { id: id.to_string() });
        }
        read_json(&path)
    }

    pub fn sandbox_ids(&self) -> Vec<String> {
        fs::read_dir(self.state.join("sandboxes"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Remove a sandbox; with `force` its containers are stopped and removed first.
    pub fn remove_sandbox(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        let dir = self.sandbox_dir(id);
        for cid in self.container_ids() {
            if self.spec(&cid).ok().and_then(|s| s.sandbox).as_deref() == Some(id) {
                if !force && self.state(&cid)?.status == Status::Running {
                    return Err(ContainerError::WrongState {
                        id: cid,
                        status: Status::Running,
                    });
                }
                self.remove(&cid, true)?;
            }
        }
        let sb = self.sandbox(id).ok();
        pause::remove(sb.as_ref().and_then(|sb| sb.pause_pid), &dir);
        namespaces::remove_pinned(&dir);
        // the pod level the sandbox recorded (its runtime's cgroup parent may not be ours);
        // the parent above it stays: others may be creating under it (cgroups.rs)
        let cg = sb.map_or_else(|| self.cgroup_parent.join(id), |sb| sb.cgroup);
        self.cgroups.remove(&cg)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }
}

/// The per-pod `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
pub(super) fn write_etc_files(dir: &Path, hostname: &str) -> Result<(), ContainerError> {
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    let resolv = fs::read_to_string("/etc/resolv.conf")
        .map(|s| {
            s.lines()
                .filter(|l| !l.contains("127.0.0."))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        })
        .unwrap_or_default();
    for (name, content) in [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        let p = dir.join(name);
        fs::write(&p, content).map_err(io_err("write", &p))?;
    }
    Ok(())
}
