//! Is the container's command there? `create` answers before anything exists, from the image's
//! layers alone, but the container sees more than its image: volumes and the runtime's own
//! mounts (`/proc`, `/dev`, `/sys`, the `/etc` files) hide what lies below them and bring
//! files of their own (`run -v /tmp/x:/lab busybox /lab/prog`). So the answer is one of three
//! ([`Presence`]): only *certainly absent* fails `create` at once (the common mistake, a
//! command missing from the image, still fails fast, before a shim or a namespace is made);
//! anything that a mount may decide is left to the init, which searches `$PATH` inside the
//! container after `pivot_root` (`process::find_executable`), as Docker resolves the command at
//! start, with the same message and exit code (127).
//!
//! The image's view is the one overlayfs will build: per path component the top layer that has
//! an entry decides; a whiteout hides the name, an opaque directory (or a file over a
//! directory) the layers below it; symlinks are followed inside the image, an absolute target
//! starting again at its root. Read next: `create.rs`, the caller.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::layer;

/// How many symlinks a lookup follows before it gives up (the kernel's limit, `ELOOP`).
const MAX_SYMLINKS: usize = 40;

/// What `create` can tell about a path in the container before it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The image has something there and nothing mounted decides otherwise.
    Present,
    /// Neither the image nor any mount can provide it.
    Absent,
    /// A mount (or a symlink the image resolves into one) decides: only the container knows.
    Unknown,
}

/// The container's filesystem as `create` knows it: the image's layers, top first, and the
/// destinations of everything mounted over them.
pub struct View<'a> {
    /// Layer directories, top layer first (overlayfs' lowerdir order).
    pub layers: Vec<&'a Path>,
    /// Absolute destinations of mounts inside the container.
    pub mounts: Vec<PathBuf>,
}

impl View<'_> {
    /// Where `command` would be found, as execvp(3) looks: a name with a `/` is a path
    /// (relative ones from `cwd`), any other is searched in `PATH` of `env` (the default
    /// search path without one). Present or unknown as soon as one candidate is.
    pub fn find_command(&self, command: &str, env: &[String], cwd: &str) -> Presence {
        if command.is_empty() {
            return Presence::Absent;
        }
        if command.contains('/') {
            return self.lookup(&Path::new("/").join(cwd).join(command));
        }
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(crate::process::DEFAULT_PATH);
        let mut verdict = Presence::Absent;
        // an empty PATH entry is the working directory (execvp's legacy)
        for dir in path.split(':').map(|d| if d.is_empty() { cwd } else { d }) {
            match self.lookup(&Path::new("/").join(dir).join(command)) {
                Presence::Present => return Presence::Present,
                Presence::Unknown => verdict = Presence::Unknown,
                Presence::Absent => {}
            }
        }
        verdict
    }

    /// Resolve an absolute `path` through the layers, following every symlink.
    pub fn lookup(&self, path: &Path) -> Presence {
        let mut todo: Vec<OsString> = components_reversed(path);
        // the resolved directories so far, each with the layer directories that make it up
        // (top first): the root is every layer
        let mut done: Vec<OsString> = Vec::new();
        let mut stacks: Vec<Vec<PathBuf>> =
            vec![self.layers.iter().map(|l| l.to_path_buf()).collect()];
        let mut hops = 0;
        while let Some(name) = todo.pop() {
            match name.as_bytes() {
                b"" | b"." => continue,
                b".." => {
                    if done.pop().is_some() {
                        stacks.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let mut at = PathBuf::from("/");
            at.extend(&done);
            at.push(&name);
            if self.mounts.iter().any(|m| at.starts_with(m)) {
                return Presence::Unknown;
            }
            let dirs = stacks.last().expect("the root's stack is never popped");
            match entry(dirs, &name) {
                Entry::Absent => return Presence::Absent,
                Entry::Symlink(target) => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Presence::Unknown;
                    }
                    if target.is_absolute() {
                        done.clear();
                        stacks.truncate(1);
                    }
                    todo.extend(components_reversed(&target));
                }
                Entry::Dir(below) => {
                    done.push(name);
                    stacks.push(below);
                }
                // a file in the middle of a path: ENOTDIR
                Entry::Other if !todo.is_empty() => return Presence::Absent,
                Entry::Other => return Presence::Present,
            }
        }
        // the path named a directory (or the root): execve fails with EACCES, not ENOENT
        Presence::Present
    }
}

