//! Test harness: a private runtime root and cgroup parent per test, driven through the real
//! binary on the real kernel. The guard's Drop force-removes every container and sandbox it
//! created, the root and the (then empty) cgroup parent.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_minik8s-runtime");

pub struct Rt {
    pub root: PathBuf,
    /// The runtime's state directory for this root (on tmpfs under /run).
    pub state: PathBuf,
    /// The cgroup parent of this runtime's containers: the root dir's name.
    pub cgroup_parent: PathBuf,
}

pub fn rand_hex() -> String {
    let mut b = [0u8; 6];
    use std::io::Read;
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Rt {
    pub fn new(test: &str) -> Self {
        let root = std::env::temp_dir().join(format!("minik8s-rt-{test}-{}", rand_hex()));
        fs::create_dir_all(&root).unwrap();
        let state = runtime::state_dir_for(&root);
        let cgroup_parent = PathBuf::from(root.file_name().unwrap());
        Rt {
            root,
            state,
            cgroup_parent,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root")
            .arg(&self.root)
            .env("MINIK8S_RUNTIME_CGROUP_PARENT", &self.cgroup_parent)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        if args.first() == Some(&"create") {
            return self.run_passing_stdio(args);
        }
        self.cmd(args).output().unwrap()
    }

    /// OCI `create` hands its stdout and stderr to the container (runc's pass-through), which
    /// holds them until it exits: through pipes, `output()` would wait for that. Files instead.
    fn run_passing_stdio(&self, args: &[&str]) -> Output {
        let dir = TempDir::new("createio");
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let status = self
            .cmd(args)
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: fs::read(&out).unwrap(),
            stderr: fs::read(&err).unwrap(),
        }
    }

    /// Run and expect success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// [`Rt::ok`] for a command that prints one line, such as `run -d` printing the new
    /// container's id: that line, without its newline.
    pub fn ok_line(&self, args: &[&str]) -> String {
        self.ok(args).trim().to_string()
    }

    pub fn inspect(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", id])).unwrap()
    }

    /// Wait until `f` holds, up to `secs` seconds.
    pub fn wait_for(&self, secs: u64, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// No container left: neither its state (tmpfs) nor its writable layer and log (disk, in
    /// shards `containers/<x>/<id>`, which stay).
    pub fn no_containers(&self) -> bool {
        let empty = |d: &Path| fs::read_dir(d).map_or(true, |mut rd| rd.next().is_none());
        let shards: Vec<PathBuf> = fs::read_dir(self.root.join("containers"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        empty(&self.state.join("containers")) && shards.iter().all(|s| empty(s))
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-q"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.run(&["rm", "-f", id]);
        }
        if let Ok(rd) = fs::read_dir(self.state.join("sandboxes")) {
            for e in rd.flatten() {
                let _ = self.run(&["sandbox", "rm", "-f", &e.file_name().to_string_lossy()]);
            }
        }
        let _ = fs::remove_dir_all(&self.root);
        let _ = fs::remove_dir_all(&self.state);
        runtime::cgroups::Hierarchy::host().remove_if_empty(&self.cgroup_parent);
    }
}

/// A temp dir removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        let p = std::env::temp_dir().join(format!("minik8s-{what}-{}", rand_hex()));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A tar layer from (path, content) pairs; content None makes a directory. Raw names allowed.
pub fn tar_layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut h = tar::Header::new_gnu();
        match content {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
            }
            Some(c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(c.len() as u64);
            }
        }
        let name = h.as_old_mut().name.as_mut();
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, content.unwrap_or("").as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Write an OCI image layout with the host busybox layer at the bottom plus `layers`.
pub fn oci_layout(dir: &Path, tag: &str, layers: &[Vec<u8>]) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |b: &[u8]| {
        let h = sha256_hex(b);
        fs::write(dir.join("blobs/sha256").join(&h), b).unwrap();
        (format!("sha256:{h}"), b.len())
    };
    let mut descs = Vec::new();
    let mut diffs = Vec::new();
    for l in layers {
        let (d, s) = put(l);
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s}));
        diffs.push(d);
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diffs}});
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs}, "layers": descs});
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// A layer with the host's static busybox and a few applets.
pub fn busybox_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let bin = fs::read("/bin/busybox").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(bin.len() as u64);
    b.append_data(&mut h, "bin/busybox", &bin[..]).unwrap();
    for applet in ["sh", "ls", "cat", "echo", "test", "find"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// Cgroup, netns inode, mount leftovers of a container, given its inspect output taken while it ran.
pub fn leftovers(root: &Path, inspect: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for d in inspect["CgroupDirs"].as_array().into_iter().flatten() {
        let p = d["path"].as_str().unwrap();
        if Path::new(p).exists() {
            out.push(format!("cgroup {p}"));
        }
    }
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    if mounts.contains(root.to_str().unwrap()) {
        out.push("mount under the runtime root".into());
    }
    let state = runtime::state_dir_for(root);
    if mounts.contains(state.to_str().unwrap()) {
        out.push("mount under the runtime state".into());
    }
    if let Some(net) = inspect["Namespaces"]["net"].as_u64() {
        for e in fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(m) = fs::metadata(e.path().join("ns/net")) {
                if std::os::unix::fs::MetadataExt::ino(&m) == net {
                    out.push(format!(
                        "netns {net} still used by pid {}",
                        e.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    out
}
