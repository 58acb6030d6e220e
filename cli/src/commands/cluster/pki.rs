//! `minikctl cluster pki --dir DIR --apiserver-san NAME_OR_IP ... [--server URL] [-q]`: a
//! cluster's certificates and kubeconfigs written to a directory, what kubeadm's `init phase
//! certs` and `init phase kubeconfig` do. `docker-compose.yml` starts from it: its `init`
//! service runs this into a volume the control plane mounts.
//!
//! The certificates are `client::pki`'s (the CA, the apiserver's serving certificate valid for
//! every `--apiserver-san`, the apiserver's client certificate towards kubelets, the admin's);
//! the kubeconfigs each embed the CA, one client certificate and its key, so one file is the
//! whole credential of the admin (`admin.conf`, `kubernetes-admin` in `system:masters`), the
//! controller manager (`controller-manager.conf`, `system:kube-controller-manager`) and the
//! scheduler (`scheduler.conf`, `system:kube-scheduler`), as kubeadm names them.
//!
//! Running it again keeps every file that is there: the CA above all, since every credential
//! already handed out chains to it. So `docker-compose up` after a `stop` finds the same
//! cluster. Read next: `client::pki` (what each certificate says), then `token.rs` (how a
//! node joins once this PKI exists).

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use client::pki::{Credential, Pki, Sans};

use crate::printer::emit;

/// The controller manager's user, as kube-controller-manager's kubeconfig names it.
pub const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
/// The scheduler's user, as kube-scheduler's kubeconfig names it.
pub const SCHEDULER_USER: &str = "system:kube-scheduler";

/// The apiserver's port when `--server` is not given.
const DEFAULT_PORT: u16 = 6443;

/// The arguments of `minikctl cluster pki`.
#[derive(clap::Args, Debug)]
pub struct PkiArgs {
    /// The directory to write to (kubeadm's /etc/kubernetes/pki); created if missing.
    #[arg(long)]
    pub dir: PathBuf,
    /// A host name or IP address the apiserver is reached at, for its serving certificate
    /// (repeatable; localhost, 127.0.0.1 and the kubernetes.default names are always in).
    #[arg(long = "apiserver-san", value_name = "NAME_OR_IP")]
    pub apiserver_sans: Vec<String>,
    /// The apiserver URL the kubeconfigs point at (default: https://<first SAN>:6443).
    // the id `server` is the global flag's: clap lets this one stand in for it here
    #[arg(short = 's', long, value_name = "URL")]
    pub server: Option<String>,
    /// Print nothing on success.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// One file of the PKI directory and what this run did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    /// `false`: it was there and was kept as it is.
    pub created: bool,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.created { "wrote" } else { "kept" };
        write!(f, "{verb} {}", self.path.display())
    }
}

pub fn run(args: PkiArgs) -> anyhow::Result<()> {
    let sans = parse_sans(&args.apiserver_sans)?;
    let server = match &args.server {
        Some(s) => check_server(s)?,
        None => default_server(&args.apiserver_sans),
    };
    let written = write_pki(&args.dir, &sans, &server)?;
    if !args.quiet {
        let lines: String = written.iter().map(|w| format!("{w}\n")).collect();
        emit(&lines)?;
    }
    Ok(())
}

