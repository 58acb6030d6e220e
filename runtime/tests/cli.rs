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

/// `(pid, comm, state)` of every process in container `id`'s pid namespace but the shell
/// that lists them.
fn processes(rt: &Rt, id: &str) -> Vec<(u32, String, char)> {
    let script = "for f in /proc/[0-9]*/stat; do read l < $f && echo \"$l\"; done; echo self $$";
    let out = rt.ok(&["exec", id, "sh", "-c", script]);
    let me = out
        .lines()
        .find_map(|l| l.strip_prefix("self "))
        .unwrap_or_default()
        .to_string();
    out.lines()
        .filter_map(|l| {
            let (pid, rest) = l.split_once(" (")?;
            let (comm, rest) = rest.rsplit_once(") ")?;
            Some((
                pid.parse::<u32>().ok()?,
                comm.to_string(),
                rest.chars().next()?,
            ))
        })
        .filter(|(pid, _, _)| pid.to_string() != me)
        .collect()
}

/// An orphan that exits a second after PID 1 has become `sleep 30` (a shell that is still
/// PID 1 might reap it itself): its zombie stays unless PID 1 reaps it.
const ORPHAN: &str = "(sleep 1 &); exec sleep 30";

/// `--init`: PID 1 is our reaper (`/init -- CMD`), which reaps orphans a plain command as
/// PID 1 leaves as zombies, passes `stop`'s SIGTERM on to the command (which, as PID 1
/// without a handler, would ignore it), and exits with the command's status.
#[test]
fn run_init_reaps_zombies_and_forwards_signals() {
    let rt = Rt::new("cli-init");
    // without --init the command is PID 1 and the orphan's zombie stays
    let plain = rt.ok_line(&["run", "-d", "busybox", "sh", "-c", ORPHAN]);
    let zombie = rt.wait_for(10, || {
        processes(&rt, &plain).iter().any(|(_, _, s)| *s == 'Z')
    });
    assert!(
        zombie,
        "no zombie without --init: {:?}",
        processes(&rt, &plain)
    );

    let id = rt.ok_line(&["run", "-d", "--init", "busybox", "sh", "-c", ORPHAN]);
    let reaped = rt.wait_for(10, || {
        let ps = processes(&rt, &id);
        ps.len() == 2 && ps.iter().all(|(_, _, s)| *s != 'Z')
    });
    let ps = processes(&rt, &id);
    assert!(reaped, "{ps:?}");
    assert_eq!(ps[0].0, 1, "{ps:?}");
    assert_eq!(ps[0].1, "init", "{ps:?}");
    assert_eq!(ps[1].1, "sleep", "{ps:?}");
    let cmdline = rt.ok(&["exec", &id, "cat", "/proc/1/cmdline"]);
    assert!(
        cmdline == format!("/init\0--\0sh\0-c\0{ORPHAN}\0")
            || cmdline == format!("/init -- sh -c {ORPHAN}\0"),
        "{cmdline:?}"
    );

    // stop's SIGTERM reaches the sleep at once: no 10 s grace period, 128 + SIGTERM
    let t = std::time::Instant::now();
    rt.ok(&["stop", "-t", "10", &id]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(rt.inspect(&id)["State"]["ExitCode"], 143);

    // the command's own status, and its death by a signal, are the container's
    for (script, code) in [("exit 3", 3), ("kill -KILL $$", 137)] {
        let out = rt.run(&["run", "--rm", "--init", "busybox", "sh", "-c", script]);
        assert_eq!(out.status.code(), Some(code), "{script}: {out:?}");
    }
    // a command that is not in the image fails as without --init
    let out = rt.run(&["run", "--rm", "--init", "busybox", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{out:?}"
    );
}

/// In a pod sharing one pid namespace (`shareProcessNamespace`) the pause process is PID 1
/// and reaps the orphans of every container.
#[test]
fn a_shared_pid_sandbox_reaps_orphans_through_its_pause_process() {
    let rt = Rt::new("cli-pause-reaps");
    rt.ok(&["sandbox", "create", "pod", "--share-pid"]);
    let id = rt.ok_line(&[
        "run",
        "-d",
        "--sandbox",
        "pod",
        "busybox",
        "sh",
        "-c",
        ORPHAN,
    ]);
    let reaped = rt.wait_for(10, || {
        let ps = processes(&rt, &id);
        ps.len() == 2 && ps.iter().all(|(_, _, s)| *s != 'Z')
    });
    let ps = processes(&rt, &id);
    assert!(reaped, "{ps:?}");
    assert_eq!((ps[0].0, ps[0].1.as_str()), (1, "pause"), "{ps:?}");
}

/// A container whose process the OOM killer ended says so in `ps` and `inspect`, also when
/// the victim was a child and the command went on to exit 0.
#[test]
fn an_oom_killed_container_shows_it_in_ps_and_inspect() {
    let rt = Rt::new("cli-oom");
    let hog = "x=a; while :; do x=$x$x; done";
    let child = "dd if=/dev/zero bs=64M count=1 | tail -c1 >/dev/null";
    for (name, script, code) in [("hog", hog, 137), ("child", child, 0)] {
        let out = rt.run(&[
            "run", "--name", name, "--memory", "16m", "busybox", "sh", "-c", script,
        ]);
        assert_eq!(out.status.code(), Some(code), "{name}: {out:?}");
        let info = rt.inspect(name);
        assert_eq!(info["State"]["OOMKilled"], true, "{info}");
        assert_eq!(info["State"]["ExitCode"], code, "{info}");
        assert_eq!(info["State"]["Status"], "exited", "{info}");
    }
    let ps = rt.ok(&["ps"]);
    let line = |name: &str| {
        ps.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("hog").contains("Exited (137) (OOMKilled)"), "{ps}");
    assert!(line("child").contains("Exited (0) (OOMKilled)"), "{ps}");
}

/// The shim has a name of its own on the host (`ps -ef` tells it from a CLI call), and
/// `inspect` gives the merged root as the host can reach it.
#[test]
fn shims_have_their_own_name_and_the_merged_dir_is_reachable() {
    let rt = Rt::new("cli-shim-name");
    let id = rt.ok_line(&["run", "-d", "busybox", "sleep", "30"]);
    let info = rt.inspect(&id);
    let shim = info["State"]["shim_pid"].as_i64().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{shim}/comm")).unwrap();
    assert_eq!(comm, "minik8s-shim\n");
    let cmdline = std::fs::read(format!("/proc/{shim}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(
        cmdline.starts_with("minik8s-runtime-shim\0")
            || cmdline.starts_with("minik8s-runtime-shim "),
        "{cmdline:?}"
    );
    assert!(cmdline.contains(&id[..12]), "{cmdline:?}");
    assert!(!cmdline.contains("--root"), "{cmdline:?}");

    let merged = info["GraphDriver"]["Data"]["MergedDir"]
        .as_str()
        .unwrap()
        .to_string();
    let pid = info["State"]["Pid"].as_i64().unwrap();
    assert_eq!(merged, format!("/proc/{pid}/root"));
    assert!(
        std::path::Path::new(&merged).join("bin/busybox").exists(),
        "{merged}"
    );
    rt.ok(&["exec", &id, "sh", "-c", "echo hi > /tmp/seen-from-the-host"]);
    let seen = std::fs::read_to_string(format!("{merged}/tmp/seen-from-the-host")).unwrap();
    assert_eq!(seen, "hi\n");
    rt.ok(&["stop", "-t", "0", &id]);
    assert!(rt.inspect(&id)["GraphDriver"]["Data"]["MergedDir"].is_null());
}

/// The command is looked up in the container, mounts included, as Docker does at start: a
/// program on a volume runs (by path and through `PATH`), and one missing there fails as one
/// missing from the image, 127 with the same message (126 when it is not executable). A
/// command absent from the image and out of every mount's reach still fails at `create`,
/// before a container exists.
#[test]
fn the_command_is_found_on_a_volume_as_in_the_image() {
    use std::os::unix::fs::PermissionsExt;
    let rt = Rt::new("cli-command-on-volume");
    let vol = common::TempDir::new("cmd-vol");
    let prog = vol.path().join("prog");
    std::fs::write(&prog, "#!/bin/sh\necho hello from the volume\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let volume = format!("{}:/lab", vol.path().display());
    let out = rt.ok(&["run", "--rm", "-v", &volume, "busybox", "/lab/prog"]);
    assert_eq!(out, "hello from the volume\n");
    let out = rt.ok(&[
        "run",
        "--rm",
        "-v",
        &volume,
        "-e",
        "PATH=/lab:/bin",
        "busybox",
        "prog",
    ]);
    assert_eq!(out, "hello from the volume\n");

    let fails = |args: &[&str], code: i32, message: &str| {
        let out = rt.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    };
    let not_found = "executable file not found in $PATH";
    fails(
        &["run", "--rm", "-v", &volume, "busybox", "/lab/nope"],
        127,
        &format!("{not_found}: \"/lab/nope\""),
    );
    fails(
        &[
            "run",
            "--rm",
            "-v",
            &volume,
            "-e",
            "PATH=/lab",
            "busybox",
            "nope",
        ],
        127,
        &format!("{not_found}: \"nope\""),
    );
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o644)).unwrap();
    fails(
        &["run", "--rm", "-v", &volume, "busybox", "/lab/prog"],
        126,
        "Permission denied",
    );
    // out of every mount's reach: refused by `create`, nothing made
    for command in ["nope", "/bin/nope", "/labx/prog"] {
        fails(
            &["run", "-d", "-v", &volume, "busybox", command],
            127,
            &format!("{not_found}: \"{command}\""),
        );
    }
    assert!(rt.no_containers(), "a container was left behind");
}

/// A forked shim without CAP_SYS_RESOURCE writes its title over the CLI's command line, which
/// may be too short for the 64-digit id: then it shows Docker's 12-digit short id, never an id
/// cut anywhere else. (With CAP_SYS_RESOURCE the title is whole, with the full id.)
#[test]
fn the_shims_command_line_shows_a_whole_or_short_id_never_a_cut_one() {
    use std::os::unix::process::CommandExt;
    let rt = Rt::new("cli-shim-title");
    let shim_title = |id: &str| {
        let shim = rt.inspect(id)["State"]["shim_pid"].as_i64().unwrap();
        let raw = std::fs::read(format!("/proc/{shim}/cmdline")).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let shown = text.trim_end_matches('\0').replace('\0', " ");
        let shown_id = shown
            .strip_prefix("minik8s-runtime-shim ")
            .unwrap_or_else(|| panic!("{text:?}"))
            .to_string();
        (text, shown_id)
    };
    // `minik8s-runtime run -d busybox sleep 9`: 39 bytes, room for the short id only
    let out = std::process::Command::new(common::BIN)
        .arg0("minik8s-runtime")
        .env("MINIK8S_RUNTIME_ROOT", &rt.root)
        .env("MINIK8S_RUNTIME_CGROUP_PARENT", &rt.cgroup_parent)
        .args(["run", "-d", "busybox", "sleep", "9"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (text, shown) = shim_title(&id);
    assert!(shown == id || shown == id[..12], "{text:?} for {id}");
    // through the harness, with `--root DIR`: room for the whole id
    let id = rt.ok_line(&["run", "-d", "busybox", "sleep", "9"]);
    let (text, shown) = shim_title(&id);
    assert_eq!(shown, id, "{text:?}");
}
