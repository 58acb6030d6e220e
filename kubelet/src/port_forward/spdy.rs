//! SPDY/3.1 framing, the multiplexing under `kubectl port-forward`. kubectl opens one
//! connection and, per forwarded TCP connection, two *streams* on it (a data stream and an
//! error stream); since 1.31 it carries the SPDY bytes inside WebSocket binary messages
//! (subprotocol `SPDY/3.1+portforward.k8s.io`) instead of an HTTP `Upgrade: SPDY/3.1`.
//!
//! A frame is an 8-byte head and a payload. A control frame (high bit set) has a version (3),
//! a type, flags and a 24-bit length: `SYN_STREAM` opens a stream with a header block,
//! `SYN_REPLY` accepts it, `RST_STREAM` aborts it, `PING` is echoed, `GOAWAY` ends the
//! session; `SETTINGS`, `WINDOW_UPDATE` and `HEADERS` are read and ignored here (kubectl
//! implements no flow control). A data frame carries a 31-bit stream id, flags (`FIN`: the
//! sender's half of the stream is closed) and bytes. Header blocks (a count, then
//! length-prefixed names and values) are zlib-compressed with one compression context per
//! direction for the whole session, seeded with the dictionary of the SPDY/3 draft (§2.6.10.1).
//! Read `mod.rs` next.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const VERSION: u16 = 3;
const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const FLAG_FIN: u8 = 0x01;
/// The largest payload a 24-bit length allows.
const MAX_PAYLOAD: usize = 0xff_ffff;

/// `RST_STREAM` status: the stream was refused for a protocol error.
pub const PROTOCOL_ERROR: u32 = 1;

/// The header names of the SPDY/3 dictionary, each stored as a 4-byte big-endian length and
/// the name.
const DICTIONARY_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The dictionary's tail: status lines, dates and common values, as plain text.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivate",
    "max-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The zlib dictionary both ends seed their header compression with.
fn dictionary() -> Vec<u8> {
    let mut d = Vec::with_capacity(1424);
    for w in DICTIONARY_WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    d
}

/// A stream's header block: (name, value) pairs, names lowercase.
pub type Headers = Vec<(String, String)>;

/// One frame, as this end reads or writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The peer opens stream `stream_id` (odd: the client's) with `headers`.
    SynStream {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    /// The stream is accepted.
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    /// The stream is aborted with `status`.
    RstStream { stream_id: u32, status: u32 },
    /// A liveness check; the receiver of a peer's ping sends it back unchanged.
    Ping { id: u32 },
    /// The session ends; no stream above `last_good_stream_id` was processed.
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    /// Bytes of a stream; `fin` closes the sender's half.
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    /// A control frame this end reads and ignores (`SETTINGS`, `WINDOW_UPDATE`, `HEADERS`, ...).
    Ignored { kind: u16 },
}

/// Why a SPDY session could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// Reading or writing the connection failed.
    #[error("spdy connection: {0}")]
    Io(#[from] std::io::Error),
    /// A header block could not be compressed or decompressed.
    #[error("spdy header compression: {0}")]
    Compression(String),
    /// A frame broke the protocol (too short, wrong version, bad header block).
    #[error("spdy protocol error: {0}")]
    Malformed(&'static str),
}

/// The reading half: frames from the peer, header blocks inflated with the session's context.
pub struct Reader<R> {
    io: R,
    inflate: Decompress,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R) -> Self {
        Self {
            io,
            inflate: Decompress::new(true),
        }
    }

    /// The next frame; None when the peer closed the connection between frames.
    pub async fn next(&mut self) -> Result<Option<Frame>, SpdyError> {
        let mut head = [0u8; 8];
        match self.io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let mut payload = vec![0u8; len];
        self.io.read_exact(&mut payload).await?;
        let fin = flags & FLAG_FIN != 0;
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: first & 0x7fff_ffff,
                fin,
                data: payload.into(),
            }));
        }
        if (first >> 16) & 0x7fff != u32::from(VERSION) {
            return Err(SpdyError::Malformed("unsupported version"));
        }
        let kind = (first & 0xffff) as u16;
        let word = |i: usize| -> Result<u32, SpdyError> {
            payload
                .get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(SpdyError::Malformed("control frame too short"))
        };
        Ok(Some(match kind {
            TYPE_SYN_STREAM => {
                let stream_id = word(0)? & 0x7fff_ffff;
                // associated stream (4), priority and slot (2), then the header block
                let block = payload
                    .get(10..)
                    .ok_or(SpdyError::Malformed("control frame too short"))?;
                let headers = parse_headers(&self.inflate_block(block)?)?;
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let stream_id = word(0)? & 0x7fff_ffff;
                // the block must pass through the inflater even when unused, to keep its context
                let headers = parse_headers(&self.inflate_block(&payload[4..])?)?;
                if kind == TYPE_HEADERS {
                    Frame::Ignored { kind }
                } else {
                    Frame::SynReply {
                        stream_id,
                        fin,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => Frame::RstStream {
                stream_id: word(0)? & 0x7fff_ffff,
                status: word(4)?,
            },
            TYPE_PING => Frame::Ping { id: word(0)? },
            TYPE_GOAWAY => Frame::GoAway {
                last_good_stream_id: word(0)? & 0x7fff_ffff,
                status: word(4).unwrap_or(0),
            },
            kind => Frame::Ignored { kind },
        }))
    }

    /// Inflate one header block: the dictionary is given when the stream asks for it.
    fn inflate_block(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(256));
            }
            let (in_before, out_before) = (self.inflate.total_in(), out.len());
            let res = self
                .inflate
                .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync);
            pos += (self.inflate.total_in() - in_before) as usize;
            match res {
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&dictionary())
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
                Ok(Status::StreamEnd) => return Err(SpdyError::Malformed("header stream ended")),
                Ok(_) if pos >= input.len() && out.len() < out.capacity() => return Ok(out),
                Ok(_) if pos == input.len() && out.len() == out_before => return Ok(out),
                Ok(_) => {}
            }
        }
    }
}

