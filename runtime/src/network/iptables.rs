//! The node's firewall rules for pod traffic, kept in chains of our own so they are easy to
//! find and to remove. Two reasons to have any: with the `br_netfilter` module loaded
//! (`/proc/sys/net/bridge/bridge-nf-call-iptables` = 1) even frames switched between two ports
//! of our bridge pass the `FORWARD` chain, whose policy Docker sets to DROP, so pod-to-pod
//! traffic needs an ACCEPT scoped to `-i <bridge> -o <bridge>`; and optional outside access
//! (masquerade) needs a NAT rule rewriting pod source addresses to the node's. No route is
//! ever added to the host's own interfaces.
//!
//! There is no stable netlink API for iptables rules, so this is the one place that runs a
//! command: `iptables -w` (waits for the xtables lock instead of failing).

use std::process::Command;

use super::ipam::Cidr;

/// Why an iptables call failed.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    /// The iptables binary could not be run.
    #[error("run iptables: {0}")]
    Spawn(#[source] std::io::Error),
    /// iptables refused the rule.
    #[error("iptables {args}: {stderr}")]
    Failed { args: String, stderr: String },
}

/// Our filter chain for `bridge` (chain names are at most 28 characters; bridge names 15).
pub fn forward_chain(bridge: &str) -> String {
    format!("MINIK8S-{bridge}")
}

/// Our nat chain for `bridge`.
pub fn nat_chain(bridge: &str) -> String {
    format!("MINIK8S-NAT-{bridge}")
}

fn iptables(args: &[&str]) -> Result<(), IptablesError> {
    let out = Command::new("iptables")
        .arg("-w")
        .arg("5")
        .args(args)
        .output()
        .map_err(IptablesError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(IptablesError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Append `rule` to `chain` of `table` unless it is there (`-C` first).
fn ensure(table: &str, chain: &str, rule: &[&str]) -> Result<(), IptablesError> {
    let with = |op: &'static str| {
        let mut v = vec!["-t", table, op, chain];
        v.extend_from_slice(rule);
        v
    };
    if iptables(&with("-C")).is_ok() {
        return Ok(());
    }
    iptables(&with("-A"))
}

/// Create (empty) `chain` in `table` and jump to it from `from` (first rule, so it runs before
/// Docker's DROP), once.
fn ensure_chain(table: &str, from: &str, chain: &str) -> Result<(), IptablesError> {
    if iptables(&["-t", table, "-N", chain]).is_err() {
        // it exists: start over from an empty chain
        iptables(&["-t", table, "-F", chain])?;
    }
    let jump = ["-j", chain];
    let mut check = vec!["-t", table, "-C", from];
    check.extend_from_slice(&jump);
    if iptables(&check).is_err() {
        let mut insert = vec!["-t", table, "-I", from, "1"];
        insert.extend_from_slice(&jump);
        iptables(&insert)?;
    }
    Ok(())
}

/// Install the rules for `bridge` and `cidr`. Idempotent.
pub fn setup(bridge: &str, cidr: Cidr, masquerade: bool) -> Result<(), IptablesError> {
    let fwd = forward_chain(bridge);
    ensure_chain("filter", "FORWARD", &fwd)?;
    // pod to pod through the bridge (bridge-nf-call-iptables); harmless without br_netfilter
    ensure(
        "filter",
        &fwd,
        &["-i", bridge, "-o", bridge, "-j", "ACCEPT"],
    )?;
    if masquerade {
        let cidr = cidr.to_string();
        ensure(
            "filter",
            &fwd,
            &["-i", bridge, "!", "-o", bridge, "-j", "ACCEPT"],
        )?;
        ensure(
            "filter",
            &fwd,
            &[
                "-o",
                bridge,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "ACCEPT",
            ],
        )?;
        let nat = nat_chain(bridge);
        ensure_chain("nat", "POSTROUTING", &nat)?;
        ensure(
            "nat",
            &nat,
            &["-s", &cidr, "!", "-o", bridge, "-j", "MASQUERADE"],
        )?;
    }
    Ok(())
}

/// Remove our chains for `bridge` and the jumps to them; what is already gone is no error.
pub fn teardown(bridge: &str) {
    for (table, from, chain) in [
        ("filter", "FORWARD", forward_chain(bridge)),
        ("nat", "POSTROUTING", nat_chain(bridge)),
    ] {
        // a jump may have been inserted twice by racing set-ups: delete until none is left
        for _ in 0..10 {
            if iptables(&["-t", table, "-D", from, "-j", &chain]).is_err() {
                break;
            }
        }
        let _ = iptables(&["-t", table, "-F", &chain]);
        let _ = iptables(&["-t", table, "-X", &chain]);
    }
}

/// Whether any rule of ours for `bridge` is installed (for tests and diagnostics).
pub fn installed(bridge: &str) -> bool {
    [
        ("filter", forward_chain(bridge)),
        ("nat", nat_chain(bridge)),
    ]
    .iter()
    .any(|(table, chain)| iptables(&["-t", table, "-S", chain]).is_ok())
}