/// Write (or keep) the PKI under `dir` for `sans` and the kubeconfigs for `server`: every
/// file in the order kubeadm makes them, each marked created or kept.
pub fn write_pki(dir: &Path, sans: &Sans, server: &str) -> anyhow::Result<Vec<Written>> {
    let credentials = [
        Credential::Ca,
        Credential::Apiserver,
        Credential::ApiserverKubeletClient,
        Credential::Admin,
    ];
    let files: Vec<PathBuf> = credentials
        .iter()
        .flat_map(|c| ["crt", "key"].map(|ext| dir.join(format!("{}.{ext}", c.file_stem()))))
        .collect();
    let existed: Vec<bool> = files.iter().map(|p| p.exists()).collect();
    let pki = Pki::create(dir, sans)?;
    let mut written: Vec<Written> = files
        .into_iter()
        .zip(existed)
        .map(|(path, existed)| Written {
            path,
            created: !existed,
        })
        .collect();
    for (file, user) in [
        ("admin.conf", None),
        ("controller-manager.conf", Some(CONTROLLER_MANAGER_USER)),
        ("scheduler.conf", Some(SCHEDULER_USER)),
    ] {
        let path = dir.join(file);
        let created = !path.exists();
        if created {
            let kubeconfig = match user {
                None => pki.admin_kubeconfig(server)?,
                Some(user) => {
                    let (cert, key) = pki.issue_client(user, &[])?;
                    pki.kubeconfig(server, user, &cert, &key)?
                }
            };
            write_private(&path, &kubeconfig)?;
        }
        written.push(Written { path, created });
    }
    Ok(written)
}

/// Each `--apiserver-san`: an IP address, else a DNS name.
fn parse_sans(values: &[String]) -> anyhow::Result<Sans> {
    let mut sans = Sans::default();
    for value in values {
        if let Ok(ip) = value.parse::<IpAddr>() {
            sans.ips.push(ip);
        } else if is_dns_name(value) {
            sans.dns_names.push(value.to_ascii_lowercase());
        } else {
            bail!("--apiserver-san {value:?} is neither an IP address nor a DNS name");
        }
    }
    Ok(sans)
}

/// A DNS name as a certificate's SAN holds it: dot-separated labels of letters, digits and
/// inner hyphens, at most 253 characters.
fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `--server` must be an https URL: every credential here is a client certificate, which
/// only a TLS connection carries.
fn check_server(server: &str) -> anyhow::Result<String> {
    let uri: http::Uri = server
        .parse()
        .with_context(|| format!("--server {server:?} is not a URL"))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        bail!("--server {server:?} must be an https:// URL with a host (client certificates need TLS)");
    }
    Ok(server.trim_end_matches('/').to_string())
}

/// `https://<first SAN>:6443`, or loopback without any SAN.
fn default_server(sans: &[String]) -> String {
    let host = match sans.first() {
        None => "127.0.0.1".to_string(),
        Some(s) => match s.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => s.to_ascii_lowercase(),
        },
    };
    format!("https://{host}:{DEFAULT_PORT}")
}

