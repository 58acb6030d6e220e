//! Static bearer-token authentication (`--token-auth-file`), as kube-apiserver does it.
//!
//! The file is CSV, one user per line: `token,user,uid[,"group1,group2"]`. A client sends
//! `Authorization: Bearer <token>`; a token that is not in the file authenticates nobody (and,
//! if no other authenticator knows the request, it is 401 Unauthorized).
//!
//! Read next: `x509.rs`, the other way in: a client certificate of the cluster CA.

use std::collections::HashMap;
use std::path::Path;

use axum::http::{header, HeaderMap};

use super::User;

/// Errors reading the token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read token file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A line is not `token,user,uid[,"groups"]`.
    #[error("token file line {line}: expected token,user,uid[,\"groups\"]")]
    Malformed { line: usize },
}

/// The token → user table.
#[derive(Debug, Clone, Default)]
pub struct TokenAuth {
    users: HashMap<String, User>,
}

impl TokenAuth {
    /// Load a token file.
    pub fn load(path: &Path) -> Result<TokenAuth, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.display().to_string(),
            source,
        })?;
        TokenAuth::parse(&text)
    }

    /// Parse token-file text.
    pub fn parse(text: &str) -> Result<TokenAuth, TokenError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[0].is_empty() {
                return Err(TokenError::Malformed { line: i + 1 });
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            users.insert(
                fields[0].clone(),
                User {
                    name: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                },
            );
        }
        Ok(TokenAuth { users })
    }

    /// The user behind the request's bearer token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<&User> {
        self.users.get(bearer(headers)?)
    }
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim())
}

/// Split one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn parses_groups_and_authenticates() {
        let a = TokenAuth::parse("# comment\nsecret,admin,1,\"system:masters,ops\"\n").unwrap();
        let mut h = HeaderMap::new();
        assert!(a.authenticate(&h).is_none());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        let u = a.authenticate(&h).unwrap();
        assert_eq!(u.name, "admin");
        assert_eq!(u.groups, vec!["system:masters", "ops"]);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wrong"),
        );
        assert!(a.authenticate(&h).is_none());
    }

    #[test]
    fn malformed_lines_are_reported() {
        assert!(matches!(
            TokenAuth::parse("onlytoken\n"),
            Err(TokenError::Malformed { line: 1 })
        ));
    }
}
