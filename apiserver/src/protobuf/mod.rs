//! The Kubernetes protobuf wire format, `application/vnd.kubernetes.protobuf`: typed Go clients
//! (`kubectl create namespace|deployment`, client-go clientsets) send bodies as the magic bytes
//! `k8s\0` followed by a `runtime.Unknown` envelope whose `typeMeta` names the kind and whose
//! `raw` holds the object's own message. We translate to and from the JSON form the rest
//! of the apiserver works with, driven by a schema generated from the `k8s-pb` crate.
//! Read `wire.rs` (bytes), `schema.rs` (field numbers ↔ JSON names), then `convert.rs` (values).

mod convert;
mod schema;
mod wire;

use serde_json::Value;

use schema::Schema;
use wire::{RawValue, Reader, Writer};

/// The media type of protobuf request and response bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Every protobuf body starts with these four bytes, so a decoder can tell it from JSON or YAML.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a protobuf body could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("body does not start with the kubernetes protobuf prefix \"k8s\\x00\"")]
    MissingMagic,
    /// The bytes are not well-formed protobuf.
    #[error("malformed protobuf: {reason}")]
    ReadWire { reason: String },
    /// The envelope's payload is compressed or otherwise encoded.
    #[error("unsupported protobuf content encoding {content_encoding:?}")]
    ContentEncoding { content_encoding: String },
    /// The object has no apiVersion or kind to put in the envelope.
    #[error("object has no apiVersion and kind")]
    MissingTypeMeta,
    /// We have no protobuf schema for this kind (answered as 415 Unsupported Media Type).
    #[error("the protobuf encoding is not supported for {api_version}, Kind={kind}; use application/json")]
    UnsupportedKind { api_version: String, kind: String },
    /// A field's value does not fit its type (on the wire or in JSON).
    #[error("field {field}: {reason}")]
    ConvertField { field: String, reason: String },
}

/// Decodes a `k8s\0` + runtime.Unknown envelope into the object's JSON form, with apiVersion and
/// kind taken from the envelope's typeMeta.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let payload = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let (mut api_version, mut kind, mut raw, mut content_encoding) =
        (String::new(), String::new(), &[][..], String::new());
    let mut unknown = Reader::new(payload);
    while !unknown.is_empty() {
        match unknown.field()? {
            (1, RawValue::Bytes(type_meta)) => {
                let mut type_meta = Reader::new(type_meta);
                while !type_meta.is_empty() {
                    match type_meta.field()? {
                        (1, RawValue::Bytes(v)) => api_version = envelope_string(v)?,
                        (2, RawValue::Bytes(v)) => kind = envelope_string(v)?,
                        _ => {}
                    }
                }
            }
            (2, RawValue::Bytes(bytes)) => raw = bytes,
            (3, RawValue::Bytes(v)) => content_encoding = envelope_string(v)?,
            _ => {}
        }
    }
    if !content_encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding { content_encoding });
    }
    let schema = Schema::get();
    let path = schema
        .kind(&api_version, &kind)
        .ok_or_else(|| ProtobufError::UnsupportedKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let mut object = convert::decode_message(schema, path, raw)?;
    object.insert("apiVersion".to_string(), Value::String(api_version));
    object.insert("kind".to_string(), Value::String(kind));
    Ok(Value::Object(object))
}

/// Encodes a JSON object (with apiVersion and kind) into the `k8s\0` + runtime.Unknown envelope.
pub fn encode(obj: &Value) -> Result<Vec<u8>, ProtobufError> {
    let object = obj.as_object().ok_or(ProtobufError::MissingTypeMeta)?;
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or(ProtobufError::MissingTypeMeta)?;
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(ProtobufError::MissingTypeMeta)?;
    let schema = Schema::get();
    let path = schema
        .kind(api_version, kind)
        .ok_or_else(|| ProtobufError::UnsupportedKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })?;
    let raw = convert::encode_message(schema, path, object)?;
    let mut type_meta = Writer::default();
    type_meta.bytes_field(1, api_version.as_bytes());
    type_meta.bytes_field(2, kind.as_bytes());
    let mut unknown = Writer {
        buf: MAGIC.to_vec(),
    };
    unknown.bytes_field(1, &type_meta.buf);
    unknown.bytes_field(2, &raw);
    // Go writes contentEncoding and contentType even when empty; so do we.
    unknown.bytes_field(3, b"");
    unknown.bytes_field(4, b"");
    Ok(unknown.buf)
}

fn envelope_string(bytes: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::ReadWire {
        reason: "envelope string is not utf-8".to_string(),
    })
}

#[cfg(test)]
mod tests;
