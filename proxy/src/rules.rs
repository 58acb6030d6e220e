//! The service ports as iptables rules: the complete `iptables-restore` input for our own
//! chains, after kube-proxy's iptables mode. A packet's way through the nat table:
//!
//! ```text
//! PREROUTING / OUTPUT ─▶ MINIK8S-SERVICES ─ -d clusterIP -p tcp --dport 80 ─▶ MINIK8S-SVC-<hash>
//!                              └─ to the node's address ─▶ MINIK8S-NODEPORTS ─ --dport 30080 ─┘
//! MINIK8S-SVC-<hash>: one rule per endpoint, `-m statistic --mode random --probability 1/n`
//!                     (1/3, then 1/2 of the rest, then the last always) ─▶ MINIK8S-SEP-<hash>
//! MINIK8S-SEP-<hash>: -j DNAT --to-destination podIP:targetPort
//! POSTROUTING ─▶ MINIK8S-POSTROUTING: MASQUERADE what MINIK8S-MARK-MASQ marked
//! ```
//!
//! Only the first packet of a connection walks these chains; conntrack remembers the chosen
//! endpoint for the rest, so a spread is per connection. Traffic is marked for masquerade when
//! the reply would otherwise bypass the node: a pod reaching itself through its Service
//! (hairpin), anything from outside `--cluster-cidr` (the node itself, other hosts), and
//! every NodePort connection. A ClusterIP or NodePort without endpoints is refused in the
//! filter table (`REJECT`, an ICMP port unreachable, so a client fails at once instead of
//! waiting for a timeout).
//!
//! The text is one transaction for `iptables-restore --noflush`: a chain declared with
//! `:NAME - [0:0]` is created or flushed, and every other chain of the table (Docker's, the
//! runtime's `MINIK8S-<bridge>`, and ours that did not change) is left alone. Only chains
//! whose rules differ from what [`Programmed`] says was written last are in it (kube-proxy's
//! partial sync); when that is unknown (read back from the kernel) every chain is. Chains of Services that are gone are declared
//! (flushed) and deleted (`-X`) in the same transaction, once nothing jumps to them any more.
//! The jumps from the built-in chains are inserted only when missing, since `--noflush`
//! would otherwise add a second copy on every sync.
//!
//! Chain names are `MINIK8S-SVC-` or `MINIK8S-SEP-` and 16 base32 characters of a SHA-256 of
//! the service port name and protocol (and, for an endpoint, its address), as kube-proxy
//! names its chains: deterministic across restarts and nodes, 28 characters (iptables'
//! limit), and never equal to the runtime's `MINIK8S-<bridge>` (an interface name has at most
//! 15 characters). Read next: `sync.rs`, which runs the text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::model::{hash16, Protocol, ServicePort, ServicePortName};

/// The entry chain (nat: to the service chains; filter: the rejections).
pub const SERVICES: &str = "MINIK8S-SERVICES";
/// NodePorts, jumped to from [`SERVICES`] for packets to the node's address.
pub const NODEPORTS: &str = "MINIK8S-NODEPORTS";
/// Marks a packet for masquerade.
pub const MARK_MASQ: &str = "MINIK8S-MARK-MASQ";
/// Masquerades marked packets.
pub const POSTROUTING: &str = "MINIK8S-POSTROUTING";
/// Prefix of a service port's chain.
pub const SVC_PREFIX: &str = "MINIK8S-SVC-";
/// Prefix of an endpoint's chain.
pub const SEP_PREFIX: &str = "MINIK8S-SEP-";
/// The packet mark bit meaning "masquerade me" (kube-proxy's 0x4000).
pub const MASQ_MARK: &str = "0x4000";

/// A table we write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// `nat`: the translations.
    Nat,
    /// `filter`: the rejections.
    Filter,
}

impl Table {
    /// Both, in the order they are written.
    pub const ALL: [Table; 2] = [Table::Nat, Table::Filter];

    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }

    /// Our chains that always exist in this table.
    fn fixed_chains(self) -> &'static [&'static str] {
        match self {
            Table::Nat => &[SERVICES, NODEPORTS, MARK_MASQ, POSTROUTING],
            Table::Filter => &[SERVICES],
        }
    }
}

