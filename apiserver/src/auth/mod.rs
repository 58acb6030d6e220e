//! Authentication: who sent this request? kube-apiserver asks each configured authenticator
//! in turn and takes the first that recognises the request; minik8s has three of its:
//!
//! - [`Authenticator::ClientCert`] (`x509.rs`, `--client-ca-file`): a TLS client certificate
//!   signed by the cluster CA; the user is its CN, the groups its O values.
//! - [`Authenticator::Token`] (`token.rs`, `--token-auth-file`): `Authorization: Bearer` with
//!   a token from a static CSV file.
//! - [`Authenticator::BootstrapToken`] (`bootstrap.rs`, `--enable-bootstrap-token-auth`): a
//!   bearer token `abcdef.0123456789abcdef` whose Secret `kube-system/bootstrap-token-abcdef`
//!   accepts it (how a joining node first talks to the cluster); the user is
//!   `system:bootstrap:abcdef` in `system:bootstrappers`.
//!
//! Every user an authenticator recognises is also in `system:authenticated`, as in Kubernetes.
//! With no authenticator configured the API is open (anonymous, loopback only unless
//! `--allow-anonymous`); with one or more, a request none of them recognises is 401
//! Unauthorized, with one exception: [`anonymous_allowed`]. A joining node has no credential
//! and does not yet know the cluster's CA, so kubeadm publishes the CA in the ConfigMap
//! `kube-public/cluster-info` and its RBAC lets `system:anonymous` *get* exactly that object.
//! With no RBAC here, that one GET is allow-listed: a request that presents no credential at
//! all is the user `system:anonymous` in `system:unauthenticated` for it, and refused (401)
//! for everything else. A request that presents a wrong credential is 401 there too, as in
//! kube-apiserver, which never downgrades a bad credential to anonymous. This is authentication only: every authenticated user may do everything (no
//! RBAC yet). The middleware in `server.rs` calls [`Authentication::authenticate`] and puts
//! the [`User`] into the request's extensions; it hands over the apiserver's storage, where
//! bootstrap tokens are read.
//!
//! Read next: `x509.rs`, then `crate::tls`, where the handshake that verifies certificates is
//! set up; `bootstrap.rs` for tokens kept in the API itself.

pub mod bootstrap;
mod token;
mod x509;

use axum::http::{Extensions, HeaderMap};

pub use bootstrap::{BootstrapTokenAuth, SecretSource};
pub use token::{TokenAuth, TokenError};
pub use x509::{ClientCaError, ClientCertAuth};

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The user of a request that presents no credential, where one is allowed.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of [`ANONYMOUS_USER`].
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The one object anyone may read without a credential: kubeadm's `cluster-info`, the
/// kubeconfig (server URL and CA certificate) that a joining node pins by its hash.
pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// Whether a request without any credential may go on as [`User::anonymous`]: exactly a GET
/// of [`CLUSTER_INFO_PATH`] that is not a watch (kubeadm's RBAC grants `get` on that one
/// resource name, nothing more).
pub fn anonymous_allowed(method: &axum::http::Method, path: &str, query: Option<&str>) -> bool {
    let watch = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "watch" && v != "false" && v != "0");
    method == axum::http::Method::GET && path == CLUSTER_INFO_PATH && !watch
}

/// Whether the request carries a credential (a bearer token or a client certificate); one
/// that does is never anonymous, however wrong the credential.
pub fn presents_credential(headers: &HeaderMap, extensions: &Extensions) -> bool {
    headers.contains_key(axum::http::header::AUTHORIZATION) || x509::presented(extensions)
}

/// An authenticated user, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name (`kubernetes-admin`, `system:node:n1`).
    pub name: String,
    /// A unique id, where the authenticator has one (token files do; certificates do not).
    pub uid: String,
    /// The groups (`system:masters`, `system:nodes`, `system:authenticated`).
    pub groups: Vec<String>,
}

impl User {
    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> User {
        User {
            name: ANONYMOUS_USER.to_string(),
            uid: String::new(),
            groups: vec![UNAUTHENTICATED_GROUP.to_string()],
        }
    }
}

/// One way of recognising a request's sender.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// A client certificate verified against `--client-ca-file` during the handshake.
    ClientCert(ClientCertAuth),
    /// A bearer token from `--token-auth-file`.
    Token(TokenAuth),
    /// A bootstrap token whose Secret is in `kube-system` (`--enable-bootstrap-token-auth`).
    BootstrapToken(BootstrapTokenAuth),
}

impl Authenticator {
    /// The user this authenticator recognises in the request, if any.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
        secrets: &impl SecretSource,
    ) -> Option<User> {
        match self {
            Authenticator::ClientCert(certs) => certs.authenticate(extensions),
            Authenticator::Token(tokens) => tokens.authenticate(headers).cloned(),
            Authenticator::BootstrapToken(b) => b.authenticate(headers, secrets).await,
        }
    }
}

/// The configured authenticators, asked in order (client certificates first, as
/// kube-apiserver does).
#[derive(Debug, Clone, Default)]
pub struct Authentication {
    authenticators: Vec<Authenticator>,
}

impl Authentication {
    /// Authenticators to ask in this order.
    pub fn new(authenticators: Vec<Authenticator>) -> Authentication {
        Authentication { authenticators }
    }

    /// Whether requests must be authenticated (at least one authenticator is configured).
    pub fn is_required(&self) -> bool {
        !self.authenticators.is_empty()
    }

