//! What `up` records in `<state dir>/lab.json` as it goes, step by step, so that `down`
//! finds everything even after an `up` that failed half-way: every namespace made, every
//! process started, every node's directories and cgroup root.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::daemon::Daemon;
use super::{io_err, LabError};

/// A node as `down` needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub netns: String,
    pub ip: String,
    pub root_dir: PathBuf,
    pub cgroup_root: String,
}

/// The lab's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    /// The API port on the root namespace's loopback.
    pub api_port: u16,
    /// Where the components' binaries were taken from.
    pub bin_dir: PathBuf,
    /// Every namespace made, in order of creation.
    pub netns: Vec<String>,
    pub nodes: Vec<NodeRecord>,
    pub daemons: Vec<Daemon>,
}

/// The record's file in a state directory.
pub fn file(dir: &Path) -> PathBuf {
    dir.join("lab.json")
}

impl LabState {
    /// Read the record of the lab in `dir`; None when there is none.
    pub fn load(dir: &Path) -> Result<Option<LabState>, LabError> {
        let path = file(dir);
        match std::fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| LabError::Other(format!("{}: not a lab record: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", path)(e)),
        }
    }

    /// Write the record (atomically: a new file renamed over the old one).
    pub fn save(&self, dir: &Path) -> Result<(), LabError> {
        let path = file(dir);
        let tmp = dir.join("lab.json.tmp");
        let raw = serde_json::to_vec_pretty(self).expect("serializable");
        std::fs::write(&tmp, raw).map_err(io_err("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err("rename", &path))
    }
}
