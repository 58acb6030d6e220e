//! Putting the rules into the kernel, in one of two data paths (`--proxy-mode`), each one
//! transaction per sync and never one command per rule:
//!
//! - `nftables` (the default): our own table, `table ip minik8s-proxy`, written by `nft -f -`
//!   (`nftables.rs`);
//! - `iptables`: our chains in the nat and filter tables, written by `iptables-restore
//!   --noflush` (`rules.rs`), kube-proxy's classic mode, kept for hosts without nft.
//!
//! Why nftables is the default, by measurement (`cargo bench -p minik8s-proxy --bench
//! dataplane`: 1000 Services × 10 endpoints through a real apiserver, both modes in one run;
//! a 2-core VM shared with other builds, Debian 12's iptables 1.8.9 on its nf_tables backend
//! and nft 1.0.6; 2026-12-06, three runs at load 1–1.6; history in `docs/perf-log.md`):
//!
//! | | iptables | nftables | goal |
//! |---|---|---|---|
//! | full sync (median of 3) | 7.3–7.5 s | 0.31–0.44 s | ≤ 1 s |
//! | EndpointSlice write → a new connection reaches the new endpoint, p50 | 119–135 ms | 26–36 ms | |
//! | the same, p99 of 200 | 168–177 ms | 42, 44, 83 ms | ≤ 50 ms |
//!
//! The full sync decides it: `iptables-restore` alone takes ~6.9 s for the ~43 000 rule
//! lines (each translated by iptables-nft), seven times the goal, while the nftables table
//! (a chain and a map per service port, no rule per endpoint: an endpoint is a map element)
//! writes in a third of a second. For one replaced endpoint the commands themselves differ
//! less: `iptables-restore` of the 19 changed lines 30–40 ms, `nft` of four element lines
//! ~20 ms (~10 ms of CPU, most of it listing our 2000 chains and maps into its cache). The
//! rest of the iptables figure, 60–85 ms, is our own `rules.rs` rendering and comparing its
//! 43 000 lines of text on every sync; the nftables mode's state is values (`nftables.rs`),
//! rendered and compared in ~3.5 ms. (kube-proxy's own nftables layout, a chain per endpoint
//! behind an anonymous `numgen ... vmap` per Service, measured 1.2–1.9 s for a full sync and
//! 60–90 ms for one endpoint here: `nftables.rs` says why.) The p99 goal is met on a quiet
//! machine and missed whenever other builds load its two cores (p99 52–580 ms at load 3–8,
//! iptables 360–670 ms). Per packet, too, nftables finds a Service with one map lookup where
//! iptables walks a rule per Service.
//!
//! The [`Syncer`] remembers what it programmed last, so a sync writes only what changed (one
//! endpoint more: its elements, or its service's chain, not the other thousand Services),
//! without reading the kernel. In the iptables mode it reads the kernel (`iptables-save`) and
//! rewrites every chain on its first sync, after a failed one, and on every periodic resync
//! (`--sync-period`), so rules someone else changed or removed come back. In the nftables mode
//! the first sync, a sync after a failed one, and a periodic one at least every
//! [`NFT_FULL_RESYNC`] replace the whole table atomically; in between, the periodic check only
//! looks whether our table is still there (`nft list tables`, milliseconds) and rewrites it if
//! not. Rewriting 1000 × 10 takes a fraction of a second during which no change can be
//! applied: every 30 s that would hold back more than 1% of the changes by up to that long,
//! more than the 50 ms p99 goal allows (kube-proxy's nftables mode too rewrites its table in
//! full only hourly).
//!
//! [`run`] is the loop: woken by the watch caches, it syncs from the caches' current state
//! (level-triggered: the events themselves are never read). `--min-sync-period` is kube-proxy's:
//! the least time between the starts of two syncs. A change after a quiet spell is synced at
//! once; changes that come while a sync runs or within the period after its start wait for
//! the period's end and are folded into one sync, so a burst (a Deployment scaled by ten)
//! costs two transactions, not ten. (It used to be a delay before every sync: 20 ms added to
//! every single change, 40% of the 50 ms budget.)
//!
//! [`Runner`] runs the commands either here or inside a given network namespace (on a
//! thread that joined it with setns(2), so the child starts there): the tests program only
//! namespaces they created.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use nix::sched::{setns, CloneFlags};
use tokio::sync::Notify;

