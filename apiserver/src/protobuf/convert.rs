//! Walks the schema to turn a protobuf message into the JSON object a JSON client would have sent,
//! and back. Most fields map one to one; a few apimachinery types carry a JSON form of their own
//! (Time, MicroTime, Quantity, IntOrString, RawExtension, FieldsV1), handled here once for all kinds.
//! Go writes every non-pointer field, so an empty string on the wire is read as "unset"; zeros and
//! `false` are kept, since for pointer fields (`replicas: 0`, `gracePeriodSeconds: 0`) they matter.

use base64::Engine;
use serde_json::{Map, Number, Value};

use super::schema::{Field, FieldType, Label, Schema};
use super::wire::{RawValue, Reader, Writer};
use super::ProtobufError;

/// Decodes the message at `path` in the schema into a JSON object.
pub fn decode_message(
    schema: &Schema,
    path: &str,
    bytes: &[u8],
) -> Result<Map<String, Value>, ProtobufError> {
    let message = schema.message(path).ok_or_else(|| unknown_message(path))?;
    let mut object = Map::new();
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, raw) = reader.field()?;
        // Fields newer than our schema are skipped, as Go's generated code does.
        let Some(field) = message.field(number) else {
            continue;
        };
        let name = field.json_name.clone();
        match field.label {
            Label::Optional => {
                if let Some(value) = decode_value(schema, field, &field.ty, raw)? {
                    if value.as_str() != Some("") || field.ty != FieldType::String {
                        object.insert(name, value);
                    }
                }
            }
            Label::Repeated => {
                let items = object
                    .entry(name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                let items = items.as_array_mut().expect("repeated fields are arrays");
                match (raw, is_packable(&field.ty)) {
                    (RawValue::Bytes(packed), true) => {
                        let mut packed = Reader::new(packed);
                        while !packed.is_empty() {
                            let value = RawValue::Varint(packed.varint()?);
                            items.extend(decode_value(schema, field, &field.ty, value)?);
                        }
                    }
                    _ => items.extend(decode_value(schema, field, &field.ty, raw)?),
                }
            }
            Label::Map => {
                let (key, value) = decode_map_entry(schema, field, raw)?;
                let entries = object
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()));
                entries
                    .as_object_mut()
                    .expect("map fields are objects")
                    .insert(key, value);
            }
            Label::Inline => {
                if let Some(Value::Object(inner)) = decode_value(schema, field, &field.ty, raw)? {
                    object.extend(inner);
                }
            }
        }
    }
    Ok(object)
}

fn decode_map_entry(
    schema: &Schema,
    field: &Field,
    raw: RawValue,
) -> Result<(String, Value), ProtobufError> {
    let mut entry = Reader::new(expect_bytes(field, raw)?);
    let (mut key, mut value) = (String::new(), None);
    while !entry.is_empty() {
        match entry.field()? {
            (1, raw) => key = utf8(field, expect_bytes(field, raw)?)?,
            (2, raw) => value = decode_value(schema, field, &field.ty, raw)?,
            _ => {}
        }
    }
    let empty = match field.ty {
        FieldType::String | FieldType::Bytes | FieldType::Quantity => Value::String(String::new()),
        _ => Value::Object(Map::new()),
    };
    Ok((key, value.unwrap_or(empty)))
}