/// Write a file only its owner may read (a kubeconfig holds a private key), beside its final
/// name first and then renamed, so a reader never sees half of it.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("conf.tmp");
    let result = (|| {
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The DER inside a PEM certificate (`ByteString` reads base64).
    fn der(pem: &str) -> Vec<u8> {
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        serde_json::from_value::<k8s_openapi::ByteString>(b64.into())
            .unwrap()
            .0
    }

    fn sans(values: &[&str]) -> Sans {
        parse_sans(&values.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn writes_the_pki_and_kubeconfigs_then_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let server = "https://apiserver:6443";
        let first = write_pki(&pki_dir, &sans(&["apiserver", "10.0.0.5"]), server).unwrap();
        let names: Vec<String> = first
            .iter()
            .map(|w| w.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "ca.crt",
                "ca.key",
                "apiserver.crt",
                "apiserver.key",
                "apiserver-kubelet-client.crt",
                "apiserver-kubelet-client.key",
                "admin.crt",
                "admin.key",
                "admin.conf",
                "controller-manager.conf",
                "scheduler.conf",
            ]
        );
        assert!(first.iter().all(|w| w.created && w.path.exists()));
        assert_eq!(
            first[0].to_string(),
            format!("wrote {}", first[0].path.display())
        );

        // the serving certificate answers to the SANs given
        let serving = std::fs::read_to_string(pki_dir.join("apiserver.crt")).unwrap();
        let (dns, ips) = client::pki::sans_of(&serving).unwrap();
        assert!(dns.iter().any(|d| d == "apiserver"), "{dns:?}");
        assert!(ips.contains(&"10.0.0.5".parse().unwrap()), "{ips:?}");

        // each kubeconfig: the server, the CA, its own user; readable by its owner only
        let ca = std::fs::read_to_string(pki_dir.join("ca.crt")).unwrap();
        for (file, user) in [
            ("admin.conf", client::pki::ADMIN_USER),
            ("controller-manager.conf", CONTROLLER_MANAGER_USER),
            ("scheduler.conf", SCHEDULER_USER),
        ] {
            let path = pki_dir.join(file);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
            let yaml = std::fs::read_to_string(&path).unwrap();
            let parts = client::pki::read_kubeconfig(&yaml).unwrap();
            assert_eq!(parts.server, server, "{file}");
            assert_eq!(
                parts.ca_pem.as_deref().map(str::trim),
                Some(ca.trim()),
                "{file}"
            );
            let cert = parts.cert_pem.expect("a client certificate");
            assert_eq!(client::pki::identity_of(&der(&cert)).unwrap().user, user);
            client::pki::verify_signed_by(&cert, &ca).unwrap();
        }

        // a rerun keeps every file byte for byte
        let before: Vec<Vec<u8>> = first
            .iter()
            .map(|w| std::fs::read(&w.path).unwrap())
            .collect();
        let again = write_pki(&pki_dir, &sans(&["apiserver"]), "https://elsewhere:1").unwrap();
        assert!(again.iter().all(|w| !w.created));
        assert_eq!(
            again[0].to_string(),
            format!("kept {}", again[0].path.display())
        );
        let after: Vec<Vec<u8>> = again
            .iter()
            .map(|w| std::fs::read(&w.path).unwrap())
            .collect();
        assert_eq!(before, after);
    }

    #[test]
    fn a_serving_certificate_without_a_new_san_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path(), &sans(&["apiserver"]), "https://apiserver:6443").unwrap();
        let err = write_pki(dir.path(), &sans(&["other"]), "https://other:6443").unwrap_err();
        assert!(format!("{err:#}").contains("not valid for"), "{err:#}");
    }

    #[test]
    fn sans_servers_and_their_errors() {
        let s = sans(&["Apiserver", "10.1.2.3", "::1", "node-1.lab.example"]);
        assert_eq!(s.dns_names, ["apiserver", "node-1.lab.example"]);
        assert_eq!(s.ips.len(), 2);
        for bad in ["", "a b", "-x", "x/y", "https://apiserver"] {
            assert!(parse_sans(&[bad.to_string()]).is_err(), "{bad:?}");
        }
        assert_eq!(default_server(&[]), "https://127.0.0.1:6443");
        assert_eq!(
            default_server(&["apiserver".into()]),
            "https://apiserver:6443"
        );
        assert_eq!(
            default_server(&["fd00::1".into()]),
            "https://[fd00::1]:6443"
        );
        assert_eq!(check_server("https://a:1/").unwrap(), "https://a:1");
        assert!(check_server("http://a:1").is_err());
        assert!(check_server("a b").is_err());
    }

    #[test]
    fn the_flag_server_belongs_to_pki_and_q_silences_it() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "minikctl",
            "cluster",
            "pki",
            "--dir",
            "/x",
            "--apiserver-san",
            "apiserver",
            "--server",
            "https://apiserver:6443",
            "-q",
        ])
        .unwrap();
        let crate::cli::Command::Cluster(args) = cli.command else {
            panic!("not a cluster command");
        };
        let super::super::ClusterCommand::Pki(pki) = args.command else {
            panic!("not pki");
        };
        assert_eq!(pki.server.as_deref(), Some("https://apiserver:6443"));
        assert!(pki.quiet);
        assert_eq!(pki.apiserver_sans, ["apiserver"]);
    }
}
