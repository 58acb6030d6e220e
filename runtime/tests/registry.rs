//! Pulls over HTTPS from a real registry: Debian's `docker-registry`, started by each test on a
//! free loopback port with a certificate from a CA the test makes (rcgen), an image pushed
//! into it with skopeo, then pulled by the `minik8s-runtime` binary and run. Plain HTTP is
//! `runtime.rs`'s `pull_from_a_local_registry`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// The htpasswd line for `minik8s` / `s3cret` (bcrypt, cost 5: `htpasswd -nbB -C 5`).
const HTPASSWD: &str = "minik8s:$2b$05$7686OlAan2LqYqbvxNaSbOBIwEnHzmugyucK9M92P1lx1SbqjR1C6\n";

/// A `docker-registry serve` this test started, with its config, certificates and storage in
/// `dir`; on drop the process (only it, by its pid) is killed and reaped, then `dir` removed.
struct Registry {
    child: std::process::Child,
    port: u16,
    dir: TempDir,
}

impl Registry {
    /// Serve HTTPS on 127.0.0.1 with a certificate signed by a fresh CA (`ca_cert()`);
    /// with `htpasswd`, every request needs Basic auth.
    fn start(htpasswd: Option<&str>) -> Registry {
        let dir = TempDir::new("registry-tls");
        let d = dir.path();
        make_pki(d);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n\
             http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {root}/registry.crt\n    key: {root}/registry.key\n",
            root = d.display()
        );
        if let Some(h) = htpasswd {
            fs::write(d.join("htpasswd"), h).unwrap();
            config += &format!(
                "auth:\n  htpasswd:\n    realm: minik8s\n    path: {}/htpasswd\n",
                d.display()
            );
        }
        fs::write(d.join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry installed (apt-get install docker-registry)");
        let mut registry = Registry { child, port, dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = registry.child.try_wait().unwrap();
            if exited.is_some() || std::time::Instant::now() > deadline {
                panic!(
                    "docker-registry did not start ({exited:?}): {}",
                    fs::read_to_string(registry.dir.path().join("registry.log")).unwrap()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        registry
    }

    /// `127.0.0.1:<port>/<repo>`.
    fn reference(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}", self.port)
    }

    /// The CA that signed the registry's certificate (PEM).
    fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("certs/ca.crt")
    }

    /// Push an OCI layout's `latest` with skopeo, trusting our CA (`--dest-cert-dir`).
    fn push(&self, layout: &Path, repo: &str, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-cert-dir"])
            .arg(self.dir.path().join("certs"));
        if let Some(c) = creds {
            cmd.args(["--dest-creds", c]);
        }
        let out = cmd
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}", self.reference(repo)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA (`certs/ca.crt`, the layout of skopeo's `--dest-cert-dir`) and the registry's
/// certificate for 127.0.0.1 and localhost signed by it (`registry.crt`, `registry.key`).
fn make_pki(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "minik8s test registry CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();

    fs::create_dir_all(dir.join("certs")).unwrap();
    fs::write(dir.join("certs/ca.crt"), ca_cert.pem()).unwrap();
    fs::write(dir.join("registry.crt"), cert.pem()).unwrap();
    fs::write(dir.join("registry.key"), key.serialize_pem()).unwrap();
}

/// An image: the host's busybox plus a layer with `/etc/pulled`; returns that layer.
fn image_layout(dir: &Path) -> Vec<u8> {
    let extra = tar_layer(&[("etc/", None), ("etc/pulled", Some("over-https\n"))]);
    oci_layout(dir, "latest", &[busybox_layer(), extra.clone()]);
    extra
}

/// A failed command: exactly one line on stderr, returned.
fn one_line_error(rt: &Rt, args: &[&str]) -> String {
    let out = rt.run(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("minik8s-runtime: "), "{err}");
    err
}

#[test]
fn pull_over_https_trusts_the_given_ca_only() {
    let registry = Registry::start(None);
    let layout = TempDir::new("layout-tls");
    let extra = image_layout(layout.path());
    registry.push(layout.path(), "minik8s/tls:v1", None);
    let reference = registry.reference("minik8s/tls:v1");
    let rt = Rt::new("pull-tls");

    // a loopback registry may be plain HTTP, but one that speaks TLS must be trusted
    let err = one_line_error(&rt, &["pull", &reference]);
    assert!(err.contains("certificate not trusted"), "{err}");
    assert!(err.contains("issued by an unknown CA"), "{err}");
    assert!(err.contains("--registry-ca"), "{err}");
    assert!(
        !rt.root.join("images").exists()
            || fs::read_dir(rt.root.join("images")).unwrap().count() == 0,
        "nothing stored by a refused pull"
    );

    let ca = registry.ca_cert();
    let name = rt.ok(&["pull", "--registry-ca", ca.to_str().unwrap(), &reference]);
    assert_eq!(name.trim(), reference);
    // skopeo compressed the layer on push; unpacked, it is ours (layers are keyed by diff id)
    let layer = rt.root.join("layers").join(sha256_hex(&extra));
    assert_eq!(
        fs::read_to_string(layer.join("etc/pulled")).unwrap(),
        "over-https\n"
    );
    let out = rt.ok(&["run", "--rm", &reference, "cat", "/etc/pulled"]);
    assert_eq!(out, "over-https\n");

    // --insecure-registry: HTTPS without verifying the certificate (dockerd's rule)
    let rt2 = Rt::new("pull-tls-insecure");
    let name = rt2.ok(&[
        "pull",
        "--insecure-registry",
        &format!("127.0.0.1:{}", registry.port),
        &reference,
    ]);
    assert_eq!(name.trim(), reference);

    // a bundle that is not one: one clear line too
    let bogus = layout.path().join("index.json");
    let err = one_line_error(
        &rt2,
        &["pull", "--registry-ca", bogus.to_str().unwrap(), &reference],
    );
    assert!(
        err.contains("CA bundle") && err.contains("no PEM certificate"),
        "{err}"
    );
}

#[test]
fn pull_over_https_with_htpasswd_basic_auth() {
    let registry = Registry::start(Some(HTPASSWD));
    let layout = TempDir::new("layout-auth");
    image_layout(layout.path());
    registry.push(layout.path(), "minik8s/private:v1", Some("minik8s:s3cret"));
    let reference = registry.reference("minik8s/private:v1");
    let ca = registry.ca_cert();
    let ca = ca.to_str().unwrap();
    let rt = Rt::new("pull-auth");

    let err = one_line_error(&rt, &["pull", "--registry-ca", ca, &reference]);
    assert!(
        err.contains("unauthorized") && err.contains("--creds"),
        "{err}"
    );
    let err = one_line_error(
        &rt,
        &[
            "pull",
            "--registry-ca",
            ca,
            "--creds",
            "minik8s:wrong",
            &reference,
        ],
    );
    assert!(
        err.contains("unauthorized") && err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "no password in messages: {err}");

    let name = rt.ok(&[
        "pull",
        "--registry-ca",
        ca,
        "--creds",
        "minik8s:s3cret",
        &reference,
    ]);
    assert_eq!(name.trim(), reference);
    let out = rt.ok(&["run", "--rm", &reference, "cat", "/etc/pulled"]);
    assert_eq!(out, "over-https\n");
}

/// An OCI layout whose `latest` is an index of two images, linux/amd64 and linux/arm64/v8:
/// the host's busybox plus a layer whose `/etc/arch` names the platform, and a zstd layer
/// (`tar+zstd`) with `/etc/zstd`.
fn two_platform_layout(dir: &Path) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |b: &[u8]| {
        let h = sha256_hex(b);
        fs::write(dir.join("blobs/sha256").join(&h), b).unwrap();
        (format!("sha256:{h}"), b.len())
    };
    let busybox = busybox_layer();
    let zstd_tar = tar_layer(&[("etc/", None), ("etc/zstd", Some("unpacked\n"))]);
    let zstd = ruzstd::encoding::compress_to_vec(
        &zstd_tar[..],
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    let mut manifests = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let arch_tar = tar_layer(&[("etc/", None), ("etc/arch", Some(arch))]);
        let mut layers = Vec::new();
        let mut diffs = Vec::new();
        for (blob, tar, media) in [
            (&busybox, &busybox, "application/vnd.oci.image.layer.v1.tar"),
            (
                &arch_tar,
                &arch_tar,
                "application/vnd.oci.image.layer.v1.tar",
            ),
            (
                &zstd,
                &zstd_tar,
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        ] {
            let (d, s) = put(blob);
            layers.push(serde_json::json!({"mediaType": media, "digest": d, "size": s}));
            diffs.push(format!("sha256:{}", sha256_hex(tar)));
        }
        let mut config = serde_json::json!({"architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diffs}});
        let mut platform = serde_json::json!({"architecture": arch, "os": "linux"});
        if let Some(v) = variant {
            config["variant"] = v.into();
            platform["variant"] = v.into();
        }
        let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": layers});
        let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
        manifests.push(
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms, "platform": platform}),
        );
    }
    let index = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let (id, is) = put(&serde_json::to_vec(&index).unwrap());
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": is,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// A two-platform image: a pull takes the node's platform by default, `--platform` another
/// (arm64 with or without its `v8`), and a platform the index lacks is one clear line naming
/// those it has. The images' zstd layer unpacks (skopeo keeps it zstd on push).
#[test]
fn pull_picks_the_platform_from_an_index() {
    let registry = Registry::start(None);
    let layout = TempDir::new("layout-platforms");
    two_platform_layout(layout.path());
    let mut cmd = Command::new("skopeo");
    let out = cmd
        .args(["copy", "--quiet", "--all", "--dest-cert-dir"])
        .arg(registry.dir.path().join("certs"))
        .arg(format!("oci:{}:latest", layout.path().display()))
        .arg(format!(
            "docker://{}",
            registry.reference("minik8s/multi:v1")
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo: {out:?}");
    let reference = registry.reference("minik8s/multi:v1");
    let ca = registry.ca_cert();
    let ca = ca.to_str().unwrap();
    let rt = Rt::new("pull-platforms");
    let arch_of = |platform: Option<&str>| {
        let mut args = vec!["pull", "--registry-ca", ca, &reference];
        if let Some(p) = platform {
            args.extend(["--platform", p]);
        }
        rt.ok(&args);
        rt.ok(&["run", "--rm", &reference, "cat", "/etc/arch", "/etc/zstd"])
    };
    let host = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    assert_eq!(arch_of(None), format!("{host}unpacked\n"));
    assert_eq!(arch_of(Some("linux/arm64")), "arm64unpacked\n");
    assert_eq!(arch_of(Some("linux/arm64/v8")), "arm64unpacked\n");
    assert_eq!(arch_of(Some("linux/amd64")), "amd64unpacked\n");
    let err = one_line_error(
        &rt,
        &[
            "pull",
            "--registry-ca",
            ca,
            "--platform",
            "linux/s390x",
            &reference,
        ],
    );
    assert!(err.contains("no manifest for linux/s390x"), "{err}");
    assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
    let out = rt.run(&["pull", "--platform", "linux", &reference]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("OS/ARCH"), "{err}");
    // the layer came as zstd (skopeo keeps a compressed layer as it is)
    let zstd_blobs = fs::read_dir(rt.root.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read(e.path())
                .unwrap()
                .starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        })
        .count();
    assert_eq!(zstd_blobs, 1);
}
