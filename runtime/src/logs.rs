//! Container logs in the CRI format the kubelet and `kubectl logs` read: one line per output
//! line, `<RFC 3339 nanosecond UTC time> <stdout|stderr> <F|P> <text>`. `F` marks a full line,
//! `P` a partial one (a very long line split, or output still missing its newline). The shim
//! writes it; `logs` reads it back.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest chunk logged as one line; longer lines are split into `P` records.
pub const MAX_LINE: usize = 16 * 1024;

/// `2026-11-23T11:49:09.123456789Z` for a point in time.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Now, formatted.
pub fn now() -> String {
    rfc3339_nanos(SystemTime::now())
}

/// Splits one stream's bytes into CRI records.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feed bytes; complete lines are written to `out` as records of `stream`.
    pub fn feed(&mut self, stream: &str, data: &[u8], out: &mut impl Write) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            write_record(out, stream, b'F', &line[..line.len() - 1])?;
        }
        while self.pending.len() >= MAX_LINE {
            let chunk: Vec<u8> = self.pending.drain(..MAX_LINE).collect();
            write_record(out, stream, b'P', &chunk)?;
        }
        Ok(())
    }

    /// Flush an unterminated last line at end of stream.
    pub fn finish(&mut self, stream: &str, out: &mut impl Write) -> io::Result<()> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            write_record(out, stream, b'F', &rest)?;
        }
        Ok(())
    }
}

fn write_record(out: &mut impl Write, stream: &str, tag: u8, line: &[u8]) -> io::Result<()> {
    let mut rec = Vec::with_capacity(line.len() + 48);
    rec.extend_from_slice(now().as_bytes());
    rec.push(b' ');
    rec.extend_from_slice(stream.as_bytes());
    rec.push(b' ');
    rec.push(tag);
    rec.push(b' ');
    rec.extend_from_slice(line);
    rec.push(b'\n');
    out.write_all(&rec)
}

/// One parsed record.
#[derive(Debug, PartialEq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    pub partial: bool,
    pub text: &'a str,
}

/// Parse one line of a CRI log file.
pub fn parse(line: &str) -> Option<Record<'_>> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?;
    let stream = it.next()?;
    let tag = it.next()?;
    let text = it.next().unwrap_or("");
    Some(Record {
        time,
        stream,
        partial: tag == "P",
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_time() {
        let t = UNIX_EPOCH + Duration::new(1_795_434_549, 123_456_789);
        assert_eq!(rfc3339_nanos(t), "2026-11-23T11:49:09.123456789Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn splits_lines_and_partials() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.feed("stdout", b"hello\nwor", &mut out).unwrap();
        s.feed("stdout", b"ld\n", &mut out).unwrap();
        s.feed("stdout", b"tail", &mut out).unwrap();
        s.finish("stdout", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let recs: Vec<_> = text.lines().map(|l| parse(l).unwrap()).collect();
        assert_eq!(
            recs.iter().map(|r| r.text).collect::<Vec<_>>(),
            ["hello", "world", "tail"]
        );
        assert!(recs
            .iter()
            .all(|r| r.stream == "stdout" && !r.partial && r.time.ends_with('Z')));
        let mut out = Vec::new();
        s.feed("stderr", &vec![b'x'; MAX_LINE + 1], &mut out)
            .unwrap();
        assert!(String::from_utf8(out).unwrap().contains(" stderr P "));
    }
}
