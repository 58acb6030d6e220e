//! `minik8s-runtime` as a process: its reports end quietly when the reader of their stdout goes
//! away (`minik8s-runtime ps | head`), and with `RUST_LOG` it logs to stderr only, without
//! colours when stderr is not a terminal. Run as root.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use common::Rt;

#[test]
fn runtime_reports_into_a_closed_pipe_end_quietly() {
    let rt = Rt::new("closed-pipe");
    for args in [["ps"], ["images"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // every write now fails with EPIPE
        let out = rt
            .cmd(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let quiet = out.status.code() == Some(0) || out.status.signal() == Some(libc::SIGPIPE);
        assert!(quiet, "{args:?}: {}: {stderr}", out.status);
    }
}

#[test]
fn runtime_logs_to_stderr_without_colours() {
    let rt = Rt::new("cli-logs");
    let out = rt
        .cmd(&["run", "--rm", "busybox", "--", "true"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(stderr.contains("container created"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!out.stderr.contains(&0x1b), "{stderr}");
}

/// `run -it` (and `exec -it`) with a stdin that is not a terminal is refused at once with
/// Docker's message and exit code 1, before anything is created (it used to hang).
#[test]
fn run_it_without_a_terminal_is_refused_like_docker() {
    let rt = Rt::new("cli-it-no-tty");
    for args in [
        &["run", "-it", "--rm", "busybox", "--", "true"][..],
        &["exec", "-it", "no-such-container", "true"][..],
    ] {
        let mut child = rt
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} hangs with a stdin that is not a terminal");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("the input device is not a TTY"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(rt.ok_line(&["ps", "-q"]), "");
    assert!(rt.no_containers(), "run -it left a container behind");
}