/// Decodes one value; `None` means "as good as absent" (a zero Time, an empty RawExtension).
fn decode_value(
    schema: &Schema,
    field: &Field,
    ty: &FieldType,
    raw: RawValue,
) -> Result<Option<Value>, ProtobufError> {
    let value = match ty {
        FieldType::String => Value::String(utf8(field, expect_bytes(field, raw)?)?),
        FieldType::Bytes => Value::String(
            base64::engine::general_purpose::STANDARD.encode(expect_bytes(field, raw)?),
        ),
        FieldType::Bool => Value::Bool(expect_varint(field, raw)? != 0),
        FieldType::Int32 => Value::from(expect_varint(field, raw)? as i64 as i32),
        FieldType::Int64 => Value::from(expect_varint(field, raw)? as i64),
        FieldType::Double => {
            let RawValue::Fixed64(bits) = raw else {
                return Err(wrong_wire_type(field));
            };
            let number = Number::from_f64(f64::from_bits(bits))
                .ok_or_else(|| convert(field, "not a finite number"))?;
            Value::Number(number)
        }
        FieldType::Message(path) => {
            Value::Object(decode_message(schema, path, expect_bytes(field, raw)?)?)
        }
        FieldType::Time | FieldType::MicroTime => {
            let parts = scalar_fields(expect_bytes(field, raw)?)?;
            let (seconds, nanos) = (parts.varint(1) as i64, parts.varint(2) as i64 as i32);
            return format_time(field, ty, seconds, nanos);
        }
        FieldType::Quantity => {
            let parts = scalar_fields(expect_bytes(field, raw)?)?;
            Value::String(utf8(field, parts.bytes(1))?)
        }
        FieldType::IntOrString => {
            let parts = scalar_fields(expect_bytes(field, raw)?)?;
            match parts.varint(1) {
                1 => Value::String(utf8(field, parts.bytes(3))?),
                _ => Value::from(parts.varint(2) as i64 as i32),
            }
        }
        FieldType::RawExtension | FieldType::FieldsV1 => {
            let parts = scalar_fields(expect_bytes(field, raw)?)?;
            let raw_json = parts.bytes(1);
            if raw_json.is_empty() {
                return Ok(None);
            }
            serde_json::from_slice(raw_json)
                .map_err(|e| convert(field, &format!("embedded json: {e}")))?
        }
    };
    Ok(Some(value))
}

/// The scalar fields of a small helper message (Timestamp, Quantity, IntOrString, RawExtension).
struct ScalarFields<'a>(Vec<(u32, RawValue<'a>)>);

impl<'a> ScalarFields<'a> {
    fn varint(&self, number: u32) -> u64 {
        self.0
            .iter()
            .rev()
            .find_map(|(n, v)| match v {
                RawValue::Varint(v) if *n == number => Some(*v),
                _ => None,
            })
            .unwrap_or(0)
    }

    fn bytes(&self, number: u32) -> &'a [u8] {
        self.0
            .iter()
            .rev()
            .find_map(|(n, v)| match v {
                RawValue::Bytes(b) if *n == number => Some(*b),
                _ => None,
            })
            .unwrap_or(&[])
    }
}

fn scalar_fields(bytes: &[u8]) -> Result<ScalarFields<'_>, ProtobufError> {
    let mut reader = Reader::new(bytes);
    let mut fields = Vec::new();
    while !reader.is_empty() {
        fields.push(reader.field()?);
    }
    Ok(ScalarFields(fields))
}

/// Go's zero `time.Time` (January 1, year 1) in Unix seconds; it marshals to JSON `null`.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

fn format_time(
    field: &Field,
    ty: &FieldType,
    seconds: i64,
    nanos: i32,
) -> Result<Option<Value>, ProtobufError> {
    if seconds == 0 && nanos == 0 || seconds == GO_ZERO_TIME_SECONDS {
        return Ok(None);
    }
    let at = jiff::Timestamp::from_second(seconds).map_err(|e| convert(field, &e.to_string()))?;
    let whole = at.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(Some(Value::String(match ty {
        // MicroTime keeps microseconds; Time keeps seconds only, as the real apiserver does.
        FieldType::MicroTime => format!("{whole}.{:06}Z", nanos.clamp(0, 999_999_999) / 1000),
        _ => format!("{whole}Z"),
    })))
}