/// A rule in a built-in chain that leads into one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump {
    /// The table it is in.
    pub table: Table,
    /// The built-in chain.
    pub chain: &'static str,
    /// Its match and target, as `iptables-save` prints them.
    pub spec: &'static str,
    /// Our chain it leads to.
    pub target: &'static str,
}

/// The jumps from the built-in chains into ours.
pub const JUMPS: [Jump; 6] = [
    Jump {
        table: Table::Nat,
        chain: "PREROUTING",
        spec: "-m comment --comment \"minik8s service portals\" -j MINIK8S-SERVICES",
        target: SERVICES,
    },
    Jump {
        table: Table::Nat,
        chain: "OUTPUT",
        spec: "-m comment --comment \"minik8s service portals\" -j MINIK8S-SERVICES",
        target: SERVICES,
    },
    Jump {
        table: Table::Nat,
        chain: "POSTROUTING",
        spec: "-m comment --comment \"minik8s postrouting rules\" -j MINIK8S-POSTROUTING",
        target: POSTROUTING,
    },
    Jump {
        table: Table::Filter,
        chain: "INPUT",
        spec: "-m conntrack --ctstate NEW -m comment --comment \"minik8s service portals\" -j MINIK8S-SERVICES",
        target: SERVICES,
    },
    Jump {
        table: Table::Filter,
        chain: "FORWARD",
        spec: "-m conntrack --ctstate NEW -m comment --comment \"minik8s service portals\" -j MINIK8S-SERVICES",
        target: SERVICES,
    },
    Jump {
        table: Table::Filter,
        chain: "OUTPUT",
        spec: "-m conntrack --ctstate NEW -m comment --comment \"minik8s service portals\" -j MINIK8S-SERVICES",
        target: SERVICES,
    },
];

/// The node's settings the rules depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesConfig {
    /// NodePorts answer on this address only; without it, on every local address
    /// (`-m addrtype --dst-type LOCAL`).
    pub node_ip: Option<Ipv4Addr>,
    /// The pod network (`10.244.0.0/16`); traffic to a ClusterIP from outside it is
    /// masqueraded. Without it only hairpin and NodePort traffic is.
    pub cluster_cidr: Option<String>,
}

/// What is in the kernel now, as far as we are concerned: our chains per table and which
/// jumps into them exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Programmed {
    /// Our chains, as (table, name).
    pub chains: BTreeSet<(Table, String)>,
    /// Rules of built-in chains jumping into ours, as (table, `-A ...` line).
    pub jump_rules: Vec<(Table, String)>,
    /// The rules of each of our chains as last written. Empty when read from the kernel
    /// (`parse_save`), so that the next sync rewrites, and so repairs, every chain.
    pub contents: BTreeMap<(Table, String), Vec<String>>,
}

impl Programmed {
    /// Read it from `iptables-save` output (every table; other tables are ignored).
    pub fn parse_save(text: &str) -> Programmed {
        let mut programmed = Programmed::default();
        let mut table = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = Table::ALL.into_iter().find(|t| t.name() == name);
                continue;
            }
            let Some(table) = table else { continue };
            if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split(' ').next().unwrap_or_default();
                if is_ours(name) {
                    programmed.chains.insert((table, name.to_string()));
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let chain = rule.split(' ').next().unwrap_or_default();
                let target = rule.rsplit(" -j ").next().unwrap_or_default();
                if !is_ours(chain) && rule.contains(" -j ") && is_ours(target) {
                    programmed.jump_rules.push((table, line.to_string()));
                }
            }
        }
        programmed
    }

    fn has_jump(&self, jump: &Jump) -> bool {
        let prefix = format!("-A {} ", jump.chain);
        self.jump_rules.iter().any(|(table, line)| {
            *table == jump.table
                && line.starts_with(&prefix)
                && line.ends_with(&format!(" -j {}", jump.target))
        })
    }
}