use crate::model::ServicePort;
use crate::nftables::{self, Ruleset};
use crate::rules::{self, Programmed, RulesConfig};

/// The nftables mode replaces its whole table at least this often (kube-proxy's full sync
/// period); the periodic check in between only makes sure the table exists.
pub const NFT_FULL_RESYNC: Duration = Duration::from_secs(3600);

/// The data path: which kernel interface the rules are written through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum ProxyMode {
    /// Our chains in iptables' nat and filter tables, through `iptables-restore`.
    Iptables,
    /// Our own nftables table, through `nft -f`.
    #[default]
    Nftables,
}

impl ProxyMode {
    /// Both modes.
    pub const ALL: [ProxyMode; 2] = [ProxyMode::Iptables, ProxyMode::Nftables];

    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ProxyMode::Iptables => "iptables",
            ProxyMode::Nftables => "nftables",
        }
    }
}

impl std::fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a sync or a cleanup failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The network namespace could not be opened.
    #[error("open network namespace {path}")]
    OpenNetns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Joining the network namespace failed (setns(2)).
    #[error("join network namespace {path}: {errno}")]
    JoinNetns { path: PathBuf, errno: nix::Error },
    /// The command could not be started or waited for.
    #[error("run {program}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The command failed; for iptables-restore and `nft -f`, nothing of the transaction
    /// was applied.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Where the commands run: this process's network namespace, or another one.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    netns: Option<PathBuf>,
}

impl Runner {
    /// In the namespace of the caller (the node's, for the proxy).
    pub fn here() -> Runner {
        Runner { netns: None }
    }

    /// In the network namespace pinned at `path` (`/run/netns/<name>`).
    pub fn in_netns(path: &Path) -> Runner {
        Runner {
            netns: Some(path.to_path_buf()),
        }
    }

    /// `iptables-save`: every table, as text.
    pub fn iptables_save(&self) -> Result<String, SyncError> {
        self.run("iptables-save", &[], None)
    }

    /// `iptables-restore --noflush` with `text` on stdin: one transaction, all or nothing.
    /// `-w` waits for the xtables lock instead of failing when another program holds it.
    pub fn iptables_restore(&self, text: &str) -> Result<(), SyncError> {
        self.run("iptables-restore", &["-w", "5", "--noflush"], Some(text))
            .map(drop)
    }

    /// `iptables-restore --version`.
    pub fn iptables_version(&self) -> Result<String, SyncError> {
        self.run("iptables-restore", &["--version"], None)
    }

    /// `nft -f -` with `text` on stdin: one transaction, all or nothing.
    pub fn nft_apply(&self, text: &str) -> Result<(), SyncError> {
        self.run("nft", &["-f", "-"], Some(text)).map(drop)
    }

    /// `nft ARGS`, its output (`list ruleset`, `list tables`, `-c -f -` to check a text).
    pub fn nft(&self, args: &[&str], stdin: Option<&str>) -> Result<String, SyncError> {
        self.run("nft", args, stdin)
    }

