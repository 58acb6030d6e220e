//! Image layers: a layer is a tar of the files one build step changed. Deletions travel as
//! *whiteouts*: `.wh.x` deletes `x` from lower layers, `dir/.wh..wh..opq` hides all lower
//! children of `dir`. We unpack each layer into its own directory in overlayfs' own encoding
//! (character device 0/0 for a whiteout, xattr `trusted.overlay.opaque=y` for an opaque dir), so
//! overlayfs can stack the directories as they are. Entries that would land outside the layer
//! root (`..`, absolute paths, paths through symlinks pointing out) are refused. Read next:
//! `overlay.rs`, which mounts these directories and turns a container's changes back into a layer.

use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use sha2::{Digest, Sha256};

/// Name prefix of a whiteout entry in an image layer.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the entry that makes its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The overlayfs xattr marking an opaque directory.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The tar stream could not be read.
    #[error("read layer tar: {0}")]
    ReadTar(#[source] io::Error),
    /// An entry uses `..` to climb out of the layer.
    #[error("layer entry {path:?} escapes the layer root through '..'")]
    ParentEscape { path: PathBuf },
    /// An entry has an absolute path.
    #[error("layer entry {path:?} is absolute")]
    AbsolutePath { path: PathBuf },
    /// An entry would be written through a symlink pointing outside the layer.
    #[error("layer entry {path:?} escapes the layer root through symlink {link:?}")]
    SymlinkEscape { path: PathBuf, link: PathBuf },
    /// Too many symlinks on the way to an entry.
    #[error("layer entry {path:?}: too many levels of symbolic links")]
    SymlinkLoop { path: PathBuf },
    /// Creating a file, directory, link or node failed.
    #[error("create {path:?}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// mknod(2) for a whiteout or device failed.
    #[error("mknod {path:?}: {errno}")]
    Mknod { path: PathBuf, errno: nix::Error },
    /// lsetxattr(2) for an opaque directory failed.
    #[error("set opaque xattr on {path:?}: {errno}")]
    SetOpaque { path: PathBuf, errno: nix::Error },
    /// The uncompressed content does not match the image's diff id.
    #[error("layer diff id mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch { expected: String, actual: String },
}

/// A reader that hashes what passes through it (the diff id is the digest of the uncompressed tar).
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }
    /// Drain the rest of the stream and return `sha256:<hex>`.
    pub fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!("sha256:{}", hex(&self.hasher.finalize())))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// How a layer blob is compressed, told by its first bytes (as containerd does; the media
/// type says the same, and a registry may be wrong about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// `tar+gzip`: magic `1f 8b`.
    Gzip,
    /// `tar+zstd`: magic `28 b5 2f fd`, one frame or several (skippable frames skipped).
    Zstd,
}

impl Compression {
    /// The compression of a blob that starts with `magic`.
    pub fn detect(magic: &[u8]) -> Self {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The uncompressed tar of a blob read from `blob`.
    pub fn decoder<'a, R: io::BufRead + 'a>(self, blob: R) -> Box<dyn Read + 'a> {
        match self {
            Compression::None => Box::new(blob),
            Compression::Gzip => Box::new(flate2::bufread::GzDecoder::new(blob)),
            Compression::Zstd => Box::new(ZstdFrames {
                source: blob,
                frame: ruzstd::decoding::FrameDecoder::new(),
                in_frame: false,
            }),
        }
    }
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A zstd stream as one reader: ruzstd's `StreamingDecoder` reads a single frame, while
/// `zstd` and containerd may write several (and skippable frames, which `reset` passes over).
struct ZstdFrames<R> {
    source: R,
    frame: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        use ruzstd::decoding::BlockDecodingStrategy;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.source.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.frame.reset(&mut self.source) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let skipped = io::copy(
                            &mut (&mut self.source).take(u64::from(length)),
                            &mut io::sink(),
                        )?;
                        if skipped != u64::from(length) {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    }
                    Err(e) => return Err(io::Error::other(e)),
                }
                continue;
            }
            while self.frame.can_collect() == 0 && !self.frame.is_finished() {
                self.frame
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(io::Error::other)?;
            }
            let n = self.frame.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.frame.is_finished() {
                self.in_frame = false;
            }
        }
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpack an uncompressed layer tar into `dest` (an empty directory) and return its diff id.
pub fn unpack<R: Read>(reader: R, dest: &Path) -> Result<String, LayerError> {
    let hashing = HashingReader::new(reader);
    let mut archive = tar::Archive::new(hashing);
    for entry in archive.entries().map_err(LayerError::ReadTar)? {
        let mut entry = entry.map_err(LayerError::ReadTar)?;
        let raw = entry.path().map_err(LayerError::ReadTar)?.into_owned();
        unpack_entry(&mut entry, &raw, dest)?;
    }
    archive.into_inner().finish().map_err(LayerError::ReadTar)
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<R>,
    raw: &Path,
    dest: &Path,
) -> Result<(), LayerError> {
    let rel = clean_relative(raw)?;
    let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
        return Ok(()); // the root itself ("./")
    };
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    let parent = resolve_in_root(dest, parent_rel, raw, true)?;
    let create = |path: &Path, source: io::Error| LayerError::Create {
        path: path.to_owned(),
        source,
    };
    fs::create_dir_all(&parent).map_err(|e| create(&parent, e))?;
    let name_bytes = name.as_bytes();

    if name_bytes == OPAQUE_MARKER.as_bytes() {
        set_opaque(&parent)?;
        return Ok(());
    }
    if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        return write_whiteout(&parent.join(OsStr::from_bytes(hidden)));
    }

    let target = parent.join(&name);
    let header = entry.header();
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    let uid = header.uid().unwrap_or(0) as u32;
    let gid = header.gid().unwrap_or(0) as u32;
    let kind = header.entry_type();
    if !create_node(entry, &target, dest, mode)? {
        return Ok(());
    }
    // ownership first: chown clears the setuid/setgid bits that chmod then restores
    std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(|e| create(&target, e))?;
    if kind != tar::EntryType::Symlink {
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))
            .map_err(|e| create(&target, e))?;
    }
    Ok(())
}

