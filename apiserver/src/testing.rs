//! Test and benchmark fixtures: a real etcd process and an in-process apiserver on loopback.
//!
//! Integration tests and benchmarks run against a real etcd (Debian's `etcd-server`), never a
//! mock. Each `EtcdProcess` gets its own free loopback ports and a temporary data directory,
//! and is killed and removed on drop, also when a test panics. They live here, beside the
//! internals `TestServer` starts; tests reach them through `testkit` (the `minik8s-testkit`
//! crate), which builds clusters, kubectl and nodes on them.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the in-process server is configured (tests set the kubelet token, timeouts).
pub use crate::server::ServerConfig;
use crate::server::{app, App};
use crate::storage::Storage;

/// A private etcd on loopback, killed on drop.
pub struct EtcdProcess {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl EtcdProcess {
    /// Start etcd and wait until it answers. Panics with the reason (and etcd's log) if it
    /// cannot start. Ports come from binding port 0 and letting go, so a parallel test may take
    /// one in between: an etcd that exits at once is started again on fresh ports.
    pub fn start() -> EtcdProcess {
        let mut last_log = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(etcd) => return etcd,
                Err(log) => {
                    eprintln!("etcd did not start, trying again on fresh ports: {log}");
                    last_log = log;
                }
            }
        }
        panic!("etcd did not start; its log:\n{last_log}");
    }

    /// One attempt: `Err(log)` if etcd exited or did not answer within 20 s.
    fn try_start() -> Result<EtcdProcess, String> {
        let bin = which_etcd();
        let dir = data_parent().join(format!(
            "minik8s-etcd-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("create etcd data dir");
        // both bound at once, so the two ports differ
        let (client, peer) = {
            let a = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
            let b = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
            let port = |l: &TcpListener| l.local_addr().expect("local addr").port();
            (port(&a), port(&b))
        };
        let endpoint = format!("http://127.0.0.1:{client}");
        let log = std::fs::File::create(dir.join("etcd.log")).expect("etcd log file");
        let child = Command::new(&bin)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--name", "test"])
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args([
                "--initial-cluster",
                &format!("test=http://127.0.0.1:{peer}"),
            ])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (install etcd-server)"));
        let mut etcd = EtcdProcess {
            child,
            dir,
            endpoint,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            let exited = matches!(etcd.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() >= deadline {
                // the log is read before Drop removes the directory
                let log = std::fs::read_to_string(etcd.dir.join("etcd.log")).unwrap_or_default();
                let why = if exited {
                    "exited"
                } else {
                    "no answer in 20 s"
                };
                return Err(format!("({why} on port {client}) {log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(etcd)
    }

    /// Pid of the etcd process (tests that stop and continue it use this).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where test etcds keep their data: on tmpfs (`/dev/shm`) when it has room, else the temp dir.
/// A test needs no durability, and etcd's fsyncs on a disk shared with parallel builds and
/// tests took over the apiserver's 1.5 s storage timeout now and then (a 503 in a test).
fn data_parent() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let roomy = nix::sys::statvfs::statvfs(shm)
        .map(|s| s.blocks_available() * s.fragment_size() >= 2 << 30)
        .unwrap_or(false);
    if roomy {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

fn which_etcd() -> String {
    for p in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    "etcd".to_string()
}

/// An apiserver serving on a loopback port inside the current tokio runtime.
pub struct TestServer {
    pub app: App,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    handle: axum_server::Handle<SocketAddr>,
}

impl TestServer {
    /// Start on a fresh port with a unique etcd prefix.
    pub async fn start(etcd: &EtcdProcess, config: ServerConfig) -> TestServer {
        let prefix = format!("/registry-{}", uuid::Uuid::new_v4().simple());
        Self::start_on(etcd, &prefix, "127.0.0.1:0".parse().unwrap(), config).await
    }

    /// Start on `addr` with `prefix` (restart tests reuse both).
    pub async fn start_on(
        etcd: &EtcdProcess,
        prefix: &str,
        addr: SocketAddr,
        config: ServerConfig,
    ) -> TestServer {
        let storage = Storage::connect(std::slice::from_ref(&etcd.endpoint), prefix)
            .await
            .expect("connect etcd");
        // Bound first: the `kubernetes` Service's endpoints name the port bootstrap writes.
        let listener = std::net::TcpListener::bind(addr).expect("bind test server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let mut config = config;
        config.advertise_address.get_or_insert(addr);
        let state = App::new(storage, config);
        state.bootstrap().await;
        state.wait_ready().await;
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp(listener)
            .expect("server from listener")
            .handle(handle.clone());
        let router = app(state.clone());
        tokio::spawn(async move {
            let _ = server.serve(router.into_make_service()).await;
        });
        TestServer {
            app: state,
            addr,
            url: format!("http://{addr}"),
            handle,
        }
    }

    /// Stop serving now, dropping open connections (watches included).
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}
