//! The runtime's teaching tools, driven through the binary on the real kernel: `diff`,
//! `image inspect`/`history`/`tag`, `build`, `update`, `run --chroot`, `run --no-proc-virt`
//! and `inspect --explain`. Run as root.

mod common;

use std::fs;

use common::{Rt, TempDir};

#[test]
fn diff_lists_added_changed_and_deleted_paths_but_not_mounts() {
    let rt = Rt::new("diff");
    let vol = TempDir::new("diff-vol");
    let volume = format!("{}:/data", vol.path().display());
    let script = "echo hi > /tmp/new; echo x >> /etc/passwd; rm /bin/ls; \
                  echo in-volume > /data/f; echo 1.2.3.4 h >> /etc/hosts";
    let id = rt.ok_line(&[
        "run", "-d", "-v", &volume, "busybox", "--", "sh", "-c", script,
    ]);
    assert!(rt.wait_for(10, || rt.inspect(&id)["State"]["status"] == "stopped"));
    let out = rt.ok(&["diff", &id]);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "A /tmp/new",
        "C /tmp",
        "C /etc/passwd",
        "D /bin/ls",
        "C /bin",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from:\n{out}");
    }
    for absent in ["/data", "/etc/hosts", "/proc", "/dev"] {
        assert!(
            !lines.iter().any(|l| l[2..].starts_with(absent)),
            "{absent} listed:\n{out}"
        );
    }
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| &l[2..]);
    assert_eq!(lines, sorted, "sorted by path");
}

