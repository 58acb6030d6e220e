//! Every failure the API can report, and how it becomes a Kubernetes `Status`.
//!
//! Clients decide what to do from `Status.reason` and `Status.code` (kubectl retries a 409
//! Conflict, kube-rs relists on 410 Expired), so each variant maps to exactly one reason with
//! the real apiserver's wording. 5xx errors are logged here and shown to the client without
//! internal details. Read `storage.rs` next to see where most of these are born.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The resource an error talks about, as `details` in the Status (`pods "web"`).
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Plural resource name as it appears in messages, e.g. `pods` or `deployments.apps`.
    pub qualified_resource: String,
    /// Kind, for `details.kind` (kubectl prints `pods "x"`, clients read `details.kind`).
    pub kind: String,
    /// Object name, empty for collection-level errors.
    pub name: String,
    /// API group, empty for core.
    pub group: String,
}

/// An API error, answered as a `Status` object with the matching HTTP code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: the object (or namespace) does not exist.
    #[error("{} \"{}\" not found", .0.qualified_resource, .0.name)]
    NotFound(Subject),
    /// 409: create of an object whose key is already taken.
    #[error("{} \"{}\" already exists", .0.qualified_resource, .0.name)]
    AlreadyExists(Subject),
    /// 409: a write raced with another write, or a precondition did not hold.
    #[error("Operation cannot be fulfilled on {} \"{}\": {}", .0.qualified_resource, .0.name, .1)]
    Conflict(Subject, String),
    /// 422: validation failed; causes carry the field paths.
    #[error("{message}")]
    Invalid {
        /// Boxed: with it inline this variant would make every `Result<_, ApiError>` larger.
        subject: Box<Subject>,
        message: String,
        causes: Vec<Value>,
    },
    /// 400: the request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 403: refused by policy (e.g. creating in a terminating namespace).
    #[error("{message}")]
    Forbidden { subject: Subject, message: String },
    /// 401: no credential that an authenticator recognises (client certificate, bearer token).
    #[error("Unauthorized")]
    Unauthorized,
    /// 404 for a URL that names no resource we serve.
    #[error("the server could not find the requested resource")]
    UnknownResource,
    /// 405: the resource does not support this verb.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406: nothing in `Accept` is something we can produce.
    #[error("only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf")]
    NotAcceptable,
    /// 410: the requested resourceVersion is older than the history we keep.
    #[error("{0}")]
    Expired(String),
    /// 504: a read asked for a resourceVersion newer than this server has reached, also
    /// after waiting for it (`storage.NewTooLargeResourceVersionError`). Clients retry after
    /// `retry_after_seconds` (0: no hint).
    #[error("Timeout: Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        requested: i64,
        current: i64,
        retry_after_seconds: u32,
    },
    /// 413: request body over the limit.
    #[error("the request body is too large (limit {0} bytes)")]
    TooLarge(usize),
    /// 415: a body in a media type we cannot decode.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503: etcd is not answering; clients retry.
    #[error("etcd is unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected storage answer; details are logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// HTTP status code of this error.
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::UnknownResource => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists(_) | ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ApiError::Expired(_) => StatusCode::GONE,
            ApiError::TooLargeResourceVersion { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `reason` string clients compare against.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) | ApiError::UnknownResource => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict(..) => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotAcceptable => "NotAcceptable",
            ApiError::Expired(_) => "Expired",
            ApiError::TooLargeResourceVersion { .. } => "Timeout",
            ApiError::TooLarge(_) => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let message = match self {
            // Internal details stay in the log.
            ApiError::Internal(_) => {
                "an internal error occurred; see the apiserver log".to_string()
            }
            other => other.to_string(),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let subject = match self {
            ApiError::NotFound(s)
            | ApiError::AlreadyExists(s)
            | ApiError::Conflict(s, _)
            | ApiError::Forbidden { subject: s, .. } => Some(s),
            ApiError::Invalid { subject, .. } => Some(&**subject),
            _ => None,
        };
        if let Some(s) = subject {
            let mut details = json!({ "name": s.name, "kind": s.qualified_resource.split('.').next().unwrap_or("") });
            if !s.group.is_empty() {
                details["group"] = json!(s.group);
            }
            if let ApiError::Invalid { causes, .. } = self {
                details["kind"] = json!(s.kind);
                details["causes"] = Value::Array(causes.clone());
            }
            status["details"] = details;
        }
        if let ApiError::Expired(_) = self {
            status["metadata"] = json!({});
        }
        if let ApiError::TooLargeResourceVersion { .. } = self {
            // Clients tell this timeout from others by the cause (`IsTooLargeResourceVersion`).
            let mut details = json!({"causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ]});
            if let Some(seconds) = self.retry_after() {
                details["retryAfterSeconds"] = json!(seconds);
            }
            status["details"] = details;
        }
        status
    }

    /// Seconds after which the client may retry, sent as `Retry-After` and in `details`.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::TooLargeResourceVersion {
                retry_after_seconds,
                ..
            } if *retry_after_seconds > 0 => Some(*retry_after_seconds),
            _ => None,
        }
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        use crate::storage::StorageError as S;
        match e {
            S::Unavailable(m) => ApiError::Unavailable(m),
            S::Compacted { revision } => ApiError::Expired(format!(
                "The resourceVersion for the provided list is too old (compacted at {revision})"
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code().is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut resp = (self.code(), body).into_response();
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after() {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        resp
    }
}

/// A success `Status` (binding, eviction, some deletes answer with one).
pub fn success_status(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_has_real_wording_and_details() {
        let e = ApiError::NotFound(Subject {
            qualified_resource: "pods".into(),
            kind: "Pod".into(),
            name: "web".into(),
            group: String::new(),
        });
        let s = e.to_status();
        assert_eq!(s["message"], "pods \"web\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["name"], "web");
        assert_eq!(s["details"]["kind"], "pods");
    }

    #[test]
    fn too_large_resource_version_is_a_timeout_with_its_cause() {
        let e = ApiError::TooLargeResourceVersion {
            requested: 90,
            current: 7,
            retry_after_seconds: 1,
        };
        let s = e.to_status();
        assert_eq!(s["code"], 504);
        assert_eq!(s["reason"], "Timeout");
        assert_eq!(
            s["message"],
            "Timeout: Too large resource version: 90, current: 7"
        );
        assert_eq!(
            s["details"],
            json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                   "retryAfterSeconds": 1})
        );
        let resp = e.into_response();
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "1");
    }

    #[test]
    fn internal_errors_hide_details() {
        let s = ApiError::Internal("secret etcd key /registry/x".into()).to_status();
        assert!(!s["message"].as_str().unwrap().contains("secret"));
        assert_eq!(s["code"], 500);
    }
}