/// Whether `chain` is one the proxy owns (and may flush or delete).
pub fn is_ours(chain: &str) -> bool {
    if [SERVICES, NODEPORTS, MARK_MASQ, POSTROUTING].contains(&chain) {
        return true;
    }
    [SVC_PREFIX, SEP_PREFIX].iter().any(|prefix| {
        chain.strip_prefix(prefix).is_some_and(|hash| {
            hash.len() == 16
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        })
    })
}

/// The chain of a service port: `MINIK8S-SVC-` + 16 base32 characters of
/// SHA-256(`<ns>/<svc>:<port>` + protocol).
pub fn service_chain(name: &ServicePortName, protocol: Protocol) -> String {
    format!(
        "{SVC_PREFIX}{}",
        hash16(&format!("{name}{}", protocol.api_name()))
    )
}

/// The chain of one endpoint of a service port: the same hash over the name, the protocol
/// and `podIP:port`.
pub fn endpoint_chain(
    name: &ServicePortName,
    protocol: Protocol,
    endpoint: std::net::SocketAddrV4,
) -> String {
    format!(
        "{SEP_PREFIX}{}",
        hash16(&format!("{name}{}{endpoint}", protocol.api_name()))
    )
}

/// One transaction and the state it leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The `iptables-restore --noflush` input.
    pub text: String,
    /// What is programmed once it is applied.
    pub after: Programmed,
}

