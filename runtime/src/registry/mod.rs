//! Pulling from an OCI distribution registry (the Docker Registry HTTP API v2): fetch the
//! manifest by tag (`GET /v2/<repo>/manifests/<tag>`), follow an index to the manifest of the
//! node's platform (`platform.rs`; `PullOptions::platform` for another), then fetch the config and each layer by digest (`GET /v2/<repo>/blobs/<digest>`),
//! verifying every blob against its digest as it is stored. How a registry is reached (HTTPS
//! or, for insecure registries only, plain HTTP; trusted CAs; Basic or Bearer-token login) is
//! in `client.rs`.

mod client;

use std::io::Read;
use std::path::PathBuf;

use oci_spec::image::{ImageIndex, ImageManifest};

use super::image::{normalize, sha256, ImageError, ImageStore};
use super::platform::Platform;
use client::Client;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference cannot be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    BadReference {
        reference: String,
        reason: &'static str,
    },
    /// An HTTP request failed.
    #[error("GET {url}: {reason}")]
    Http { url: String, reason: String },
    /// The registry's TLS certificate is not signed by a CA we trust (or not for its name).
    #[error("registry {registry}: TLS certificate not trusted ({reason}); give its CA with --registry-ca FILE, or mark the registry --insecure-registry")]
    Certificate { registry: String, reason: String },
    /// The extra CA bundle cannot be read.
    #[error("CA bundle {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    /// The registry refused our (lack of) credentials.
    #[error("GET {url}: unauthorized: {reason}")]
    Unauthorized { url: String, reason: String },
    /// The token service refused us.
    #[error("token request to {realm}: {reason}")]
    Token { realm: String, reason: String },
    /// A document from the registry is not what it should be.
    #[error("parse {what} from {url}: {reason}")]
    Parse {
        what: &'static str,
        url: String,
        reason: String,
    },
    /// The image is an index without a manifest for the platform asked for.
    #[error("{reference}: no manifest for {wanted} in the image's index (it has {available}); choose one with --platform")]
    NoPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    /// Storing what we fetched failed (includes digest mismatches).
    #[error(transparent)]
    Store(#[from] ImageError),
}

/// How registries are reached: the defaults are HTTPS with the system's CAs, anonymous.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Registries (`host[:port]`, as in the image reference) that may be plain HTTP and whose
    /// certificate is not verified, like dockerd's `--insecure-registry`. Loopback registries
    /// may be plain HTTP without being listed.
    pub insecure_registries: Vec<String>,
    /// A PEM bundle of CA certificates trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// For registries that ask: sent as Basic auth, to the registry or its token service.
    pub credentials: Option<Credentials>,
    /// The platform to take from a multi-platform image; `None`: the node's
    /// ([`Platform::host`]).
    pub platform: Option<Platform>,
}

/// A registry login.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// `USER:PASSWORD`, as skopeo's `--creds`.
    pub fn parse(s: &str) -> Option<Self> {
        let (username, password) = s.split_once(':')?;
        (!username.is_empty()).then(|| Credentials {
            username: username.into(),
            password: password.into(),
        })
    }

    fn basic(&self) -> String {
        use base64::Engine;
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How far the download of one blob (the config or a layer) is.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub digest: &'a str,
    /// Bytes received so far (equal to `total` at once for a blob already in the store).
    pub done: u64,
    /// The blob's size from the manifest.
    pub total: u64,
}

/// A parsed `host[:port]/repo[:tag|@digest]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    /// Tag or `sha256:` digest.
    pub reference: String,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let bad = |reason| RegistryError::BadReference {
            reference: s.to_string(),
            reason,
        };
        let (host, rest) = match s.split_once('/') {
            Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => {
                (h.to_string(), r.to_string())
            }
            _ => (
                "registry-1.docker.io".to_string(),
                if s.contains('/') {
                    s.to_string()
                } else {
                    format!("library/{s}")
                },
            ),
        };
        let (repo, reference) = if let Some((r, d)) = rest.split_once('@') {
            (r.to_string(), d.to_string())
        } else {
            match rest.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                _ => (rest.clone(), "latest".to_string()),
            }
        };
        if repo.is_empty() || reference.is_empty() {
            return Err(bad("empty repository or tag"));
        }
        Ok(Self {
            registry: host,
            repository: repo,
            reference,
        })
    }
}