#[test]
fn image_inspect_history_and_tag_read_an_image_as_docker_does() {
    let rt = Rt::new("image-inspect");
    let v: serde_json::Value =
        serde_json::from_str(&rt.ok(&["image", "inspect", "busybox"])).unwrap();
    let img = &v[0];
    assert!(img["Id"].as_str().unwrap().starts_with("sha256:"), "{v}");
    assert_eq!(img["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(img["Size"].as_u64().unwrap() > 100_000, "{v}");
    assert_eq!(
        (img["Os"].as_str(), img["Architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    rt.ok(&["tag", "busybox", "mybox:v1"]);
    let v: serde_json::Value =
        serde_json::from_str(&rt.ok(&["image", "inspect", "mybox:v1"])).unwrap();
    assert_eq!(v[0]["Id"], img["Id"], "one config, two names");
    assert_eq!(
        v[0]["RepoTags"],
        serde_json::json!(["busybox:latest", "mybox:v1"])
    );
    let history = rt.ok(&["history", "busybox"]);
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].starts_with("IMAGE "), "{history}");
    assert_eq!(lines.len(), 2, "{history}");
    assert!(
        lines[1].starts_with(&img["Id"].as_str().unwrap()[7..19]),
        "{history}"
    );
    let missing = rt.run(&["image", "inspect", "nosuch"]);
    assert!(!missing.status.success());
}

#[test]
fn build_runs_copies_and_configures_one_layer_per_step() {
    let rt = Rt::new("build");
    let ctx = TempDir::new("build-ctx");
    fs::write(ctx.path().join("hello.txt"), "hello from COPY\n").unwrap();
    let dockerfile = ctx.path().join("Dockerfile.test");
    fs::write(
        &dockerfile,
        "# three steps and some config\nFROM busybox\nRUN mkdir -p /app && \\\n    echo built > /app/built.txt\nCOPY hello.txt /app/\nENV GREETING=\"hi there\"\nWORKDIR /app\nCMD [\"sh\", \"-c\", \"cat built.txt hello.txt; echo $GREETING; pwd\"]\n",
    )
    .unwrap();
    let file = dockerfile.display().to_string();
    let ctx_dir = ctx.path().display().to_string();
    let out = rt.ok(&["build", "-f", &file, "-t", "hello:v1", &ctx_dir]);
    assert!(
        out.contains("Step 2/6 : RUN mkdir -p /app && echo built > /app/built.txt"),
        "{out}"
    );
    assert!(out.contains("Successfully tagged hello:v1"), "{out}");
    let run = rt.ok(&["run", "--rm", "hello:v1"]);
    assert_eq!(run, "built\nhello from COPY\nhi there\n/app\n");
    let history = rt.ok(&["history", "--no-trunc", "hello:v1"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 7, "{history}");
    assert!(lines[1].contains("CMD [\"sh\",\"-c\""), "{history}");
    assert!(
        lines[2].contains("WORKDIR /app") && lines[2].contains(" 0B"),
        "{history}"
    );
    assert!(lines[3].contains("ENV GREETING=hi there"), "{history}");
    assert!(
        lines[4].contains("COPY file:") && lines[4].contains(" in /app/"),
        "{history}"
    );
    assert!(lines[5].contains("/bin/sh -c mkdir -p /app"), "{history}");
    let images = rt.ok(&["images"]);
    assert!(
        !images.contains("minik8s-build-"),
        "intermediate names left: {images}"
    );
    assert!(rt.no_containers(), "build containers left behind");
    // a failing RUN names its line; an unsupported instruction too, before anything runs
    fs::write(&dockerfile, "FROM busybox\nRUN true\nRUN exit 3\n").unwrap();
    let failed = rt.run(&["build", "-f", &file, &ctx_dir]);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("line 3") && err.contains("non-zero code: 3"),
        "{err}"
    );
    fs::write(&dockerfile, "FROM busybox\nEXPOSE 80\n").unwrap();
    let refused = rt.run(&["build", "-f", &file, &ctx_dir]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("line 2: unsupported instruction EXPOSE"),
        "{err}"
    );
    assert!(rt.no_containers());
}

#[test]
fn update_changes_the_live_cgroup_files_and_inspect_shows_them() {
    let rt = Rt::new("update");
    let id = rt.ok_line(&[
        "run", "-d", "--cpus", "0.2", "-m", "64m", "busybox", "--", "sleep", "60",
    ]);
    let limit = |suffix: &str| {
        let v = rt.inspect(&id);
        let limits = v["CgroupLimits"].as_object().unwrap().clone();
        let (path, value) = limits
            .iter()
            .find(|(p, _)| p.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} not in {limits:?}"));
        assert_eq!(
            fs::read_to_string(path).unwrap().trim(),
            value.as_str().unwrap()
        );
        value.as_str().unwrap().to_string()
    };
    let v2 = rt.inspect(&id)["CgroupVersion"] == "V2";
    let (cpu_file, memory_file) = if v2 {
        ("/cpu.max", "/memory.max")
    } else {
        ("/cpu.cfs_quota_us", "/memory.limit_in_bytes")
    };
    assert!(limit(cpu_file).starts_with("20000"));
    rt.ok(&[
        "update",
        "--cpus",
        "0.5",
        "--memory",
        "128m",
        "--pids-limit",
        "50",
        &id,
    ]);
    assert!(limit(cpu_file).starts_with("50000"));
    assert_eq!(limit(memory_file), (128u64 << 20).to_string());
    assert_eq!(limit("/pids.max"), "50");
    let v = rt.inspect(&id);
    assert_eq!(v["Resources"]["memory_bytes"], 128u64 << 20);
    assert_eq!(v["Resources"]["pids"], 50);
    let meminfo = rt.ok(&["exec", &id, "head", "-1", "/proc/meminfo"]);
    assert!(meminfo.contains("131072 kB"), "{meminfo}");
    rt.ok(&[
        "update",
        "--cpu-quota",
        "30000",
        "--cpu-period",
        "60000",
        &id,
    ]);
    assert_eq!(
        rt.inspect(&id)["Resources"]["cpu_quota"]["period_us"],
        60000
    );
    assert!(limit(cpu_file).starts_with("30000"));
    assert!(!rt
        .run(&["update", "--cpus", "1", "--cpu-quota", "1000", &id])
        .status
        .success());
    assert!(!rt.run(&["update", "--memory", "1k", &id]).status.success());
}

/// The classic escape from a chroot, with busybox only: a process chroots into `/jail` and
/// waits in `/jail/a/b`; the container's shell moves `b` out of the jail, which leaves the
/// jailed process's working directory outside its root, where `..` is no longer stopped.
/// Under `--chroot` the container's root is an ordinary directory of the host's mount tree,
/// so `..` (`cd -P`: physically, not by the shell's $PWD) climbs to the host's `/`; under pivot_root it is the root of the mount namespace,
/// above which there is nothing.
fn escape_script(marker_rel: &str) -> String {
    format!(
        "mkdir -p /jail/a/b && cp /bin/busybox /jail/busybox && \
         chroot /jail /busybox sh -c '\
           cd /a/b && /busybox touch ../ready; i=0; \
           until [ -d ../jail ] || [ $i -gt 500 ]; do /busybox usleep 10000; i=$((i+1)); done; \
           cd -P ../../../../../../../../../../..; /busybox cat {marker_rel}' & \
         i=0; until [ -e /jail/a/ready ] || [ $i -gt 500 ]; do usleep 10000; i=$((i+1)); done; \
         mv /jail/a/b /b; wait $!"
    )
}

#[test]
fn the_chroot_escape_reaches_the_host_under_chroot_but_not_under_pivot_root() {
    let rt = Rt::new("chroot");
    let host = TempDir::new("escape");
    fs::write(host.path().join("marker"), "host-only marker\n").unwrap();
    let rel = format!(
        "{}/marker",
        host.path().strip_prefix("/").unwrap().display()
    );
    let script = escape_script(&rel);
    let chroot = rt.run(&[
        "run", "--rm", "--chroot", "busybox", "--", "sh", "-c", &script,
    ]);
    let out = String::from_utf8_lossy(&chroot.stdout);
    assert!(
        chroot.status.success() && out.contains("host-only marker"),
        "escape failed under --chroot: {}: {out}{}",
        chroot.status,
        String::from_utf8_lossy(&chroot.stderr)
    );
    let pivot = rt.run(&["run", "--rm", "busybox", "--", "sh", "-c", &script]);
    let out = String::from_utf8_lossy(&pivot.stdout);
    assert!(
        !pivot.status.success() && !out.contains("host-only marker"),
        "escaped under pivot_root: {}: {out}",
        pivot.status
    );
    let explain = {
        let id = rt.ok_line(&["run", "-d", "--chroot", "busybox", "--", "sleep", "30"]);
        rt.ok(&["inspect", "--explain", &id])
    };
    assert!(explain.contains("root entered by chroot(2)"), "{explain}");
}

/// `exec` runs in the root the container's init sees, however it got there: after setns(2)
/// into the mount namespace of a `--chroot` container, whose root is still the host's, it
/// chroots into the init's root (it used to run in the host's `/`: inode 2, the host's
/// `/etc/hostname`).
#[test]
fn exec_enters_the_containers_root_under_chroot_and_pivot_root() {
    use std::os::unix::fs::MetadataExt;
    let rt = Rt::new("exec-root");
    for switch in [&["--chroot"][..], &[]] {
        let mut args = vec!["run", "-d", "--hostname", "exec-root-box"];
        args.extend(switch);
        args.extend(["busybox", "sleep", "30"]);
        let id = rt.ok_line(&args);
        let pid = rt.inspect(&id)["State"]["Pid"].as_i64().unwrap();
        let root = fs::metadata(format!("/proc/{pid}/root")).unwrap().ino();
        let out = rt.ok(&["exec", &id, "sh", "-c", "ls -di /; cat /etc/hostname; pwd"]);
        let want = format!("{root} /\nexec-root-box\n/\n");
        assert_eq!(out, want, "{switch:?}");
        rt.ok(&["rm", "-f", &id]);
    }
}

fn mem_total_kb(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no MemTotal in {meminfo:?}"))
}

#[test]
fn no_proc_virt_shows_the_hosts_memory_under_a_limit() {
    let rt = Rt::new("proc-virt");
    let host = mem_total_kb(&fs::read_to_string("/proc/meminfo").unwrap());
    let args = [
        "run",
        "--rm",
        "--memory",
        "64m",
        "busybox",
        "--",
        "cat",
        "/proc/meminfo",
    ];
    let virt = mem_total_kb(&rt.ok(&args));
    assert_eq!(virt, 64 * 1024);
    let mut raw = args.to_vec();
    raw.insert(2, "--no-proc-virt");
    assert_eq!(mem_total_kb(&rt.ok(&raw)), host);
    // busybox `free` takes its totals from sysinfo(2), which no runtime virtualises (lxcfs
    // neither); only its "available" column comes from /proc/meminfo's MemAvailable
    let available = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "-m", "64m"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "free"]);
        let out = rt.ok(&args);
        let mem = out.lines().find(|l| l.starts_with("Mem:")).unwrap_or("");
        mem.split_whitespace().last().unwrap_or("").to_string()
    };
    assert_eq!(available(&[]), "65536");
    assert_ne!(available(&["--no-proc-virt"]), "65536");
    let processors = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--cpus", "1"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "grep", "-c", "^processor", "/proc/cpuinfo"]);
        rt.ok(&args).trim().parse::<usize>().unwrap()
    };
    let host_cpus = fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .matches("processor\t:")
        .count();
    assert_eq!(processors(&[]), 1);
    assert_eq!(processors(&["--no-proc-virt"]), host_cpus);
}

