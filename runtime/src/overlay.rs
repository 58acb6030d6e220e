//! overlayfs stacks read-only *lower* directories (the image layers, top first) under one
//! writable *upper* directory; the merged view is the container's root. Writes copy a file up
//! into the upper dir; deletions leave a whiteout (char device 0/0) there; a directory replaced
//! wholesale is marked opaque (xattr `trusted.overlay.opaque=y`). So the upper dir *is* the
//! container's diff: `commit` turns it back into an image layer by translating those markers
//! into the image spec's `.wh.` entries, and `diff` reads it as Docker's `docker diff` does
//! (`A`dded, `C`hanged, `D`eleted paths). Neither includes the init layer's files
//! (`/etc/hosts`...) nor volumes: they are mount points, not the container's own changes.
//! (The mount itself happens in `rootfs.rs`.)

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::error::ContainerError;
use super::image::{Image, NewLayer, MEDIA_LAYER_TAR};
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

/// What happened to a path, as `docker diff` letters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// `A`: not in the image.
    Added,
    /// `C`: in the image, and changed (a file copied up, a directory whose entries changed).
    Changed,
    /// `D`: in the image, deleted (a whiteout).
    Deleted,
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChangeKind::Added => "A",
            ChangeKind::Changed => "C",
            ChangeKind::Deleted => "D",
        })
    }
}

/// One line of `diff`: `C /etc`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// As the container sees it (`/etc/motd`).
    pub path: String,
    pub kind: ChangeKind,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.path)
    }
}

/// The changes recorded in `upper` over the `lowers` (top first), by Docker's rules
/// (`archive.Changes`): a whiteout is `D`; an entry no lower layer has is `A`; a file or
/// link a lower layer has is `C`, a directory only if its mode or mtime differ (a copy-up
/// keeps them; adding or removing an entry updates the mtime); the parent of an `A` or a `D`
/// is always `C`. An opaque directory counts as changed, its hidden lower entries are not
/// listed. `skip` lists mount points (volumes, `/etc/hosts`...), left out with their contents.
/// Sorted by path.
pub fn changes(upper: &Path, lowers: &[PathBuf], skip: &[PathBuf]) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    walk_changes(upper, lowers, Path::new(""), skip, &mut out)?;
    out.sort();
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

fn walk_changes(
    upper: &Path,
    lowers: &[PathBuf],
    rel: &Path,
    skip: &[PathBuf],
    out: &mut Vec<Change>,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(upper.join(rel))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let ctr_path = Path::new("/").join(&r);
        if skip.contains(&ctr_path) {
            continue;
        }
        let meta = fs::symlink_metadata(e.path())?;
        let below = in_lowers(lowers, &r);
        let kind = if is_whiteout(&meta) {
            Some(ChangeKind::Deleted)
        } else if let Some(lower) = below {
            let same_dir = meta.is_dir()
                && lower.is_dir()
                && !is_opaque(&e.path())
                && same_dir_attrs(&meta, &lower);
            (!same_dir).then_some(ChangeKind::Changed)
        } else {
            Some(ChangeKind::Added)
        };
        let path = ctr_path.display().to_string();
        if let Some(kind) = kind {
            out.push(Change { path, kind });
            if matches!(kind, ChangeKind::Added | ChangeKind::Deleted)
                && !rel.as_os_str().is_empty()
            {
                out.push(Change {
                    path: Path::new("/").join(rel).display().to_string(),
                    kind: ChangeKind::Changed,
                });
            }
        }
        if meta.is_dir() {
            walk_changes(upper, lowers, &r, skip, out)?;
        }
    }
    Ok(())
}

/// The entry at `rel` in the first lower layer that has it, unless that is a whiteout.
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> Option<fs::Metadata> {
    let meta = lowers
        .iter()
        .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())?;
    (!is_whiteout(&meta)).then_some(meta)
}

fn same_dir_attrs(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.mode() == b.mode() && a.mtime() == b.mtime() && a.mtime_nsec() == b.mtime_nsec()
}

impl Runtime {
    /// What container `id` changed in its root filesystem (see [`changes`]).
    pub fn diff(&self, id: &str) -> Result<Vec<Change>, ContainerError> {
        let spec = self.spec(id)?;
        let upper = &spec.rootfs.upperdir;
        changes(upper, &spec.rootfs.lowerdirs, &mount_points(&spec)).map_err(|source| {
            ContainerError::Io {
                step: "read upper dir",
                path: upper.clone(),
                source,
            }
        })
    }

    /// Save a container's changes as a new image `name` (its image's layers + one new layer).
    pub fn commit(&self, id: &str, name: &str) -> Result<String, ContainerError> {
        self.commit_with(id, name, &CommitOptions::default())
    }

