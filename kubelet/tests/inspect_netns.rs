//! The veth facts of `/inspect` (index, peer index, bridge) in a node's network namespace.
//! A lab node's kubelet enters its namespace with setns(2) alone, so `/sys/class/net` still
//! shows the host's interfaces; the facts must come from netlink in the kubelet's own
//! namespace (`runtime::network::link::link_facts`), which this checks against `ip` inside a
//! namespace of the test's own while the test itself stays in the root namespace.

mod harness;

use std::path::Path;

use harness::*;
use runtime::network::link::{self, LinkFacts};

/// The index `ip -o link show NAME` prints first in `ns`.
fn ifindex(ns: &Netns, name: &str) -> u32 {
    let out = ns.ip(&["-o", "link", "show", name]);
    out.split(':').next().unwrap().trim().parse().unwrap()
}

fn facts(ns: &Netns, name: &'static str) -> Option<LinkFacts> {
    link::on_thread(Some(&ns.path()), move |h| async move {
        link::link_facts(&h, name).await
    })
    .unwrap()
}

#[test]
fn veth_facts_come_from_the_namespace_not_from_sysfs() {
    let ns = Netns::new(format!("mkf{}", rand_hex()));
    ns.ip(&["link", "add", "mkfbr0", "type", "bridge"]);
    ns.ip(&[
        "link", "add", "vmfacts0", "type", "veth", "peer", "name", "eth9",
    ]);
    ns.ip(&["link", "set", "vmfacts0", "master", "mkfbr0"]);
    // this thread's /sys is the root namespace's: the veth is not there
    assert!(!Path::new("/sys/class/net/vmfacts0").exists());

    let veth = facts(&ns, "vmfacts0").expect("the veth, seen from its namespace");
    assert_eq!(
        veth,
        LinkFacts {
            index: ifindex(&ns, "vmfacts0"),
            link_index: ifindex(&ns, "eth9"),
            master: Some("mkfbr0".into()),
        }
    );
    let bridge = facts(&ns, "mkfbr0").unwrap();
    assert_eq!(bridge.link_index, bridge.index, "{bridge:?}");
    assert_eq!(bridge.master, None);
    assert_eq!(facts(&ns, "vmnothere"), None);
}