    fn run(
        &self,
        program: &'static str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, SyncError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let stdin = stdin.map(str::to_string);
        let spawn_err = move |source| SyncError::Spawn { program, source };
        let run = move || -> Result<std::process::Output, SyncError> {
            let mut child = cmd.spawn().map_err(spawn_err)?;
            if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
                pipe.write_all(text.as_bytes()).map_err(spawn_err)?;
            }
            child.wait_with_output().map_err(spawn_err)
        };
        let output = match &self.netns {
            None => run()?,
            Some(path) => {
                let ns = File::open(path).map_err(|source| SyncError::OpenNetns {
                    path: path.clone(),
                    source,
                })?;
                let path = path.clone();
                // setns(2) changes only the calling thread: a short-lived one joins the
                // namespace and forks the command from there.
                std::thread::spawn(move || {
                    setns(&ns, CloneFlags::CLONE_NEWNET)
                        .map_err(|errno| SyncError::JoinNetns { path, errno })?;
                    run()
                })
                .join()
                .map_err(|_| SyncError::Spawn {
                    program,
                    source: std::io::Error::other("thread panicked"),
                })??
            }
        };
        if !output.status.success() {
            return Err(SyncError::Failed {
                program,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// What a mode knows of the kernel: what its last successful sync left, or `None` when the
/// next sync must start from scratch.
#[derive(Debug)]
enum State {
    Iptables(Option<Programmed>),
    Nftables {
        ruleset: Option<Ruleset>,
        /// When the whole table was last written.
        written: Option<Instant>,
    },
}

/// Keeps the kernel's rules equal to the service ports it is given.
#[derive(Debug)]
pub struct Syncer {
    runner: Runner,
    config: RulesConfig,
    state: State,
}

/// What one sync did, for the log.
#[derive(Debug, Clone, Copy)]
pub struct SyncStats {
    /// Service ports programmed.
    pub service_ports: usize,
    /// Lines of the transaction (0: nothing differed, nothing was run).
    pub lines: usize,
    /// Whether every rule was written (first sync, after a failure, periodic), not only
    /// what changed.
    pub full: bool,
    /// Time spent, including reading the kernel's rules when that was needed.
    pub took: Duration,
}

impl Syncer {
    /// A syncer that starts from scratch: it reads the kernel's rules (iptables) or replaces
    /// the whole table (nftables) on its first sync.
    pub fn new(runner: Runner, mode: ProxyMode, config: RulesConfig) -> Syncer {
        let state = match mode {
            ProxyMode::Iptables => State::Iptables(None),
            ProxyMode::Nftables => State::Nftables {
                ruleset: None,
                written: None,
            },
        };
        Syncer {
            runner,
            config,
            state,
        }
    }

    /// Its data path.
    pub fn mode(&self) -> ProxyMode {
        match self.state {
            State::Iptables(_) => ProxyMode::Iptables,
            State::Nftables { .. } => ProxyMode::Nftables,
        }
    }

    /// Make the kernel's rules those of `ports`, in one transaction. On failure nothing of
    /// it was applied, and the next sync starts from scratch.
    pub fn sync(&mut self, ports: &[ServicePort]) -> Result<SyncStats, SyncError> {
        let start = Instant::now();
        let (lines, full) = match &mut self.state {
            State::Iptables(programmed) => {
                let (before, full) = match programmed.take() {
                    Some(p) => (p, false),
                    None => (Programmed::parse_save(&self.runner.iptables_save()?), true),
                };
                let transaction = rules::render(ports, &self.config, &before);
                // Nothing differs: no transaction at all.
                if !transaction.text.is_empty() {
                    self.runner.iptables_restore(&transaction.text)?;
                }
                *programmed = Some(transaction.after);
                (transaction.text.lines().count(), full)
            }
            State::Nftables { ruleset, written } => {
                let wanted = nftables::render(ports, &self.config);
                let transaction = nftables::transaction(&wanted, ruleset.take().as_ref());
                if !transaction.text.is_empty() {
                    self.runner.nft_apply(&transaction.text)?;
                }
                if transaction.full {
                    *written = Some(Instant::now());
                }
                *ruleset = Some(wanted);
                (transaction.text.lines().count(), transaction.full)
            }
        };
        Ok(SyncStats {
            service_ports: ports.len(),
            lines,
            full,
            took: start.elapsed(),
        })
    }

    /// Forget what was programmed, so the next sync starts from scratch and repairs
    /// whatever someone else changed.
    pub fn resync(&mut self) {
        match &mut self.state {
            State::Iptables(programmed) => *programmed = None,
            State::Nftables { ruleset, .. } => *ruleset = None,
        }
    }

    /// The periodic check (`--sync-period`): in the iptables mode a full resync; in the
    /// nftables mode one when the table was last written whole [`NFT_FULL_RESYNC`] ago or is
    /// no longer there (someone ran `nft flush ruleset`).
    pub fn periodic(&mut self) {
        let gone = match &self.state {
            State::Iptables(_) => true,
            State::Nftables { written, .. } => {
                written.is_none_or(|t| t.elapsed() >= NFT_FULL_RESYNC)
                    || !self
                        .runner
                        .nft(&["list", "tables", "ip"], None)
                        .is_ok_and(|tables| nftables::table_listed(&tables))
            }
        };
        if gone {
            self.resync();
        }
    }

    /// Remove every rule of ours, of both modes (`--cleanup`); whether there was anything.
    pub fn cleanup(&mut self) -> Result<bool, SyncError> {
        self.resync();
        cleanup(&self.runner, &ProxyMode::ALL)
    }
}

/// Remove the rules the proxy wrote in `modes`: the iptables mode's chains and jumps, the
/// nftables mode's table. Whether there was anything. A mode whose command is not installed
/// has nothing to remove. The proxy cleans up the mode it does not run when it starts, as
/// kube-proxy does, so that a node switched from one mode to the other is not served by both.
pub fn cleanup(runner: &Runner, modes: &[ProxyMode]) -> Result<bool, SyncError> {
    let not_installed = |e: &SyncError| matches!(e, SyncError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
    let mut removed = false;
    for mode in modes {
        match mode {
            ProxyMode::Iptables => {
                let saved = match runner.iptables_save() {
                    Ok(saved) => saved,
                    Err(e) if not_installed(&e) => continue,
                    Err(e) => return Err(e),
                };
                let text = rules::cleanup(&Programmed::parse_save(&saved));
                if !text.is_empty() {
                    runner.iptables_restore(&text)?;
                    removed = true;
                }
            }
            ProxyMode::Nftables => {
                let tables = match runner.nft(&["list", "tables", "ip"], None) {
                    Ok(tables) => tables,
                    Err(e) if not_installed(&e) => continue,
                    Err(e) => return Err(e),
                };
                if nftables::table_listed(&tables) {
                    runner.nft_apply(&nftables::cleanup())?;
                    removed = true;
                }
            }
        }
    }
    Ok(removed)
}

/// How often [`run`] syncs.
#[derive(Debug, Clone, Copy)]
pub struct Periods {
    /// The least time between the starts of two syncs (`--min-sync-period`).
    pub min_sync: Duration,
    /// The periodic check, [`Syncer::periodic`], at least this often (`--sync-period`).
    pub resync: Duration,
}

impl Default for Periods {
    /// The flags' defaults (`main.rs` spells them out for `--help`: keep them equal).
    /// `--min-sync-period` 100 ms: a lone change never waits for it (see the module docs),
    /// so it only bounds how often a stream of changes is synced: at most ten transactions a
    /// second, about a sixth of a core (`nft` and the render) at 1000 × 10 on the
    /// benchmark's VM, and a change in a stream waits at most that long for its turn.
    fn default() -> Periods {
        Periods {
            min_sync: Duration::from_millis(100),
            resync: Duration::from_secs(30),
        }
    }
}

/// Sync whenever `changed` is notified (at most once per `periods.min_sync`) and check every
/// `periods.resync`, with the service ports `snapshot` returns; `None` means the caches are
/// not synced yet, and nothing is written (an empty list would delete every Service's
/// rules). Runs until dropped.
pub async fn run(
    mut syncer: Syncer,
    changed: Arc<Notify>,
    snapshot: impl Fn() -> Option<Vec<ServicePort>>,
    periods: Periods,
) {
    let mut next_check = tokio::time::Instant::now() + periods.resync;
    let mut last_sync: Option<tokio::time::Instant> = None;
    loop {
        let mut periodic = false;
        tokio::select! {
            () = changed.notified() => {
                // A change after a quiet spell goes at once; one within the period after the
                // last sync started waits for its end, and so do all that come meanwhile.
                if let Some(last) = last_sync {
                    tokio::time::sleep_until(last + periods.min_sync).await;
                }
                // Fold the changes of the wait into this sync: take the wake-up they left,
                // or it would start a second, needless sync right after this one.
                let _ = changed.notified().now_or_never();
            }
            () = tokio::time::sleep_until(next_check) => periodic = true,
        }
        next_check = tokio::time::Instant::now() + periods.resync;
        let Some(ports) = snapshot() else { continue };
        last_sync = Some(tokio::time::Instant::now());
        let (back, result) = tokio::task::spawn_blocking(move || {
            if periodic {
                syncer.periodic();
            }
            let result = syncer.sync(&ports);
            (syncer, result)
        })
        .await
        .expect("sync thread panicked");
        syncer = back;
        match result {
            Ok(stats) => tracing::info!(
                mode = %syncer.mode(),
                service_ports = stats.service_ports,
                lines = stats.lines,
                full = stats.full,
                took_ms = stats.took.as_millis() as u64,
                "rules synced"
            ),
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "sync failed; retrying");
                // Retry soon, from scratch.
                next_check = tokio::time::Instant::now() + Duration::from_secs(1);
            }
        }
    }
}

/// `error: cause: cause`, for one log field.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