/// Parse an inflated header block: a count, then length-prefixed names and values.
fn parse_headers(block: &[u8]) -> Result<Headers, SpdyError> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        let s = block
            .get(at..at + n)
            .ok_or(SpdyError::Malformed("truncated header block"))?;
        at += n;
        Ok(s)
    };
    let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = word(take(4)?);
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = word(take(4)?);
        let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
        let n = word(take(4)?);
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        headers.push((name, value));
    }
    Ok(headers)
}

/// The writing half: frames to the peer, header blocks deflated with the session's context.
pub struct Writer<W> {
    io: W,
    deflate: Compress,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Result<Self, SpdyError> {
        let mut deflate = Compress::new(Compression::best(), true);
        deflate
            .set_dictionary(&dictionary())
            .map_err(|e| SpdyError::Compression(e.to_string()))?;
        Ok(Self { io, deflate })
    }

    /// Encode and send `frame`.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), SpdyError> {
        let bytes = self.encode(frame)?;
        self.io.write_all(&bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Close the connection's write side.
    pub async fn shutdown(&mut self) -> Result<(), SpdyError> {
        Ok(self.io.shutdown().await?)
    }

    fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>, SpdyError> {
        let (kind, fin, body) = match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => return Ok(head_and(*stream_id & 0x7fff_ffff, flag(*fin), data)),
            Frame::SynStream {
                stream_id,
                fin,
                headers,
            } => {
                let mut b = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                b.extend_from_slice(&[0; 6]);
                b.extend(self.deflate_block(headers)?);
                (TYPE_SYN_STREAM, *fin, b)
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                let mut b = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                b.extend(self.deflate_block(headers)?);
                (TYPE_SYN_REPLY, *fin, b)
            }
            Frame::RstStream { stream_id, status } => (
                TYPE_RST_STREAM,
                false,
                [stream_id.to_be_bytes(), status.to_be_bytes()].concat(),
            ),
            Frame::Ping { id } => (TYPE_PING, false, id.to_be_bytes().to_vec()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => (
                TYPE_GOAWAY,
                false,
                [last_good_stream_id.to_be_bytes(), status.to_be_bytes()].concat(),
            ),
            Frame::Ignored { .. } => return Ok(Vec::new()),
        };
        let first = 0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(kind);
        Ok(head_and(first, flag(fin), &body))
    }

    /// Deflate a header block with a sync flush, so the peer can inflate it at once.
    fn deflate_block(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            for s in [name.to_ascii_lowercase().as_str(), value.as_str()] {
                plain.extend_from_slice(&(s.len() as u32).to_be_bytes());
                plain.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&plain[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            pos += (self.deflate.total_in() - before) as usize;
            // the flush is complete when it left output space unused
            if pos >= plain.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

fn flag(fin: bool) -> u8 {
    if fin {
        FLAG_FIN
    } else {
        0
    }
}

/// A frame's 8-byte head (first word, flags, length) and its payload.
fn head_and(first: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(MAX_PAYLOAD) as u32;
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&first.to_be_bytes());
    v.extend_from_slice(&((u32::from(flags) << 24) | len).to_be_bytes());
    v.extend_from_slice(&payload[..len as usize]);
    v
}