/// Encodes a JSON object as the message at `path` in the schema; unknown JSON keys are ignored.
pub fn encode_message(
    schema: &Schema,
    path: &str,
    object: &Map<String, Value>,
) -> Result<Vec<u8>, ProtobufError> {
    let message = schema.message(path).ok_or_else(|| unknown_message(path))?;
    let mut writer = Writer::default();
    for field in &message.fields {
        if field.label == Label::Inline {
            let FieldType::Message(inner) = &field.ty else {
                return Err(convert(field, "inline non-message"));
            };
            writer.bytes_field(field.number, &encode_message(schema, inner, object)?);
            continue;
        }
        let value = match object.get(&field.json_name) {
            None | Some(Value::Null) => continue,
            Some(value) => value,
        };
        match field.label {
            Label::Optional | Label::Inline => {
                encode_value(schema, field, field.number, value, &mut writer)?
            }
            Label::Repeated => {
                let items = value
                    .as_array()
                    .ok_or_else(|| convert(field, "expected an array"))?;
                for item in items {
                    encode_value(schema, field, field.number, item, &mut writer)?;
                }
            }
            Label::Map => {
                let entries = value
                    .as_object()
                    .ok_or_else(|| convert(field, "expected an object"))?;
                for (key, value) in entries {
                    let mut entry = Writer::default();
                    entry.bytes_field(1, key.as_bytes());
                    if !value.is_null() {
                        encode_value(schema, field, 2, value, &mut entry)?;
                    }
                    writer.bytes_field(field.number, &entry.buf);
                }
            }
        }
    }
    Ok(writer.buf)
}

fn encode_value(
    schema: &Schema,
    field: &Field,
    number: u32,
    value: &Value,
    writer: &mut Writer,
) -> Result<(), ProtobufError> {
    let text = || {
        value
            .as_str()
            .ok_or_else(|| convert(field, "expected a string"))
    };
    let integer = || {
        value
            .as_i64()
            .ok_or_else(|| convert(field, "expected an integer"))
    };
    match &field.ty {
        FieldType::String => writer.bytes_field(number, text()?.as_bytes()),
        FieldType::Bytes => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text()?)
                .map_err(|e| convert(field, &format!("base64: {e}")))?;
            writer.bytes_field(number, &bytes);
        }
        FieldType::Bool => writer.varint_field(
            number,
            value
                .as_bool()
                .ok_or_else(|| convert(field, "expected a boolean"))? as u64,
        ),
        FieldType::Int32 => {
            let n = i32::try_from(integer()?).map_err(|_| convert(field, "out of int32 range"))?;
            writer.varint_field(number, n as i64 as u64);
        }
        FieldType::Int64 => writer.varint_field(number, integer()? as u64),
        FieldType::Double => writer.double_field(
            number,
            value
                .as_f64()
                .ok_or_else(|| convert(field, "expected a number"))?,
        ),
        FieldType::Message(path) => {
            let object = value
                .as_object()
                .ok_or_else(|| convert(field, "expected an object"))?;
            writer.bytes_field(number, &encode_message(schema, path, object)?);
        }
        FieldType::Time | FieldType::MicroTime => {
            let at: jiff::Timestamp = text()?
                .parse()
                .map_err(|e: jiff::Error| convert(field, &e.to_string()))?;
            let mut timestamp = Writer::default();
            timestamp.varint_field(1, at.as_second() as u64);
            let nanos = at.subsec_nanosecond();
            if field.ty == FieldType::MicroTime && nanos != 0 {
                timestamp.varint_field(2, (nanos / 1000 * 1000) as i64 as u64);
            }
            writer.bytes_field(number, &timestamp.buf);
        }
        FieldType::Quantity => {
            let quantity = match value {
                Value::Number(n) => n.to_string(),
                _ => text()?.to_string(),
            };
            let mut inner = Writer::default();
            inner.bytes_field(1, quantity.as_bytes());
            writer.bytes_field(number, &inner.buf);
        }
        FieldType::IntOrString => {
            // Go writes all three fields: type (0 int, 1 string), intVal, strVal.
            let mut inner = Writer::default();
            match value {
                Value::String(s) => {
                    inner.varint_field(1, 1);
                    inner.varint_field(2, 0);
                    inner.bytes_field(3, s.as_bytes());
                }
                _ => {
                    let n = i32::try_from(integer()?)
                        .map_err(|_| convert(field, "out of int32 range"))?;
                    inner.varint_field(1, 0);
                    inner.varint_field(2, n as i64 as u64);
                    inner.bytes_field(3, b"");
                }
            }
            writer.bytes_field(number, &inner.buf);
        }
        FieldType::RawExtension | FieldType::FieldsV1 => {
            let mut inner = Writer::default();
            inner.bytes_field(
                1,
                &serde_json::to_vec(value).expect("json values serialize"),
            );
            writer.bytes_field(number, &inner.buf);
        }
    }
    Ok(())
}

