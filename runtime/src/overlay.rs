//! overlayfs stacks read-only *lower* directories (the image layers, top first) under one
//! writable *upper* directory; the merged view is the container's root. Writes copy a file up
//! into the upper dir; deletions leave a whiteout (char device 0/0) there; a directory replaced
//! wholesale is marked opaque (xattr `trusted.overlay.opaque=y`). So the upper dir *is* the
//! container's diff: `commit` turns it back into an image layer by translating those markers
//! into the image spec's `.wh.` entries. (The mount itself happens in `rootfs.rs`.)

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::error::ContainerError;
use super::image::{NewLayer, MEDIA_LAYER_TAR};
use super::layer::{is_opaque, is_whiteout, OPAQUE_MARKER, WHITEOUT_PREFIX};
use super::Runtime;

/// Tar the upper dir as an image layer; `skip` lists container paths that are mount points
/// (volumes, /etc/hosts...), whose content is not the container's own.
pub fn diff_tar(upper: &Path, skip: &[PathBuf]) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    walk(&mut b, upper, Path::new(""), skip)?;
    b.into_inner()
}

fn walk(
    b: &mut tar::Builder<Vec<u8>>,
    upper: &Path,
    rel: &Path,
    skip: &[PathBuf],
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(upper.join(rel))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let meta = fs::symlink_metadata(e.path())?;
        let ctr_path = Path::new("/").join(&r);
        let skipped = skip.contains(&ctr_path);
        if is_whiteout(&meta) {
            let name = format!("{WHITEOUT_PREFIX}{}", e.file_name().to_string_lossy());
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o644);
            b.append_data(&mut h, rel.join(name), io::empty())?;
            continue;
        }
        if skipped {
            // keep an empty mount point so the path still exists in the image
            if meta.is_dir() {
                b.append_dir(&r, e.path())?;
            }
            continue;
        }
        b.append_path_with_name(e.path(), &r)?;
        if meta.is_dir() {
            if is_opaque(&e.path()) {
                let mut h = tar::Header::new_gnu();
                h.set_size(0);
                h.set_mode(0o644);
                b.append_data(&mut h, r.join(OPAQUE_MARKER), io::empty())?;
            }
            walk(b, upper, &r, skip)?;
        }
    }
    Ok(())
}

impl Runtime {
    /// Save a container's changes as a new image `name` (its image's layers + one new layer).
    pub fn commit(&self, id: &str, name: &str) -> Result<String, ContainerError> {
        let spec = self.spec(id)?;
        let base = self.images.resolve(&spec.image)?;
        let mut skip: Vec<PathBuf> = spec
            .rootfs
            .volumes
            .iter()
            .map(|v| v.destination.clone())
            .collect();
        skip.extend(
            spec.rootfs
                .files
                .iter()
                .filter(|f| f.destination.starts_with("/etc"))
                .map(|f| f.destination.clone()),
        );
        let upper = &spec.rootfs.upperdir;
        let tar = diff_tar(upper, &skip).map_err(|source| ContainerError::Io {
            step: "tar upper dir",
            path: upper.clone(),
            source,
        })?;
        let (digest, size) = self.images.put_blob(&tar[..], None)?;
        let mut layers: Vec<NewLayer> = base
            .manifest
            .layers()
            .iter()
            .zip(base.config.rootfs().diff_ids())
            .map(|(d, diff)| NewLayer {
                digest: d.digest().to_string(),
                size: d.size(),
                media_type: d.media_type().to_string(),
                diff_id: diff.clone(),
            })
            .collect();
        layers.push(NewLayer {
            digest: digest.clone(),
            size,
            media_type: MEDIA_LAYER_TAR.into(),
            diff_id: digest.clone(),
        });
        let mut config: serde_json::Value =
            serde_json::from_slice(&self.images.read_blob(&base.config_digest)?)
                .unwrap_or_else(|_| json!({}));
        config["rootfs"] = json!({ "type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>() });
        let mut history = config["history"].as_array().cloned().unwrap_or_default();
        history.push(json!({ "created": super::logs::now(), "created_by": format!("minik8s-runtime commit {id}") }));
        config["history"] = json!(history);
        config["created"] = json!(super::logs::now());
        Ok(self.images.add_image(name, &config, &layers)?)
    }
}
