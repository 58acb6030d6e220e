//! The name index: `names/<name>` on tmpfs is a symlink to the id of the container of that
//! name. Creating the link reserves the name (symlink(2) fails if it exists), and finding a
//! container by name is one readlink(2) instead of reading every container's config. `lookup`
//! resolves what a user typed: a full id, a name or a unique id prefix. Read next: `cleanup.rs`.

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::error::{io_err, ContainerError};
use crate::Runtime;

/// Container names (and ids) are file names in the name index: letters, digits, `-_.`, and
/// not `.` or `..`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl Runtime {
    /// All container ids.
    pub fn container_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(self.state.join("containers"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().join("config.json").exists())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Resolve a full id, a name, or a unique id prefix (in that order).
    pub fn lookup(&self, id_or_name: &str) -> Result<String, ContainerError> {
        if !valid_name(id_or_name) {
            return Err(ContainerError::NotFound {
                id: id_or_name.to_string(),
            });
        }
        if self.has_config(id_or_name) {
            return Ok(id_or_name.to_string());
        }
        if let Some(id) = self.named(id_or_name) {
            return Ok(id);
        }
        // ids are hex: anything else was a name, and there is none
        if !id_or_name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ContainerError::NotFound {
                id: id_or_name.to_string(),
            });
        }
        let ids = self.container_ids();
        let matches: Vec<&String> = ids.iter().filter(|i| i.starts_with(id_or_name)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ContainerError::NotFound {
                id: id_or_name.to_string(),
            }),
            _ => Err(ContainerError::Ambiguous {
                id: id_or_name.to_string(),
            }),
        }
    }

    /// The index entry of `name`.
    fn name_link(&self, name: &str) -> PathBuf {
        self.state.join("names").join(name)
    }

    /// The id of the live container named `name`, from the index.
    fn named(&self, name: &str) -> Option<String> {
        let target = fs::read_link(self.name_link(name)).ok()?;
        let id = target.to_str()?.to_string();
        (valid_name(&id) && self.has_config(&id)).then_some(id)
    }

    /// Reserve `name` for container `id`; a link left by a container that is gone is taken over.
    pub(crate) fn reserve_name(&self, name: &str, id: &str) -> Result<(), ContainerError> {
        let link = self.name_link(name);
        for _ in 0..2 {
            match std::os::unix::fs::symlink(id, &link) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if self.named(name).is_some() {
                        return Err(ContainerError::NameInUse {
                            name: name.to_string(),
                        });
                    }
                    let _ = fs::remove_file(&link);
                }
                Err(e) => return Err(io_err("reserve name", &link)(e)),
            }
        }
        Err(ContainerError::NameInUse {
            name: name.to_string(),
        })
    }

    /// Drop `name`'s index entry if it is container `id`'s.
    pub(crate) fn release_name(&self, name: &str, id: &str) {
        let link = self.name_link(name);
        if fs::read_link(&link).is_ok_and(|t| t.as_os_str() == id) {
            let _ = fs::remove_file(&link);
        }
    }
}