#[test]
fn inspect_explain_tells_the_container_in_sentences() {
    let rt = Rt::new("explain");
    let id = rt.ok_line(&[
        "run",
        "-d",
        "--cpus",
        "0.2",
        "-m",
        "64m",
        "--pids-limit",
        "40",
        "busybox",
        "--",
        "sleep",
        "30",
    ]);
    let text = rt.ok(&["inspect", "--explain", &id]);
    let v = rt.inspect(&id);
    let host_pid = v["HostPid"].as_i64().unwrap();
    for want in [
        format!("host PID {host_pid} is PID 1 inside"),
        "pid namespace: new (inode".into(),
        "mnt namespace: new".into(),
        "user namespace: ".into(),
        "time namespace: the host's own".into(),
        "cpu: 20000/100000 µs = 20% of one CPU".into(),
        "memory: at most 64 MiB".into(),
        "pids: at most 40 processes".into(),
        format!("rw     {}", v["Overlay"]["UpperDir"].as_str().unwrap()),
        "init   ".into(),
        "(layer 1 of 1, sha256:".into(),
        "capabilities: 14 of 41".into(),
        "seccomp: a filter".into(),
        "root entered by pivot_root(2)".into(),
    ] {
        assert!(text.contains(&want), "{want:?} missing from:\n{text}");
    }
    let sandboxed = {
        rt.ok(&["sandbox", "create", "pod-explain"]);
        let id = rt.ok_line(&[
            "run",
            "-d",
            "--sandbox",
            "pod-explain",
            "busybox",
            "--",
            "sleep",
            "30",
        ]);
        rt.ok(&["inspect", "--explain", &id])
    };
    assert!(
        sandboxed.contains("net namespace: joined from the sandbox"),
        "{sandboxed}"
    );
}

#[test]
fn run_takes_a_cfs_quota_and_period_as_docker_does() {
    let rt = Rt::new("cfs");
    let args = [
        "run",
        "-d",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "busybox",
        "--",
        "sleep",
        "30",
    ];
    let id = rt.ok_line(&args);
    let v = rt.inspect(&id);
    assert_eq!(
        v["Resources"]["cpu_quota"],
        serde_json::json!({ "quota_us": 25000, "period_us": 50000 })
    );
    let files = v["CgroupLimits"].as_object().unwrap();
    let live: Vec<&str> = files.values().filter_map(|v| v.as_str()).collect();
    assert!(
        live.contains(&"25000 50000") || (live.contains(&"25000") && live.contains(&"50000")),
        "{files:?}"
    );
    let both = rt.run(&[
        "run",
        "--rm",
        "--cpus",
        "1",
        "--cpu-quota",
        "1000",
        "busybox",
        "true",
    ]);
    assert!(!both.status.success());
}