/// Pull `reference` into the store; returns the name it is stored under.
pub fn pull(
    store: &ImageStore,
    reference: &str,
    opts: &PullOptions,
) -> Result<String, RegistryError> {
    pull_with_progress(store, reference, opts, &mut |_| {})
}

/// [`pull`], calling `progress` as each blob's bytes arrive.
pub fn pull_with_progress(
    store: &ImageStore,
    reference: &str,
    opts: &PullOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<String, RegistryError> {
    let r = Reference::parse(reference)?;
    let mut c = Client::connect(&r.registry, opts)?;
    let repo = &r.repository;
    let (mut bytes, media) = fetch_manifest(&mut c, repo, &r.reference)?;
    if media.contains("index") || media.contains("manifest.list") {
        let url = format!("/v2/{repo}/manifests/{}", r.reference);
        let index = ImageIndex::from_reader(&bytes[..]).map_err(|e| RegistryError::Parse {
            what: "index",
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
        let pick =
            wanted
                .choose_manifest(&index)
                .map_err(|available| RegistryError::NoPlatform {
                    reference: reference.to_string(),
                    wanted: wanted.to_string(),
                    available,
                })?;
        (bytes, _) = fetch_manifest(&mut c, repo, pick.digest().as_ref())?;
    }
    if r.reference.starts_with("sha256:") && sha256(&bytes) != r.reference {
        return Err(ImageError::DigestMismatch {
            path: reference.into(),
            expected: r.reference.clone(),
            actual: sha256(&bytes),
        }
        .into());
    }
    let manifest = ImageManifest::from_reader(&bytes[..]).map_err(|e| RegistryError::Parse {
        what: "manifest",
        url: reference.to_string(),
        reason: e.to_string(),
    })?;
    let mut blobs = vec![(
        manifest.config().digest().to_string(),
        manifest.config().size(),
    )];
    blobs.extend(
        manifest
            .layers()
            .iter()
            .map(|l| (l.digest().to_string(), l.size())),
    );
    for (digest, total) in blobs {
        if !store.blob_path(&digest)?.exists() {
            let resp = c.get(&format!("/v2/{repo}/blobs/{digest}"), None)?;
            let body = Counted {
                inner: resp.into_reader(),
                digest: &digest,
                done: 0,
                total,
                progress: &mut *progress,
            };
            store.put_blob(body, Some(&digest))?;
        }
        progress(Progress {
            digest: &digest,
            done: total,
            total,
        });
    }
    let (manifest_digest, _) = store.put_blob(&bytes[..], None)?;
    let name = if r.registry == "registry-1.docker.io" {
        normalize(reference)
    } else {
        format!("{}/{}:{}", r.registry, r.repository, r.reference)
    };
    store.tag(&name, &manifest_digest)?;
    store.resolve(&name)?; // unpacks and verifies diff ids
    Ok(name)
}

/// A blob's body, reporting the bytes read so far.
struct Counted<'a, R> {
    inner: R,
    digest: &'a str,
    done: u64,
    total: u64,
    progress: &'a mut dyn FnMut(Progress<'_>),
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(Progress {
            digest: self.digest,
            done: self.done,
            total: self.total,
        });
        Ok(n)
    }
}

fn fetch_manifest(
    c: &mut Client,
    repo: &str,
    reference: &str,
) -> Result<(Vec<u8>, String), RegistryError> {
    let resp = c.get(&format!("/v2/{repo}/manifests/{reference}"), Some(ACCEPT))?;
    let media = resp.content_type().to_string();
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(16 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| RegistryError::Http {
            url: reference.to_string(),
            reason: e.to_string(),
        })?;
    Ok((bytes, media))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = Reference::parse("127.0.0.1:5000/x/y:v1").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "x/y", "v1")
        );
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("registry-1.docker.io", "library/busybox", "latest")
        );
        let r = Reference::parse("localhost:5000/x@sha256:abc").unwrap();
        assert_eq!(r.reference, "sha256:abc");
    }

    #[test]
    fn credentials_are_basic_auth_and_not_debug_printed() {
        let c = Credentials::parse("minik8s:s3:cret").unwrap();
        assert_eq!(c.password, "s3:cret");
        assert_eq!(c.basic(), "Basic bWluaWs4czpzMzpjcmV0");
        assert!(!format!("{c:?}").contains("s3:cret"));
        assert!(Credentials::parse("no-password").is_none());
        assert!(Credentials::parse(":x").is_none());
    }
}