/// The components of `path` (`/` and prefixes dropped), last first, for popping in order.
fn components_reversed(path: &Path) -> Vec<OsString> {
    path.components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// What the merged directory made of `dirs` (layer directories, top first) holds at `name`.
enum Entry {
    Absent,
    Symlink(PathBuf),
    /// A directory, with the layer directories it is merged from, top first.
    Dir(Vec<PathBuf>),
    /// A file, device or anything else that is not looked into.
    Other,
}

fn entry(dirs: &[PathBuf], name: &OsString) -> Entry {
    let mut found = dirs.iter().map(|d| d.join(name)).filter_map(|p| {
        let m = fs::symlink_metadata(&p).ok()?;
        Some((p, m))
    });
    let Some((top, meta)) = found.next() else {
        return Entry::Absent;
    };
    if layer::is_whiteout(&meta) {
        return Entry::Absent;
    }
    if meta.file_type().is_symlink() {
        return match fs::read_link(&top) {
            Ok(target) => Entry::Symlink(target),
            Err(_) => Entry::Absent,
        };
    }
    if !meta.is_dir() {
        return Entry::Other;
    }
    // the directory merges the lower layers' directories of that name, down to the first
    // opaque one, a whiteout or anything that is not a directory
    let mut below = vec![top.clone()];
    if !layer::is_opaque(&top) {
        for (p, m) in found {
            if !m.is_dir() {
                break;
            }
            let opaque = layer::is_opaque(&p);
            below.push(p);
            if opaque {
                break;
            }
        }
    }
    Entry::Dir(below)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layers under a temporary directory, removed on drop.
    struct Layers(PathBuf);

    impl Layers {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("minik8s-command-{test}-{}", crate::random_hex(6)));
            fs::create_dir_all(&dir).unwrap();
            Layers(dir)
        }
        fn layer(&self, n: usize) -> PathBuf {
            let p = self.0.join(n.to_string());
            fs::create_dir_all(&p).unwrap();
            p
        }
        fn file(&self, n: usize, path: &str) {
            let p = self.layer(n).join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "#!/bin/sh\n").unwrap();
        }
        fn symlink(&self, n: usize, path: &str, target: &str) {
            let p = self.layer(n).join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
        }
        fn whiteout(&self, n: usize, path: &str) {
            let p = self.layer(n).join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            nix::sys::stat::mknod(
                &p,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                0,
            )
            .unwrap();
        }
    }

    impl Drop for Layers {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn env(path: &str) -> Vec<String> {
        vec![format!("PATH={path}")]
    }

    #[test]
    fn a_command_in_the_image_is_present_and_a_missing_one_absent() {
        let l = Layers::new("image");
        l.file(0, "bin/sh");
        let (top, bottom) = (l.layer(1), l.layer(0));
        let view = View {
            layers: vec![&top, &bottom],
            mounts: vec!["/proc".into(), "/etc/hosts".into()],
        };
        let path = env("/usr/bin:/bin");
        assert_eq!(view.find_command("sh", &path, "/"), Presence::Present);
        assert_eq!(view.find_command("/bin/sh", &path, "/"), Presence::Present);
        assert_eq!(view.find_command("bin/sh", &path, "/"), Presence::Present);
        assert_eq!(view.find_command("./sh", &path, "/bin"), Presence::Present);
        assert_eq!(view.find_command("nope", &path, "/"), Presence::Absent);
        assert_eq!(view.find_command("/bin/nope", &path, "/"), Presence::Absent);
        assert_eq!(view.find_command("/bin/sh/x", &path, "/"), Presence::Absent);
        assert_eq!(view.find_command("", &path, "/"), Presence::Absent);
    }

    #[test]
    fn what_a_mount_may_provide_is_left_to_the_container() {
        let l = Layers::new("mounts");
        l.file(0, "bin/sh");
        l.symlink(0, "usr/local/bin", "/opt/tools");
        let bottom = l.layer(0);
        let view = View {
            layers: vec![&bottom],
            mounts: vec!["/lab".into(), "/opt".into(), "/proc".into()],
        };
        let path = env("/bin");
        assert_eq!(
            view.find_command("/lab/prog", &path, "/"),
            Presence::Unknown
        );
        assert_eq!(
            view.find_command("prog", &env("/bin:/lab"), "/"),
            Presence::Unknown
        );
        assert_eq!(
            view.find_command("../lab/prog", &path, "/bin"),
            Presence::Unknown
        );
        // through the image's symlink into a volume
        assert_eq!(
            view.find_command("/usr/local/bin/x", &path, "/"),
            Presence::Unknown
        );
        assert_eq!(
            view.find_command("/proc/self/exe", &path, "/"),
            Presence::Unknown
        );
        // a name that only looks like a mount
        assert_eq!(
            view.find_command("/labx/prog", &path, "/"),
            Presence::Absent
        );
    }

    #[test]
    fn layers_merge_as_overlayfs_merges_them() {
        let l = Layers::new("merge");
        // usr-merge in the bottom layer, the command added under /usr/bin by the top one
        l.symlink(0, "bin", "usr/bin");
        l.file(0, "usr/bin/sh");
        l.file(1, "usr/bin/tool");
        l.whiteout(1, "usr/bin/sh");
        l.file(0, "opt/old");
        l.file(1, "opt/new");
        l.symlink(1, "etc", "/nowhere");
        let (top, bottom) = (l.layer(1), l.layer(0));
        let view = View {
            layers: vec![&top, &bottom],
            mounts: vec![],
        };
        let path = env("/bin");
        assert_eq!(view.find_command("tool", &path, "/"), Presence::Present);
        assert_eq!(
            view.find_command("sh", &path, "/"),
            Presence::Absent,
            "whited out"
        );
        assert_eq!(view.find_command("/opt/old", &path, "/"), Presence::Present);
        assert_eq!(view.find_command("/etc/x", &path, "/"), Presence::Absent);
        // an opaque /opt in the top layer hides the bottom's
        if crate::layer::is_opaque(&top.join("opt")) || set_opaque(&top.join("opt")) {
            assert_eq!(view.find_command("/opt/old", &path, "/"), Presence::Absent);
            assert_eq!(view.find_command("/opt/new", &path, "/"), Presence::Present);
        }
    }

    /// Mark `dir` opaque; false where the filesystem takes no trusted xattrs.
    fn set_opaque(dir: &Path) -> bool {
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let name = std::ffi::CString::new(crate::layer::OPAQUE_XATTR).unwrap();
        // SAFETY: valid NUL-terminated strings and a one-byte value that outlives the call.
        unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) == 0 }
    }
}
