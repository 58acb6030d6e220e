//! The cluster PKI: the certificate authority every component trusts, and the certificates it
//! signs, laid out as kubeadm lays out `/etc/kubernetes/pki`.
//!
//! A **certificate** binds a public key to a name (the *subject*: `CN=kubernetes-admin,
//! O=system:masters`), signed by an issuer. A **certificate authority** (CA) is a key pair whose
//! self-signed certificate everyone in the cluster trusts: a certificate it signed is believed,
//! one it did not sign is refused. So the cluster needs one CA (`ca.crt`/`ca.key`), and then:
//!
//! - the apiserver's **serving certificate** (`apiserver.crt`), which a client checks before it
//!   sends anything: is it signed by the CA, and is the address I dialled one of its **SANs**
//!   (*subject alternative names*: the DNS names and IP addresses the certificate is valid
//!   for)? That is why every address the apiserver listens on must be in it;
//! - **client certificates**, which authenticate their holder to the apiserver: the subject's
//!   CN is the user name and each O (organization) a group, as kube-apiserver reads them.
//!   `admin.crt` is `kubernetes-admin` in `system:masters`; `apiserver-kubelet-client.crt` is
//!   what the apiserver presents to kubelets; [`Pki::issue_client`] makes more (a kubelet that
//!   joins gets `system:node:NAME` in `system:nodes`).
//!
//! A machine joining the cluster must trust the right CA before it has any credential. kubeadm
//! solves this with the **CA certificate hash** ([`Pki::ca_cert_hash`]): the SHA-256 of the CA's
//! *SubjectPublicKeyInfo* (SPKI: the DER encoding of its public key and algorithm), printed as
//! `sha256:<hex>` in the join command. The joiner fetches the CA certificate over an
//! unverified connection and accepts it only if its SPKI hashes to that value.
//!
//! Creating over an existing PKI keeps what is there, as `kubeadm init phase certs` does: the CA
//! is loaded, never replaced (every credential already handed out would stop working), and a
//! missing certificate is signed by the existing CA. Keys are written mode 0600.
//!
//! A machine that should keep its private key to itself asks for a certificate with a
//! **certificate signing request** instead (`csr.rs`, [`Pki::sign_request`]): kubeadm's TLS
//! bootstrapping, where the controller manager signs a joining kubelet's request.
//!
//! Read next: `identity.rs` (what a certificate says: its user, groups, SANs, SPKI hash),
//! `kubeconfig.rs` (a credential as a kubeconfig), `files.rs` (how keys reach the disk); the
//! apiserver's `auth/x509.rs` authenticates the client certificates made here.

mod csr;
mod files;
mod identity;
mod kubeconfig;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub use csr::{new_request, parse_request, CertificateRequest, CsrError, Usage, CSR_PEM_LABEL};
pub use identity::{
    ca_cert_hash_of, certificate_pem, identity_of, is_certificate_pem, is_valid_now, sans_of,
    verify_signed_by, Identity,
};
pub use kubeconfig::{
    read as read_kubeconfig, render as render_kubeconfig, KubeconfigParts, KubeconfigUser,
    CLUSTER_NAME,
};

/// The CA's common name.
pub const CA_COMMON_NAME: &str = "minik8s-ca";
/// The admin credential's user, as kubeadm names it.
pub const ADMIN_USER: &str = "kubernetes-admin";
/// The user the apiserver is when it calls kubelets.
pub const APISERVER_KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
/// The group whose members may do anything (kube-apiserver's superuser group).
pub const MASTERS_GROUP: &str = "system:masters";

/// How long the CA is valid: ten years, as kubeadm's.
const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a certificate the CA signs is valid: one year, as kubeadm's.
const LEAF_VALIDITY_DAYS: i64 = 365;
/// Certificates start a little in the past, so a machine whose clock lags accepts them.
const BACKDATE_MINUTES: i64 = 5;

