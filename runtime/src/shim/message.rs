//! What the shim tells whoever started it, one line per message on the status pipe (and what
//! the container's init tells the shim on its error pipe when it fails before exec). A typed
//! message with an `encode`/`decode` pair, as youki's processes talk through a channel of
//! message enums: the two ends cannot drift apart, and the wire format is tested here.
//! `start` (`container/start.rs`) waits for `Started` or `Failed`; an attached caller then
//! waits for `Exited` (`Started::wait`). Read next: `relay.rs`.

/// One message on the status pipe. On the wire: `started PID`, `error CODE MESSAGE` or
/// `exited CODE OOM` (OOM `1` or `0`), one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusMessage {
    /// The command runs (or, for an OCI `create`, waits on `exec.fifo`) as host pid `pid`.
    Started { pid: i32 },
    /// The container could not start: the exit code a shell would report (125: the runtime,
    /// 126: not executable, 127: not found) and why.
    Failed { code: i32, message: String },
    /// The command ended with `code` (128 + signal when killed); `oom_killed` if the kernel's
    /// OOM killer ended a process of the container.
    Exited { code: i32, oom_killed: bool },
}

/// Why a line is not a [`StatusMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The first word names no message.
    #[error("unknown status message {line:?}")]
    Unknown { line: String },
    /// A field is missing or not a number.
    #[error("malformed status message {line:?}")]
    Malformed { line: String },
}

impl StatusMessage {
    /// The message as one line, without the newline. A failure's text has its line breaks
    /// turned into spaces, so that it stays one message.
    pub fn encode(&self) -> String {
        match self {
            StatusMessage::Started { pid } => format!("started {pid}"),
            StatusMessage::Failed { code, message } => {
                format!("error {code} {}", message.replace('\n', " "))
            }
            StatusMessage::Exited { code, oom_killed } => {
                format!("exited {code} {}", u8::from(*oom_killed))
            }
        }
    }

    /// Parse one line (a trailing newline is ignored).
    pub fn decode(line: &str) -> Result<Self, MessageError> {
        let line = line.trim_end_matches(['\n', '\r']);
        let malformed = || MessageError::Malformed {
            line: line.to_string(),
        };
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "started" => Ok(StatusMessage::Started {
                pid: rest.trim().parse().map_err(|_| malformed())?,
            }),
            "error" => {
                let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
                Ok(StatusMessage::Failed {
                    code: code.parse().map_err(|_| malformed())?,
                    message: message.to_string(),
                })
            }
            "exited" => {
                let mut it = rest.split_whitespace();
                let code = it
                    .next()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(malformed)?;
                let oom_killed = match it.next() {
                    Some("1") => true,
                    Some("0") => false,
                    _ => return Err(malformed()),
                };
                Ok(StatusMessage::Exited { code, oom_killed })
            }
            _ => Err(MessageError::Unknown {
                line: line.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_decodes_to_itself() {
        for m in [
            StatusMessage::Started { pid: 4242 },
            StatusMessage::Failed {
                code: 127,
                message: "executable file not found in $PATH: \"nope\"".into(),
            },
            StatusMessage::Failed {
                code: 125,
                message: String::new(),
            },
            StatusMessage::Exited {
                code: 137,
                oom_killed: true,
            },
            StatusMessage::Exited {
                code: 0,
                oom_killed: false,
            },
        ] {
            assert_eq!(StatusMessage::decode(&m.encode()), Ok(m.clone()), "{m:?}");
            assert_eq!(StatusMessage::decode(&format!("{}\n", m.encode())), Ok(m));
        }
    }

    #[test]
    fn the_wire_format_is_one_line_of_words() {
        assert_eq!(StatusMessage::Started { pid: 7 }.encode(), "started 7");
        assert_eq!(
            StatusMessage::Exited {
                code: 1,
                oom_killed: true
            }
            .encode(),
            "exited 1 1"
        );
        let failed = StatusMessage::Failed {
            code: 126,
            message: "exec \"x\":\npermission denied".into(),
        };
        assert_eq!(failed.encode(), "error 126 exec \"x\": permission denied");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            StatusMessage::decode(""),
            Err(MessageError::Unknown { .. })
        ));
        assert!(matches!(
            StatusMessage::decode("hello 1"),
            Err(MessageError::Unknown { .. })
        ));
        for line in [
            "started",
            "started x",
            "error x msg",
            "exited 1",
            "exited 1 2",
        ] {
            assert!(
                matches!(
                    StatusMessage::decode(line),
                    Err(MessageError::Malformed { .. })
                ),
                "{line}"
            );
        }
    }
}
