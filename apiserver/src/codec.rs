//! Content negotiation: which media type a body is in, and which one the client wants back.
//!
//! Kubernetes clients speak JSON, YAML and a protobuf envelope (`k8s\0` + `runtime.Unknown`,
//! see `protobuf.rs`), and ask for *views* of the same objects through `Accept` parameters:
//! `application/json;as=Table;g=meta.k8s.io;v=v1` is what `kubectl get` sends to receive
//! server-side printed columns. JSON is chosen whenever the client accepts it anywhere.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::protobuf;

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// A response encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Protobuf,
}

/// A view the client asked for through `Accept` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The objects themselves.
    Object,
    /// A `meta.k8s.io/v1` Table (`kubectl get`).
    Table,
    /// `PartialObjectMetadata` (metadata-only clients).
    PartialMetadata,
}

/// The outcome of negotiation.
#[derive(Debug, Clone, Copy)]
pub struct Negotiated {
    pub format: Format,
    pub view: View,
}

/// Choose format and view from `Accept`. `allow_views` is false for writes (a Table of a
/// create makes no sense; we then fall back to the next acceptable plain type).
pub fn negotiate(headers: &HeaderMap, allow_views: bool) -> Result<Negotiated, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim().is_empty() {
        return Ok(Negotiated {
            format: Format::Json,
            view: View::Object,
        });
    }
    let mut candidates = Vec::new();
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut as_ = None;
        let mut group = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = Some(v.trim().to_string()),
                    "g" => group = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let format = match media.as_str() {
            "application/json" | "*/*" | "application/*" | "application/json-seq" => Format::Json,
            "application/yaml" => Format::Yaml,
            protobuf::MEDIA_TYPE => Format::Protobuf,
            _ => continue,
        };
        let view = match (as_.as_deref(), group.as_deref()) {
            (None, _) => View::Object,
            (Some("Table"), Some("meta.k8s.io")) => View::Table,
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                View::PartialMetadata
            }
            _ => continue,
        };
        if view != View::Object && (!allow_views || format != Format::Json) {
            continue;
        }
        candidates.push(Negotiated { format, view });
    }
    // JSON wins whenever it is acceptable at all (typed clients list protobuf first).
    if let Some(first_json) = candidates.iter().find(|c| c.format == Format::Json) {
        if candidates[0].format == Format::Protobuf {
            return Ok(*first_json);
        }
    }
    candidates.first().copied().ok_or(ApiError::NotAcceptable)
}

/// Decode a request body into JSON according to its `Content-Type`. No Content-Type (the
/// Python client) means JSON.
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    match ct.as_str() {
        "" | "application/json" | "*/*" => parse_json(body),
        "application/yaml" => parse_yaml(body),
        protobuf::MEDIA_TYPE => protobuf::decode(body).map_err(|e| match e {
            protobuf::ProtobufError::UnsupportedKind { .. } => ApiError::UnsupportedMediaType(e.to_string()),
            other => ApiError::BadRequest(format!("protobuf decode error: {other}")),
        }),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format ({other}) - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        ))),
    }
}

/// The media type of the body, lowercased, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Parse JSON, with a 400 that says where it broke.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("json parse error: {e}")))
}

/// Parse YAML (a superset of JSON), with a 400 on error.
pub fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("yaml parse error: {e}")))?;
    if v.is_null() {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    Ok(v)
}

/// Encode `value` as the response body in `format`.
pub fn respond(code: StatusCode, value: &Value, format: Format) -> Response {
    let (ct, body) = match format {
        Format::Json => (
            "application/json",
            serde_json::to_vec(value).unwrap_or_default(),
        ),
        Format::Yaml => (
            "application/yaml",
            serde_yaml::to_string(value)
                .unwrap_or_default()
                .into_bytes(),
        ),
        Format::Protobuf => match protobuf::encode(value) {
            Ok(b) => (protobuf::MEDIA_TYPE, b),
            Err(_) => return ApiError::NotAcceptable.into_response(),
        },
    };
    let mut resp = (code, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp
}

/// A JSON response from bytes already encoded.
pub fn json_bytes(code: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A JSON response.
pub fn json(code: StatusCode, value: &Value) -> Response {
    respond(code, value, Format::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn kubectl_get_asks_for_a_table() {
        let n = negotiate(
            &accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"),
            true,
        )
        .unwrap();
        assert_eq!(n.view, View::Table);
        let n = negotiate(
            &accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
            false,
        )
        .unwrap();
        assert_eq!(n.view, View::Object);
    }

    #[test]
    fn json_wins_over_protobuf_when_both_accepted() {
        let n = negotiate(
            &accept("application/vnd.kubernetes.protobuf, application/json"),
            true,
        )
        .unwrap();
        assert_eq!(n.format, Format::Json);
        let n = negotiate(&accept("application/vnd.kubernetes.protobuf"), true).unwrap();
        assert_eq!(n.format, Format::Protobuf);
        assert!(negotiate(&accept("text/html"), true).is_err());
    }

    #[test]
    fn bodies_by_content_type() {
        let mut h = HeaderMap::new();
        assert_eq!(decode_body(&h, br#"{"a":1}"#).unwrap()["a"], 1);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        );
        assert_eq!(decode_body(&h, b"a: 1\n").unwrap()["a"], 1);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(matches!(
            decode_body(&h, b"x"),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        h.remove(header::CONTENT_TYPE);
        assert!(matches!(
            decode_body(&h, b"{oops"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