    /// The client-certificate authenticator, which the TLS settings need for the handshake.
    pub fn client_certs(&self) -> Option<&ClientCertAuth> {
        self.authenticators.iter().find_map(|a| match a {
            Authenticator::ClientCert(c) => Some(c),
            Authenticator::Token(_) | Authenticator::BootstrapToken(_) => None,
        })
    }

    /// The first authenticator's user for this request, in `system:authenticated`;
    /// bootstrap tokens are looked up in `secrets`.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
        secrets: &impl SecretSource,
    ) -> Option<User> {
        let mut found = None;
        for a in &self.authenticators {
            found = a.authenticate(headers, extensions, secrets).await;
            if found.is_some() {
                break;
            }
        }
        let mut user = found?;
        if !user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            user.groups.push(AUTHENTICATED_GROUP.to_string());
        }
        Some(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderValue};
    use serde_json::{json, Value};

    /// Secrets for unit tests: one bootstrap token, `abcdef.0123456789abcdef`.
    struct OneToken;

    impl SecretSource for OneToken {
        async fn secret(
            &self,
            namespace: &str,
            name: &str,
        ) -> Result<Option<Value>, crate::storage::StorageError> {
            Ok(
                ((namespace, name) == ("kube-system", "bootstrap-token-abcdef")).then(|| {
                    json!({"metadata": {"name": name, "namespace": namespace},
                    "type": "bootstrap.kubernetes.io/token",
                    "data": {"token-id": "YWJjZGVm", "token-secret": "MDEyMzQ1Njc4OWFiY2RlZg==",
                             "usage-bootstrap-authentication": "dHJ1ZQ=="}})
                }),
            )
        }
    }

    #[tokio::test]
    async fn bootstrap_tokens_are_asked_after_the_token_file() {
        let tokens = TokenAuth::parse("abcdef.0123456789abcdef,file-user,1\n").unwrap();
        let auth = Authentication::new(vec![
            Authenticator::Token(tokens),
            Authenticator::BootstrapToken(BootstrapTokenAuth),
        ]);
        let ext = Extensions::new();
        let mut headers = HeaderMap::new();
        let bearer = |t: &str| HeaderValue::from_str(&format!("Bearer {t}")).unwrap();
        headers.insert(header::AUTHORIZATION, bearer("abcdef.0123456789abcdef"));
        let user = auth.authenticate(&headers, &ext, &OneToken).await.unwrap();
        assert_eq!(user.name, "file-user", "the token file is asked first");
        let auth = Authentication::new(vec![Authenticator::BootstrapToken(BootstrapTokenAuth)]);
        let user = auth.authenticate(&headers, &ext, &OneToken).await.unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            vec!["system:bootstrappers", "system:authenticated"]
        );
        for wrong in [
            "abcdef.0000000000000000",
            "zzzzzz.0123456789abcdef",
            "abcdef",
        ] {
            headers.insert(header::AUTHORIZATION, bearer(wrong));
            assert_eq!(
                auth.authenticate(&headers, &ext, &OneToken).await,
                None,
                "{wrong}"
            );
        }
    }

    #[test]
    fn only_a_get_of_cluster_info_may_be_anonymous() {
        use axum::http::Method;
        assert!(anonymous_allowed(&Method::GET, CLUSTER_INFO_PATH, None));
        assert!(anonymous_allowed(
            &Method::GET,
            CLUSTER_INFO_PATH,
            Some("watch=false")
        ));
        assert!(!anonymous_allowed(
            &Method::GET,
            CLUSTER_INFO_PATH,
            Some("watch=true")
        ));
        assert!(!anonymous_allowed(&Method::PUT, CLUSTER_INFO_PATH, None));
        assert!(!anonymous_allowed(&Method::DELETE, CLUSTER_INFO_PATH, None));
        for other in [
            "/api/v1/namespaces/kube-public/configmaps",
            "/api/v1/namespaces/kube-public/configmaps/other",
            "/api/v1/namespaces/kube-system/configmaps/cluster-info",
            "/api/v1/namespaces/kube-public/configmaps/cluster-info/status",
            "/api/v1/nodes",
        ] {
            assert!(!anonymous_allowed(&Method::GET, other, None), "{other}");
        }
        let mut headers = HeaderMap::new();
        assert!(!presents_credential(&headers, &Extensions::new()));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(presents_credential(&headers, &Extensions::new()));
        assert_eq!(User::anonymous().groups, vec![UNAUTHENTICATED_GROUP]);
    }

    #[tokio::test]
    async fn the_first_authenticator_that_knows_the_request_wins() {
        let tokens = TokenAuth::parse("t1,alice,1,\"dev\"\n").unwrap();
        let none = Authentication::default();
        assert!(!none.is_required());
        let auth = Authentication::new(vec![Authenticator::Token(tokens)]);
        assert!(auth.is_required());
        assert!(auth.client_certs().is_none());
        let mut headers = HeaderMap::new();
        let ext = Extensions::new();
        assert_eq!(auth.authenticate(&headers, &ext, &OneToken).await, None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t1"));
        let user = auth.authenticate(&headers, &ext, &OneToken).await.unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, vec!["dev", "system:authenticated"]);
    }

    #[tokio::test]
    async fn a_client_ca_alone_requires_authentication() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        let certs =
            ClientCertAuth::from_pem(ca.cert.pem().as_bytes(), std::path::Path::new("ca.crt"))
                .unwrap();
        let auth = Authentication::new(vec![Authenticator::ClientCert(certs)]);
        assert!(auth.is_required());
        assert!(auth.client_certs().is_some());
        // a bearer token means nothing without a token file
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t1"));
        let ext = Extensions::new();
        assert_eq!(auth.authenticate(&headers, &ext, &OneToken).await, None);
    }
}
