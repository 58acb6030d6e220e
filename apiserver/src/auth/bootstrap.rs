//! Bootstrap-token authentication (`--enable-bootstrap-token-auth`), as kube-apiserver does it
//! for kubeadm's `join`.
//!
//! A new machine has no credential yet. The cluster admin makes a short-lived *bootstrap
//! token*, `abcdef.0123456789abcdef` (`[a-z0-9]{6}.[a-z0-9]{16}`): a public id, a dot, a
//! secret part. The token lives in the cluster as a Secret `kube-system/bootstrap-token-<id>`
//! of type `bootstrap.kubernetes.io/token` whose data holds `token-id`, `token-secret`,
//! `usage-bootstrap-authentication: "true"`, and optionally `expiration` (RFC 3339) and
//! `auth-extra-groups` (`system:bootstrappers:...`, comma separated). The joining machine sends
//! `Authorization: Bearer abcdef.0123456789abcdef` and is user `system:bootstrap:abcdef` in
//! `system:bootstrappers` plus the extra groups: enough to ask for its own credential.
//!
//! The Secret is read from etcd on every request (a consistent read, like a GET), so a token
//! works the moment its Secret is created and stops the moment it is deleted or expires.
//! kube-apiserver reads through an informer and caches successes for 10 s; we do neither.
//! A refusal is logged with its reason and answered 401, never explained to the client.
//!
//! Read next: `mod.rs` (the order authenticators are asked in), `token.rs` (static tokens,
//! asked before this one).

use std::collections::BTreeSet;
use std::future::Future;

use axum::http::HeaderMap;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use super::User;
use crate::storage::{Storage, StorageError};

/// The namespace bootstrap-token Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// A token's Secret is named this prefix plus the token id.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The only Secret type read as a bootstrap token.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The group of every bootstrap-token user.
pub const DEFAULT_GROUP: &str = "system:bootstrappers";
/// User names are this prefix plus the token id.
pub const USER_PREFIX: &str = "system:bootstrap:";

/// Where the authenticator reads Secrets: the apiserver's storage, or a map in unit tests.
pub trait SecretSource: Sync {
    /// The Secret `namespace/name` as stored (JSON), `None` if there is none.
    fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Value>, StorageError>> + Send;
}

impl SecretSource for Storage {
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Value>, StorageError> {
        let dir = crate::resources::find("", "v1", "secrets").map_or("secrets", |r| r.storage);
        Ok(self
            .get(&self.key(dir, Some(namespace), name))
            .await?
            .map(|s| s.object))
    }
}

/// A bearer token of the bootstrap form, split into its id and secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapToken<'a> {
    /// The public part (`abcdef`), also in the Secret's name.
    pub id: &'a str,
    /// The private part (`0123456789abcdef`).
    pub secret: &'a str,
}

impl<'a> BootstrapToken<'a> {
    /// `[a-z0-9]{6}.[a-z0-9]{16}`, else `None` (not a bootstrap token: someone else's).
    pub fn parse(token: &'a str) -> Option<BootstrapToken<'a>> {
        let (id, secret) = token.split_once('.')?;
        let shaped = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        (shaped(id, 6) && shaped(secret, 16)).then_some(BootstrapToken { id, secret })
    }
}

/// Why a token's Secret does not authenticate it (logged, not told to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The Secret has a deletionTimestamp.
    #[error("is deleted and awaiting removal")]
    Deleting,
    /// The Secret is not of type `bootstrap.kubernetes.io/token`, or has no data.
    #[error("has invalid type, expected {SECRET_TYPE}")]
    WrongType,
    /// `token-secret` differs from the token's secret part.
    #[error("has invalid value for key token-secret")]
    WrongSecret,
    /// `token-id` differs from the token's id.
    #[error("has invalid value for key token-id")]
    WrongId,
    /// `expiration` is past, or not RFC 3339 (treated as expired).
    #[error("has expired (expiration {expiration:?})")]
    Expired { expiration: String },
    /// `usage-bootstrap-authentication` is not `"true"`.
    #[error("not marked usage-bootstrap-authentication=true")]
    NotForAuthentication,
    /// An `auth-extra-groups` entry is not `system:bootstrappers:...`.
    #[error("has invalid value for key auth-extra-groups: bootstrap group {group:?} is invalid (must match \\Asystem:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]\\z)")]
    BadExtraGroup { group: String },
}