    /// [`Runtime::commit`], recording the new layer's history entry as `opts` says.
    pub fn commit_with(
        &self,
        id: &str,
        name: &str,
        opts: &CommitOptions,
    ) -> Result<String, ContainerError> {
        let spec = self.spec(id)?;
        let base = self.images.resolve(&spec.image)?;
        let skip = mount_points(&spec);
        let upper = &spec.rootfs.upperdir;
        let tar = diff_tar(upper, &skip).map_err(|source| ContainerError::Io {
            step: "tar upper dir",
            path: upper.clone(),
            source,
        })?;
        let (digest, size) = self.images.put_blob(&tar[..], None)?;
        let mut layers = image_layers(&base);
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
        let created_by = opts
            .created_by
            .clone()
            .unwrap_or_else(|| format!("minik8s-runtime commit {id}"));
        let mut history = config["history"].as_array().cloned().unwrap_or_default();
        history.push(json!({ "created": super::logs::now(), "created_by": created_by }));
        config["history"] = json!(history);
        config["created"] = json!(super::logs::now());
        Ok(self.images.add_image(name, &config, &layers)?)
    }
}

/// How [`Runtime::commit_with`] records the layer it adds.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The history entry's `created_by` (default: `minik8s-runtime commit <id>`); `build`
    /// writes the `RUN`'s command there, as Docker's builder does.
    pub created_by: Option<String>,
}

/// An image's layers as a new manifest lists them again (the base of a commit or a build).
pub fn image_layers(image: &Image) -> Vec<NewLayer> {
    image
        .manifest
        .layers()
        .iter()
        .zip(image.config.rootfs().diff_ids())
        .map(|(d, diff)| NewLayer {
            digest: d.digest().to_string(),
            size: d.size(),
            media_type: d.media_type().to_string(),
            diff_id: diff.clone(),
        })
        .collect()
}

/// The container paths that are mount points of the host's (volumes, the `/etc` files): their
/// content is not the container's own, so neither `commit` nor `diff` takes it.
fn mount_points(spec: &super::spec::ContainerSpec) -> Vec<PathBuf> {
    let volumes = spec.rootfs.volumes.iter().map(|v| v.destination.clone());
    let etc_files = spec
        .rootfs
        .files
        .iter()
        .filter(|f| f.destination.starts_with("/etc"))
        .map(|f| f.destination.clone());
    volumes.chain(etc_files).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    fn opaque(dir: &Path) {
        let p = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let name = CString::new(crate::layer::OPAQUE_XATTR).unwrap();
        // SAFETY: valid C strings and a one-byte value that outlives the call.
        let rc = unsafe { libc::lsetxattr(p.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        assert_eq!(rc, 0, "lsetxattr: {}", io::Error::last_os_error());
    }

    #[test]
    fn changes_read_the_upper_dir_as_docker_diff() {
        let top = std::env::temp_dir().join(format!("changes-{}", crate::random_hex(6)));
        let (lower, upper) = (top.join("lower"), top.join("upper"));
        for d in ["etc", "bin", "var/cache", "srv", "home"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        fs::write(lower.join("bin/ls"), "ls").unwrap();
        fs::write(lower.join("var/cache/old"), "x").unwrap();
        fs::write(lower.join("srv/same"), "x").unwrap();
        // what a container's writes leave: a copied-up file, a whiteout, a new file in a
        // copied-up directory, a replaced (opaque) directory, a mount point, an untouched
        // copied-up directory (same mode and mtime as below)
        for d in ["etc", "bin", "var/cache", "tmp", "srv", "home"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        let set_mtime = |dir: &str, t: std::time::SystemTime| {
            fs::File::open(upper.join(dir))
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        fs::write(upper.join("etc/passwd"), "root\nx").unwrap();
        fs::write(upper.join("etc/hosts"), "mounted").unwrap();
        nix::sys::stat::mknod(
            &upper.join("bin/ls"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        fs::write(upper.join("var/cache/new"), "y").unwrap();
        opaque(&upper.join("var/cache"));
        fs::write(upper.join("tmp/f"), "z").unwrap();
        for same in ["srv", "etc", "var"] {
            let below = fs::metadata(lower.join(same)).unwrap();
            fs::set_permissions(upper.join(same), below.permissions()).unwrap();
            set_mtime(same, below.modified().unwrap());
        }
        set_mtime(
            "home",
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000),
        );
        let got = changes(
            &upper,
            std::slice::from_ref(&lower),
            &[PathBuf::from("/etc/hosts")],
        );
        fs::remove_dir_all(&top).unwrap();
        let lines: Vec<String> = got.unwrap().iter().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            [
                "C /bin",
                "D /bin/ls",
                "C /etc/passwd",
                "C /home",
                "A /tmp",
                "A /tmp/f",
                "C /var/cache",
                "A /var/cache/new",
            ]
        );
    }
}
