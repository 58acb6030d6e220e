//! The commands that show and change what a container and an image are made of, with Docker's
//! syntax: `diff`, `update`, `image inspect`, `history`, `tag` and `build`. They are thin: the
//! work is in the library (`overlay.rs`, `container/update.rs`, `build.rs`), the image
//! reports in `images.rs`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Subcommand};
use runtime::cgroups::{CpuQuota, CPU_PERIOD_US};
use runtime::container::ResourceUpdate;
use runtime::Runtime;

use crate::images;

#[derive(Subcommand)]
pub enum ToolCmd {
    /// What a container changed in its root filesystem: A (added), C (changed), D (deleted).
    Diff { id: String },
    /// Change running containers' limits (the live cgroup files).
    Update(UpdateArgs),
    /// Image commands: `image inspect NAME`.
    #[command(subcommand)]
    Image(ImageCmd),
    /// The steps that made an image, newest first.
    History(HistoryArgs),
    /// Give an image another name: `tag SOURCE TARGET`.
    Tag { source: String, target: String },
    /// Build an image from a Dockerfile (FROM, RUN, COPY, ENV, WORKDIR, CMD, ENTRYPOINT).
    Build {
        /// The Dockerfile (default: CONTEXT/Dockerfile).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Name of the image (default: build-<id>).
        #[arg(short = 't', long = "tag")]
        tag: Option<String>,
        /// The directory COPY takes its files from.
        #[arg(default_value = ".")]
        context: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ImageCmd {
    /// An image's config, layers and size as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Same as `history`.
    History(HistoryArgs),
    /// Same as `tag`.
    Tag { source: String, target: String },
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    name: String,
    /// Ages as "2 minutes ago" (`--human=false`: RFC 3339 times).
    #[arg(short = 'H', long, default_value_t = true, action = ArgAction::Set)]
    human: bool,
    /// Do not truncate the commands; the full image id.
    #[arg(long)]
    no_trunc: bool,
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// CPU limit in CPUs (0.5: half a CPU).
    #[arg(long)]
    cpus: Option<String>,
    /// CFS period in µs (with --cpu-quota).
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CFS quota in µs per period.
    #[arg(long)]
    cpu_quota: Option<u64>,
    /// Memory limit (64m, 1g).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Maximum number of processes.
    #[arg(long = "pids-limit", alias = "pids")]
    pids_limit: Option<u64>,
    #[arg(required = true)]
    ids: Vec<String>,
}

pub fn run(rt: &Runtime, cmd: ToolCmd) -> Result<i32> {
    match cmd {
        ToolCmd::Diff { id } => {
            let id = rt.lookup(&id)?;
            for change in rt.diff(&id)? {
                println!("{change}");
            }
            Ok(0)
        }
        ToolCmd::Update(a) => cmd_update(rt, a),
        ToolCmd::Image(ImageCmd::Inspect { names }) => images::cmd_image_inspect(rt, &names),
        ToolCmd::Image(ImageCmd::History(h)) | ToolCmd::History(h) => {
            images::cmd_history(rt, &h.name, h.human, h.no_trunc)
        }
        ToolCmd::Image(ImageCmd::Tag { source, target }) | ToolCmd::Tag { source, target } => {
            images::cmd_tag(rt, &source, &target)
        }
        ToolCmd::Build { file, tag, context } => cmd_build(rt, file, tag, &context),
    }
}

/// `build`: parse, then run the steps; progress on stdout as Docker's classic builder.
fn cmd_build(
    rt: &Runtime,
    file: Option<PathBuf>,
    tag: Option<String>,
    context: &std::path::Path,
) -> Result<i32> {
    let file = file.unwrap_or_else(|| context.join("Dockerfile"));
    let text = std::fs::read_to_string(&file).with_context(|| format!("read {file:?}"))?;
    let steps = runtime::build::parse(&text)?;
    if !context.is_dir() {
        bail!("build context {context:?} is not a directory");
    }
    let mut out = std::io::stdout();
    rt.build(&steps, context, tag.as_deref(), &mut out)?;
    Ok(0)
}

/// `update`: the new limits into each container's cgroup; prints each id, as Docker does.
fn cmd_update(rt: &Runtime, a: UpdateArgs) -> Result<i32> {
    if a.cpus.is_some() && (a.cpu_period.is_some() || a.cpu_quota.is_some()) {
        bail!("conflicting options: --cpus and --cpu-period/--cpu-quota cannot both be set");
    }
    for id in &a.ids {
        let id = rt.lookup(id)?;
        let current = rt.spec(&id)?.resources.cpu_quota;
        let update = ResourceUpdate {
            cpu_quota: match &a.cpus {
                Some(c) => Some(crate::docker_cpus(c)?),
                None => cfs_quota(a.cpu_period, a.cpu_quota, current)?,
            },
            memory_bytes: a.memory.as_deref().map(crate::docker_memory).transpose()?,
            pids: a.pids_limit,
        };
        rt.update(&id, &update)?;
        println!("{id}");
    }
    Ok(0)
}

/// `run`'s CPU limit: `--cpus`, or `--cpu-quota` (and `--cpu-period`), not both.
pub fn run_cpu_quota(
    cpus: Option<&str>,
    period: Option<u64>,
    quota: Option<u64>,
) -> Result<Option<CpuQuota>> {
    match cpus {
        Some(_) if period.is_some() || quota.is_some() => {
            bail!("conflicting options: --cpus and --cpu-period/--cpu-quota cannot both be set")
        }
        Some(c) => Ok(Some(crate::docker_cpus(c)?)),
        None => cfs_quota(period, quota, None),
    }
}

/// `--cpu-period`/`--cpu-quota`: either may be left out, keeping the current value (or the
/// default period); a period alone needs a quota to go with it.
pub fn cfs_quota(
    period: Option<u64>,
    quota: Option<u64>,
    current: Option<CpuQuota>,
) -> Result<Option<CpuQuota>> {
    let period_us = period
        .or(current.map(|c| c.period_us))
        .unwrap_or(CPU_PERIOD_US);
    match (quota, period, current) {
        (None, None, _) => Ok(None),
        (Some(quota_us), _, _) => Ok(Some(CpuQuota {
            quota_us,
            period_us,
        })),
        (None, Some(_), Some(c)) => Ok(Some(CpuQuota {
            quota_us: c.quota_us,
            period_us,
        })),
        (None, Some(_), None) => bail!("--cpu-period needs --cpu-quota (no quota is set)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfs_quota_and_period_fill_each_other_in() {
        let q = |quota_us, period_us| {
            Some(CpuQuota {
                quota_us,
                period_us,
            })
        };
        // (period, quota, current)
        assert_eq!(cfs_quota(None, None, q(1, 2)).unwrap(), None);
        assert!(cfs_quota(Some(20_000), None, None).is_err());
        assert_eq!(
            cfs_quota(Some(50_000), None, q(20_000, 100_000)).unwrap(),
            q(20_000, 50_000)
        );
        assert_eq!(
            cfs_quota(None, Some(20_000), None).unwrap(),
            q(20_000, 100_000)
        );
        assert_eq!(
            cfs_quota(None, Some(5_000), q(1_000, 10_000)).unwrap(),
            q(5_000, 10_000)
        );
        assert!(run_cpu_quota(Some("0.5"), None, Some(1_000)).is_err());
        assert_eq!(
            run_cpu_quota(None, Some(50_000), Some(25_000)).unwrap(),
            q(25_000, 50_000)
        );
    }
}
