//! Volumes: turning a pod's `volumes` into host directories the runtime bind-mounts.
//! `emptyDir` lives under `<root-dir>/pods/<uid>/volumes/` and dies with the pod; `hostPath`
//! is the node's own path; `downwardAPI` is a directory of files the kubelet writes from the
//! pod's metadata (rewritten atomically when labels or annotations change).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, Volume};

/// Why a volume could not be set up (reported as a `FailedMount` event).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {name:?}: {reason}")]
    Unsupported { name: String, reason: String },
    #[error("volume {name:?}: {path:?}: {source}")]
    Io {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("volumeMount {name:?} refers to no volume of the pod")]
    NoSuchVolume { name: String },
}

/// `<root-dir>/pods/<uid>`: everything the kubelet keeps for one pod.
pub fn pod_dir(root_dir: &Path, uid: &str) -> PathBuf {
    root_dir.join("pods").join(uid)
}

fn volumes_of(pod: &Pod) -> &[Volume] {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or(&[])
}

/// Render one downward-API field reference.
fn field_value(pod: &Pod, path: &str) -> Option<String> {
    let m = &pod.metadata;
    let map = |b: &Option<BTreeMap<String, String>>| {
        b.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => map(&m.labels),
        "metadata.annotations" => map(&m.annotations),
        p => {
            if let Some(k) = p
                .strip_prefix("metadata.labels['")
                .and_then(|r| r.strip_suffix("']"))
            {
                m.labels.as_ref()?.get(k)?.clone()
            } else if let Some(k) = p
                .strip_prefix("metadata.annotations['")
                .and_then(|r| r.strip_suffix("']"))
            {
                m.annotations.as_ref()?.get(k)?.clone()
            } else {
                return None;
            }
        }
    })
}

fn write_if_changed(name: &str, path: &Path, content: &str) -> Result<(), VolumeError> {
    if fs::read_to_string(path).is_ok_and(|c| c == content) {
        return Ok(());
    }
    let io = |source| VolumeError::Io {
        name: name.to_string(),
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("minik8s-tmp");
    fs::write(&tmp, content).map_err(io)?;
    fs::rename(&tmp, path).map_err(|source| VolumeError::Io {
        name: name.to_string(),
        path: path.to_owned(),
        source,
    })
}

/// Create (or refresh) every volume of the pod; returns volume name → host path.
pub fn setup(root_dir: &Path, pod: &Pod) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let base = pod_dir(root_dir, uid).join("volumes");
    let mut out = BTreeMap::new();
    for v in volumes_of(pod) {
        let name = v.name.clone();
        let io = |path: &Path| {
            let path = path.to_owned();
            let name = name.clone();
            move |source| VolumeError::Io { name, path, source }
        };
        let path = if v.empty_dir.is_some() {
            let p = base.join("empty-dir").join(&name);
            fs::create_dir_all(&p).map_err(io(&p))?;
            p
        } else if let Some(hp) = &v.host_path {
            let p = PathBuf::from(&hp.path);
            match hp.type_.as_deref().unwrap_or("") {
                "DirectoryOrCreate" => fs::create_dir_all(&p).map_err(io(&p))?,
                "FileOrCreate" if !p.exists() => fs::write(&p, b"").map_err(io(&p))?,
                "Directory" if !p.is_dir() => {
                    return Err(VolumeError::Unsupported {
                        name,
                        reason: format!("hostPath {:?} is not a directory", hp.path),
                    })
                }
                "File" if !p.is_file() => {
                    return Err(VolumeError::Unsupported {
                        name,
                        reason: format!("hostPath {:?} is not a file", hp.path),
                    })
                }
                _ if !p.exists() => {
                    return Err(VolumeError::Unsupported {
                        name,
                        reason: format!("hostPath {:?} does not exist", hp.path),
                    })
                }
                _ => {}
            }
            p
        } else if let Some(d) = &v.downward_api {
            let p = base.join("downward-api").join(&name);
            fs::create_dir_all(&p).map_err(io(&p))?;
            for item in d.items.iter().flatten() {
                let field = item.field_ref.as_ref().map(|f| f.field_path.as_str());
                let value = field.and_then(|f| field_value(pod, f)).ok_or_else(|| {
                    VolumeError::Unsupported {
                        name: name.clone(),
                        reason: format!(
                            "item {:?}: only fieldRef to metadata is supported",
                            item.path
                        ),
                    }
                })?;
                if item.path.split('/').any(|c| c == ".." || c.is_empty()) {
                    return Err(VolumeError::Unsupported {
                        name,
                        reason: format!("item path {:?} must be relative without '..'", item.path),
                    });
                }
                write_if_changed(&name, &p.join(&item.path), &value)?;
            }
            p
        } else {
            return Err(VolumeError::Unsupported {
                name,
                reason: "only emptyDir, hostPath and downwardAPI volumes are supported".into(),
            });
        };
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

/// `HOST:CTR[:ro]` bind specs for one container's `volumeMounts`.
pub fn binds(
    container: &k8s_openapi::api::core::v1::Container,
    volumes: &BTreeMap<String, PathBuf>,
) -> Result<Vec<String>, VolumeError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let host = volumes
            .get(&m.name)
            .ok_or_else(|| VolumeError::NoSuchVolume {
                name: m.name.clone(),
            })?;
        let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.split('/').any(|c| c == "..") => {
                return Err(VolumeError::Unsupported {
                    name: m.name.clone(),
                    reason: "subPath must not contain '..'".into(),
                })
            }
            Some(sub) => {
                let p = host.join(sub);
                if !p.exists() {
                    fs::create_dir_all(&p).map_err(|source| VolumeError::Io {
                        name: m.name.clone(),
                        path: p.clone(),
                        source,
                    })?;
                }
                p
            }
            None => host.clone(),
        };
        let ro = if m.read_only == Some(true) { ":ro" } else { "" };
        out.push(format!("{}:{}{ro}", host.display(), m.mount_path));
    }
    Ok(out)
}

/// Remove the pod's directory (emptyDirs, downward-API files).
pub fn teardown(root_dir: &Path, uid: &str) {
    let _ = fs::remove_dir_all(pod_dir(root_dir, uid));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downward_api_and_empty_dir() {
        let root = std::env::temp_dir().join(format!("minik8s-vol-{}", runtime::random_hex(4)));
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "d", "mountPath": "/etc/podinfo", "readOnly": true}, {"name": "e", "mountPath": "/data"}]}],
                     "volumes": [{"name": "d", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}, {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}, {"name": "e", "emptyDir": {}}]}
        }))
        .unwrap();
        let vols = setup(&root, &pod).unwrap();
        assert_eq!(fs::read_to_string(vols["d"].join("name")).unwrap(), "p");
        assert_eq!(
            fs::read_to_string(vols["d"].join("labels")).unwrap(),
            "app=\"x\"\n"
        );
        assert!(vols["e"].is_dir());
        let b = binds(&pod.spec.as_ref().unwrap().containers[0], &vols).unwrap();
        assert!(b[0].ends_with(":/etc/podinfo:ro"));
        teardown(&root, "u1");
        assert!(!pod_dir(&root, "u1").exists());
        let _ = fs::remove_dir_all(&root);
    }
}
