//! `minik8s-runtime`: a docker-like command line over the node's runtime (the [`runtime`]
//! library of this crate), plus the hidden `shim` subcommand the runtime re-executes itself as,
//! one per container.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use runtime::cgroups::{CpuQuota, CPU_PERIOD_US};
use runtime::container::{Attach, ContainerError, CreateOptions, SandboxOptions, Status};
use runtime::{exec, pause, seccomp, shim, tty, Runtime, DEFAULT_ROOT};

#[path = "minik8s-runtime/images.rs"]
mod images;
#[path = "minik8s-runtime/tools.rs"]
mod tools;

#[derive(Parser)]
#[command(
    name = "minik8s-runtime",
    version,
    about = "minik8s node container runtime"
)]
struct Cli {
    /// State directory (images, containers, sandboxes).
    #[arg(long, global = true, default_value = DEFAULT_ROOT, env = "MINIK8S_RUNTIME_ROOT")]
    root: PathBuf,
    /// Cgroup under which pod cgroups go, relative to the hierarchy root (dockerd's
    /// `--cgroup-parent`): two runtimes on one host with different parents never meet in the
    /// cgroup tree.
    #[arg(long, global = true, default_value = "minik8s", env = "MINIK8S_RUNTIME_CGROUP_PARENT",
          value_parser = runtime::cgroups::parse_parent)]
    cgroup_parent: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone, Default)]