/// A whiteout (`.wh.<name>` in the tar) as overlayfs wants it: a character device 0/0 in place
/// of `target`.
fn write_whiteout(target: &Path) -> Result<(), LayerError> {
    remove_any(target).map_err(|source| LayerError::Create {
        path: target.to_owned(),
        source,
    })?;
    mknod(
        target,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o000),
        makedev(0, 0),
    )
    .map_err(|errno| LayerError::Mknod {
        path: target.to_owned(),
        errno,
    })
}

/// Create the file, directory, link or device of a tar entry at `target` (replacing what is
/// there). Returns whether it still needs its owner and mode: not a hard link, which shares
/// its source's, nor a header this skips.
fn create_node<R: Read>(
    entry: &mut tar::Entry<R>,
    target: &Path,
    dest: &Path,
    mode: u32,
) -> Result<bool, LayerError> {
    let create = |path: &Path, source: io::Error| LayerError::Create {
        path: path.to_owned(),
        source,
    };
    let header = entry.header();
    let kind = header.entry_type();
    match kind {
        tar::EntryType::Directory => match fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                remove_any(target).map_err(|e| create(target, e))?;
                fs::create_dir(target).map_err(|e| create(target, e))?;
            }
            Err(_) => fs::create_dir(target).map_err(|e| create(target, e))?,
        },
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            remove_any(target).map_err(|e| create(target, e))?;
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(target)
                .map_err(|e| create(target, e))?;
            io::copy(entry, &mut file).map_err(|e| create(target, e))?;
        }
        tar::EntryType::Symlink => {
            let link = entry
                .link_name()
                .map_err(LayerError::ReadTar)?
                .unwrap_or_default();
            remove_any(target).map_err(|e| create(target, e))?;
            symlink(&link, target).map_err(|e| create(target, e))?;
        }
        tar::EntryType::Link => {
            let link = entry
                .link_name()
                .map_err(LayerError::ReadTar)?
                .unwrap_or_default();
            let link_rel = clean_relative(&link)?;
            let source = resolve_in_root(dest, &link_rel, &link, false)?;
            remove_any(target).map_err(|e| create(target, e))?;
            fs::hard_link(&source, target).map_err(|e| create(target, e))?;
            return Ok(false); // a hard link shares the metadata of its source
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            let flag = match kind {
                tar::EntryType::Char => SFlag::S_IFCHR,
                tar::EntryType::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            remove_any(target).map_err(|e| create(target, e))?;
            mknod(
                target,
                flag,
                Mode::from_bits_truncate(mode),
                makedev(major as u64, minor as u64),
            )
            .map_err(|errno| LayerError::Mknod {
                path: target.to_owned(),
                errno,
            })?;
        }
        // pax/GNU long-name headers are folded into the next entry by the tar crate
        _ => return Ok(false),
    }
    Ok(true)
}

/// Strip `./`, refuse `..` and absolute paths.
pub fn clean_relative(raw: &Path) -> Result<PathBuf, LayerError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(LayerError::ParentEscape {
                    path: raw.to_owned(),
                })
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(LayerError::AbsolutePath {
                    path: raw.to_owned(),
                })
            }
        }
    }
    Ok(out)
}