fn is_packable(ty: &FieldType) -> bool {
    matches!(ty, FieldType::Bool | FieldType::Int32 | FieldType::Int64)
}

fn expect_bytes<'a>(field: &Field, raw: RawValue<'a>) -> Result<&'a [u8], ProtobufError> {
    match raw {
        RawValue::Bytes(bytes) => Ok(bytes),
        _ => Err(wrong_wire_type(field)),
    }
}

fn expect_varint(field: &Field, raw: RawValue) -> Result<u64, ProtobufError> {
    match raw {
        RawValue::Varint(v) => Ok(v),
        _ => Err(wrong_wire_type(field)),
    }
}

fn utf8(field: &Field, bytes: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| convert(field, "string is not utf-8"))
}

fn wrong_wire_type(field: &Field) -> ProtobufError {
    convert(field, "unexpected wire type")
}

fn convert(field: &Field, reason: &str) -> ProtobufError {
    ProtobufError::ConvertField {
        field: field.json_name.clone(),
        reason: reason.to_string(),
    }
}

fn unknown_message(path: &str) -> ProtobufError {
    ProtobufError::ConvertField {
        field: path.to_string(),
        reason: "message missing from schema".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(path: &str, object: Value) -> Value {
        let schema = Schema::get();
        let bytes = encode_message(schema, path, object.as_object().unwrap()).unwrap();
        Value::Object(decode_message(schema, path, &bytes).unwrap())
    }

    #[test]
    fn special_types_keep_their_json_form() {
        let container = json!({
            "name": "web", "image": "nginx",
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
            "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
            "readinessProbe": {"httpGet": {"port": "http"}},
        });
        assert_eq!(
            round_trip("api/core/v1/Container", container.clone()),
            container
        );
    }

    #[test]
    fn times_are_rfc3339_seconds_and_micro_times_keep_microseconds() {
        let lease = json!({"holderIdentity": "n1", "leaseDurationSeconds": 40,
            "renewTime": "2026-11-23T12:00:01.123456Z", "acquireTime": "2026-11-23T12:00:00.000000Z"});
        assert_eq!(
            round_trip("api/coordination/v1/LeaseSpec", lease.clone()),
            lease
        );
        let meta = json!({"name": "a", "creationTimestamp": "2026-11-23T12:00:00Z"});
        assert_eq!(
            round_trip("apimachinery/pkg/apis/meta/v1/ObjectMeta", meta.clone()),
            meta
        );
    }

    #[test]
    fn inline_structs_and_maps_and_bytes() {
        let volume = json!({"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}});
        assert_eq!(round_trip("api/core/v1/Volume", volume.clone()), volume);
        let secret = json!({"data": {"k": "aGk="}, "type": "Opaque"});
        assert_eq!(round_trip("api/core/v1/Secret", secret.clone()), secret);
    }

    #[test]
    fn zero_and_false_survive_but_empty_strings_do_not() {
        let spec = json!({"replicas": 0, "paused": false});
        assert_eq!(round_trip("api/apps/v1/DeploymentSpec", spec.clone()), spec);
        let meta = json!({"name": "a", "namespace": ""});
        assert_eq!(
            round_trip("apimachinery/pkg/apis/meta/v1/ObjectMeta", meta),
            json!({"name": "a"})
        );
    }

    #[test]
    fn raw_extensions_and_managed_fields_embed_json() {
        let entry = json!({"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {}}}});
        assert_eq!(
            round_trip(
                "apimachinery/pkg/apis/meta/v1/ManagedFieldsEntry",
                entry.clone()
            ),
            entry
        );
        let revision = json!({"revision": 2, "data": {"spec": {"template": {}}}});
        assert_eq!(
            round_trip("api/apps/v1/ControllerRevision", revision.clone()),
            revision
        );
    }

    #[test]
    fn type_mismatch_names_the_field() {
        let schema = Schema::get();
        let bad = json!({"name": 5});
        let err = encode_message(
            schema,
            "apimachinery/pkg/apis/meta/v1/ObjectMeta",
            bad.as_object().unwrap(),
        );
        assert!(matches!(err, Err(ProtobufError::ConvertField { field, .. }) if field == "name"));
    }
}