/// `data[key]` as text, "" when absent (`bootstrapsecretutil.GetData`).
fn data<'s>(secret: &'s Secret, key: &str) -> &'s str {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .unwrap_or("")
}

/// `ValidateBootstrapGroupName`: `system:bootstrappers:` then `[a-z0-9:-]{0,255}[a-z0-9]`.
fn is_bootstrap_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    let b = rest.as_bytes();
    let body_ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b':' | b'-');
    match b.split_last() {
        Some((last, body)) => {
            body.len() <= 255
                && (last.is_ascii_lowercase() || last.is_ascii_digit())
                && body.iter().all(body_ok)
        }
        None => false,
    }
}

/// Whether `expiration` (RFC 3339, "" for none) is past at `now`; unparseable counts as past.
fn expired(expiration: &str, now: jiff::Timestamp) -> bool {
    if expiration.is_empty() {
        return false;
    }
    match expiration.parse::<jiff::Timestamp>() {
        Ok(t) => t <= now,
        Err(_) => true,
    }
}

/// The checks of kube-apiserver's `TokenAuthenticator.AuthenticateToken`, in its order, on
/// the Secret named after `token`'s id: the user it authenticates, or why not.
pub fn check(
    secret: &Secret,
    token: BootstrapToken,
    now: jiff::Timestamp,
) -> Result<User, Refusal> {
    if secret.metadata.deletion_timestamp.is_some() {
        return Err(Refusal::Deleting);
    }
    if secret.type_.as_deref() != Some(SECRET_TYPE) || secret.data.is_none() {
        return Err(Refusal::WrongType);
    }
    if !constant_time_eq(
        data(secret, "token-secret").as_bytes(),
        token.secret.as_bytes(),
    ) {
        return Err(Refusal::WrongSecret);
    }
    if data(secret, "token-id") != token.id {
        return Err(Refusal::WrongId);
    }
    let expiration = data(secret, "expiration");
    if expired(expiration, now) {
        return Err(Refusal::Expired {
            expiration: expiration.to_string(),
        });
    }
    if data(secret, "usage-bootstrap-authentication") != "true" {
        return Err(Refusal::NotForAuthentication);
    }
    let mut groups = BTreeSet::from([DEFAULT_GROUP.to_string()]);
    let extra = data(secret, "auth-extra-groups");
    for group in extra.split(',').filter(|_| !extra.is_empty()) {
        if !is_bootstrap_group(group) {
            return Err(Refusal::BadExtraGroup {
                group: group.to_string(),
            });
        }
        groups.insert(group.to_string());
    }
    Ok(User {
        name: format!("{USER_PREFIX}{}", token.id),
        uid: String::new(),
        groups: groups.into_iter().collect(),
    })
}

/// Compare without stopping at the first difference, so the time taken tells an attacker
/// nothing about how much of a guessed secret was right (Go's `subtle.ConstantTimeCompare`).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bootstrap-token authenticator; it holds nothing, the Secrets are in the store.
#[derive(Debug, Clone, Default)]
pub struct BootstrapTokenAuth;

