//! Images: an OCI image is a *manifest* naming a *config* (env, command, the list of layer
//! diff ids) and an ordered list of *layers*, every piece stored by the sha256 of its bytes
//! (content addressing: the name is the checksum, so a blob is verified by re-hashing it).
//! This store keeps `blobs/sha256/<hex>`, unpacks each layer once into `layers/<diff-id hex>`
//! (shared by all images and containers using it) and maps names to manifests in `images/`.
//! It imports OCI image layouts and `docker save` tarballs and builds a `busybox` image from
//! the host's static busybox. Read next: `layer.rs` (unpacking) and `registry.rs` (pulling).

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::layer::{self, hex, LayerError};

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The host binary the built-in image is made of; it must be statically linked.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image of that name in the store.
    #[error("image {name:?} not found (try `minik8s-runtime images`, `import` or `pull`)")]
    NotFound { name: String },
    /// Reading or writing the store failed.
    #[error("{step} {path:?}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A blob's content does not hash to its name.
    #[error("blob digest mismatch for {path:?}: expected {expected}, got {actual}")]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// A JSON document (index, manifest, config) could not be parsed.
    #[error("parse {what} {path:?}: {reason}")]
    Parse {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// The archive is neither an OCI layout nor a `docker save` tarball.
    #[error("{path:?} is neither an OCI image layout nor a docker save archive")]
    UnknownFormat { path: PathBuf },
    /// A digest string is malformed.
    #[error("malformed digest {digest:?}")]
    BadDigest { digest: String },
    /// A layer could not be unpacked.
    #[error("unpack layer {digest}: {source}")]
    Layer {
        digest: String,
        #[source]
        source: LayerError,
    },
}

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        step,
        path: path.to_owned(),
        source,
    }
}

/// One name → manifest mapping, as stored in `images/<escaped name>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    pub name: String,
    pub manifest: String,
}

/// A resolved image: everything a container needs from it.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub config: ImageConfiguration,
    pub manifest: ImageManifest,
    /// Unpacked layer directories, bottom layer first.
    pub layers: Vec<PathBuf>,
}

/// A layer to record in a new manifest.
pub struct NewLayer {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    pub diff_id: String,
}

/// The content-addressed image store under `<root>`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// `busybox` → `busybox:latest`; a reference with a tag or digest is kept.
pub fn normalize(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(h),
        _ => Err(ImageError::BadDigest {
            digest: digest.to_string(),
        }),
    }
}

/// sha256 of a byte slice as `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

impl ImageStore {
    /// Open (and create) the store under `root`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        for sub in ["blobs/sha256", "layers", "images", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err("create store dir", &p))?;
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    fn temp_path(&self, what: &str) -> PathBuf {
        self.root.join("tmp").join(format!(
            "{what}-{}-{}",
            std::process::id(),
            super::random_hex(8)
        ))
    }

