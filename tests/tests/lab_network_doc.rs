//! The lab `docs/labs/network.md` ("The network across nodes"), executed so that it never
//! rots: a two-node lab comes up (`minikctl cluster up`), its twin `docs/labs/network.sh` runs
//! every command of the doc against it and checks the facts the doc teaches (the pod's veth on
//! the node's bridge, the route to the other node's podCIDR via that node's address, the ping
//! across the switch, the traceroute's two routers), and every command of the doc's ```sh
//! blocks must appear in the script, so that neither can change without the other.
//! Read next: `tests/lab.rs`, the lab's own test.

mod cluster;
mod labkit;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use cluster::skip_unless_root;
use labkit::{show, Lab};

/// The lab's name in the doc; the script says `$LAB` where the doc says this.
const DOC_LAB: &str = "lab";

fn labs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/labs")
}

/// The non-blank, non-comment lines of the ```sh blocks of a Markdown text, trimmed.
fn sh_lines(markdown: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_sh = false;
    for line in markdown.lines() {
        let fence = line.trim_start();
        if fence.starts_with("```") {
            in_sh = !in_sh && fence.trim_start_matches('`').trim() == "sh";
            continue;
        }
        let line = line.trim();
        if in_sh && !line.is_empty() && !line.starts_with('#') {
            lines.push(line.to_string());
        }
    }
    lines
}

/// The script as the doc would read it: its lab variable replaced by the doc's lab name.
fn as_doc_reads(script: &str) -> String {
    script.replace("${LAB}", DOC_LAB).replace("$LAB", DOC_LAB)
}

#[test]
fn every_command_of_the_doc_is_in_its_script() {
    let doc = std::fs::read_to_string(labs_dir().join("network.md")).unwrap();
    let script = std::fs::read_to_string(labs_dir().join("network.sh")).unwrap();
    let commands = sh_lines(&doc);
    assert!(
        commands.len() >= 15,
        "too few commands found in network.md's ```sh blocks: {commands:#?}"
    );
    let script = as_doc_reads(&script);
    let missing: Vec<&String> = commands
        .iter()
        .filter(|c| !script.contains(c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "lines of docs/labs/network.md's ```sh blocks that docs/labs/network.sh does not run \
         (the script may say $LAB where the doc says {DOC_LAB:?}): {missing:#?}"
    );
}

#[test]
fn the_network_lab_runs_as_written() {
    if skip_unless_root("lab_network_doc") {
        return;
    }
    let mut lab = Lab::new();
    lab.up(2);
    let out = Command::new("bash")
        .arg(labs_dir().join("network.sh"))
        .env("LAB", &lab.name)
        .env("KUBECTL", testkit::kubectl())
        .env("MINIKCTL", lab.dir.join("bin/minikctl"))
        .env("KUBECONFIG", &lab.kubeconfig)
        .env("MINIK8S_LAB_DIR", &lab.lab_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run docs/labs/network.sh");
    assert!(
        out.status.success(),
        "docs/labs/network.sh failed on lab {}: {}",
        lab.name,
        show(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("every step of docs/labs/network.md holds"),
        "{}",
        show(&out)
    );
    lab.down();
}

#[test]
fn the_sh_blocks_are_read_and_the_lab_name_is_mapped() {
    let md =
        "text\n```sh\n# a comment\nkubectl get pods\n\n  ip -n minik8s-lab-node-1 route\n```\n\
              ```text\nNAME READY\n```\n```sh\nminikctl cluster down --name lab\n```\n";
    assert_eq!(
        sh_lines(md),
        [
            "kubectl get pods",
            "ip -n minik8s-lab-node-1 route",
            "minikctl cluster down --name lab"
        ]
    );
    assert_eq!(
        as_doc_reads("ip -n minik8s-$LAB-node-1 route; echo ${LAB}"),
        "ip -n minik8s-lab-node-1 route; echo lab"
    );
}