/// Resolve `rel` under `root` the way the container will see it: symlinks met on the way are
/// followed *inside* the root (an absolute target starts again at the root). A symlink whose
/// target climbs above the root is an error. The last component is followed only if
/// `follow_last`. The result is a host path with no symlink among its resolved components.
pub fn resolve_in_root(
    root: &Path,
    rel: &Path,
    entry: &Path,
    follow_last: bool,
) -> Result<PathBuf, LayerError> {
    let mut todo: Vec<OsString> = rel
        .components()
        .rev()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut done: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(comp) = todo.pop() {
        match comp.as_bytes() {
            b"." | b"" => continue,
            b".." => {
                if done.pop().is_none() {
                    return Err(LayerError::ParentEscape {
                        path: entry.to_owned(),
                    });
                }
                continue;
            }
            _ => {}
        }
        let is_last = todo.is_empty();
        let mut candidate = root.to_path_buf();
        candidate.extend(&done);
        candidate.push(&comp);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() && (!is_last || follow_last) => {
                hops += 1;
                if hops > 40 {
                    return Err(LayerError::SymlinkLoop {
                        path: entry.to_owned(),
                    });
                }
                let target = fs::read_link(&candidate).map_err(|e| LayerError::Create {
                    path: candidate.clone(),
                    source: e,
                })?;
                if target.is_absolute() {
                    done.clear();
                }
                // a relative target that climbs above the root would escape on the host
                let mut depth = done.len() as isize;
                for c in target.components() {
                    match c {
                        Component::ParentDir => depth -= 1,
                        Component::Normal(_) => depth += 1,
                        _ => {}
                    }
                    if depth < 0 {
                        let link = candidate
                            .strip_prefix(root)
                            .unwrap_or(&candidate)
                            .to_owned();
                        return Err(LayerError::SymlinkEscape {
                            path: entry.to_owned(),
                            link,
                        });
                    }
                }
                for c in target.components().rev() {
                    if let Component::Normal(_) | Component::ParentDir = c {
                        todo.push(c.as_os_str().to_owned());
                    }
                }
            }
            _ => done.push(comp),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&done);
    Ok(out)
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_opaque(dir: &Path) -> Result<(), LayerError> {
    let err = |errno| LayerError::SetOpaque {
        path: dir.to_owned(),
        errno,
    };
    let c_path = CString::new(dir.as_os_str().as_bytes()).map_err(|_| err(nix::Error::EINVAL))?;
    let c_name = CString::new(OPAQUE_XATTR).expect("static name");
    // SAFETY: both strings are valid NUL-terminated C strings and the value buffer outlives the call.
    let rc =
        unsafe { libc::lsetxattr(c_path.as_ptr(), c_name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if rc != 0 {
        tracing::warn!(path = ?dir, errno = ?nix::Error::last(), "lsetxattr failed");
        return Err(err(nix::Error::last()));
    }
    Ok(())
}

/// Whether `dir` carries the overlayfs opaque xattr.
pub fn is_opaque(dir: &Path) -> bool {
    let Ok(c_path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let c_name = CString::new(OPAQUE_XATTR).expect("static name");
    let mut buf = [0u8; 4];
    // SAFETY: valid C strings; the buffer is writable for its full length.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// Whether `meta` is an overlayfs whiteout (character device 0/0).
pub fn is_whiteout(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() && meta.rdev() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(if *kind == tar::EntryType::Regular {
                data.len() as u64
            } else {
                0
            });
            if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
                h.set_link_name(data).unwrap();
            }
            // set_path refuses '..'; write the raw name to test our own checks
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            let body: &[u8] = if *kind == tar::EntryType::Regular {
                data.as_bytes()
            } else {
                &[]
            };
            b.append(&h, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "minik8s-layer-test-{}-{}",
            std::process::id(),
            rand_u64()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn rand_u64() -> u64 {
        let mut b = [0u8; 8];
        fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut b)
            .unwrap();
        u64::from_le_bytes(b)
    }

    /// A zstd layer of two frames with a skippable frame between them, as `zstd` and
    /// containerd may write, unpacks to the tar's diff id; gzip and plain tars still do.
    #[test]
    fn zstd_gzip_and_plain_layers_unpack_to_their_diff_id() {
        use ruzstd::encoding::{compress_to_vec, CompressionLevel};
        let tar = layer(&[
            ("etc", tar::EntryType::Directory, ""),
            (
                "etc/motd",
                tar::EntryType::Regular,
                &"zstd! ".repeat(50_000),
            ),
        ]);
        let diff_id = format!("sha256:{}", hex(&Sha256::digest(&tar)));
        let (a, b) = tar.split_at(tar.len() / 3);
        let mut zstd = compress_to_vec(a, CompressionLevel::Fastest);
        zstd.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]); // skippable
        zstd.extend(compress_to_vec(b, CompressionLevel::Fastest));
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzip, &tar).unwrap();
        let gzip = gzip.finish().unwrap();
        for (blob, kind) in [
            (zstd, Compression::Zstd),
            (gzip, Compression::Gzip),
            (tar.clone(), Compression::None),
        ] {
            assert_eq!(Compression::detect(&blob), kind);
            let d = tmp();
            let got = unpack(kind.decoder(&blob[..]), &d);
            let motd = fs::read_to_string(d.join("etc/motd")).unwrap_or_default();
            fs::remove_dir_all(&d).unwrap();
            assert_eq!(got.unwrap(), diff_id, "{kind:?}");
            assert_eq!(motd.len(), 300_000, "{kind:?}");
        }
        // a corrupt frame is an error, not a short layer
        let mut bad = compress_to_vec(&tar[..], CompressionLevel::Fastest);
        let n = bad.len();
        bad.truncate(n / 2);
        let d = tmp();
        let got = unpack(Compression::Zstd.decoder(&bad[..]), &d);
        fs::remove_dir_all(&d).unwrap();
        assert!(got.is_err(), "{got:?}");
    }

    #[test]
    fn regular_files_dirs_and_symlinks() {
        let d = tmp();
        let tar = layer(&[
            ("./etc/", tar::EntryType::Directory, ""),
            ("./etc/motd", tar::EntryType::Regular, "hi"),
            ("bin", tar::EntryType::Symlink, "usr/bin"),
            ("usr/bin/x", tar::EntryType::Regular, "x"),
            ("etc/motd2", tar::EntryType::Link, "etc/motd"),
        ]);
        let id = unpack(&tar[..], &d).unwrap();
        assert!(id.starts_with("sha256:"));
        assert_eq!(fs::read_to_string(d.join("etc/motd")).unwrap(), "hi");
        assert_eq!(fs::read_to_string(d.join("etc/motd2")).unwrap(), "hi");
        assert_eq!(fs::read_link(d.join("bin")).unwrap(), Path::new("usr/bin"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn whiteout_becomes_char_device_and_opaque_becomes_xattr() {
        let d = tmp();
        // the opaque marker comes after an entry of the same dir: order must not matter
        let tar = layer(&[
            ("a/kept", tar::EntryType::Regular, "k"),
            ("a/.wh..wh..opq", tar::EntryType::Regular, ""),
            ("b/.wh.gone", tar::EntryType::Regular, ""),
        ]);
        unpack(&tar[..], &d).unwrap();
        assert!(is_opaque(&d.join("a")));
        assert!(d.join("a/kept").exists());
        assert!(!d.join("a/.wh..wh..opq").exists());
        assert!(is_whiteout(
            &fs::symlink_metadata(d.join("b/gone")).unwrap()
        ));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn parent_dir_entry_is_rejected() {
        let d = tmp();
        let tar = layer(&[("../evil", tar::EntryType::Regular, "x")]);
        let err = unpack(&tar[..], &d).unwrap_err();
        assert!(matches!(err, LayerError::ParentEscape { .. }), "{err}");
        assert!(!d.parent().unwrap().join("evil").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn absolute_entry_is_rejected() {
        let d = tmp();
        let tar = layer(&[("/etc/evil", tar::EntryType::Regular, "x")]);
        assert!(matches!(
            unpack(&tar[..], &d).unwrap_err(),
            LayerError::AbsolutePath { .. }
        ));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn write_through_escaping_symlink_is_rejected() {
        let d = tmp();
        let tar = layer(&[
            ("up", tar::EntryType::Symlink, "../../.."),
            ("up/evil", tar::EntryType::Regular, "x"),
        ]);
        let err = unpack(&tar[..], &d).unwrap_err();
        assert!(matches!(err, LayerError::SymlinkEscape { .. }), "{err}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn absolute_symlink_is_followed_inside_the_root() {
        let d = tmp();
        let tar = layer(&[
            ("etc/", tar::EntryType::Directory, ""),
            ("link", tar::EntryType::Symlink, "/etc"),
            ("link/inside", tar::EntryType::Regular, "x"),
        ]);
        unpack(&tar[..], &d).unwrap();
        assert!(d.join("etc/inside").exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