    /// Copy a stream into the store, verifying it against `expected` if given.
    pub fn put_blob<R: Read>(
        &self,
        mut reader: R,
        expected: Option<&str>,
    ) -> Result<(String, u64), ImageError> {
        if let Some(d) = expected {
            let path = self.blob_path(d)?;
            if path.exists() {
                // content addressing: an existing blob was verified when written
                return Ok((
                    d.to_string(),
                    fs::metadata(&path)
                        .map_err(io_err("stat blob", &path))?
                        .len(),
                ));
            }
        }
        let tmp = self.temp_path("blob");
        let mut file = fs::File::create(&tmp).map_err(io_err("create blob", &tmp))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(io_err("read blob", &tmp))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(io_err("write blob", &tmp))?;
            size += n as u64;
        }
        let actual = format!("sha256:{}", hex(&hasher.finalize()));
        if let Some(expected) = expected {
            if expected != actual {
                let _ = fs::remove_file(&tmp);
                return Err(ImageError::DigestMismatch {
                    path: tmp,
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        let dest = self.blob_path(&actual)?;
        fs::rename(&tmp, &dest).map_err(io_err("rename blob", &dest))?;
        Ok((actual, size))
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(io_err("read blob", &path))
    }

    /// The directory a layer with this diff id is unpacked into.
    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("layers").join(digest_hex(diff_id)?))
    }

    /// Unpack a layer blob once; later images sharing the diff id reuse the directory.
    pub fn ensure_layer(&self, blob_digest: &str, diff_id: &str) -> Result<PathBuf, ImageError> {
        let dir = self.layer_dir(diff_id)?;
        if dir.exists() {
            return Ok(dir);
        }
        let blob = self.blob_path(blob_digest)?;
        let mut file =
            BufReader::new(fs::File::open(&blob).map_err(io_err("open layer blob", &blob))?);
        let magic = file
            .fill_buf()
            .map_err(io_err("read layer blob", &blob))?
            .to_vec();
        let reader = layer::Compression::detect(&magic).decoder(file);
        let tmp = self.temp_path("layer");
        fs::create_dir_all(&tmp).map_err(io_err("create layer dir", &tmp))?;
        let result = layer::unpack(reader, &tmp);
        let actual = match result {
            Ok(actual) => actual,
            Err(source) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(ImageError::Layer {
                    digest: blob_digest.into(),
                    source,
                });
            }
        };
        if actual != diff_id {
            let _ = fs::remove_dir_all(&tmp);
            let source = LayerError::DiffIdMismatch {
                expected: diff_id.into(),
                actual,
            };
            return Err(ImageError::Layer {
                digest: blob_digest.into(),
                source,
            });
        }
        if let Err(e) = fs::rename(&tmp, &dir) {
            let _ = fs::remove_dir_all(&tmp);
            if !dir.exists() {
                return Err(io_err("rename layer dir", &dir)(e));
            }
        }
        tracing::debug!(diff_id, dir = ?dir, "layer unpacked");
        Ok(dir)
    }

