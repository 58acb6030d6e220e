//! The `minik8s-apiserver` binary's logs: on stderr only, without colours when stderr is not a
//! terminal (here a pipe), `info` by default.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{free_port, ChildGuard as ServerProcess, EtcdProcess};

#[test]
fn logs_go_to_stderr_without_colours() {
    let etcd = EtcdProcess::start();
    let port = free_port();
    let mut server = ServerProcess(
        Command::new(env!("CARGO_BIN_EXE_minik8s-apiserver"))
            .args(["--etcd-servers", &etcd.endpoint])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = read_to_end_in_background(server.0.stdout.take().unwrap());
    let stderr = read_to_end_in_background(server.0.stderr.take().unwrap());
    // It logs `serving` just before it listens.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the apiserver never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(stdout.is_empty(), "stdout: {stdout}");
    assert!(stderr.contains("serving"), "stderr: {stderr}");
    assert!(!stderr.contains('\x1b'), "stderr: {stderr:?}");
}

fn read_to_end_in_background(
    mut from: impl std::io::Read + Send + 'static,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = from.read_to_string(&mut text);
        text
    })
}
