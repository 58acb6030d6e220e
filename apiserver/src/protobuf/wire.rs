//! The protobuf wire format itself, below any schema: a message is a sequence of fields, each a
//! key (`field number << 3 | wire type`) followed by a varint, a fixed 64- or 32-bit word, or a
//! length-prefixed run of bytes (strings, bytes, nested messages, packed repeated scalars).
//! Read `schema.rs` next for what the numbers mean, then `convert.rs` for how values become JSON.

use super::ProtobufError;

/// How a field's value is laid out on the wire (the low three bits of its key); the writer
/// needs no more than these (Kubernetes has no float or fixed32 fields), the reader also skips 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// A base-128 varint: int32, int64, bool.
    Varint = 0,
    /// Eight little-endian bytes: double.
    Fixed64 = 1,
    /// A varint length, then that many bytes: string, bytes, messages, packed scalars.
    LengthDelimited = 2,
}

/// One field read off the wire, its value not yet interpreted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// A cursor over the bytes of one message.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads a base-128 varint (at most ten bytes).
    pub fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| malformed("truncated varint"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("varint longer than ten bytes"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.buf.len());
        let end = end.ok_or_else(|| malformed("field runs past the end of its message"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// Reads the next field: its number and its raw value.
    pub fn field(&mut self) -> Result<(u32, RawValue<'a>), ProtobufError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| malformed("field number out of range"))?;
        if number == 0 {
            return Err(malformed("field number 0"));
        }
        let value = match key & 7 {
            0 => RawValue::Varint(self.varint()?),
            1 => RawValue::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().unwrap())),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| malformed("length out of range"))?;
                RawValue::Bytes(self.take(len)?)
            }
            5 => RawValue::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap())),
            other => return Err(malformed(&format!("unsupported wire type {other}"))),
        };
        Ok((number, value))
    }
}

fn malformed(reason: &str) -> ProtobufError {
    ProtobufError::ReadWire {
        reason: reason.to_string(),
    }
}

/// Appends fields to a message being built.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    pub fn key(&mut self, number: u32, wire_type: WireType) {
        self.varint(u64::from(number) << 3 | wire_type as u64);
    }

    pub fn varint_field(&mut self, number: u32, value: u64) {
        self.key(number, WireType::Varint);
        self.varint(value);
    }

    pub fn bytes_field(&mut self, number: u32, value: &[u8]) {
        self.key(number, WireType::LengthDelimited);
        self.varint(value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    pub fn double_field(&mut self, number: u32, value: f64) {
        self.key(number, WireType::Fixed64);
        self.buf.extend_from_slice(&value.to_bits().to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_including_negative_int32() {
        let mut w = Writer::default();
        for v in [0u64, 1, 127, 128, 300, u64::MAX, (-5i64) as u64] {
            w.varint_field(3, v);
        }
        let mut r = Reader::new(&w.buf);
        for v in [0u64, 1, 127, 128, 300, u64::MAX, (-5i64) as u64] {
            assert_eq!(r.field().unwrap(), (3, RawValue::Varint(v)));
        }
        assert!(r.is_empty());
    }

    #[test]
    fn length_delimited_and_fixed_fields() {
        let mut w = Writer::default();
        w.bytes_field(1, b"nginx");
        w.double_field(2, 1.5);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.field().unwrap(), (1, RawValue::Bytes(b"nginx")));
        assert_eq!(r.field().unwrap(), (2, RawValue::Fixed64(1.5f64.to_bits())));
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut w = Writer::default();
        w.bytes_field(1, b"nginx");
        let cut = &w.buf[..w.buf.len() - 1];
        assert!(matches!(
            Reader::new(cut).field(),
            Err(ProtobufError::ReadWire { .. })
        ));
        assert!(Reader::new(&[0x80]).varint().is_err());
    }
}