/// Errors making or reading the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The PKI directory could not be created.
    #[error("cannot create the PKI directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key file could not be read.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key file could not be written.
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A certificate exists without its private key.
    #[error("{cert} exists but its key {key} does not: remove the certificate to make a new pair")]
    KeyMissing { cert: PathBuf, key: PathBuf },
    /// A file is not the PEM certificate or key it should be.
    #[error("{path} is not a valid {what}: {reason}")]
    Invalid {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    /// A key pair or certificate could not be generated or signed.
    #[error("cannot generate {what}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    /// An existing certificate was not signed by the cluster CA.
    #[error("{path} is not signed by the cluster CA ({reason}): remove it (and its key) to issue a new one")]
    NotSignedByCa { path: PathBuf, reason: String },
    /// An existing serving certificate lacks a name the apiserver must now answer to.
    #[error("{path} exists but is not valid for {missing}: remove it (and its key) to issue one with the new names")]
    SansChanged { path: PathBuf, missing: String },
    /// More groups than one certificate can carry here.
    #[error("a client certificate carries at most 2 groups (O values), {count} given")]
    TooManyGroups { count: usize },
    /// A kubeconfig could not be rendered.
    #[error("cannot render the kubeconfig")]
    Kubeconfig(#[source] serde_yaml::Error),
}

/// The names the apiserver's serving certificate is valid for, besides the ones every
/// apiserver has (`kubernetes`, `kubernetes.default`, ..., `localhost`, 127.0.0.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sans {
    /// Every address the apiserver listens on or is reached at.
    pub ips: Vec<IpAddr>,
    /// Host names the apiserver is reached at.
    pub dns_names: Vec<String>,
}

impl Sans {
    /// The full SAN list of the serving certificate: the given names, then the in-cluster
    /// Service names and loopback (kubeadm adds the same), without duplicates.
    pub fn serving(&self) -> (Vec<String>, Vec<IpAddr>) {
        let mut dns: Vec<String> = Vec::new();
        let builtin = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        ];
        for name in self.dns_names.iter().map(String::as_str).chain(builtin) {
            if !dns.iter().any(|d| d == name) {
                dns.push(name.to_string());
            }
        }
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in self
            .ips
            .iter()
            .copied()
            .chain([IpAddr::V4(Ipv4Addr::LOCALHOST)])
        {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        (dns, ips)
    }
}

/// The credentials kubeadm's layout holds, each a `<name>.crt` + `<name>.key` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The cluster CA (`ca`).
    Ca,
    /// The apiserver's serving certificate (`apiserver`).
    Apiserver,
    /// The apiserver's client certificate towards kubelets (`apiserver-kubelet-client`).
    ApiserverKubeletClient,
    /// The cluster administrator (`admin`).
    Admin,
}

impl Credential {
    /// The file name without `.crt`/`.key`, as kubeadm names it.
    pub fn file_stem(self) -> &'static str {
        match self {
            Credential::Ca => "ca",
            Credential::Apiserver => "apiserver",
            Credential::ApiserverKubeletClient => "apiserver-kubelet-client",
            Credential::Admin => "admin",
        }
    }
}

