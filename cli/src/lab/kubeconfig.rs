//! The lab's entry in the user's kubeconfig, as `kind` writes its own: one cluster, one user
//! and one context, all named `minik8s-<lab>`, merged into the file (other entries kept,
//! same-named ones replaced) and made current; `down` removes the three entries again and
//! clears `current-context` if it was the lab's. The file is the `--kubeconfig` flag's, else
//! the first one `$KUBECONFIG` lists, else `~/.kube/config`.

use std::path::{Path, PathBuf};

use kube::config::Kubeconfig;

use super::{io_err, LabError};

/// The kubeconfig file a lab writes to.
pub fn target(flag: Option<&Path>) -> Result<PathBuf, LabError> {
    if let Some(p) = flag {
        return Ok(p.to_owned());
    }
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        if let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty()) {
            return Ok(first);
        }
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| LabError::Other("neither $KUBECONFIG nor $HOME is set".into()))?;
    Ok(PathBuf::from(home).join(".kube").join("config"))
}

fn read(path: &Path) -> Result<Kubeconfig, LabError> {
    match std::fs::read_to_string(path) {
        Ok(raw) if raw.trim().is_empty() => Ok(Kubeconfig::default()),
        Ok(raw) => Kubeconfig::from_yaml(&raw)
            .map_err(|e| LabError::Other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Kubeconfig::default()),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

fn write(path: &Path, config: &Kubeconfig) -> Result<(), LabError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    }
    let mut yaml = serde_yaml::to_string(config)
        .map_err(|e| LabError::Other(format!("{}: {e}", path.display())))?;
    if config.api_version.is_none() {
        yaml = format!("apiVersion: v1\nkind: Config\n{yaml}");
    }
    super::write_private(path, yaml.as_bytes())
}

/// Merge the one-context kubeconfig `lab_yaml` into `path` under `name` and make it current.
pub fn merge(path: &Path, name: &str, lab_yaml: &str) -> Result<(), LabError> {
    let lab = Kubeconfig::from_yaml(lab_yaml)
        .map_err(|e| LabError::Other(format!("the lab's kubeconfig: {e}")))?;
    let mut config = read(path)?;
    remove_entries(&mut config, name);
    let (Some(mut cluster), Some(mut user), Some(mut context)) = (
        lab.clusters.into_iter().next(),
        lab.auth_infos.into_iter().next(),
        lab.contexts.into_iter().next(),
    ) else {
        return Err(LabError::Other(
            "the lab's kubeconfig lacks a cluster, user or context".into(),
        ));
    };
    cluster.name = name.to_string();
    user.name = name.to_string();
    context.name = name.to_string();
    if let Some(c) = context.context.as_mut() {
        c.cluster = name.to_string();
        c.user = Some(name.to_string());
    }
    config.clusters.push(cluster);
    config.auth_infos.push(user);
    config.contexts.push(context);
    config.current_context = Some(name.to_string());
    write(path, &config)
}

/// Remove lab `name`'s entries from `path` (nothing to do if the file or they are missing).
pub fn remove(path: &Path, name: &str) -> Result<(), LabError> {
    if !path.exists() {
        return Ok(());
    }
    let mut config = read(path)?;
    if remove_entries(&mut config, name) {
        write(path, &config)?;
    }
    Ok(())
}

fn remove_entries(config: &mut Kubeconfig, name: &str) -> bool {
    let before = config.clusters.len() + config.auth_infos.len() + config.contexts.len();
    config.clusters.retain(|c| c.name != name);
    config.auth_infos.retain(|u| u.name != name);
    config.contexts.retain(|c| c.name != name);
    let mut changed =
        before != config.clusters.len() + config.auth_infos.len() + config.contexts.len();
    if config.current_context.as_deref() == Some(name) {
        config.current_context = None;
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "apiVersion: v1
kind: Config
clusters:
- name: x
  cluster:
    server: https://127.0.0.1:40000
users:
- name: y
  user:
    token: abc
contexts:
- name: z
  context:
    cluster: x
    user: y
current-context: z
";

    const OTHER: &str = "apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://prod:6443
users:
- name: prod
  user:
    token: p
contexts:
- name: prod
  context:
    cluster: prod
    user: prod
current-context: prod
";

    #[test]
    fn merge_keeps_other_entries_and_down_restores_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, OTHER).unwrap();
        merge(&path, "minik8s-lab", LAB).unwrap();
        merge(&path, "minik8s-lab", LAB).unwrap(); // a second up replaces, never duplicates
        let c = read(&path).unwrap();
        assert_eq!(c.current_context.as_deref(), Some("minik8s-lab"));
        let names: Vec<_> = c.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["prod", "minik8s-lab"]);
        let ctx = c.contexts[1].context.as_ref().unwrap();
        assert_eq!(
            (ctx.cluster.as_str(), ctx.user.as_deref()),
            ("minik8s-lab", Some("minik8s-lab"))
        );
        remove(&path, "minik8s-lab").unwrap();
        let c = read(&path).unwrap();
        assert_eq!(c.contexts.len(), 1);
        assert_eq!(c.clusters.len(), 1);
        assert_eq!(c.current_context, None);
    }

    #[test]
    fn a_missing_file_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config");
        merge(&path, "minik8s-a", LAB).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("apiVersion: v1"));
        remove(&dir.path().join("absent"), "minik8s-a").unwrap();
    }
}
