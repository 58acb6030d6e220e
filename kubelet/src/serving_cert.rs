//! The kubelet API's TLS identity. Like the real kubelet, the API is HTTPS only: with
//! `--tls-cert-file`/`--tls-private-key-file` it serves that pair, otherwise it makes a
//! self-signed certificate for its node name and addresses on first start and keeps it under
//! `<root-dir>/pki/` (`kubelet.crt`, `kubelet.key`), so a restart presents the same one.
//! TLS only hides the traffic; who may call is decided by the bearer token (see [`crate::server`]).

use std::path::{Path, PathBuf};

/// Why the serving certificate could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate chain and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct ServingCert {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl ServingCert {
    /// The pair from files given on the command line.
    pub fn from_files(cert: &Path, key: &Path) -> Result<ServingCert, CertError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| CertError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        Ok(ServingCert {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    /// The self-signed pair kept in `dir` (made there on first use) for the given DNS names
    /// and IP addresses. A pair whose names no longer cover `names` is replaced.
    pub fn self_signed(dir: &Path, names: &[String]) -> Result<ServingCert, CertError> {
        let (crt, key, sans) = (
            dir.join("kubelet.crt"),
            dir.join("kubelet.key"),
            dir.join("kubelet.names"),
        );
        let wanted = names.join("\n");
        if let (Ok(c), Ok(k), Ok(n)) = (
            std::fs::read(&crt),
            std::fs::read(&key),
            std::fs::read_to_string(&sans),
        ) {
            if n == wanted {
                return Ok(ServingCert {
                    cert_pem: c,
                    key_pem: k,
                });
            }
        }
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(names.to_vec())?;
        let out = ServingCert {
            cert_pem: cert.pem().into_bytes(),
            key_pem: signing_key.serialize_pem().into_bytes(),
        };
        let write = |p: &Path, data: &[u8], mode: u32| {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::create_dir_all(dir)
                .and_then(|_| {
                    let tmp = p.with_extension("tmp");
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(mode)
                        .open(&tmp)?;
                    f.write_all(data)?;
                    std::fs::rename(&tmp, p)
                })
                .map_err(|source| CertError::Write {
                    path: p.to_path_buf(),
                    source,
                })
        };
        write(&key, &out.key_pem, 0o600)?;
        write(&crt, &out.cert_pem, 0o644)?;
        write(&sans, wanted.as_bytes(), 0o644)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_is_kept_and_replaced_when_names_change() {
        let dir = std::env::temp_dir().join(format!("minik8s-cert-{}", std::process::id()));
        let names = vec!["node-a".to_string(), "127.0.0.1".to_string()];
        let a = ServingCert::self_signed(&dir, &names).unwrap();
        let b = ServingCert::self_signed(&dir, &names).unwrap();
        assert_eq!(
            a.cert_pem, b.cert_pem,
            "a restart presents the same certificate"
        );
        assert!(String::from_utf8_lossy(&a.cert_pem).starts_with("-----BEGIN CERTIFICATE-----"));
        let c = ServingCert::self_signed(&dir, &["node-b".to_string()]).unwrap();
        assert_ne!(a.cert_pem, c.cert_pem);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("kubelet.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
