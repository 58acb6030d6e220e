//! OCI lifecycle hooks (runtime-spec `config.md`, "POSIX-platform Hooks"): programs a bundle
//! asks the runtime to run at fixed points of a container's life, each given the container's
//! state JSON on stdin, killed (and failed) after its `timeout`:
//! - `prestart` (deprecated) and `createRuntime`: during `create`, once the namespaces exist,
//!   in the runtime's namespaces (the shim runs them);
//! - `createContainer`: during `create`, in the container's namespaces before pivot_root (the
//!   init runs them, so their paths are the host's);
//! - `startContainer`: during `start`, in the container, before the command (the init);
//! - `poststart`: after the command started, in the runtime's namespaces (`start`);
//! - `poststop`: after the container is deleted (`delete`).
//!
//! A failure of the first four fails the operation (and `create` removes the container); one of
//! `poststart` or `poststop` is a warning, and the lifecycle goes on.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One hook: a program, its argv (`args[0]` included) and environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub path: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Seconds; none: no limit.
    pub timeout: Option<u64>,
}

/// The hooks of each point of the lifecycle, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hooks {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

/// The points of the lifecycle that run hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Phase {
    /// The name in `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prestart => "prestart",
            Phase::CreateRuntime => "createRuntime",
            Phase::CreateContainer => "createContainer",
            Phase::StartContainer => "startContainer",
            Phase::Poststart => "poststart",
            Phase::Poststop => "poststop",
        }
    }

    /// The status the state on the hook's stdin shows: `created` until `start` (runtime-tools'
    /// `hooks_stdin` checks it for `prestart`), `running` from `startContainer` on.
    pub fn status(self) -> &'static str {
        match self {
            Phase::Prestart | Phase::CreateRuntime | Phase::CreateContainer => "created",
            Phase::StartContainer | Phase::Poststart => "running",
            Phase::Poststop => "stopped",
        }
    }
}

impl Hooks {
    /// The hooks of `phase`.
    pub fn of(&self, phase: Phase) -> &[Hook] {
        match phase {
            Phase::Prestart => &self.prestart,
            Phase::CreateRuntime => &self.create_runtime,
            Phase::CreateContainer => &self.create_container,
            Phase::StartContainer => &self.start_container,
            Phase::Poststart => &self.poststart,
            Phase::Poststop => &self.poststop,
        }
    }
}

/// The container's state as hooks read it on stdin (runtime-spec `runtime.md`, "State").
#[derive(Debug, Clone, Serialize)]
pub struct HookState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'static str,
    pub id: &'a str,
    pub status: &'static str,
    pub pid: i32,
    pub bundle: &'a Path,
    pub annotations: &'a BTreeMap<String, String>,
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook's program could not be started.
    #[error("{phase} hook {path:?}: cannot run: {source}")]
    Spawn {
        phase: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// It exited unsuccessfully.
    #[error("{phase} hook {path:?} failed: {status}")]
    Failed {
        phase: &'static str,
        path: PathBuf,
        status: std::process::ExitStatus,
    },
    /// It outlived its timeout and was killed.
    #[error("{phase} hook {path:?} timed out after {seconds} s")]
    Timeout {
        phase: &'static str,
        path: PathBuf,
        seconds: u64,
    },
}

/// Run the hooks of `phase` one after the other, stopping at the first that fails.
pub fn run(phase: Phase, hooks: &Hooks, state: &HookState) -> Result<(), HookError> {
    let json = serde_json::to_vec(state).unwrap_or_default();
    for h in hooks.of(phase) {
        run_one(phase.name(), h, &json)?;
    }
    Ok(())
}

/// Run the hooks of `phase` and log a failure as a warning instead (`poststart`, `poststop`).
pub fn run_warning(phase: Phase, hooks: &Hooks, state: &HookState) {
    let json = serde_json::to_vec(state).unwrap_or_default();
    for h in hooks.of(phase) {
        if let Err(e) = run_one(phase.name(), h, &json) {
            tracing::warn!(phase = phase.name(), path = ?h.path, "{e}");
            eprintln!("warning: {e}");
        }
    }
}

fn run_one(phase: &'static str, h: &Hook, state: &[u8]) -> Result<(), HookError> {
    let mut cmd = Command::new(&h.path);
    if let Some(arg0) = h.args.first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
    }
    cmd.args(h.args.iter().skip(1))
        .env_clear()
        .stdin(Stdio::piped());
    for e in &h.env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    let spawn = |source| HookError::Spawn {
        phase,
        path: h.path.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        // a hook that does not read its stdin is no failure, and its closed pipe must not
        // kill us: the CLI and the init run with SIGPIPE's default action
        use nix::sys::signal::{signal, SigHandler, Signal};
        // SAFETY: installing SIG_IGN runs no handler code.
        let old = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
        let _ = stdin.write_all(state);
        if let Ok(old) = old {
            // SAFETY: restoring the disposition we found, a handler or default of our own.
            let _ = unsafe { signal(Signal::SIGPIPE, old) };
        }
    }
    let deadline = h.timeout.map(|s| Instant::now() + Duration::from_secs(s));
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn)? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout {
                phase,
                path: h.path.clone(),
                seconds: h.timeout.unwrap_or_default(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if !status.success() {
        return Err(HookError::Failed {
            phase,
            path: h.path.clone(),
            status,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str, timeout: Option<u64>) -> Hook {
        Hook {
            path: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["X=1".into()],
            timeout,
        }
    }

    #[test]
    fn a_hook_reads_the_state_and_its_failure_and_timeout_are_errors() {
        let dir = std::env::temp_dir().join(format!("minik8s-hooks-{}", crate::random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("state");
        let annotations = BTreeMap::from([("a".to_string(), "b".to_string())]);
        let state = HookState {
            oci_version: "1.0.2",
            id: "c1",
            status: "created",
            pid: 42,
            bundle: &dir,
            annotations: &annotations,
        };
        let prestart = |h: Hook| Hooks {
            prestart: vec![h],
            ..Hooks::default()
        };
        let write = hook(&format!("cat > {} && test $X = 1", out.display()), Some(5));
        let ok = run(Phase::Prestart, &prestart(write), &state);
        let seen = std::fs::read_to_string(&out).unwrap_or_default();
        let failed = run(Phase::Prestart, &prestart(hook("exit 3", None)), &state);
        let start = Instant::now();
        let slow = run(Phase::Prestart, &prestart(hook("sleep 5", Some(1))), &state);
        std::fs::remove_dir_all(&dir).unwrap();
        ok.unwrap();
        let v: serde_json::Value = serde_json::from_str(&seen).unwrap();
        assert_eq!(
            (v["id"].as_str(), v["pid"].as_i64()),
            (Some("c1"), Some(42))
        );
        assert_eq!(v["annotations"]["a"], "b");
        assert!(
            matches!(failed, Err(HookError::Failed { .. })),
            "{failed:?}"
        );
        assert!(matches!(slow, Err(HookError::Timeout { .. })), "{slow:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
