//! Pulling from an OCI distribution registry (the Docker Registry HTTP API v2): fetch the
//! manifest by tag (`GET /v2/<repo>/manifests/<tag>`), follow an index to the linux/amd64
//! manifest, then fetch the config and each layer by digest (`GET /v2/<repo>/blobs/<digest>`),
//! verifying every blob against its digest as it is stored. A registry that answers 401 with
//! `WWW-Authenticate: Bearer realm=..,service=..,scope=..` gets an anonymous token request, and
//! the request is retried with `Authorization: Bearer <token>`.

use std::io::Read;

use oci_spec::image::{ImageIndex, ImageManifest};

use super::image::{normalize, sha256, ImageError, ImageStore};

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
    /// Storing what we fetched failed (includes digest mismatches).
    #[error("{0}")]
    Store(#[from] ImageError),
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

struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn get(&mut self, path: &str, accept: Option<&str>) -> Result<ureq::Response, RegistryError> {
        let url = format!("{}{path}", self.base);
        for attempt in 0..2 {
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some(t) = &self.token {
                req = req.set("Authorization", &format!("Bearer {t}"));
            }
            match req.call() {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(401, r)) if attempt == 0 => {
                    let challenge = r.header("WWW-Authenticate").unwrap_or("").to_string();
                    self.token = Some(self.fetch_token(&challenge)?);
                }
                Err(e) => {
                    return Err(RegistryError::Http {
                        url,
                        reason: e.to_string(),
                    })
                }
            }
        }
        Err(RegistryError::Http {
            url,
            reason: "unauthorized".into(),
        })
    }

    fn fetch_token(&self, challenge: &str) -> Result<String, RegistryError> {
        let params = challenge.strip_prefix("Bearer ").unwrap_or("");
        let mut realm = String::new();
        let mut query = Vec::new();
        for part in params.split(',') {
            if let Some((k, v)) = part.trim().split_once('=') {
                let v = v.trim_matches('"').to_string();
                if k == "realm" {
                    realm = v;
                } else {
                    query.push((k.to_string(), v));
                }
            }
        }
        if realm.is_empty() {
            return Err(RegistryError::Token {
                realm,
                reason: format!("unsupported challenge {challenge:?}"),
            });
        }
        let mut req = self.agent.get(&realm);
        for (k, v) in &query {
            req = req.query(k, v);
        }
        let body: serde_json::Value = req
            .call()
            .map_err(|e| RegistryError::Token {
                realm: realm.clone(),
                reason: e.to_string(),
            })?
            .into_json()
            .map_err(|e| RegistryError::Token {
                realm: realm.clone(),
                reason: e.to_string(),
            })?;
        body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .map(String::from)
            .ok_or(RegistryError::Token {
                realm,
                reason: "no token in answer".into(),
            })
    }
}

/// Pull `reference` into the store; `insecure` uses plain HTTP (always for localhost/127.0.0.1).
pub fn pull(store: &ImageStore, reference: &str, insecure: bool) -> Result<String, RegistryError> {
    let r = Reference::parse(reference)?;
    let local = r.registry.starts_with("127.") || r.registry.starts_with("localhost");
    let scheme = if insecure || local { "http" } else { "https" };
    let mut c = Client {
        base: format!("{scheme}://{}", r.registry),
        token: None,
        agent: ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs(300))
            .build(),
    };
    let repo = &r.repository;
    let (mut bytes, mut media) = fetch_manifest(&mut c, repo, &r.reference)?;
    if media.contains("index") || media.contains("manifest.list") {
        let url = format!("/v2/{repo}/manifests/{}", r.reference);
        let index = ImageIndex::from_reader(&bytes[..]).map_err(|e| RegistryError::Parse {
            what: "index",
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let pick = index
            .manifests()
            .iter()
            .find(|d| {
                d.platform().as_ref().is_none_or(|p| {
                    p.architecture().to_string() == "amd64" && p.os().to_string() == "linux"
                })
            })
            .ok_or(RegistryError::Parse {
                what: "index",
                url,
                reason: "no linux/amd64 manifest".into(),
            })?;
        (bytes, media) = fetch_manifest(&mut c, repo, &pick.digest().to_string())?;
    }
    let _ = media;
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
    let mut digests = vec![manifest.config().digest().to_string()];
    digests.extend(manifest.layers().iter().map(|l| l.digest().to_string()));
    for d in digests {
        if store.blob_path(&d)?.exists() {
            continue;
        }
        let resp = c.get(&format!("/v2/{repo}/blobs/{d}"), None)?;
        store.put_blob(resp.into_reader(), Some(&d))?;
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
}