    fn record_path(&self, name: &str) -> PathBuf {
        let escaped: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                    c.to_string()
                } else {
                    format!("%{:02X}", c as u32)
                }
            })
            .collect();
        self.root.join("images").join(format!("{escaped}.json"))
    }

    /// Point `name` at a stored manifest.
    pub fn tag(&self, name: &str, manifest_digest: &str) -> Result<(), ImageError> {
        let name = normalize(name);
        let path = self.record_path(&name);
        let tmp = self.temp_path("record");
        let record = ImageRecord {
            name,
            manifest: manifest_digest.to_string(),
        };
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(&record).expect("serializable"),
        )
        .map_err(io_err("write image record", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename image record", &path))
    }

    /// Remove a name (blobs and layers stay; they may be shared).
    pub fn untag(&self, name: &str) -> Result<(), ImageError> {
        let name = normalize(name);
        let path = self.record_path(&name);
        fs::remove_file(&path).map_err(|_| ImageError::NotFound { name })
    }

    /// All names in the store.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir)
            .map_err(io_err("list images", &dir))?
            .flatten()
        {
            if let Ok(bytes) = fs::read(e.path()) {
                if let Ok(r) = serde_json::from_slice::<ImageRecord>(&bytes) {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Resolve a name to its manifest, config and unpacked layers.
    pub fn resolve(&self, name: &str) -> Result<Image, ImageError> {
        let name = normalize(name);
        let path = self.record_path(&name);
        let record: ImageRecord = match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ImageError::Parse {
                what: "image record",
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(_) if name == "busybox:latest" => {
                self.build_busybox()?;
                return self.resolve(&name);
            }
            Err(_) => return Err(ImageError::NotFound { name }),
        };
        let manifest_bytes = self.read_blob(&record.manifest)?;
        let mpath = self.blob_path(&record.manifest)?;
        let manifest =
            ImageManifest::from_reader(&manifest_bytes[..]).map_err(|e| ImageError::Parse {
                what: "manifest",
                path: mpath.clone(),
                reason: e.to_string(),
            })?;
        let config_digest = manifest.config().digest().to_string();
        let cpath = self.blob_path(&config_digest)?;
        let config = ImageConfiguration::from_reader(&self.read_blob(&config_digest)?[..])
            .map_err(|e| ImageError::Parse {
                what: "image config",
                path: cpath.clone(),
                reason: e.to_string(),
            })?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::Parse {
                what: "image config",
                path: cpath,
                reason: "diff_ids and layers differ in length".into(),
            });
        }
        let mut layers = Vec::new();
        for (desc, diff_id) in manifest.layers().iter().zip(diff_ids) {
            layers.push(self.ensure_layer(desc.digest().as_ref(), diff_id)?);
        }
        Ok(Image {
            name,
            manifest_digest: record.manifest,
            config_digest,
            config,
            manifest,
            layers,
        })
    }

    /// Store a config and manifest for already stored layer blobs, unpack the layers, tag it.
    pub fn add_image(
        &self,
        name: &str,
        config: &serde_json::Value,
        layers: &[NewLayer],
    ) -> Result<String, ImageError> {
        let config_bytes = serde_json::to_vec(config).expect("serializable");
        let (config_digest, config_size) = self.put_blob(&config_bytes[..], None)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": { "mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size },
            "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
        });
        let (manifest_digest, _) = self.put_blob(
            &serde_json::to_vec(&manifest).expect("serializable")[..],
            None,
        )?;
        for l in layers {
            self.ensure_layer(&l.digest, &l.diff_id)?;
        }
        self.tag(name, &manifest_digest)?;
        Ok(manifest_digest)
    }

    /// Import an OCI image layout (directory or tar) or a `docker save` tarball; returns the names.
    pub fn import(&self, path: &Path, name: Option<&str>) -> Result<Vec<String>, ImageError> {
        let meta = fs::metadata(path).map_err(io_err("open archive", path))?;
        if meta.is_dir() {
            return self.import_dir(path, name);
        }
        let tmp = self.temp_path("import");
        fs::create_dir_all(&tmp).map_err(io_err("create import dir", &tmp))?;
        let result = (|| {
            let file = fs::File::open(path).map_err(io_err("open archive", path))?;
            let mut reader = BufReader::new(file);
            let magic = reader
                .fill_buf()
                .map_err(io_err("read archive", path))?
                .to_vec();
            let inner: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
                Box::new(flate2::read::GzDecoder::new(reader))
            } else {
                Box::new(reader)
            };
            tar::Archive::new(inner)
                .unpack(&tmp)
                .map_err(io_err("unpack archive", path))?;
            self.import_dir(&tmp, name)
        })();
        let _ = fs::remove_dir_all(&tmp);
        result
    }

    fn import_dir(&self, dir: &Path, name: Option<&str>) -> Result<Vec<String>, ImageError> {
        if dir.join("index.json").exists() {
            self.import_oci(dir, name)
        } else if dir.join("manifest.json").exists() {
            self.import_docker(dir, name)
        } else {
            Err(ImageError::UnknownFormat {
                path: dir.to_owned(),
            })
        }
    }

    fn copy_blob_from(&self, dir: &Path, digest: &str) -> Result<(), ImageError> {
        let src = dir.join("blobs/sha256").join(digest_hex(digest)?);
        let file = fs::File::open(&src).map_err(io_err("open blob", &src))?;
        self.put_blob(file, Some(digest)).map(|_| ())
    }

    fn import_oci(&self, dir: &Path, name: Option<&str>) -> Result<Vec<String>, ImageError> {
        let ipath = dir.join("index.json");
        let index = ImageIndex::from_file(&ipath).map_err(|e| ImageError::Parse {
            what: "index",
            path: ipath.clone(),
            reason: e.to_string(),
        })?;
        let mut names = Vec::new();
        let mut todo: Vec<(oci_spec::image::Descriptor, Option<String>)> = index
            .manifests()
            .iter()
            .map(|d| (d.clone(), ref_name(d)))
            .collect();
        while let Some((desc, ref_name)) = todo.pop() {
            let digest = desc.digest().to_string();
            self.copy_blob_from(dir, &digest)?;
            let bytes = self.read_blob(&digest)?;
            let media = desc.media_type().to_string();
            if media == MEDIA_INDEX || media.contains("manifest.list") {
                let sub = ImageIndex::from_reader(&bytes[..]).map_err(|e| ImageError::Parse {
                    what: "index",
                    path: ipath.clone(),
                    reason: e.to_string(),
                })?;
                let host = super::platform::Platform::host();
                let d = host
                    .choose_manifest(&sub)
                    .map_err(|available| ImageError::Parse {
                        what: "index",
                        path: ipath.clone(),
                        reason: format!("no manifest for {host} (it has {available})"),
                    })?;
                todo.push((d.clone(), ref_name.clone()));
                continue;
            }
            let manifest =
                ImageManifest::from_reader(&bytes[..]).map_err(|e| ImageError::Parse {
                    what: "manifest",
                    path: ipath.clone(),
                    reason: e.to_string(),
                })?;
            self.copy_blob_from(dir, manifest.config().digest().as_ref())?;
            for l in manifest.layers() {
                self.copy_blob_from(dir, l.digest().as_ref())?;
            }
            let image_name = match (name, ref_name) {
                (Some(n), _) => normalize(n),
                (None, Some(r)) if r.contains(':') || r.contains('/') => normalize(&r),
                (None, Some(tag)) => format!("imported:{tag}"),
                (None, None) => format!("imported:{}", &digest_hex(&digest)?[..12]),
            };
            self.tag(&image_name, &digest)?;
            self.resolve(&image_name)?; // unpacks and verifies the diff ids
            names.push(image_name);
        }
        Ok(names)
    }

    fn import_docker(&self, dir: &Path, name: Option<&str>) -> Result<Vec<String>, ImageError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let mpath = dir.join("manifest.json");
        let bytes = fs::read(&mpath).map_err(io_err("read manifest.json", &mpath))?;
        let entries: Vec<Entry> =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Parse {
                what: "docker manifest",
                path: mpath.clone(),
                reason: e.to_string(),
            })?;
        let mut names = Vec::new();
        for entry in entries {
            let cpath = dir.join(&entry.config);
            let config_bytes = fs::read(&cpath).map_err(io_err("read config", &cpath))?;
            let config: serde_json::Value =
                serde_json::from_slice(&config_bytes).map_err(|e| ImageError::Parse {
                    what: "image config",
                    path: cpath.clone(),
                    reason: e.to_string(),
                })?;
            let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if diff_ids.len() != entry.layers.len() {
                return Err(ImageError::Parse {
                    what: "image config",
                    path: cpath,
                    reason: "diff_ids and layers differ in length".into(),
                });
            }
            let mut layers = Vec::new();
            for (lpath, diff_id) in entry.layers.iter().zip(&diff_ids) {
                let p = dir.join(lpath);
                let mut f = BufReader::new(fs::File::open(&p).map_err(io_err("open layer", &p))?);
                let magic = f.fill_buf().map_err(io_err("read layer", &p))?;
                let media_type = match layer::Compression::detect(magic) {
                    layer::Compression::Gzip => MEDIA_LAYER_GZIP,
                    layer::Compression::Zstd => MEDIA_LAYER_ZSTD,
                    layer::Compression::None => MEDIA_LAYER_TAR,
                }
                .to_string();
                let (digest, size) = self.put_blob(f, None)?;
                layers.push(NewLayer {
                    digest,
                    size,
                    media_type,
                    diff_id: diff_id.clone(),
                });
            }
            let image_name = match (name, entry.repo_tags.as_ref().and_then(|t| t.first())) {
                (Some(n), _) => normalize(n),
                (None, Some(t)) => normalize(t),
                (None, None) => format!("imported:{}", &sha256(&config_bytes)[7..19]),
            };
            self.add_image(&image_name, &config, &layers)?;
            names.push(image_name);
        }
        Ok(names)
    }

    /// Build `busybox:latest` from the host's static busybox and its applet list, so no
    /// registry is needed. The tar is deterministic, so its digest is stable.
    ///
    /// The image has no `/etc/nsswitch.conf`, and needs none: glibc's static resolver then
    /// reads `/etc/hosts` and asks the nameservers of `/etc/resolv.conf` (both written per
    /// sandbox), which `wget http://web` in a pod shows (`tests/tests/lab_services.rs`). What
    /// the binary brings is the host's: Debian 12's busybox-static (1.35) is built without
    /// `FEATURE_WGET_TIMEOUT`, and its `wget -T N` writes through a null pointer (SIGSEGV,
    /// exit 139); `timeout N wget ...` bounds a request instead.
    pub fn build_busybox(&self) -> Result<String, ImageError> {
        let host = Path::new(HOST_BUSYBOX);
        let binary = fs::read(host).map_err(io_err("read busybox", host))?;
        let out = std::process::Command::new(host)
            .arg("--list-full")
            .output()
            .map_err(io_err("list busybox applets", host))?;
        let applets = String::from_utf8_lossy(&out.stdout).to_string();
        let mut b = tar::Builder::new(Vec::new());
        let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(mode);
            h.set_size(0);
            h.set_mtime(0);
            b.append_data(&mut h, path, io::empty())
        };
        let tar_err = io_err("build busybox layer", host);
        let build = (|| -> io::Result<()> {
            for (d, m) in [
                ("bin", 0o755),
                ("sbin", 0o755),
                ("usr", 0o755),
                ("usr/bin", 0o755),
                ("usr/sbin", 0o755),
                ("etc", 0o755),
                ("dev", 0o755),
                ("proc", 0o555),
                ("sys", 0o555),
                ("tmp", 0o1777),
                ("root", 0o700),
                ("var", 0o755),
                ("home", 0o755),
            ] {
                dir(&mut b, d, m)?;
            }
            let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
                let mut h = tar::Header::new_ustar();
                h.set_mode(mode);
                h.set_size(data.len() as u64);
                h.set_mtime(0);
                b.append_data(&mut h, path, data)
            };
            file(&mut b, "bin/busybox", 0o755, &binary)?;
            file(
                &mut b,
                "etc/passwd",
                0o644,
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
            )?;
            file(&mut b, "etc/group", 0o644, b"root:x:0:\nnobody:x:65534:\n")?;
            let mut seen = std::collections::BTreeSet::new();
            for line in applets.lines() {
                let p = line.trim().trim_start_matches('/');
                if p.is_empty() || p == "bin/busybox" || !seen.insert(p.to_string()) {
                    continue;
                }
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                h.set_mtime(0);
                b.append_link(&mut h, p, "/bin/busybox")?;
            }
            Ok(())
        })();
        build.map_err(tar_err)?;
        let tar_bytes = b
            .into_inner()
            .map_err(io_err("finish busybox layer", host))?;
        let (digest, size) = self.put_blob(&tar_bytes[..], None)?;
        let diff_id = digest.clone();
        let host = super::platform::Platform::host();
        let mut config = json!({
            "architecture": host.architecture,
            "os": host.os,
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"],
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created_by": "minik8s-runtime: built-in busybox from the host's /bin/busybox" }],
        });
        if !host.variant.is_empty() {
            config["variant"] = json!(host.variant);
        }
        let layers = [NewLayer {
            digest,
            size,
            media_type: MEDIA_LAYER_TAR.into(),
            diff_id,
        }];
        self.add_image("busybox:latest", &config, &layers)
    }
}

fn ref_name(d: &oci_spec::image::Descriptor) -> Option<String> {
    let ann = d.annotations().as_ref()?;
    ann.get("io.containerd.image.name")
        .or_else(|| ann.get("org.opencontainers.image.ref.name"))
        .cloned()
}
