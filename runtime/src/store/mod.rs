//! The container records on the node: each container's directory on tmpfs
//! (`containers/<id>/` with `config.json` and `state.json`) and on disk (its writable layer and
//! log), the name index (`names.rs`) and their removal (`cleanup.rs`). Records are JSON files
//! replaced atomically (write a temporary file, then rename(2)), so a reader in another process
//! sees the old record or the new one, never half of one. Read next: `names.rs`, then the
//! processes that run a container: `tty.rs`, `process.rs`, `shim/`.

mod cleanup;
mod names;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{io_err, ContainerError};
use super::spec::ContainerSpec;
use super::state::{State, Status};
use super::wait::alive;
use super::{logs, random_hex, Runtime};

pub(crate) use names::valid_name;

/// Write `value` as JSON to `path`, atomically.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ContainerError> {
    // unique per call: threads of one process may write the same file
    let tmp = path.with_extension(format!("tmp{}-{}", std::process::id(), random_hex(6)));
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(value).expect("serializable"),
    )
    .map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename", path))
}

/// Read a JSON record.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ContainerError> {
    let bytes = fs::read(path).map_err(io_err("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| ContainerError::Io {
        step: "parse",
        path: path.to_owned(),
        source: io::Error::other(e),
    })
}

impl Runtime {
    /// The container's state on tmpfs: config.json, state.json, generated files, rootfs.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.state.join("containers").join(id)
    }

    /// The container's files on disk: its writable layer (`upper`, `work`) and its log.
    /// On disk: `containers/<shard>/<id>`, the shard being the id's first two hex digits (see
    /// [`super::spread_subdirectories`]).
    pub fn container_disk_dir(&self, id: &str) -> PathBuf {
        self.root
            .join("containers")
            .join(id.get(..2).unwrap_or("_"))
            .join(id)
    }

    /// Whether container `id` exists: `create` writes its config.json once its directories do.
    pub(crate) fn has_config(&self, id: &str) -> bool {
        self.container_dir(id).join("config.json").exists()
    }

    /// The container's specification (`config.json`).
    pub fn spec(&self, id: &str) -> Result<ContainerSpec, ContainerError> {
        read_json(&self.container_dir(id).join("config.json"))
    }

    /// The recorded state, corrected if the shim died without recording the exit.
    pub fn state(&self, id: &str) -> Result<State, ContainerError> {
        let path = self.container_dir(id).join("state.json");
        let mut st: State = if path.exists() {
            read_json(&path)?
        } else {
            State::default()
        };
        if st.status == Status::Running {
            let shim_alive = st.shim_pid.is_some_and(alive);
            let init_alive = st.pid.is_some_and(alive);
            if !shim_alive && !init_alive {
                // the shim may have recorded the exit, and ended, since the state was read
                let recorded: Option<State> = read_json(&path).ok();
                if let Some(done) = recorded.filter(|r| r.status == Status::Stopped) {
                    return Ok(done);
                }
                st.status = Status::Stopped;
                st.error
                    .get_or_insert_with(|| "shim died without recording the exit".into());
            }
        }
        Ok(st)
    }

    /// Record the container's state (`state.json`).
    pub fn write_state(&self, id: &str, st: &State) -> Result<(), ContainerError> {
        write_json(&self.container_dir(id).join("state.json"), st)
    }

    /// Record that the container never ran: its cgroup removed, its state stopped with `code`
    /// and `message` (the shim's failures, and `start`'s own before there is a shim).
    pub(crate) fn record_start_failure(&self, spec: &ContainerSpec, code: i32, message: &str) {
        let _ = spec.cgroup_hierarchy.remove(&spec.cgroup);
        let st = State {
            status: Status::Stopped,
            exit_code: Some(code),
            error: Some(message.to_string()),
            finished_at: Some(logs::now()),
            ..State::default()
        };
        let _ = self.write_state(&spec.id, &st);
    }
}