/// The whole rule set for `ports`, replacing what `before` says is programmed.
pub fn render(ports: &[ServicePort], config: &RulesConfig, before: &Programmed) -> Transaction {
    let mut after = Programmed::default();
    let mut nat = Rules::default();
    let mut filter = Rules::default();
    for (rules, table) in [(&mut nat, Table::Nat), (&mut filter, Table::Filter)] {
        for chain in table.fixed_chains() {
            rules.declare(chain);
        }
    }

    nat.add(&format!("-A {MARK_MASQ} -j MARK --or-mark {MASQ_MARK}"));
    nat.add(&format!(
        "-A {POSTROUTING} -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"
    ));
    // Clear the mark, so a packet re-entering the stack (tunnels) is not masqueraded twice.
    nat.add(&format!("-A {POSTROUTING} -j MARK --xor-mark {MASQ_MARK}"));
    nat.add(&format!("-A {POSTROUTING} -j MASQUERADE"));

    let node_dst = match config.node_ip {
        Some(ip) => format!("-d {ip}/32"),
        None => "-m addrtype --dst-type LOCAL".to_string(),
    };
    for port in ports {
        let proto = port.protocol.iptables_name();
        let match_port = |dport: u16| format!("-p {proto} -m {proto} --dport {dport}");
        if port.endpoints.is_empty() {
            filter.add(&format!(
                "-A {SERVICES} -d {}/32 {} -m comment --comment \"{} has no endpoints\" -j REJECT",
                port.cluster_ip,
                match_port(port.port),
                port.name
            ));
            if let Some(node_port) = port.node_port {
                filter.add(&format!(
                    "-A {SERVICES} {node_dst} {} -m comment --comment \"{} has no endpoints\" -j REJECT",
                    match_port(node_port),
                    port.name
                ));
            }
            continue;
        }
        let svc = service_chain(&port.name, port.protocol);
        nat.declare(&svc);
        let to_cluster_ip = format!("-d {}/32 {}", port.cluster_ip, match_port(port.port));
        nat.add(&format!(
            "-A {SERVICES} {to_cluster_ip} -m comment --comment \"{} cluster IP\" -j {svc}",
            port.name
        ));
        if let Some(cidr) = &config.cluster_cidr {
            nat.add(&format!(
                "-A {svc} ! -s {cidr} {to_cluster_ip} -j {MARK_MASQ}"
            ));
        }
        if let Some(node_port) = port.node_port {
            let m = match_port(node_port);
            let comment = format!("-m comment --comment \"{}\"", port.name);
            nat.add(&format!("-A {NODEPORTS} {m} {comment} -j {MARK_MASQ}"));
            nat.add(&format!("-A {NODEPORTS} {m} {comment} -j {svc}"));
        }
        // The service chain picks an endpoint: the i-th of n is taken with probability
        // 1/(n-i) of what is left, so each gets 1/n; the last takes the rest.
        let n = port.endpoints.len();
        let mut endpoint_rules = Vec::new();
        for (i, endpoint) in port.endpoints.iter().enumerate() {
            let sep = endpoint_chain(&port.name, port.protocol, *endpoint);
            nat.declare(&sep);
            let left = n - i;
            if left > 1 {
                nat.add(&format!(
                    "-A {svc} -m statistic --mode random --probability {:.10} -j {sep}",
                    1.0 / left as f64
                ));
            } else {
                nat.add(&format!("-A {svc} -j {sep}"));
            }
            // Hairpin: a pod reaching itself must see the reply come from the node.
            endpoint_rules.push(format!("-A {sep} -s {}/32 -j {MARK_MASQ}", endpoint.ip()));
            endpoint_rules.push(format!(
                "-A {sep} -p {proto} -m {proto} -j DNAT --to-destination {endpoint}"
            ));
        }
        for rule in &endpoint_rules {
            nat.add(rule);
        }
    }
    // Last, so that a NodePort equal to a ClusterIP's port never shadows it.
    nat.add(&format!(
        "-A {SERVICES} {node_dst} -m comment --comment \"minik8s service nodeports; must be the last rule\" -j {NODEPORTS}"
    ));

    let mut text = String::new();
    for (table, rules) in [(Table::Nat, &nat), (Table::Filter, &filter)] {
        // A chain is written only when its rules differ from what is programmed; one left
        // out of the transaction is not even declared, so the kernel keeps it untouched.
        let changed: Vec<&String> = rules
            .order
            .iter()
            .filter(|chain| {
                before.contents.get(&(table, chain.to_string())) != Some(&rules.lines[*chain])
            })
            .collect();
        let stale: Vec<&String> = before
            .chains
            .iter()
            .filter(|(t, c)| *t == table && !rules.lines.contains_key(c))
            .map(|(_, c)| c)
            .collect();
        let missing: Vec<&Jump> = JUMPS
            .iter()
            .filter(|j| j.table == table && !before.has_jump(j))
            .collect();
        for jump in JUMPS.iter().filter(|j| j.table == table) {
            after
                .jump_rules
                .push((table, format!("-A {} {}", jump.chain, jump.spec)));
        }
        for chain in &rules.order {
            after.chains.insert((table, chain.clone()));
            after
                .contents
                .insert((table, chain.clone()), rules.lines[chain].clone());
        }
        if changed.is_empty() && stale.is_empty() && missing.is_empty() {
            continue;
        }
        let _ = writeln!(text, "*{}", table.name());
        for chain in changed.iter().chain(stale.iter()) {
            let _ = writeln!(text, ":{chain} - [0:0]");
        }
        for jump in missing {
            let _ = writeln!(text, "-I {} {}", jump.chain, jump.spec);
        }
        for chain in &changed {
            for rule in &rules.lines[*chain] {
                let _ = writeln!(text, "{rule}");
            }
        }
        for chain in stale {
            let _ = writeln!(text, "-X {chain}");
        }
        let _ = writeln!(text, "COMMIT");
    }
    Transaction { text, after }
}

/// The transaction that removes everything `before` lists: the jumps first, then every chain
/// of ours flushed and deleted. Empty when there is nothing to remove.
pub fn cleanup(before: &Programmed) -> String {
    let mut text = String::new();
    for table in Table::ALL {
        let chains: Vec<&String> = before
            .chains
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, c)| c)
            .collect();
        let jumps: Vec<&String> = before
            .jump_rules
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, l)| l)
            .collect();
        if chains.is_empty() && jumps.is_empty() {
            continue;
        }
        let _ = writeln!(text, "*{}", table.name());
        for chain in &chains {
            let _ = writeln!(text, ":{chain} - [0:0]");
        }
        for line in jumps {
            let _ = writeln!(text, "-D {}", line.trim_start_matches("-A "));
        }
        for chain in &chains {
            let _ = writeln!(text, "-X {chain}");
        }
        let _ = writeln!(text, "COMMIT");
    }
    text
}

