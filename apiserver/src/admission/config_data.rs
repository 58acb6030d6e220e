//! The bytes a Secret (`data`) or a ConfigMap (`binaryData`) carries travel in JSON as base64,
//! since JSON has no byte strings. kube-apiserver decodes them with Go's `encoding/json`, so a
//! value that is not base64 is a 400 whose text is Go's: `Secret in version "v1" cannot be
//! handled as a Secret: illegal base64 data at input byte 4`. [`check_base64`] reproduces Go's
//! decoder (newlines skipped, padding required, offsets as Go counts them) and rewrites every
//! value in the canonical form the typed decoder accepts.
//!
//! `stringData` is a write-only convenience: plain strings merged into `data` on every write
//! (overwriting keys present in both) and never stored, so a read never shows it. This is
//! conversion in kube-apiserver (v1 → internal), before validation: an immutable Secret
//! refuses a `stringData` change as it refuses a `data` one.
//!
//! Read next: `validation/config.rs`, the rules for the keys and for `immutable`.

use base64::Engine;
use serde_json::Value;

/// Go's `base64.CorruptInputError`: the offset of the first byte it could not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal base64 data at input byte {0}")]
pub struct CorruptInput(pub usize);

fn sextet(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

fn is_newline(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// Decode one quantum (up to four symbols) from `si`, as Go's `decodeQuantum` does: the next
/// index, the bytes, and whether this was the last quantum (padding seen).
fn quantum(src: &[u8], mut si: usize) -> Result<(usize, Vec<u8>, bool), CorruptInput> {
    let mut buf = [0u32; 4];
    let mut j = 0usize;
    while j < 4 {
        if si == src.len() {
            if j == 0 {
                return Ok((si, Vec::new(), true));
            }
            // StdEncoding pads: a short final quantum is corrupt where it started.
            return Err(CorruptInput(si - j));
        }
        let b = src[si];
        si += 1;
        if let Some(v) = sextet(b) {
            buf[j] = v;
            j += 1;
            continue;
        }
        if is_newline(b) {
            continue;
        }
        if b != b'=' || j < 2 {
            return Err(CorruptInput(si - 1));
        }
        if j == 2 {
            // "==" expected; the first is consumed
            while si < src.len() && is_newline(src[si]) {
                si += 1;
            }
            if si == src.len() {
                return Err(CorruptInput(src.len()));
            }
            if src[si] != b'=' {
                return Err(CorruptInput(si - 1));
            }
            si += 1;
        }
        while si < src.len() && is_newline(src[si]) {
            si += 1;
        }
        if si < src.len() {
            return Err(CorruptInput(si)); // trailing garbage
        }
        let val = buf[0] << 18 | buf[1] << 12 | buf[2] << 6;
        let bytes = [(val >> 16) as u8, (val >> 8) as u8];
        return Ok((si, bytes[..j - 1].to_vec(), true));
    }
    let val = buf[0] << 18 | buf[1] << 12 | buf[2] << 6 | buf[3];
    Ok((
        si,
        vec![(val >> 16) as u8, (val >> 8) as u8, val as u8],
        false,
    ))
}

/// Decode like Go's `base64.StdEncoding.DecodeString` (not strict: trailing bits are ignored).
pub fn go_decode(s: &str) -> Result<Vec<u8>, CorruptInput> {
    let src = s.as_bytes();
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    loop {
        let (next, bytes, last) = quantum(src, si)?;
        out.extend_from_slice(&bytes);
        si = next;
        if last || si == src.len() {
            return Ok(out);
        }
    }
}

/// Check every value of the byte map `field` (`data`, `binaryData`) of `obj` as Go decodes
/// base64, rewriting each in canonical form. `Err` carries Go's message.
pub fn check_base64(obj: &mut Value, field: &str) -> Result<(), CorruptInput> {
    let Some(map) = obj.get_mut(field).and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for value in map.values_mut() {
        if let Value::String(s) = value {
            let bytes = go_decode(s)?;
            *s = base64::engine::general_purpose::STANDARD.encode(bytes);
        }
    }
    Ok(())
}

/// Merge a Secret's `stringData` into `data` (its values win) and drop it.
pub fn fold_string_data(secret: &mut Value) {
    let Some(obj) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = obj.remove("stringData") else {
        return;
    };
    if strings.is_empty() {
        return;
    }
    let data = obj
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if !data.is_object() {
        *data = Value::Object(Default::default());
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(k, Value::String(encoded));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_what_go_decodes() {
        assert_eq!(go_decode("").unwrap(), b"");
        assert_eq!(go_decode("dg==").unwrap(), b"v");
        assert_eq!(go_decode("YWI=").unwrap(), b"ab");
        assert_eq!(go_decode("YWJj").unwrap(), b"abc");
        assert_eq!(go_decode("YWJj\nZGVm\r\n").unwrap(), b"abcdef");
        // not strict: trailing bits are ignored
        assert_eq!(go_decode("dh==").unwrap(), b"v");
    }

    #[test]
    fn reports_the_offsets_go_reports() {
        // from kubernetes issues: `billy` and `admin` fail at byte 4
        assert_eq!(go_decode("billy"), Err(CorruptInput(4)));
        assert_eq!(go_decode("admin"), Err(CorruptInput(4)));
        assert_eq!(go_decode("<foo>"), Err(CorruptInput(0)));
        assert_eq!(go_decode("abc"), Err(CorruptInput(0)));
        assert_eq!(go_decode("YQ="), Err(CorruptInput(3)));
        assert_eq!(go_decode("YQ==YQ=="), Err(CorruptInput(4)));
        assert_eq!(go_decode("Y==="), Err(CorruptInput(1)));
        assert_eq!(
            CorruptInput(4).to_string(),
            "illegal base64 data at input byte 4"
        );
    }

    #[test]
    fn values_are_rewritten_canonically_and_string_data_folded_in() {
        let mut s =
            json!({"data": {"a": "dh==", "b": "YWJj\n"}, "stringData": {"b": "new", "c": "x"}});
        check_base64(&mut s, "data").unwrap();
        assert_eq!(s["data"], json!({"a": "dg==", "b": "YWJj"}));
        fold_string_data(&mut s);
        assert_eq!(s, json!({"data": {"a": "dg==", "b": "bmV3", "c": "eA=="}}));
        let mut only_strings = json!({"stringData": {"k": "v"}});
        fold_string_data(&mut only_strings);
        assert_eq!(only_strings, json!({"data": {"k": "dg=="}}));
    }
}
