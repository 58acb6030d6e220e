//! Errors as kubectl prints them: one line on stderr, exit status 1.
//!
//! The apiserver answers every failure with a `Status` object (`reason`, `code`, `message`);
//! kubectl prints it as `Error from server (NotFound): pods "x" not found`. A server that is
//! not there gives one line naming it, never a stack of causes. Every other error is
//! `error: <what went wrong>`, as kubectl's `cmdutil.CheckErr` prints it.
//! Read next: `commands/mod.rs`, which prints these.

use std::error::Error as StdError;

/// The line kubectl would print for `err`; `server` is the apiserver the command talked to.
pub fn render(err: &anyhow::Error, server: Option<&http::Uri>) -> String {
    if let Some(status) = find_status(err) {
        return api_status_line(status, err);
    }
    if let Some(io) = find::<std::io::Error>(err) {
        if let Some(server) = server {
            return unreachable_line(io, server);
        }
    }
    let msg = format!("{err:#}");
    if msg.starts_with("error: ") {
        msg
    } else {
        format!("error: {msg}")
    }
}

/// `Error from server (Reason): message`, with what the command was doing when it failed
/// (`error when creating "pod.yaml": ...`) kept from the context.
fn api_status_line(status: &kube::core::Status, err: &anyhow::Error) -> String {
    let reason = if status.reason.is_empty() {
        "InternalError"
    } else {
        &status.reason
    };
    let doing = err
        .chain()
        .next()
        .map(ToString::to_string)
        .filter(|s| s.starts_with("error when"));
    match doing {
        Some(doing) => format!("Error from server ({reason}): {doing}: {}", status.message),
        None => format!("Error from server ({reason}): {}", status.message),
    }
}

/// The connection failed: kubectl names the server and stops there.
fn unreachable_line(io: &std::io::Error, server: &http::Uri) -> String {
    let host = server
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| server.to_string());
    if io.kind() == std::io::ErrorKind::ConnectionRefused {
        format!("The connection to the server {host} was refused - did you specify the right host or port?")
    } else {
        format!("Unable to connect to the server: {io}")
    }
}

fn find_status(err: &anyhow::Error) -> Option<&kube::core::Status> {
    match find::<kube::Error>(err)? {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

/// The first error of type `E` among `err` and its causes (also inside a `kube::Error`'s own
/// boxed causes, where hyper keeps the `io::Error`).
fn find<E: StdError + 'static>(err: &anyhow::Error) -> Option<&E> {
    err.chain().find_map(|cause| {
        let mut next: Option<&(dyn StdError + 'static)> = Some(cause);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<E>() {
                return Some(found);
            }
            next = e.source();
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(reason: &str, message: &str) -> anyhow::Error {
        let s = kube::core::Status {
            reason: reason.into(),
            message: message.into(),
            code: 404,
            ..Default::default()
        };
        kube::Error::Api(Box::new(s)).into()
    }

    #[test]
    fn api_errors_read_like_kubectls() {
        let err = status("NotFound", "pods \"x\" not found");
        assert_eq!(
            render(&err, None),
            "Error from server (NotFound): pods \"x\" not found"
        );
        let err = status("AlreadyExists", "pods \"x\" already exists")
            .context("error when creating \"pod.yaml\"");
        assert_eq!(
            render(&err, None),
            "Error from server (AlreadyExists): error when creating \"pod.yaml\": pods \"x\" already exists"
        );
    }

    #[test]
    fn refused_connections_name_the_server() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = anyhow::Error::from(io).context("listing pods");
        let server: http::Uri = "http://127.0.0.1:1".parse().unwrap();
        assert_eq!(
            render(&err, Some(&server)),
            "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?"
        );
    }

    #[test]
    fn other_errors_get_the_error_prefix() {
        let err = anyhow::anyhow!("the path \"x.yaml\" does not exist");
        assert_eq!(
            render(&err, None),
            "error: the path \"x.yaml\" does not exist"
        );
    }
}