impl BootstrapTokenAuth {
    /// The user behind a bearer token of the bootstrap form whose Secret accepts it.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        secrets: &impl SecretSource,
    ) -> Option<User> {
        let token = BootstrapToken::parse(super::token::bearer(headers)?)?;
        let name = format!("{SECRET_PREFIX}{}", token.id);
        let stored = match secrets.secret(NAMESPACE, &name).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                tracing::info!(secret = %name, "no Secret for this bootstrap token");
                return None;
            }
            Err(error) => {
                tracing::warn!(secret = %name, %error, "cannot read a bootstrap token's Secret");
                return None;
            }
        };
        let secret: Secret = match serde_json::from_value(stored) {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(secret = %name, %error, "a bootstrap token's Secret does not decode");
                return None;
            }
        };
        match check(&secret, token, jiff::Timestamp::now()) {
            Ok(user) => Some(user),
            Err(refusal) => {
                tracing::info!(secret = %format!("{NAMESPACE}/{name}"), %refusal, "bootstrap token refused");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "abcdef.0123456789abcdef";

    /// A bootstrap-token Secret with `strings` as its data (base64-encoded here).
    fn secret(ty: &str, strings: &[(&str, &str)]) -> Secret {
        use base64::Engine;
        let data: serde_json::Map<String, Value> = strings
            .iter()
            .map(|(k, v)| {
                let b = base64::engine::general_purpose::STANDARD.encode(v);
                (k.to_string(), Value::String(b))
            })
            .collect();
        serde_json::from_value(json!({"metadata": {"name": "bootstrap-token-abcdef"},
            "type": ty, "data": data}))
        .unwrap()
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
        ]
    }

    fn now() -> jiff::Timestamp {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn only_the_bootstrap_form_parses() {
        let t = BootstrapToken::parse(TOKEN).unwrap();
        assert_eq!((t.id, t.secret), ("abcdef", "0123456789abcdef"));
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef.",
            "s3cret",
        ] {
            assert_eq!(BootstrapToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_good_secret_names_the_user_and_sorted_groups() {
        let token = BootstrapToken::parse(TOKEN).unwrap();
        let mut strings = good();
        strings.push((
            "auth-extra-groups",
            "system:bootstrappers:worker,system:bootstrappers:kubeadm:default-node-token",
        ));
        strings.push(("expiration", "2026-12-06T13:00:00Z"));
        let user = check(&secret(SECRET_TYPE, &strings), token, now()).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            vec![
                "system:bootstrappers",
                "system:bootstrappers:kubeadm:default-node-token",
                "system:bootstrappers:worker"
            ]
        );
    }

    #[test]
    fn each_refusal_in_kube_apiservers_order() {
        let token = BootstrapToken::parse(TOKEN).unwrap();
        let with = |extra: (&'static str, &'static str)| {
            let mut s: Vec<_> = good().into_iter().filter(|(k, _)| *k != extra.0).collect();
            s.push(extra);
            check(&secret(SECRET_TYPE, &s), token, now())
        };
        assert_eq!(
            check(&secret("Opaque", &good()), token, now()),
            Err(Refusal::WrongType)
        );
        assert_eq!(
            with(("token-secret", "0000000000000000")),
            Err(Refusal::WrongSecret)
        );
        assert_eq!(with(("token-id", "zzzzzz")), Err(Refusal::WrongId));
        assert!(matches!(
            with(("expiration", "2026-12-06T12:00:00Z")),
            Err(Refusal::Expired { .. })
        ));
        assert!(matches!(
            with(("expiration", "tomorrow")),
            Err(Refusal::Expired { .. })
        ));
        assert!(with(("expiration", "2026-12-06T12:00:01+00:00")).is_ok());
        assert_eq!(
            with(("usage-bootstrap-authentication", "yes")),
            Err(Refusal::NotForAuthentication)
        );
        assert_eq!(
            with(("auth-extra-groups", "system:masters")),
            Err(Refusal::BadExtraGroup {
                group: "system:masters".into()
            })
        );
        let mut deleting = secret(SECRET_TYPE, &good());
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert_eq!(check(&deleting, token, now()), Err(Refusal::Deleting));
    }

    #[test]
    fn bootstrap_group_names() {
        assert!(is_bootstrap_group(
            "system:bootstrappers:kubeadm:default-node-token"
        ));
        assert!(!is_bootstrap_group("system:bootstrappers:"));
        assert!(!is_bootstrap_group("system:bootstrappers:x-"));
        assert!(!is_bootstrap_group("system:bootstrappers:Worker"));
        assert!(!is_bootstrap_group(&format!(
            "system:bootstrappers:{}",
            "a".repeat(257)
        )));
    }
}
