//! A container's lifecycle as the shim records it in `state.json`: created (config written,
//! nothing runs), running, stopped (with its exit code and whether the OOM killer ended it).
//! The file is the only truth between processes: the shim writes it, any later call reads it
//! (`store/`). Read next: `spec.rs`.

use serde::{Deserialize, Serialize};

/// Lifecycle of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Config written, init not running user code yet.
    Created,
    /// The command runs.
    Running,
    /// The command exited (see `exit_code`).
    Stopped,
}

/// What the shim records in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub shim_pid: Option<i32>,
    /// Host pid of the container's init.
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            status: Status::Created,
            shim_pid: None,
            pid: None,
            exit_code: None,
            oom_killed: false,
            started_at: None,
            finished_at: None,
            error: None,
        }
    }
}