/// A cluster PKI on disk, with its CA loaded to sign more certificates.
pub struct Pki {
    dir: PathBuf,
    ca_cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Write the cluster PKI under `dir` (kept as it is where it exists): the CA, the
    /// apiserver's serving certificate for `sans`, its kubelet client certificate and the
    /// admin's. An existing serving certificate must already cover `sans`.
    pub fn create(dir: &Path, sans: &Sans) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let ca_cert = dir.join("ca.crt");
        let pki = if files::pair_exists(&ca_cert, &dir.join("ca.key"))? {
            Pki::load(dir)?
        } else {
            Pki::create_ca(dir)?
        };
        let (dns, ips) = sans.serving();
        for credential in [
            Credential::Apiserver,
            Credential::ApiserverKubeletClient,
            Credential::Admin,
        ] {
            let cert_path = pki.cert_path(credential);
            if files::pair_exists(&cert_path, &pki.key_path(credential))? {
                pki.check_signed(&cert_path)?;
                if credential == Credential::Apiserver {
                    check_sans(&cert_path, &dns, &ips)?;
                }
                continue;
            }
            let (cert, key) = match credential {
                Credential::Apiserver => pki.issue("apiserver", serving_params(&dns, &ips)?)?,
                Credential::ApiserverKubeletClient => {
                    pki.issue_client(APISERVER_KUBELET_CLIENT_USER, &[MASTERS_GROUP])?
                }
                Credential::Admin => pki.issue_client(ADMIN_USER, &[MASTERS_GROUP])?,
                Credential::Ca => continue, // loaded or made above
            };
            pki.write_pair(credential, &cert, &key)?;
        }
        Ok(pki)
    }

    /// Load the CA of the PKI under `dir`, to sign with and to hash.
    pub fn load(dir: &Path) -> Result<Pki, PkiError> {
        Pki::load_ca(&dir.join("ca.crt"), &dir.join("ca.key"))
    }

    /// Load a CA from its certificate and key files, as kube-controller-manager's
    /// `--cluster-signing-cert-file` and `--cluster-signing-key-file` name them; the PKI's
    /// directory is the certificate's.
    pub fn load_ca(cert_path: &Path, key_path: &Path) -> Result<Pki, PkiError> {
        let dir = cert_path.parent().unwrap_or(Path::new(".")).to_owned();
        let ca_cert_pem = files::read(cert_path)?;
        let key_pem = files::read(key_path)?;
        let invalid = |path: &Path, what, e: rcgen::Error| PkiError::Invalid {
            path: path.to_owned(),
            what,
            reason: e.to_string(),
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|e| invalid(key_path, "private key", e))?;
        // the hash parses the certificate strictly, so a broken CA is refused here
        identity::ca_cert_hash_of(&ca_cert_pem).map_err(|reason| PkiError::Invalid {
            path: cert_path.to_owned(),
            what: "certificate",
            reason,
        })?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, key)
            .map_err(|e| invalid(cert_path, "CA certificate", e))?;
        Ok(Pki {
            dir,
            ca_cert_pem,
            issuer,
        })
    }

    /// A new client certificate signed by the CA, for user `cn` in `groups` (at most two):
    /// `(certificate PEM, private key PEM)`.
    pub fn issue_client(&self, cn: &str, groups: &[&str]) -> Result<(String, String), PkiError> {
        let mut params = leaf_params(cn, groups)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(cn, params)
    }

    /// The CA certificate's hash as kubeadm's `--discovery-token-ca-cert-hash` takes it:
    /// `sha256:` and the hex SHA-256 of its SubjectPublicKeyInfo.
    pub fn ca_cert_hash(&self) -> String {
        // `load` and `create_ca` checked that the certificate parses
        identity::ca_cert_hash_of(&self.ca_cert_pem).unwrap_or_default()
    }

    /// The CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The directory the PKI lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<name>.crt`.
    pub fn cert_path(&self, credential: Credential) -> PathBuf {
        self.dir.join(format!("{}.crt", credential.file_stem()))
    }

    /// `<dir>/<name>.key`.
    pub fn key_path(&self, credential: Credential) -> PathBuf {
        self.dir.join(format!("{}.key", credential.file_stem()))
    }

    /// A credential's certificate and key PEM, as written by [`Pki::create`].
    pub fn read_pair(&self, credential: Credential) -> Result<(String, String), PkiError> {
        Ok((
            files::read(&self.cert_path(credential))?,
            files::read(&self.key_path(credential))?,
        ))
    }

    /// A kubeconfig for `user` at `server_url` holding the certificate and key given (PEM) and
    /// this cluster's CA, all embedded: one file is the whole credential.
    pub fn kubeconfig(
        &self,
        server_url: &str,
        user: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<String, PkiError> {
        kubeconfig::render(
            server_url,
            &self.ca_cert_pem,
            KubeconfigUser::Certificate {
                user,
                cert_pem,
                key_pem,
            },
        )
    }

    /// The administrator's kubeconfig (kubeadm's `admin.conf`) for `server_url`.
    pub fn admin_kubeconfig(&self, server_url: &str) -> Result<String, PkiError> {
        let (cert, key) = self.read_pair(Credential::Admin)?;
        self.kubeconfig(server_url, ADMIN_USER, &cert, &key)
    }

    /// Generate the CA and write it under `dir`.
    fn create_ca(dir: &Path) -> Result<Pki, PkiError> {
        let generate = |source| PkiError::Generate {
            what: "the cluster CA".into(),
            source,
        };
        let key = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
        set_validity(&mut params, CA_VALIDITY_DAYS);
        let cert = params.self_signed(&key).map_err(generate)?;
        let ca_cert_pem = cert.pem();
        files::write_key(&dir.join("ca.key"), &key.serialize_pem())?;
        files::write_cert(&dir.join("ca.crt"), &ca_cert_pem)?;
        Ok(Pki {
            dir: dir.to_owned(),
            ca_cert_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Sign `params` with a fresh key: `(certificate PEM, key PEM)`.
    fn issue(&self, what: &str, params: CertificateParams) -> Result<(String, String), PkiError> {
        let generate = |source| PkiError::Generate {
            what: format!("a certificate for {what}"),
            source,
        };
        let key = KeyPair::generate().map_err(generate)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(generate)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// An existing certificate must be signed by this CA (kubeadm checks the same): one left
    /// from an earlier CA would be refused by every peer.
    fn check_signed(&self, cert_path: &Path) -> Result<(), PkiError> {
        let pem = files::read(cert_path)?;
        identity::verify_signed_by(&pem, &self.ca_cert_pem).map_err(|reason| {
            PkiError::NotSignedByCa {
                path: cert_path.to_owned(),
                reason,
            }
        })
    }

    /// Write a pair: the key first, so that a certificate on disk always has its key.
    fn write_pair(&self, credential: Credential, cert: &str, key: &str) -> Result<(), PkiError> {
        files::write_key(&self.key_path(credential), key)?;
        files::write_cert(&self.cert_path(credential), cert)
    }
}

/// A certificate the CA signs for `cn` in `groups`: one year, digital signature and key
/// encipherment, with the CA's key identifier so verifiers find the issuer.
fn leaf_params(cn: &str, groups: &[&str]) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(cn, groups)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_VALIDITY_DAYS);
    Ok(params)
}

/// The subject `O=<group>..., CN=<cn>` (at most two groups).
fn distinguished_name(cn: &str, groups: &[&str]) -> Result<DistinguishedName, PkiError> {
    // rcgen keeps one value per attribute type in a name; the second group is written under
    // O's OID as a custom attribute, which every parser reads as a second O.
    const ORGANIZATION_OID: [u64; 4] = [2, 5, 4, 10];
    if groups.len() > 2 {
        return Err(PkiError::TooManyGroups {
            count: groups.len(),
        });
    }
    let mut name = DistinguishedName::new();
    for (i, group) in groups.iter().enumerate() {
        let ty = if i == 0 {
            DnType::OrganizationName
        } else {
            DnType::CustomDnType(ORGANIZATION_OID.to_vec())
        };
        name.push(ty, *group);
    }
    name.push(DnType::CommonName, cn);
    Ok(name)
}

/// The apiserver's serving certificate: `CN=kube-apiserver`, server authentication, the SANs.
fn serving_params(dns: &[String], ips: &[IpAddr]) -> Result<CertificateParams, PkiError> {
    let mut params = leaf_params("kube-apiserver", &[])?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    for name in dns {
        let ia5 = name
            .clone()
            .try_into()
            .map_err(|source| PkiError::Generate {
                what: format!("a serving certificate for DNS name {name:?}"),
                source,
            })?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(ips.iter().copied().map(SanType::IpAddress));
    Ok(params)
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    set_validity_for(params, std::time::Duration::from_secs(days as u64 * 86_400));
}

/// Valid from [`BACKDATE_MINUTES`] ago until `validity` from now.
fn set_validity_for(params: &mut CertificateParams, validity: std::time::Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(BACKDATE_MINUTES);
    params.not_after = now + validity;
}

/// An existing serving certificate must cover every name asked for now (kubeadm refuses too,
/// rather than silently serving a certificate clients would reject).
fn check_sans(path: &Path, dns: &[String], ips: &[IpAddr]) -> Result<(), PkiError> {
    let pem = files::read(path)?;
    let (have_dns, have_ips) = identity::sans_of(&pem).map_err(|reason| PkiError::Invalid {
        path: path.to_owned(),
        what: "certificate",
        reason,
    })?;
    let missing: Vec<String> = dns
        .iter()
        .filter(|d| !have_dns.contains(d))
        .cloned()
        .chain(
            ips.iter()
                .filter(|ip| !have_ips.contains(ip))
                .map(IpAddr::to_string),
        )
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PkiError::SansChanged {
            path: path.to_owned(),
            missing: missing.join(", "),
        })
    }
}

#[cfg(test)]
mod tests;