/// A table's chains, in the order they were first named, with their rules.
#[derive(Default)]
struct Rules {
    order: Vec<String>,
    lines: BTreeMap<String, Vec<String>>,
}

impl Rules {
    fn declare(&mut self, chain: &str) {
        if !self.lines.contains_key(chain) {
            self.order.push(chain.to_string());
            self.lines.insert(chain.to_string(), Vec::new());
        }
    }

    /// Append `line` (`-A CHAIN ...`) to its chain.
    fn add(&mut self, line: &str) {
        let chain = line.split(' ').nth(1).unwrap_or_default();
        self.declare(chain);
        if let Some(lines) = self.lines.get_mut(chain) {
            lines.push(line.to_string());
        }
    }
}

/// What the renderers' unit tests share: a TCP service port on :80 and a node's config.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::RulesConfig;
    use crate::model::{Protocol, ServicePort, ServicePortName};

    pub(crate) fn port(
        name: &str,
        ip: &str,
        node_port: Option<u16>,
        endpoints: &[&str],
    ) -> ServicePort {
        ServicePort {
            name: ServicePortName {
                namespace: "default".into(),
                name: name.into(),
                port: String::new(),
            },
            protocol: Protocol::Tcp,
            cluster_ip: ip.parse().unwrap(),
            port: 80,
            node_port,
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
        }
    }

    pub(crate) fn config() -> RulesConfig {
        RulesConfig {
            node_ip: Some("192.168.1.10".parse().unwrap()),
            cluster_cidr: Some("10.244.0.0/16".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{config, port};
    use super::*;

    #[test]
    fn chain_names_are_kube_proxys_hashes() {
        // base32(sha256("")) starts 4OYMIQUY7QOBJGX3 (checked with Python's hashlib).
        assert_eq!(hash16(""), "4OYMIQUY7QOBJGX3");
        let web = port("web", "10.96.0.50", None, &[]);
        assert_eq!(
            service_chain(&web.name, Protocol::Tcp),
            "MINIK8S-SVC-SVQSTTPXCHYGJVAY"
        );
        assert_eq!(
            endpoint_chain(&web.name, Protocol::Tcp, "10.244.1.2:8080".parse().unwrap()),
            "MINIK8S-SEP-2L7G6STUCOSYHUY6"
        );
        assert!(is_ours("MINIK8S-SVC-SVQSTTPXCHYGJVAY"));
        assert!(is_ours(SERVICES));
        // the runtime's chains are not ours
        assert!(!is_ours("MINIK8S-NAT-minik8s0"));
        assert!(!is_ours("MINIK8S-cni0"));
        assert!(!is_ours("MINIK8S-SVC-short"));
    }

    #[test]
    fn a_first_sync_writes_every_chain_and_jump() {
        let ports = [
            port(
                "web",
                "10.96.0.50",
                Some(30080),
                &["10.244.1.2:8080", "10.244.2.2:8080"],
            ),
            port("empty", "10.96.0.51", None, &[]),
        ];
        let text = render(&ports, &config(), &Programmed::default()).text;
        let expected = r#"*nat
:MINIK8S-SERVICES - [0:0]
:MINIK8S-NODEPORTS - [0:0]
:MINIK8S-MARK-MASQ - [0:0]
:MINIK8S-POSTROUTING - [0:0]
:MINIK8S-SVC-SVQSTTPXCHYGJVAY - [0:0]
:MINIK8S-SEP-2L7G6STUCOSYHUY6 - [0:0]
:MINIK8S-SEP-WBU5FEUVPTNSOGBF - [0:0]
-I PREROUTING -m comment --comment "minik8s service portals" -j MINIK8S-SERVICES
-I OUTPUT -m comment --comment "minik8s service portals" -j MINIK8S-SERVICES
-I POSTROUTING -m comment --comment "minik8s postrouting rules" -j MINIK8S-POSTROUTING
-A MINIK8S-SERVICES -d 10.96.0.50/32 -p tcp -m tcp --dport 80 -m comment --comment "default/web cluster IP" -j MINIK8S-SVC-SVQSTTPXCHYGJVAY
-A MINIK8S-SERVICES -d 192.168.1.10/32 -m comment --comment "minik8s service nodeports; must be the last rule" -j MINIK8S-NODEPORTS
-A MINIK8S-NODEPORTS -p tcp -m tcp --dport 30080 -m comment --comment "default/web" -j MINIK8S-MARK-MASQ
-A MINIK8S-NODEPORTS -p tcp -m tcp --dport 30080 -m comment --comment "default/web" -j MINIK8S-SVC-SVQSTTPXCHYGJVAY
-A MINIK8S-MARK-MASQ -j MARK --or-mark 0x4000
-A MINIK8S-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A MINIK8S-POSTROUTING -j MARK --xor-mark 0x4000
-A MINIK8S-POSTROUTING -j MASQUERADE
-A MINIK8S-SVC-SVQSTTPXCHYGJVAY ! -s 10.244.0.0/16 -d 10.96.0.50/32 -p tcp -m tcp --dport 80 -j MINIK8S-MARK-MASQ
-A MINIK8S-SVC-SVQSTTPXCHYGJVAY -m statistic --mode random --probability 0.5000000000 -j MINIK8S-SEP-2L7G6STUCOSYHUY6
-A MINIK8S-SVC-SVQSTTPXCHYGJVAY -j MINIK8S-SEP-WBU5FEUVPTNSOGBF
-A MINIK8S-SEP-2L7G6STUCOSYHUY6 -s 10.244.1.2/32 -j MINIK8S-MARK-MASQ
-A MINIK8S-SEP-2L7G6STUCOSYHUY6 -p tcp -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A MINIK8S-SEP-WBU5FEUVPTNSOGBF -s 10.244.2.2/32 -j MINIK8S-MARK-MASQ
-A MINIK8S-SEP-WBU5FEUVPTNSOGBF -p tcp -m tcp -j DNAT --to-destination 10.244.2.2:8080
COMMIT
*filter
:MINIK8S-SERVICES - [0:0]
-I INPUT -m conntrack --ctstate NEW -m comment --comment "minik8s service portals" -j MINIK8S-SERVICES
-I FORWARD -m conntrack --ctstate NEW -m comment --comment "minik8s service portals" -j MINIK8S-SERVICES
-I OUTPUT -m conntrack --ctstate NEW -m comment --comment "minik8s service portals" -j MINIK8S-SERVICES
-A MINIK8S-SERVICES -d 10.96.0.51/32 -p tcp -m tcp --dport 80 -m comment --comment "default/empty has no endpoints" -j REJECT
COMMIT
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn three_endpoints_are_taken_with_a_third_then_a_half() {
        let ports = [port(
            "web",
            "10.96.0.50",
            None,
            &["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"],
        )];
        let text = render(&ports, &RulesConfig::default(), &Programmed::default()).text;
        let picks: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("-A MINIK8S-SVC-") && l.contains("-j MINIK8S-SEP-"))
            .collect();
        assert_eq!(picks.len(), 3);
        assert!(picks[0].contains("--probability 0.3333333333 "));
        assert!(picks[1].contains("--probability 0.5000000000 "));
        assert!(!picks[2].contains("statistic"));
        // without a node IP, NodePorts are on every local address
        assert!(text.contains("-m addrtype --dst-type LOCAL"));
    }

    #[test]
    fn a_later_sync_rewrites_only_changed_chains_and_deletes_stale_ones() {
        let both = [port(
            "web",
            "10.96.0.50",
            None,
            &["10.244.1.2:8080", "10.244.2.2:8080"],
        )];
        let first = render(&both, &config(), &Programmed::default());
        // Nothing changed: nothing to write.
        assert_eq!(render(&both, &config(), &first.after).text, "");

        // One endpoint gone: only the service chain is rewritten and the endpoint's chain
        // deleted; the entry chain, the other endpoint and the filter table are untouched.
        let one = [port("web", "10.96.0.50", None, &["10.244.1.2:8080"])];
        let second = render(&one, &config(), &first.after);
        assert_eq!(
            second.text,
            "*nat
:MINIK8S-SVC-SVQSTTPXCHYGJVAY - [0:0]
:MINIK8S-SEP-WBU5FEUVPTNSOGBF - [0:0]
-A MINIK8S-SVC-SVQSTTPXCHYGJVAY ! -s 10.244.0.0/16 -d 10.96.0.50/32 -p tcp -m tcp --dport 80 -j MINIK8S-MARK-MASQ
-A MINIK8S-SVC-SVQSTTPXCHYGJVAY -j MINIK8S-SEP-2L7G6STUCOSYHUY6
-X MINIK8S-SEP-WBU5FEUVPTNSOGBF
COMMIT
"
        );
        let stale = (Table::Nat, "MINIK8S-SEP-WBU5FEUVPTNSOGBF".to_string());
        assert!(!second.after.chains.contains(&stale));

        // The Service deleted: its chains go, the entry chain is rewritten, the fixed stay.
        let third = render(&[], &config(), &second.after);
        assert!(third.text.contains(":MINIK8S-SERVICES - [0:0]\n"));
        assert!(third.text.contains("-X MINIK8S-SVC-SVQSTTPXCHYGJVAY\n"));
        assert!(!third.text.contains("-X MINIK8S-SERVICES"));
        assert!(!third.text.contains("MARK-MASQ -j MARK"));

        // Read back from the kernel, nothing is known of the contents: all is rewritten.
        let mut from_kernel = second.after.clone();
        from_kernel.contents.clear();
        let full = render(&one, &config(), &from_kernel);
        assert!(full.text.contains("-A MINIK8S-MARK-MASQ -j MARK"));
        assert!(full
            .text
            .contains("*filter\n:MINIK8S-SERVICES - [0:0]\nCOMMIT\n"));
    }

    #[test]
    fn saved_rules_are_read_back_and_cleaned_up() {
        let saved = r#"# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:MINIK8S-SERVICES - [0:0]
:MINIK8S-NAT-minik8s0 - [0:0]
:MINIK8S-SVC-SVQSTTPXCHYGJVAY - [0:0]
-A PREROUTING -m comment --comment "minik8s service portals" -j MINIK8S-SERVICES
-A POSTROUTING -j MINIK8S-NAT-minik8s0
-A MINIK8S-SERVICES -d 10.96.0.50/32 -p tcp -m tcp --dport 80 -j MINIK8S-SVC-SVQSTTPXCHYGJVAY
COMMIT
*filter
:INPUT ACCEPT [0:0]
:MINIK8S-minik8s0 - [0:0]
-A FORWARD -j MINIK8S-minik8s0
COMMIT
"#;
        let programmed = Programmed::parse_save(saved);
        let nat_jump = JUMPS[0];
        assert!(programmed.has_jump(&nat_jump));
        assert!(!programmed.has_jump(&JUMPS[1]));
        assert_eq!(programmed.chains.len(), 2);
        assert_eq!(
            cleanup(&programmed),
            r#"*nat
:MINIK8S-SERVICES - [0:0]
:MINIK8S-SVC-SVQSTTPXCHYGJVAY - [0:0]
-D PREROUTING -m comment --comment "minik8s service portals" -j MINIK8S-SERVICES
-X MINIK8S-SERVICES
-X MINIK8S-SVC-SVQSTTPXCHYGJVAY
COMMIT
"#
        );
        assert_eq!(cleanup(&Programmed::default()), "");
        // only the missing jump is inserted
        let text = render(&[], &config(), &programmed).text;
        assert!(!text.contains("-I PREROUTING"));
        assert!(text.contains("-I OUTPUT -m comment"));
    }
}
