//! The runtime on the real kernel, through its command line. Run as root.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use runtime::cgroups::Hierarchy;

#[test]
fn command_is_pid_1_and_hostname_is_isolated() {
    let rt = Rt::new("pid1");
    let host_hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = rt.ok(&[
        "run",
        "--rm",
        "--hostname",
        "inside",
        "busybox",
        "--",
        "sh",
        "-c",
        "echo $$; hostname; ls /proc | grep -c '^[0-9]'",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    assert_eq!(lines[1], "inside");
    // only sh and its ls/grep children are visible: a fresh pid namespace
    assert!(lines[2].parse::<u32>().unwrap() <= 4, "{out}");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_hostname
    );
    // the shim removes the container right after reporting the exit
    assert!(
        rt.wait_for(20, || rt.no_containers()),
        "--rm left the container"
    );
}

#[test]
fn exit_code_and_cri_logs() {
    let rt = Rt::new("logs");
    let out = rt.run(&[
        "run",
        "--name",
        "logger",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let logs = rt.run(&["logs", "logger"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "err\n");
    let log_path = rt.inspect("logger")["LogPath"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = fs::read_to_string(log_path).unwrap();
    for line in raw.lines() {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        assert_eq!(parts.len(), 4, "{line}");
        assert!(
            parts[0].len() == 30 && parts[0].ends_with('Z') && parts[0].as_bytes()[10] == b'T',
            "{line}"
        );
        assert!(parts[1] == "stdout" || parts[1] == "stderr");
        assert_eq!(parts[2], "F");
    }
    assert_eq!(
        rt.inspect("logger")["State"]["ExitCode"]
            .as_i64()
            .or(rt.inspect("logger")["State"]["exit_code"].as_i64()),
        Some(3)
    );
}

#[test]
fn containers_of_a_sandbox_share_localhost() {
    let rt = Rt::new("sandbox");
    rt.ok(&["sandbox", "create", "pod1"]);
    // The server listens again after each connection, so a client attempt that races its
    // start-up cannot use up the only listen.
    let server = rt.ok_line(&[
        "run",
        "-d",
        "--sandbox",
        "pod1",
        "--name",
        "server",
        "busybox",
        "sh",
        "-c",
        "while true; do nc -l -p 8080; done",
    ]);
    let info = rt.inspect(&server);
    // A client in another container of the same sandbox reaches it on 127.0.0.1.
    let got = rt.wait_for(30, || {
        let _ = rt.run(&[
            "run",
            "--rm",
            "--sandbox",
            "pod1",
            "busybox",
            "sh",
            "-c",
            "echo hello-from-client | nc 127.0.0.1 8080",
        ]);
        String::from_utf8_lossy(&rt.run(&["logs", &server]).stdout).contains("hello-from-client")
    });
    assert!(
        got,
        "server logs: {:?}, state: {}",
        rt.run(&["logs", &server]),
        rt.inspect(&server)["State"]
    );
    // both containers saw the sandbox's hostname
    let out = rt.ok(&["run", "--rm", "--sandbox", "pod1", "busybox", "hostname"]);
    assert_eq!(out.trim(), "pod1");
    let net = info["Namespaces"]["net"].as_u64();
    rt.ok(&["rm", "-f", &server]);
    rt.ok(&["sandbox", "rm", "-f", "pod1"]);
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(rt.root.to_str().unwrap()) && !mounts.contains(rt.state.to_str().unwrap()),
        "pinned namespaces still mounted"
    );
    assert!(net.is_some());
    assert_eq!(leftovers(&rt.root, &info), Vec::<String>::new());
}

#[test]
fn cpu_quota_limits_a_burner_to_its_share() {
    let rt = Rt::new("cpu");
    let id = rt.ok_line(&[
        "run",
        "-d",
        "--cpus",
        "0.2",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let info = rt.inspect(&id);
    let rel = info["Cgroup"].as_str().unwrap().to_string();
    let h = Hierarchy::host();
    std::thread::sleep(Duration::from_millis(500));
    let (u0, t0) = (h.stats(Path::new(&rel)).cpu_usage_ns, Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let (u1, t1) = (h.stats(Path::new(&rel)).cpu_usage_ns, Instant::now());
    let share = (u1 - u0) as f64 / (t1 - t0).as_nanos() as f64;
    assert!((0.15..=0.25).contains(&share), "cpu share {share:.3}");
    let limits = info["CgroupLimits"].as_object().unwrap();
    assert!(
        limits
            .iter()
            .any(|(k, v)| (k.ends_with("cpu.cfs_quota_us") && v == "20000")
                || (k.ends_with("cpu.max") && v == "20000 100000")),
        "{limits:?}"
    );
    // /proc/cpuinfo shows one processor
    let out = rt.ok(&["exec", &id, "sh", "-c", "grep -c ^processor /proc/cpuinfo"]);
    assert_eq!(out.trim(), "1");
    rt.ok(&["rm", "-f", &id]);
    assert_eq!(leftovers(&rt.root, &info), Vec::<String>::new());
}

#[test]
fn memory_hog_is_oom_killed_and_reported() {
    let rt = Rt::new("oom");
    let out = rt.run(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "32Mi",
        "busybox",
        "sh",
        "-c",
        "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done",
    ]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = rt.inspect("hog");
    assert_eq!(info["State"]["OOMKilled"], true, "{info}");
    assert_eq!(info["State"]["status"], "stopped");
}

#[test]
fn meminfo_shows_the_memory_limit() {
    let rt = Rt::new("meminfo");
    let out = rt.ok(&[
        "run",
        "--rm",
        "--memory",
        "64Mi",
        "busybox",
        "head",
        "-1",
        "/proc/meminfo",
    ]);
    assert!(
        out.starts_with("MemTotal:") && out.contains(" 65536 kB"),
        "{out}"
    );
}

#[test]
fn fork_bomb_is_stopped_by_the_pids_limit() {
    let rt = Rt::new("pids");
    let id = rt.ok_line(&[
        "run",
        "-d",
        "--pids",
        "40",
        "busybox",
        "sh",
        "-c",
        // forks until fork(2) fails and keeps every child: unlike the classic `f|f&`
        // bomb, whose processes come and go, this one holds the limit steadily
        "(while :; do sleep 1000 & done) 2>/dev/null; sleep 60",
    ]);
    let info = rt.inspect(&id);
    let rel = info["Cgroup"].as_str().unwrap().to_string();
    let h = Hierarchy::host();
    // the forker saturates the limit and stays there
    assert!(
        rt.wait_for(20, || h.stats(Path::new(&rel)).pids_current >= 35),
        "pids.current {}",
        h.stats(Path::new(&rel)).pids_current
    );
    std::thread::sleep(Duration::from_millis(500));
    let cur = h.stats(Path::new(&rel)).pids_current;
    assert!(cur <= 40, "pids.current {cur}");
    // the host can still fork, and the container can be removed
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
    rt.ok(&["rm", "-f", &id]);
    assert_eq!(leftovers(&rt.root, &info), Vec::<String>::new());
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_files() {
    let rt = Rt::new("whiteout");
    let dir = TempDir::new("oci");
    let lower = tar_layer(&[
        ("a/", None),
        ("a/file1", Some("1")),
        ("a/file2", Some("2")),
        ("d/", None),
        ("d/x", Some("x")),
        ("d/y", Some("y")),
    ]);
    // the opaque marker after the layer's own entry: order must not matter
    let upper = tar_layer(&[
        ("a/.wh.file1", Some("")),
        ("d/", None),
        ("d/z", Some("z")),
        ("d/.wh..wh..opq", Some("")),
    ]);
    oci_layout(dir.path(), "latest", &[busybox_layer(), lower, upper]);
    let names = rt.ok(&["import", "--name", "wh:1", dir.path().to_str().unwrap()]);
    assert_eq!(names.trim(), "wh:1");
    let out = rt.ok(&["run", "--rm", "wh:1", "sh", "-c", "ls a; echo --; ls d"]);
    assert_eq!(out, "file2\n--\nz\n");
}

#[test]
fn layer_escaping_with_dotdot_is_rejected() {
    let rt = Rt::new("dotdot");
    let dir = TempDir::new("oci-evil");
    let marker = format!("minik8s-evil-{}", rand_hex());
    let evil = tar_layer(&[(&format!("../../../../../../tmp/{marker}"), Some("pwned"))]);
    oci_layout(dir.path(), "latest", &[busybox_layer(), evil]);
    let out = rt.run(&["import", "--name", "evil:1", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("escapes the layer root") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert!(!rt.run(&["run", "evil:1", "true"]).status.success());
}

#[test]
fn import_verifies_digests() {
    let rt = Rt::new("digest");
    let dir = TempDir::new("oci-bad");
    oci_layout(dir.path(), "latest", &[busybox_layer()]);
    // corrupt the layer blob (keep its name)
    for e in fs::read_dir(dir.path().join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        if fs::metadata(e.path()).unwrap().len() > 100_000 {
            let mut b = fs::read(e.path()).unwrap();
            let n = b.len();
            b[n - 2000] ^= 0xff;
            fs::write(e.path(), b).unwrap();
        }
    }
    let out = rt.run(&["import", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("digest mismatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn volume_writes_reach_the_host_but_not_commit() {
    let rt = Rt::new("volume");
    let vol = TempDir::new("vol");
    let v = format!("{}:/data", vol.path().display());
    rt.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        &v,
        "busybox",
        "sh",
        "-c",
        "echo vol > /data/f; echo own > /made-here; rm /bin/vi",
    ]);
    assert_eq!(fs::read_to_string(vol.path().join("f")).unwrap(), "vol\n");
    rt.ok(&["commit", "writer", "committed:1"]);
    let out = rt.ok(&[
        "run",
        "--rm",
        "committed:1",
        "sh",
        "-c",
        "cat /made-here; ls -A /data | wc -l; test -e /bin/vi && echo vi-present || echo vi-gone",
    ]);
    assert_eq!(out, "own\n0\nvi-gone\n");
    // a read-only volume refuses writes
    let ro = format!("{}:/data:ro", vol.path().display());
    let out = rt.run(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "busybox",
        "sh",
        "-c",
        "echo x > /data/g",
    ]);
    assert!(!out.status.success());
    assert!(!vol.path().join("g").exists());
}

#[test]
fn exec_sees_the_containers_processes() {
    let rt = Rt::new("exec");
    let id = rt.ok_line(&["run", "-d", "busybox", "sleep", "60"]);
    let out = rt.ok(&["exec", &id, "ps", "-o", "pid,args"]);
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("sleep 60")),
        "{out}"
    );
    let out = rt.ok(&["exec", &id, "sh", "-c", "hostname; echo $$"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], &id[..12]);
    assert_ne!(lines[1], "1");
    let code = rt.run(&["exec", &id, "sh", "-c", "exit 7"]).status.code();
    assert_eq!(code, Some(7));
    let out = rt.run(&["exec", &id, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));

    // the init (which moves itself in on v1) and an exec'd process (which joins by itself)
    // are in the container's cgroup on every controller, as the host sees them
    let info = rt.inspect(&id);
    let cgroup = info["Cgroup"].as_str().expect("Cgroup").to_string();
    let pid = info["HostPid"].as_i64().expect("HostPid");
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2 = info["CgroupVersion"] == "V2";
    let ours: Vec<&str> = host_view
        .lines()
        .filter(|l| {
            let ctl = l.split(':').nth(1).unwrap_or("");
            if v2 {
                ctl.is_empty()
            } else {
                runtime::cgroups::V1_CONTROLLERS
                    .iter()
                    .any(|c| ctl.split(',').any(|x| x == *c))
            }
        })
        .collect();
    assert!(!ours.is_empty(), "{host_view}");
    for l in &ours {
        assert!(
            l.ends_with(&format!("/{cgroup}")),
            "init not in {cgroup}: {host_view}"
        );
    }
    // inside, the cgroup namespace's root is the container's cgroup: a process in it sees "/"
    // on each controller the container has, a process left outside sees "/../…"
    let inside = rt.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    for l in inside.lines() {
        assert!(
            l.ends_with(":/"),
            "exec'd process outside the container's cgroup: {inside}"
        );
    }
}

#[test]
fn stop_is_graceful_then_forceful_and_rm_leaves_nothing() {
    let rt = Rt::new("stop");
    let graceful = rt.ok_line(&[
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 3' TERM; while :; do sleep 0.1; done",
    ]);
    let stubborn = rt.ok_line(&["run", "-d", "busybox", "sleep", "600"]);
    let gi = rt.inspect(&graceful);
    let si = rt.inspect(&stubborn);
    assert!(si["Mounts"].as_array().unwrap().iter().any(|m| m == "/"));
    // the image's one layer, then the shared init layer (mount points) at the bottom
    let lower = si["Overlay"]["LowerDirs"].as_array().unwrap();
    assert_eq!(lower.len(), 2, "{lower:?}");
    assert!(
        lower[1].as_str().unwrap().ends_with("/init-layer"),
        "{lower:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    rt.ok(&["stop", "-t", "10", &graceful]);
    assert_eq!(rt.inspect(&graceful)["State"]["exit_code"], 3);
    rt.ok(&["stop", "-t", "1", &stubborn]);
    assert_eq!(rt.inspect(&stubborn)["State"]["exit_code"], 137);
    rt.ok(&["rm", &graceful, &stubborn]);
    assert_eq!(leftovers(&rt.root, &gi), Vec::<String>::new());
    assert_eq!(leftovers(&rt.root, &si), Vec::<String>::new());
    assert!(rt.no_containers());
}

#[test]
fn bad_input_gives_one_error_line_and_leaves_nothing() {
    let rt = Rt::new("badinput");
    let cases: &[&[&str]] = &[
        &["run", "no-such-image:1", "true"],
        &["run", "--memory", "lots", "busybox", "true"],
        &["run", "--cpus", "-1", "busybox", "true"],
        &["run", "--pids", "0", "busybox", "true"],
        &["run", "-v", "/no/such/host/path:/x", "busybox", "true"],
        &["run", "-v", "relative:/x", "busybox", "true"],
        &["run", "busybox", "no-such-command"],
        &["stop", "nosuchid"],
        &["rm", "nosuchid"],
        &["exec", "nosuchid", "true"],
        &["logs", "nosuchid"],
    ];
    for args in cases {
        let out = rt.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("minik8s-runtime: "), "{args:?}: {err}");
    }
    assert_eq!(
        rt.run(&["run", "busybox", "no-such-command"]).status.code(),
        Some(127)
    );
    assert!(rt.no_containers());
}

#[test]
fn readonly_rootfs_masks_and_capabilities() {
    let rt = Rt::new("harden");
    let out = rt.run(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert!(!out.status.success());
    let out = rt.ok(&["run", "--rm", "busybox", "sh", "-c", "cat /proc/kcore | wc -c; grep CapBnd /proc/self/status; ls /dev | tr '\\n' ' '; touch /proc/sys/x 2>&1 || echo ro"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "{out}");
    assert_eq!(lines[1], "CapBnd:\t00000000a80425fb", "{out}");
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
    ] {
        assert!(
            lines[2].split(' ').any(|x| x == d),
            "{d} missing in /dev: {out}"
        );
    }
    assert!(out.contains("ro"));
    let out = rt.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "grep",
        "CapBnd",
        "/proc/self/status",
    ]);
    assert_ne!(out.trim(), "CapBnd:\t00000000a80425fb");
}

#[test]
fn oci_create_start_state_kill_delete() {
    let rt = Rt::new("oci");
    let bundle = TempDir::new("bundle");
    let out = TempDir::new("oci-out");
    let rootfs = bundle.path().join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "etc", "tmp", "data"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in ["sh", "sleep", "cat", "grep"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "echo $$ > /data/pid; hostname > /data/host; grep CapBnd /proc/self/status > /data/caps; sleep 60"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL", "CAP_CHOWN"]},
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs"},
        "hostname": "oci-box",
        "mounts": [{"destination": "/data", "type": "bind", "source": out.path(), "options": ["rbind", "rw"]}],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}],
            "resources": {"pids": {"limit": 50}, "memory": {"limit": 67108864}}
        }
    });
    fs::write(
        bundle.path().join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let id = format!("oci-{}", rand_hex());
    let pid_file = bundle.path().join("pid");
    rt.ok(&[
        "create",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    assert_eq!(state["status"], "created");
    let pid = state["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !out.path().join("pid").exists(),
        "user process ran before start"
    );
    rt.ok(&["start", &id]);
    assert!(
        rt.wait_for(20, || fs::read_to_string(out.path().join("caps"))
            .is_ok_and(|s| s.ends_with('\n')))
    );
    assert_eq!(fs::read_to_string(out.path().join("pid")).unwrap(), "1\n");
    assert_eq!(
        fs::read_to_string(out.path().join("host")).unwrap(),
        "oci-box\n"
    );
    assert_eq!(
        fs::read_to_string(out.path().join("caps")).unwrap(),
        "CapBnd:\t0000000000000021\n"
    );
    let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    assert_eq!(state["status"], "running");
    rt.ok(&["kill", &id, "SIGKILL"]);
    assert!(rt.wait_for(20, || rt.ok(&["state", &id]).contains("\"stopped\"")));
    let info = rt.inspect(&id);
    rt.ok(&["delete", &id]);
    assert!(!rt.run(&["state", &id]).status.success());
    assert_eq!(leftovers(&rt.root, &info), Vec::<String>::new());
}

/// Kills the registry it started, on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pull_from_a_local_registry() {
    let rt = Rt::new("pull");
    let work = TempDir::new("registry");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}/data\nhttp:\n  addr: 127.0.0.1:{port}\n", work.path().display());
    fs::write(work.path().join("config.yml"), config).unwrap();
    let _registry = Child(
        std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(work.path().join("config.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry installed"),
    );
    assert!(
        rt.wait_for(30, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok())
    );
    let layout = work.path().join("layout");
    let extra = tar_layer(&[("etc/", None), ("etc/pulled", Some("from-registry\n"))]);
    oci_layout(&layout, "latest", &[busybox_layer(), extra]);
    let dest = format!("docker://127.0.0.1:{port}/minik8s/test:v1");
    let st = std::process::Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(&dest)
        .status()
        .unwrap();
    assert!(st.success());
    let name = rt.ok(&["pull", &format!("127.0.0.1:{port}/minik8s/test:v1")]);
    assert_eq!(name.trim(), format!("127.0.0.1:{port}/minik8s/test:v1"));
    let out = rt.ok(&["run", "--rm", name.trim(), "cat", "/etc/pulled"]);
    assert_eq!(out, "from-registry\n");
    let out = rt.run(&["pull", &format!("127.0.0.1:{port}/minik8s/missing:v1")]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

/// Run the CLI with `input` on a pipe as its stdin; returns (exit status, stdout).
fn with_stdin(rt: &Rt, args: &[&str], input: &str) -> (std::process::ExitStatus, String) {
    // `-it` wants a terminal on stdin (as Docker, a pipe is refused): a pty's slave, whose
    // master types `input` and stays open until the command is done
    let pty = nix::pty::openpty(None, None).unwrap();
    let child = rt
        .cmd(args)
        .stdin(std::process::Stdio::from(pty.slave))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    nix::unistd::write(&pty.master, input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(pty.master);
    (out.status, String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn tty_is_a_controlling_terminal_from_the_containers_devpts() {
    let rt = Rt::new("tty");
    // `: </dev/tty` only works with a controlling terminal
    let script = "tty; test -t 0 && test -t 1 && echo both-ttys; : </dev/tty && echo ctty";
    let out = rt.ok(&["run", "--rm", "-t", "busybox", "sh", "-c", script]);
    // a terminal turns "\n" into "\r\n"
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(lines, ["/dev/pts/0", "both-ttys", "ctty"], "{out:?}");
    // without -t: pipes, no terminal
    let out = rt.ok(&["run", "--rm", "busybox", "sh", "-c", "tty; true"]);
    assert_eq!(out.trim(), "not a tty");

    // -it: our stdin reaches the command through the terminal
    let (st, out) = with_stdin(
        &rt,
        &[
            "run",
            "--rm",
            "-i",
            "-t",
            "busybox",
            "sh",
            "-c",
            "read x; echo got-$x",
        ],
        "hello\n",
    );
    assert!(st.success(), "{out:?}");
    assert!(out.contains("got-hello\r\n"), "{out:?}");

    // exec -t gets a terminal of the container's devpts too, exec -it forwards stdin
    let id = rt.ok_line(&["run", "-d", "busybox", "sleep", "1000"]);
    let id = id.as_str();
    let out = rt.ok(&["exec", "-t", id, "sh", "-c", script]);
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(lines, ["/dev/pts/0", "both-ttys", "ctty"], "{out:?}");
    let (st, out) = with_stdin(
        &rt,
        &[
            "exec",
            "-i",
            "-t",
            id,
            "sh",
            "-c",
            "read x; echo got-$x; exit 4",
        ],
        "there\n",
    );
    assert_eq!(st.code(), Some(4), "{out:?}");
    assert!(out.contains("got-there\r\n"), "{out:?}");
    let out = rt.ok(&["exec", id, "sh", "-c", "tty; true"]);
    assert_eq!(out.trim(), "not a tty");
}

#[test]
fn a_shared_pid_sandbox_shows_each_containers_processes() {
    let rt = Rt::new("sharepid");
    rt.ok(&["sandbox", "create", "shared", "--share-pid"]);
    rt.ok(&["sandbox", "create", "separate"]);
    for pod in ["shared", "separate"] {
        rt.ok(&[
            "run",
            "-d",
            "--sandbox",
            pod,
            "--name",
            pod,
            "busybox",
            "sleep",
            "1000",
        ]);
    }
    let ps = |pod: &str| {
        rt.ok(&[
            "run",
            "--rm",
            "--sandbox",
            pod,
            "busybox",
            "ps",
            "-o",
            "pid,args",
        ])
    };
    // the pod's pause process is PID 1, the other container's sleep is visible
    let out = ps("shared");
    assert!(out.contains("sleep 1000"), "{out}");
    let first = out.lines().nth(1).unwrap_or_default();
    assert!(
        first.trim_start().starts_with("1 ") && first.contains("pause"),
        "{out}"
    );
    // ... and the same from inside the sleeper (exec)
    let out = rt.ok(&["exec", "shared", "ps", "-o", "pid,args"]);
    assert!(out.contains("pause") && out.contains("sleep 1000"), "{out}");
    // the pause process ignores signals sent from inside the pod
    rt.ok(&[
        "exec",
        "shared",
        "sh",
        "-c",
        "kill -TERM 1; kill -KILL 1; true",
    ]);
    std::thread::sleep(Duration::from_millis(100));
    let out = ps("shared");
    assert!(out.contains("pause") && out.contains("sleep 1000"), "{out}");
    // a normal sandbox: the command is PID 1 and sees no other container
    let out = ps("separate");
    assert!(!out.contains("sleep"), "{out}");
    assert!(
        out.lines().nth(1).unwrap_or_default().contains("ps"),
        "{out}"
    );

    // removing the sandbox stops its pause process
    let sb: serde_json::Value =
        serde_json::from_slice(&fs::read(rt.state.join("sandboxes/shared/sandbox.json")).unwrap())
            .unwrap();
    let pause = sb["pause_pid"].as_i64().expect("pause pid recorded") as i32;
    assert!(Path::new(&format!("/proc/{pause}")).exists());
    // its command line reveals no host path, to the pod or to anyone
    assert_eq!(
        fs::read(format!("/proc/{pause}/cmdline")).unwrap(),
        b"/pause\0"
    );
    let out = rt.ok(&["exec", "shared", "cat", "/proc/1/cmdline"]);
    assert_eq!(out, "/pause\0");
    rt.ok(&["sandbox", "rm", "-f", "shared"]);
    assert!(rt.wait_for(10, || {
        fs::read_to_string(format!("/proc/{pause}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    }));
    assert!(!rt.state.join("sandboxes/shared").exists());
}

#[test]
fn a_writable_layer_whose_state_is_gone_is_swept() {
    // State (config.json, state.json) lives on tmpfs, the writable layer on disk: after a
    // reboot only the layer is left, an orphan the kubelet removes when it starts.
    let rt = Rt::new("orphans");
    let id = rt.ok_line(&["run", "-d", "busybox", "sleep", "1000"]);
    let r = runtime::Runtime::open(&rt.root).unwrap();
    let backdate = |p: &Path| {
        let t = std::time::SystemTime::now() - Duration::from_secs(600);
        fs::File::open(p).unwrap().set_modified(t).unwrap();
    };
    let running = rt.root.join("containers").join(&id[..2]).join(&id);
    assert!(
        running.join("upper").is_dir(),
        "the writable layer is on disk"
    );
    assert!(rt
        .state
        .join("containers")
        .join(&id)
        .join("state.json")
        .exists());
    backdate(&running);
    let orphan = rt.root.join("containers/01/0123orphan");
    fs::create_dir_all(orphan.join("upper/etc")).unwrap();
    fs::write(orphan.join("upper/etc/x"), "left from before the reboot").unwrap();
    backdate(&orphan);
    // a layer younger than a minute may be a create in progress in another process
    let young = rt.root.join("containers/45/4567young");
    fs::create_dir_all(young.join("upper")).unwrap();
    assert_eq!(r.remove_orphans(), 1);
    assert!(!orphan.exists());
    assert!(young.exists());
    assert!(
        running.join("upper").is_dir(),
        "a running container's layer was swept"
    );
    assert_eq!(rt.ok(&["exec", &id, "echo", "alive"]).trim(), "alive");
    fs::remove_dir_all(&young).unwrap();
    rt.ok(&["rm", "-f", &id]);
    assert!(rt.no_containers());
}

#[test]
fn names_are_reserved_found_by_the_index_and_released() {
    let rt = Rt::new("names");
    let id = rt.ok_line(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    let link = rt.state.join("names/web");
    assert_eq!(fs::read_link(&link).unwrap(), Path::new(&id));
    // the name is taken while the container exists
    let again = rt.run(&["run", "-d", "--name", "web", "busybox", "true"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already in use"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // found by name, by id and by a prefix of the id
    assert_eq!(rt.ok(&["exec", "web", "echo", "by-name"]).trim(), "by-name");
    assert_eq!(
        rt.ok(&["exec", &id[..10], "echo", "by-prefix"]).trim(),
        "by-prefix"
    );
    // names that are not file names are refused
    for bad in ["..", "a/b"] {
        assert!(!rt
            .run(&["run", "--name", bad, "busybox", "true"])
            .status
            .success());
    }
    // a link whose container is gone does not hold the name
    std::os::unix::fs::symlink("0123456789abcdef", rt.state.join("names/ghost")).unwrap();
    let ghost = rt.ok_line(&["run", "-d", "--name", "ghost", "busybox", "sleep", "1000"]);
    assert_eq!(
        fs::read_link(rt.state.join("names/ghost")).unwrap(),
        Path::new(&ghost)
    );
    // removing the container frees its name
    rt.ok(&["rm", "-f", "web"]);
    assert!(!link.exists());
    let second = rt.ok_line(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    assert_ne!(second, id);
    rt.ok(&["rm", "-f", &second]);
    rt.ok(&["rm", "-f", &ghost]);
    assert!(rt.no_containers());
    assert_eq!(fs::read_dir(rt.state.join("names")).unwrap().count(), 0);
}