struct RunArgs {
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Run in the background and print the id.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Run a reaping PID 1 of ours that forwards signals to the command (Docker's `--init`);
    /// it shows as `/init -- CMD`.
    #[arg(long)]
    init: bool,
    #[arg(long)]
    name: Option<String>,
    /// CPU limit in CPUs, as Docker's (0.5: half a CPU; 2: two).
    #[arg(long, allow_hyphen_values = true)]
    cpus: Option<String>,
    /// Relative CPU weight (v1 shares).
    #[arg(long)]
    cpu_shares: Option<u64>,
    /// Memory limit as Docker's: bytes, or with a binary unit b, k, m, g, t (64m, 1g, 1.5G,
    /// 64Mi, 512MiB).
    #[arg(short = 'm', long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Maximum number of processes.
    #[arg(long = "pids", alias = "pids-limit", allow_hyphen_values = true)]
    pids: Option<i64>,
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// HOST:CONTAINER[:ro]
    #[arg(short = 'v', long = "volume")]
    volumes: Vec<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// KEY=VALUE
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Join this pod sandbox's net/ipc/uts namespaces.
    #[arg(long)]
    sandbox: Option<String>,
    #[arg(long)]
    read_only: bool,
    #[arg(long)]
    privileged: bool,
    #[arg(long)]
    cap_add: Vec<String>,
    #[arg(long)]
    cap_drop: Vec<String>,
    /// Set no_new_privs: no exec gains privileges (set-uid bits, file capabilities).
    #[arg(long)]
    no_new_privileges: bool,
    /// Docker's security options: `no-new-privileges[:true|false]`,
    /// `seccomp=unconfined|PROFILE.json` (default: the runtime's default profile).
    #[arg(long)]
    security_opt: Vec<String>,
    /// CFS period in µs (with --cpu-quota; instead of --cpus).
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CFS quota in µs per period (instead of --cpus).
    #[arg(long)]
    cpu_quota: Option<u64>,
    /// Enter the root with chroot(2) instead of pivot_root(2) (a lab's weak isolation).
    #[arg(long)]
    chroot: bool,
    /// Show the host's /proc/meminfo and /proc/cpuinfo (no generated ones).
    #[arg(long)]
    no_proc_virt: bool,
    /// Replace the image's entrypoint (space separated).
    #[arg(long)]
    entrypoint: Option<String>,
    image: String,
    /// Command and arguments (after `--` if they start with '-').
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create and start a container.
    Run(Box<RunArgs>),
    /// List containers.
    Ps {
        /// Also stopped ones (default: all are shown).
        #[arg(short, long)]
        all: bool,
        /// Only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a command in a running container.
    Exec {
        #[arg(short = 'i', long)]
        interactive: bool,
        #[arg(short = 't', long)]
        tty: bool,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Print a container's logs.
    Logs {
        #[arg(short, long)]
        follow: bool,
        id: String,
    },
    /// Stop containers: SIGTERM, then SIGKILL after the grace period.
    Stop {
        #[arg(short = 't', long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Remove containers.
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Show a container's configuration and live kernel state as JSON.
    Inspect {
        id: String,
        /// The same facts in sentences (`container/explain.rs`).
        #[arg(long)]
        explain: bool,
    },
    /// List images.
    Images,
    /// Import an OCI image layout (dir or tar) or a `docker save` tarball.
    Import {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// Save a container's changes as a new image.
    Commit { id: String, name: String },
    /// Pull an image from a registry: HTTPS with a verified certificate, except for insecure
    /// registries (loopback ones, --insecure-registry, --insecure), which may be plain HTTP.
    Pull {
        reference: String,
        /// Treat the reference's registry as insecure (as --insecure-registry for it).
        #[arg(long)]
        insecure: bool,
        /// A registry that may be plain HTTP and whose certificate is not verified; repeatable.
        #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
        insecure_registries: Vec<String>,
        /// PEM bundle of CA certificates trusted besides the system's.
        #[arg(long, value_name = "FILE")]
        registry_ca: Option<PathBuf>,
        /// Credentials for a registry that asks (Basic auth or its token service).
        #[arg(
            long,
            value_name = "USER:PASSWORD",
            env = "MINIK8S_REGISTRY_CREDS",
            hide_env_values = true
        )]
        creds: Option<String>,
        /// No progress bars (they are drawn only when stderr is a terminal).
        #[arg(short, long)]
        quiet: bool,
        /// The platform to take from a multi-platform image, OS/ARCH[/VARIANT] (default: the
        /// node's, e.g. linux/amd64 or linux/arm64).
        #[arg(long, value_parser = parse_platform)]
        platform: Option<runtime::platform::Platform>,
    },
    /// Remove an image name.
    Rmi { name: String },
    /// Pod sandboxes (shared net/ipc/uts namespaces and pod cgroup).
    #[command(subcommand)]
    Sandbox(SandboxCmd),
    /// diff, update, image inspect, history, tag, build (`tools.rs`).
    #[command(flatten)]
    Tools(tools::ToolCmd),
    /// Send a signal to a container.
    Kill {
        id: String,
        #[arg(default_value = "KILL")]
        signal: String,
    },
    /// OCI: create a container from a bundle, its process waiting for `start`.
    Create {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        id: String,
    },
    /// OCI: start a created container.
    Start { id: String },
    /// OCI: print a container's state as JSON.
    State { id: String },
    /// OCI: delete a stopped (or, with --force, any) container.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// PID 1 of a sandbox's shared pid namespace (internal).
    #[command(hide = true)]
    Pause { dir: PathBuf },
    /// Per-container monitor (internal).
    #[command(hide = true)]
    Shim {
        id: String,
        #[arg(long)]
        status_fd: Option<i32>,
        #[arg(long)]
        attached: bool,
    },
}

#[derive(Subcommand)]
enum SandboxCmd {
    Create {
        id: String,
        #[arg(long)]
        hostname: Option<String>,
        /// One pid namespace for all containers (Kubernetes `shareProcessNamespace`).
        #[arg(long)]
        share_pid: bool,
    },
    Rm {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    Ls,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.prints_a_report() {
        die_quietly_on_a_closed_stdout();
    }
    // A command line tool stays quiet unless asked.
    if std::env::var_os("RUST_LOG").is_some() {
        init_logging();
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            let code = e.downcast_ref::<ContainerError>().map_or(125, |c| match c {
                ContainerError::CommandNotFound { .. } => 127,
                ContainerError::StartFailed { code, .. } => *code,
                _ => 125,
            });
            let code = e.downcast_ref::<Exit>().map_or(code, |x| i32::from(x.code));
            eprintln!("minik8s-runtime: {}", one_line(&e));
            ExitCode::from(code as u8)
        }
    }
}

/// `e` and its causes on one line, `: `-separated, as anyhow's `{:#}` prints them, but without
/// a cause whose text the message before it already ends with (our errors that name their
/// source in their own text would otherwise say "No such file or directory" twice).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Log `tracing` events to stderr, leaving stdout to the containers and the reports, with
/// `RUST_LOG` choosing what (the same setup as the cluster's components, `client::logging`,
/// which this crate does not depend on): colours only when stderr is a terminal.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

impl Cmd {
    /// Whether the subcommand writes its result to stdout and exits, like any Unix filter
    /// (`minik8s-runtime ps | head`). The others run containers, relay their streams, or are
    /// the long-lived shim and pause processes.
    fn prints_a_report(&self) -> bool {
        match self {
            Cmd::Ps { .. }
            | Cmd::Logs { .. }
            | Cmd::Stop { .. }
            | Cmd::Rm { .. }
            | Cmd::Inspect { .. }
            | Cmd::Images
            | Cmd::Import { .. }
            | Cmd::Commit { .. }
            | Cmd::Pull { .. }
            | Cmd::Rmi { .. }
            | Cmd::Sandbox(_)
            | Cmd::Kill { .. }
            | Cmd::State { .. }
            | Cmd::Delete { .. } => true,
            Cmd::Tools(t) => !matches!(t, tools::ToolCmd::Build { .. }),
            Cmd::Run(_)
            | Cmd::Exec { .. }
            | Cmd::Create { .. }
            | Cmd::Start { .. }
            | Cmd::Pause { .. }
            | Cmd::Shim { .. } => false,
        }
    }
}

/// Let SIGPIPE end the process, as it ends `ls | head`: once the reader of stdout is gone there
/// is nothing left to do, and `println!` would otherwise panic on EPIPE. Rust starts programs
/// with SIGPIPE ignored so that a write to a closed socket or pipe fails with EPIPE instead;
/// the subcommands that start containers or relay their streams rely on that and keep it.
fn die_quietly_on_a_closed_stdout() {
    // SAFETY: signal(2) with SIG_DFL installs no handler, it only restores the kernel's default
    // action for SIGPIPE in this (still single-threaded) process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return Ok(nix::sys::signal::Signal::try_from(n)?);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    nix::sys::signal::Signal::from_str(&name).with_context(|| format!("unknown signal {s:?}"))
}

/// Open the runtime and run one subcommand: each has a function of its own below, but the
/// one-liners.
fn run(cli: Cli) -> Result<i32> {
    let mut rt =
        Runtime::open(&cli.root).with_context(|| format!("open runtime root {:?}", cli.root))?;
    rt.cgroup_parent = cli.cgroup_parent;
    match cli.command {
        Cmd::Create {
            bundle,
            pid_file,
            console_socket,
            id,
        } => cmd_oci_create(&rt, &id, &bundle, pid_file, console_socket),
        Cmd::Start { id } => {
            rt.oci_start(&id)?;
            Ok(0)
        }
        Cmd::State { id } => {
            println!("{}", serde_json::to_string_pretty(&rt.oci_state(&id)?)?);
            Ok(0)
        }
        Cmd::Delete { force, id } => {
            rt.oci_delete(&id, force)?;
            Ok(0)
        }
        Cmd::Shim {
            id,
            status_fd,
            attached,
        } => Ok(shim::main(&rt, &id, status_fd, attached)),
        Cmd::Pause { dir } => Ok(pause::main(&dir)),
        Cmd::Run(a) => cmd_run(&rt, *a),
        Cmd::Ps { quiet, .. } => cmd_ps(&rt, quiet),
        Cmd::Exec {
            interactive,
            tty,
            id,
            command,
        } => {
            check_tty(interactive, tty)?;
            let id = rt.lookup(&id)?;
            let terminal = tty.then_some(exec::Terminal { stdin: interactive });
            Ok(exec::exec_with(&rt, &id, &command, terminal)?)
        }
        Cmd::Logs { follow, id } => cmd_logs(&rt, &id, follow),
        Cmd::Stop { time, ids } => each_container(&rt, &ids, |id| {
            rt.stop(id, Duration::from_secs(time)).map(drop)
        }),
        Cmd::Rm { force, ids } => each_container(&rt, &ids, |id| rt.remove(id, force)),
        Cmd::Kill { id, signal } => {
            let id = rt.lookup(&id)?;
            rt.kill(&id, parse_signal(&signal)?)?;
            Ok(0)
        }
        Cmd::Inspect { id, explain } => {
            let id = rt.lookup(&id)?;
            let v = rt.inspect(&id)?;
            if explain {
                use runtime::container::explain;
                print!("{}", explain::render(&v, &explain::host_namespaces()));
            } else {
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            Ok(0)
        }
        Cmd::Images => cmd_images(&rt),
        Cmd::Import { file, name } => {
            for n in rt.images.import(&file, name.as_deref())? {
                println!("{n}");
            }
            Ok(0)
        }
        Cmd::Commit { id, name } => {
            let id = rt.lookup(&id)?;
            println!("{}", rt.commit(&id, &name)?);
            Ok(0)
        }
        Cmd::Pull {
            reference,
            insecure,
            insecure_registries,
            registry_ca,
            creds,
            quiet,
            platform,
        } => {
            let pull = PullArgs {
                platform,
                insecure,
                insecure_registries,
                registry_ca,
                creds,
                quiet,
            };
            cmd_pull(&rt, &reference, pull)
        }
        Cmd::Rmi { name } => {
            rt.images.untag(&name)?;
            Ok(0)
        }
        Cmd::Sandbox(cmd) => cmd_sandbox(&rt, cmd),
        Cmd::Tools(cmd) => tools::run(&rt, cmd),
    }
}

/// `stop`, `rm`: `op` on each container, whose id is printed once done.
fn each_container(
    rt: &Runtime,
    ids: &[String],
    op: impl Fn(&str) -> Result<(), ContainerError>,
) -> Result<i32> {
    for id in ids {
        let id = rt.lookup(id)?;
        op(&id)?;
        println!("{id}");
    }
    Ok(0)
}

/// OCI `create`: the container's init waits on its exec fifo until `start`.
fn cmd_oci_create(
    rt: &Runtime,
    id: &str,
    bundle: &Path,
    pid_file: Option<PathBuf>,
    console_socket: Option<PathBuf>,
) -> Result<i32> {
    if console_socket.is_some() {
        bail!("--console-socket (terminal) is not supported");
    }
    let pid = rt.oci_create(id, bundle)?;
    if let Some(f) = pid_file {
        std::fs::write(&f, pid.to_string()).with_context(|| format!("write pid file {f:?}"))?;
    }
    Ok(0)
}

/// `ps`: one line per container (or only ids).
fn cmd_ps(rt: &Runtime, quiet: bool) -> Result<i32> {
    if !quiet {
        println!(
            "{:<14} {:<20} {:<18} {:<24} {:<8} COMMAND",
            "CONTAINER ID", "NAME", "IMAGE", "STATUS", "PID"
        );
    }
    for id in rt.container_ids() {
        let (Ok(spec), Ok(st)) = (rt.spec(&id), rt.state(&id)) else {
            continue;
        };
        if quiet {
            println!("{id}");
            continue;
        }
        println!(
            "{:<14} {:<20} {:<18} {:<24} {:<8} {}",
            id.get(..12).unwrap_or(&id),
            spec.name,
            spec.image,
            status_text(&st),
            st.pid.map(|p| p.to_string()).unwrap_or_default(),
            spec.args.join(" ")
        );
    }
    Ok(0)
}

/// `ps`'s STATUS as Docker words it (`Up`, `Created`, `Exited (137)`), and `(OOMKilled)`
/// when the kernel's OOM killer ended a process of the container: the command itself (137)
/// or one of its children, after which the command may well have exited 0.
fn status_text(st: &runtime::State) -> String {
    let mut text = match st.status {
        Status::Created => "Created".to_string(),
        Status::Running => "Up".to_string(),
        Status::Stopped => format!("Exited ({})", st.exit_code.unwrap_or(-1)),
    };
    if st.oom_killed {
        text.push_str(" (OOMKilled)");
    }
    text
}

/// `logs [-f]`: the container's output on our stdout and stderr; with `-f` until it stops.
fn cmd_logs(rt: &Runtime, id: &str, follow: bool) -> Result<i32> {
    let id = rt.lookup(id)?;
    let mut offset = 0;
    loop {
        let (lines, next) = rt.read_logs(&id, offset)?;
        offset = next;
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        for (stream, text) in lines {
            if stream == "stderr" {
                writeln!(err, "{text}")?;
            } else {
                writeln!(out, "{text}")?;
            }
        }
        drop((out, err));
        if !follow {
            return Ok(0);
        }
        if rt.state(&id)?.status == Status::Stopped {
            let (lines, _) = rt.read_logs(&id, offset)?;
            for (_, text) in lines {
                println!("{text}");
            }
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `images`: name, manifest digest and layer count of each image.
fn cmd_images(rt: &Runtime) -> Result<i32> {
    println!("{:<40} {:<20} LAYERS", "NAME", "MANIFEST");
    for r in rt.images.list()? {
        let layers = rt
            .images
            .resolve(&r.name)
            .map(|i| i.layers.len())
            .unwrap_or(0);
        println!("{:<40} {:<20} {}", r.name, &r.manifest[7..19], layers);
    }
    Ok(0)
}

/// The options of `pull`.
struct PullArgs {
    platform: Option<runtime::platform::Platform>,
    insecure: bool,
    insecure_registries: Vec<String>,
    registry_ca: Option<PathBuf>,
    creds: Option<String>,
    quiet: bool,
}

/// `pull`: from a registry into the image store, with progress bars on a terminal.
fn cmd_pull(rt: &Runtime, reference: &str, a: PullArgs) -> Result<i32> {
    use runtime::registry::{self, Credentials, PullOptions};
    let mut insecure_registries = a.insecure_registries;
    if a.insecure {
        insecure_registries.push(registry::Reference::parse(reference)?.registry);
    }
    let credentials = match a.creds {
        Some(c) => Some(Credentials::parse(&c).context("--creds wants USER:PASSWORD")?),
        None => None,
    };
    let opts = PullOptions {
        insecure_registries,
        ca_file: a.registry_ca,
        credentials,
        platform: a.platform,
    };
    let mut bars = ProgressBars::new(!a.quiet && std::io::stderr().is_terminal());
    let name = registry::pull_with_progress(&rt.images, reference, &opts, &mut |p| bars.update(p));
    bars.finish();
    println!("{}", name?);
    Ok(0)
}

/// `sandbox create|rm|ls`.
fn cmd_sandbox(rt: &Runtime, cmd: SandboxCmd) -> Result<i32> {
    match cmd {
        SandboxCmd::Create {
            id,
            hostname,
            share_pid,
        } => {
            let opts = SandboxOptions {
                hostname,
                share_pid,
                dns: None,
            };
            rt.create_sandbox_with(&id, &opts)?;
            println!("{id}");
        }
        SandboxCmd::Rm { force, id } => {
            rt.sandbox(&id)?;
            rt.remove_sandbox(&id, force)?;
            println!("{id}");
        }
        SandboxCmd::Ls => {
            for id in rt.sandbox_ids() {
                let sdir = rt.sandbox_dir(&id);
                let net = std::fs::metadata(sdir.join("net"))
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                    .unwrap_or(0);
                println!("{id}\tnet:[{net}]");
            }
        }
    }
    Ok(0)
}

fn cmd_run(rt: &Runtime, a: RunArgs) -> Result<i32> {
    if a.detach && a.interactive {
        bail!("-d and -i cannot be combined");
    }
    check_tty(a.interactive, a.tty)?;
    let opts = CreateOptions {
        name: a.name,
        image: a.image,
        command: a.command,
        entrypoint: a
            .entrypoint
            .map(|e| e.split_whitespace().map(String::from).collect()),
        env: a.env,
        volumes: a.volumes,
        hostname: a.hostname,
        workdir: a.workdir,
        user: a.user,
        cpu_quota: tools::run_cpu_quota(a.cpus.as_deref(), a.cpu_period, a.cpu_quota)?,
        cpu_shares: a.cpu_shares,
        memory_bytes: a.memory.as_deref().map(docker_memory).transpose()?,
        pids: a.pids.map(pids_limit).transpose()?,
        cpuset: a.cpuset_cpus,
        tty: a.tty,
        init: a.init,
        sandbox: a.sandbox,
        readonly: a.read_only,
        privileged: a.privileged,
        cap_add: a.cap_add,
        cap_drop: a.cap_drop,
        no_new_privs: no_new_privs(a.no_new_privileges, &a.security_opt)?,
        seccomp: seccomp_policy(&a.security_opt)?,
        auto_remove: a.rm,
        wait_for_start: false,
        teaching: runtime::container::TeachingSwitches {
            chroot: a.chroot,
            host_proc: a.no_proc_virt,
        },
    };
    let spec = rt.create(&opts)?;
    let attach = if a.detach {
        Attach::Detached
    } else {
        Attach::Foreground {
            stdin: a.interactive,
        }
    };
    let started = match rt.start(&spec.id, attach) {
        Ok(s) => s,
        Err(e) => {
            // nothing left behind on a failed start
            let _ = rt.cleanup_failed(&spec.id);
            return Err(e.into());
        }
    };
    if a.detach {
        println!("{}", spec.id);
        return Ok(0);
    }
    let raw = (a.tty && a.interactive)
        .then(tty::RawMode::enable)
        .flatten();
    let result = started.wait();
    drop(raw);
    match result {
        Some((code, oom)) => {
            if oom {
                eprintln!(
                    "minik8s-runtime: container {} was OOM-killed",
                    &spec.id[..12]
                );
            }
            Ok(code)
        }
        None => bail!("lost contact with the container's shim"),
    }
}

/// `-it` attaches our stdin to the container's terminal, which only works when stdin is a
/// terminal itself: a pipe or file would reach the container's line discipline as typed
/// keys while our raw mode has nothing to switch. Docker's check and message
/// (`docker/cli`, `In::CheckTty`), made before anything is created.
fn check_tty(interactive: bool, tty: bool) -> Result<()> {
    if interactive && tty && !std::io::stdin().is_terminal() {
        return Err(Exit {
            code: 1,
            message: "the input device is not a TTY",
        }
        .into());
    }
    Ok(())
}

/// A failure the CLI reports with an exit code of Docker's rather than the runtime's 125.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Exit {
    code: u8,
    message: &'static str,
}

/// `--cpus`: a number of CPUs, as Docker takes it: a CFS quota of that many default periods.
fn docker_cpus(cpus: &str) -> Result<CpuQuota> {
    let n: f64 = cpus
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .with_context(|| format!("invalid --cpus {cpus:?}: expected a positive number like 0.5"))?;
    Ok(CpuQuota::per_default_period(
        (n * CPU_PERIOD_US as f64).round() as u64,
    ))
}

/// `--memory`: Docker's RAM size (go-units' `RAMInBytes`): a number, possibly with a fraction,
/// then an optional unit `b`, `k`, `m`, `g`, `t` or `p` in either case, each 1024 times the
/// last, optionally followed by `i` and/or `b` (`64m`, `1.5g`, `64Mi`, `512MiB`).
fn docker_memory(size: &str) -> Result<u64> {
    let bad = || anyhow::anyhow!("invalid --memory {size:?}: expected a size like 64m or 1g");
    let s = size.trim();
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let bytes = n * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// A `--security-opt` as key and value (`no-new-privileges` alone means `:true`).
fn split_security_opt(opt: &str) -> (&str, &str) {
    opt.split_once([':', '='])
        .map_or((opt, "true"), |(k, v)| (k, v))
}

/// no_new_privs from `--no-new-privileges` and Docker's `--security-opt no-new-privileges`
/// (`:true`, `=true`, `:false`); the last option given wins. Options other than it and
/// `seccomp=` (`apparmor=`, `label=`) are refused rather than silently ignored.
fn no_new_privs(flag: bool, security_opt: &[String]) -> Result<bool> {
    let mut on = flag;
    for opt in security_opt {
        let (key, value) = split_security_opt(opt);
        if key == "seccomp" {
            continue;
        }
        if key != "no-new-privileges" {
            bail!("--security-opt {opt:?}: only no-new-privileges and seccomp are supported");
        }
        on = match value {
            "true" => true,
            "false" => false,
            _ => bail!("--security-opt {opt:?}: expected true or false"),
        };
    }
    Ok(on)
}

/// The seccomp filter, as Docker chooses it: the runtime's default profile unless
/// `--security-opt seccomp=unconfined` or `seccomp=PROFILE.json` (`--privileged` runs
/// unconfined whatever this says).
fn seccomp_policy(security_opt: &[String]) -> Result<seccomp::Policy> {
    let mut policy = seccomp::Policy::RuntimeDefault;
    for opt in security_opt {
        let ("seccomp", value) = split_security_opt(opt) else {
            continue;
        };
        policy = match value {
            "unconfined" => seccomp::Policy::Unconfined,
            "builtin" | "default" => seccomp::Policy::RuntimeDefault,
            path => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--security-opt {opt:?}: read the profile"))?;
                let profile = seccomp::Profile::parse(&text)
                    .with_context(|| format!("--security-opt {opt:?}"))?;
                seccomp::Policy::Profile(Box::new(profile))
            }
        };
    }
    Ok(policy)
}

/// `--platform OS/ARCH[/VARIANT]`.
fn parse_platform(s: &str) -> Result<runtime::platform::Platform, String> {
    runtime::platform::Platform::parse(s).map_err(|e| e.to_string())
}

/// `--pids`: at least one process.
fn pids_limit(pids: i64) -> Result<u64> {
    u64::try_from(pids)
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("invalid --pids {pids}: must be positive"))
}

/// `pull`'s progress on a terminal, like `docker pull`'s: one line per blob, redrawn in place
/// (at most every 100 ms) until the blob is complete.
struct ProgressBars {
    enabled: bool,
    /// The blob whose line is open.
    current: Option<String>,
    /// The last completed blob (its final report repeats the last read's).
    finished: Option<String>,
    drawn: std::time::Instant,
}

impl ProgressBars {
    fn new(enabled: bool) -> Self {
        ProgressBars {
            enabled,
            current: None,
            finished: None,
            drawn: std::time::Instant::now(),
        }
    }

    fn update(&mut self, p: runtime::registry::Progress<'_>) {
        if !self.enabled || self.finished.as_deref() == Some(p.digest) {
            return;
        }
        let complete = p.done >= p.total;
        if self.current.as_deref() != Some(p.digest) {
            self.finish();
            self.current = Some(p.digest.to_string());
        } else if !complete && self.drawn.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.drawn = std::time::Instant::now();
        eprint!("\r{}", progress_line(p, 30));
        if complete {
            self.finished = self.current.take();
            eprintln!();
        }
    }

    /// End an open line (a failed pull leaves one).
    fn finish(&mut self) {
        if self.enabled && self.current.take().is_some() {
            eprintln!();
        }
    }
}

/// `0123456789ab: [=========>          ]  1.5 MiB / 4.0 MiB`
fn progress_line(p: runtime::registry::Progress<'_>, width: usize) -> String {
    let hex = p.digest.strip_prefix("sha256:").unwrap_or(p.digest);
    let short = &hex[..hex.len().min(12)];
    let filled = match p.total {
        0 => width,
        t => ((p.done.min(t) as u128 * width as u128) / t as u128) as usize,
    };
    let head = if filled < width { ">" } else { "" };
    let bar = format!("{}{head}", "=".repeat(filled));
    format!(
        "{short}: [{bar:<width$}] {} / {}",
        human_bytes(p.done),
        human_bytes(p.total)
    )
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / (1 << 10) as f64),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::registry::Progress;

    #[test]
    fn an_error_line_names_each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::from(ContainerError::Io {
            step: "read",
            path: "/x/config.json".into(),
            source: io,
        });
        assert_eq!(
            one_line(&e),
            "read \"/x/config.json\": entity not found",
            "{e:#}"
        );
        let e = anyhow::anyhow!("inner\ntwo lines").context("outer");
        assert_eq!(one_line(&e), "outer: inner two lines");
    }

    #[test]
    fn cpus_and_memory_have_dockers_meaning() {
        assert_eq!(
            docker_cpus("0.5").unwrap(),
            CpuQuota::per_default_period(50_000)
        );
        assert_eq!(
            docker_cpus("2").unwrap(),
            CpuQuota::per_default_period(200_000)
        );
        for bad in ["-1", "0", "500m", "abc", "inf"] {
            assert!(docker_cpus(bad).is_err(), "{bad}");
        }
        assert_eq!(docker_memory("100m").unwrap(), 100 << 20);
        assert_eq!(docker_memory("64Mi").unwrap(), 64 << 20);
        assert_eq!(docker_memory("512MiB").unwrap(), 512 << 20);
        assert_eq!(docker_memory("1g").unwrap(), 1 << 30);
        assert_eq!(docker_memory("1G").unwrap(), 1 << 30);
        assert_eq!(docker_memory("1.5k").unwrap(), 1536);
        assert_eq!(docker_memory("4096").unwrap(), 4096);
        assert_eq!(docker_memory("10b").unwrap(), 10);
        for bad in ["lots", "12q", "", "m", "1.2.3m", "-1m"] {
            assert!(docker_memory(bad).is_err(), "{bad}");
        }
        assert_eq!(pids_limit(40).unwrap(), 40);
        assert!(pids_limit(0).is_err());
        assert!(pids_limit(-1).is_err());
    }

    #[test]
    fn security_opt_no_new_privileges_as_docker_takes_it() {
        let opts = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!no_new_privs(false, &[]).unwrap());
        assert!(no_new_privs(true, &[]).unwrap());
        for on in [
            "no-new-privileges",
            "no-new-privileges:true",
            "no-new-privileges=true",
        ] {
            assert!(no_new_privs(false, &opts(&[on])).unwrap(), "{on}");
        }
        assert!(!no_new_privs(true, &opts(&["no-new-privileges:false"])).unwrap());
        assert!(!no_new_privs(false, &opts(&["seccomp=unconfined"])).unwrap());
        assert!(no_new_privs(false, &opts(&["apparmor=unconfined"])).is_err());
        assert!(no_new_privs(false, &opts(&["no-new-privileges:maybe"])).is_err());
    }

    #[test]
    fn security_opt_seccomp_as_docker_takes_it() {
        use seccomp::Policy;
        let opts = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches!(
            seccomp_policy(&[]).unwrap(),
            Policy::RuntimeDefault
        ));
        let unconfined = opts(&["no-new-privileges", "seccomp=unconfined"]);
        assert!(matches!(
            seccomp_policy(&unconfined).unwrap(),
            Policy::Unconfined
        ));
        assert!(matches!(
            seccomp_policy(&opts(&["seccomp:unconfined"])).unwrap(),
            Policy::Unconfined
        ));
        assert!(seccomp_policy(&opts(&["seccomp=/no/such/profile.json"])).is_err());
        let path = std::env::temp_dir().join(format!("seccomp-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        let custom = seccomp_policy(&[format!("seccomp={}", path.display())]);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(custom.unwrap(), Policy::Profile(_)));
    }

    #[test]
    fn progress_lines() {
        let p = |done, total| Progress {
            digest: "sha256:0123456789abcdef",
            done,
            total,
        };
        assert_eq!(
            progress_line(p(0, 4 << 20), 10),
            "0123456789ab: [>         ] 0 B / 4.0 MiB"
        );
        assert_eq!(
            progress_line(p(3 << 19, 4 << 20), 10),
            "0123456789ab: [===>      ] 1.5 MiB / 4.0 MiB"
        );
        assert_eq!(
            progress_line(p(2048, 2048), 10),
            "0123456789ab: [==========] 2.0 KiB / 2.0 KiB"
        );
    }
}
