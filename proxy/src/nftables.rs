//! The service ports as an nftables table of our own, `table ip minik8s-proxy`, after
//! kube-proxy's nftables mode (its `table ip kube-proxy`), written by `nft -f -`. Where the
//! iptables mode (`rules.rs`) walks one rule per Service for every new connection, here a
//! packet makes one map lookup:
//!
//! ```text
//! nat-prerouting / nat-output ─▶ services: ip daddr . meta l4proto . th dport vmap @service-ips
//!                                          (to the node's address) l4proto . dport vmap @service-nodeports
//!        @service-ips / @service-nodeports ─ goto ─▶ service-<hash>-<ns>/<svc>/<proto>/<port>:
//!            mark for masquerade: reached by its NodePort (ip daddr != clusterIP), or from
//!            outside --cluster-cidr; then
//!            meta l4proto tcp dnat ip to numgen random mod N map @endpoints-<hash>-...
//!        @endpoints-<hash>-...: { 0 : podIP . targetPort, 1 : ..., N-1 : ... }
//! nat-postrouting ─▶ masquerading: mark a hairpin (ct status dnat, saddr . daddr in @hairpin),
//!                    then masquerade what is marked (the mark bit 0x4000, as the iptables mode)
//! filter-input / -forward / -output (new connections) ─▶ no-endpoints:
//!            in @no-endpoint-services or @no-endpoint-nodeports: reject (TCP: a reset,
//!            otherwise ICMP port unreachable), so a client fails at once
//! ```
//!
//! Where it differs from kube-proxy's layout, and why (measured at 1000 Services × 10
//! endpoints, nft 1.0.6, on a 2-core VM; `benches/dataplane.rs`, `docs/perf-log.md`):
//! kube-proxy picks an endpoint with `numgen random mod N vmap { 0 : goto endpoint-chain, ...}`,
//! an anonymous map per Service and a chain per endpoint. Every anonymous set bound in a
//! transaction makes the kernel walk the whole transaction (`__nft_set_trans_bind`, 30% of a
//! full write's CPU: quadratic; 1.2–1.9 s for the whole table), and with 11 000 chains every
//! incremental `nft -f` lists them all into nft's cache and the kernel revalidates every jump
//! path (60–90 ms for one endpoint, over the 50 ms goal). Here the endpoints are a *named* map
//! per service port that the dnat looks up directly (1000 chains, no endpoint chain): the
//! whole table writes in 0.3–0.4 s, and one replaced endpoint is two map elements (plus two of
//! `@hairpin`), ~10 ms of `nft`'s CPU. (One global map with `numgen ... offset` per Service
//! instead of a map each saves ~4 ms of that but doubles the full write: not taken.) The
//! per-endpoint hairpin rule of the iptables mode (`-s podIP -j MARK-MASQ` in each endpoint
//! chain) becomes one set of `podIP . podIP` pairs: after the dnat a pod that reached itself
//! has saddr == daddr, which the set lookup recognises.
//!
//! The state is a [`Ruleset`], object by object (the fixed frame of chains, each service
//! port's chain and endpoint map, the elements of the shared maps and sets), rendered from the
//! service ports by [`render`] (pure). It holds values (addresses, ports, endpoint lists), not
//! text: a sync renders and compares 1000 × 10 in ~3.5 ms, where the ~25 000 strings of a
//! first version took ~30 ms. [`transaction`] writes the text, and only what is needed: it
//! turns the wanted ruleset into `nft -f` input: without a previous one, the whole table
//! atomically replaced (`add table`, `delete table`, `add table` and everything, one
//! transaction: the old table goes, whatever was in it); with one, only what changed: map and
//! set elements added or deleted, chains added, flushed and refilled, or deleted, maps of
//! gone service ports deleted, in the order the kernel's references need.
//!
//! Object names are `service-`/`endpoints-` + 16 base32 characters of SHA-256(name + protocol)
//! (the iptables mode's hash) + the readable `<ns>/<svc>/<proto>[/<port name>]`, its characters
//! outside `[a-z0-9./-]` turned into `_` and cut at 200: nothing from an API object can reach
//! the `nft` text except as such a name, a number or an address. Read next: `sync.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::model::{hash16, Protocol, ServicePort};
use crate::rules::{RulesConfig, MASQ_MARK};

/// Our table's name (family `ip`).
pub const TABLE: &str = "minik8s-proxy";
/// `<family> <name>`, as every command names the table.
const T: &str = "ip minik8s-proxy";

/// `clusterIP . proto . port : goto service-...`, for service ports with endpoints.
pub const SERVICE_IPS: &str = "service-ips";
/// `proto . nodePort : goto service-...`.
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// `clusterIP . proto . port` of service ports without endpoints (rejected).
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
/// `proto . nodePort` of service ports without endpoints (rejected).
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
/// `podIP . podIP` for every endpoint: a connection DNATed back to its own source.
pub const HAIRPIN: &str = "hairpin";
/// The dispatch chain, from nat prerouting and output.
pub const SERVICES: &str = "services";
/// Masquerades what is marked, from nat postrouting.
pub const MASQUERADING: &str = "masquerading";
/// Rejects new connections to service ports without endpoints, from the filter hooks.
pub const NO_ENDPOINTS: &str = "no-endpoints";
/// Prefix of a service port's chain.
pub const SERVICE_PREFIX: &str = "service-";
/// Prefix of a service port's endpoint map.
pub const ENDPOINTS_PREFIX: &str = "endpoints-";

/// The readable part of an object name is cut here (nft allows 255 characters).
const READABLE_MAX: usize = 200;

/// The sets and maps every table has: name, kind, declaration.
const SETS: [(&str, &str, &str); 5] = [
    (
        SERVICE_IPS,
        "map",
        "type ipv4_addr . inet_proto . inet_service : verdict ;",
    ),
    (
        SERVICE_NODEPORTS,
        "map",
        "type inet_proto . inet_service : verdict ;",
    ),
    (
        NO_ENDPOINT_SERVICES,
        "set",
        "type ipv4_addr . inet_proto . inet_service ;",
    ),
    (
        NO_ENDPOINT_NODEPORTS,
        "set",
        "type inet_proto . inet_service ;",
    ),
    (HAIRPIN, "set", "type ipv4_addr . ipv4_addr ;"),
];

/// A chain of the table's fixed frame (the base chains and the dispatch chains).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    /// A base chain's `type nat hook prerouting priority -100 ;`; empty for a regular chain.
    pub spec: String,
    /// Its rules, in order, in nft's syntax.
    pub rules: Vec<String>,
}

/// What the chain of a service port with endpoints says; equal values, equal rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRules {
    /// Its protocol (the dnat matches it; its endpoint map's port is typed by it).
    pub protocol: Protocol,
    /// Its ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Reached by a NodePort as well: what is not to the ClusterIP is masqueraded.
    pub node_port: bool,
    /// Masquerade what comes from outside this CIDR (`--cluster-cidr`).
    pub masquerade_from: Option<String>,
    /// How many endpoints it draws from (`numgen random mod N`).
    pub endpoints: usize,
}

/// A service port with endpoints: its chain `service-<suffix>` and map `endpoints-<suffix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceObjects {
    /// What its chain says.
    pub rules: ServiceRules,
    /// Its endpoints in map order: element `i` is `i : podIP . port`.
    pub endpoints: Vec<SocketAddrV4>,
}

/// `clusterIP . protocol . port`.
pub type ServiceKey = (Ipv4Addr, Protocol, u16);
/// `protocol . nodePort`.
pub type NodePortKey = (Protocol, u16);

/// Everything in our table, as values: the text is written only for a transaction, so that
/// comparing two rulesets (every sync) costs no formatting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// The fixed frame: base chains and dispatch chains, by name (`--node-ip` changes them).
    pub chains: BTreeMap<String, Chain>,
    /// Service ports with endpoints, by object suffix (`<hash>-<readable>`).
    pub services: BTreeMap<String, ServiceObjects>,
    /// `@service-ips`: key → the suffix of the chain it goes to.
    pub service_ips: BTreeMap<ServiceKey, String>,
    /// `@service-nodeports`: key → the suffix of the chain it goes to.
    pub service_nodeports: BTreeMap<NodePortKey, String>,
    /// `@no-endpoint-services`.
    pub no_endpoint_services: BTreeSet<ServiceKey>,
    /// `@no-endpoint-nodeports`.
    pub no_endpoint_nodeports: BTreeSet<NodePortKey>,
    /// `@hairpin`: every endpoint's address (the element is `ip . ip`).
    pub hairpin: BTreeSet<Ipv4Addr>,
}

/// The chain of a service port: `service-<hash>-<ns>/<svc>/<proto>[/<port>]`.
pub fn service_chain(port: &ServicePort) -> String {
    format!("{SERVICE_PREFIX}{}", object_suffix(port))
}

/// The endpoint map of a service port: `endpoints-<hash>-...`, the same suffix.
pub fn endpoints_map(port: &ServicePort) -> String {
    format!("{ENDPOINTS_PREFIX}{}", object_suffix(port))
}

fn object_suffix(port: &ServicePort) -> String {
    let name = &port.name;
    let proto = port.protocol.iptables_name();
    let hash = hash16(&format!("{name}{}", port.protocol.api_name()));
    let mut readable = format!("{}/{}/{proto}", name.namespace, name.name);
    if !name.port.is_empty() {
        readable.push('/');
        readable.push_str(&name.port);
    }
    let readable: String = readable
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '/' | '-' => c,
            _ => '_',
        })
        .take(READABLE_MAX)
        .collect();
    format!("{hash}-{readable}")
}

/// `a.b.c.d/len` with the host bits cleared, or `None` for anything else.
fn parse_cidr(cidr: &str) -> Option<String> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Some(format!("{}/{len}", Ipv4Addr::from(u32::from(ip) & mask)))
}

/// `meta mark set meta mark | 0x4000`: mark the packet for masquerade.
fn mark() -> String {
    format!("meta mark set meta mark | {MASQ_MARK}")
}

/// The fixed frame for `config`.
fn frame(config: &RulesConfig) -> BTreeMap<String, Chain> {
    let mut chains = BTreeMap::new();
    let mut chain = |name: &str, spec: String, rules: Vec<String>| {
        chains.insert(name.to_string(), Chain { spec, rules });
    };
    // Priorities as numbers (nft 1.0.6 knows `dstnat` only for prerouting): DNAT at -100 as
    // iptables' nat table; the rejections at -10, before iptables' filter table (0), whose
    // FORWARD policy may be DROP (Docker's), which would turn a refusal into a timeout.
    let base = [
        ("nat-prerouting", "nat", "prerouting", -100, SERVICES, ""),
        ("nat-output", "nat", "output", -100, SERVICES, ""),
        (
            "nat-postrouting",
            "nat",
            "postrouting",
            100,
            MASQUERADING,
            "",
        ),
        (
            "filter-input",
            "filter",
            "input",
            -10,
            NO_ENDPOINTS,
            "ct state new ",
        ),
        (
            "filter-forward",
            "filter",
            "forward",
            -10,
            NO_ENDPOINTS,
            "ct state new ",
        ),
        (
            "filter-output",
            "filter",
            "output",
            -10,
            NO_ENDPOINTS,
            "ct state new ",
        ),
    ];
    for (name, kind, hook, priority, target, cond) in base {
        chain(
            name,
            format!("type {kind} hook {hook} priority {priority} ;"),
            vec![format!("{cond}jump {target}")],
        );
    }
    // NodePorts answer on --node-ip, or on every local address but loopback (a DNAT from
    // 127.0.0.1 to a pod would need route_localnet; kube-proxy leaves it out too).
    let to_node = match config.node_ip {
        Some(ip) => format!("ip daddr {ip}"),
        None => "fib daddr type local ip daddr != 127.0.0.0/8".to_string(),
    };
    chain(
        SERVICES,
        String::new(),
        vec![
            format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
            format!("{to_node} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
        ],
    );
    chain(
        MASQUERADING,
        String::new(),
        vec![
            format!("ct status dnat ip saddr . ip daddr @{HAIRPIN} {}", mark()),
            format!("meta mark & {MASQ_MARK} == 0 return"),
            // Clear the mark, so a packet re-entering the stack (tunnels) is not masqueraded
            // twice.
            format!("meta mark set meta mark ^ {MASQ_MARK}"),
            "masquerade fully-random".to_string(),
        ],
    );
    let to_service = "ip daddr . meta l4proto . th dport";
    let to_node_port = format!("{to_node} meta l4proto . th dport");
    chain(
        NO_ENDPOINTS,
        String::new(),
        vec![
            format!("meta l4proto tcp {to_service} @{NO_ENDPOINT_SERVICES} reject with tcp reset"),
            format!("{to_service} @{NO_ENDPOINT_SERVICES} reject"),
            format!(
                "meta l4proto tcp {to_node_port} @{NO_ENDPOINT_NODEPORTS} reject with tcp reset"
            ),
            format!("{to_node_port} @{NO_ENDPOINT_NODEPORTS} reject"),
        ],
    );
    chains
}

/// The wanted table for `ports`. Never fails: a service port that cannot be programmed next
/// to the others (its ClusterIP:port, its NodePort or its name already taken by one sorted
/// before it, which a validating API never allows) is left out with a warning, so that one
/// bad Service cannot make every transaction fail.
pub fn render(ports: &[ServicePort], config: &RulesConfig) -> Ruleset {
    let mut rs = Ruleset {
        chains: frame(config),
        ..Ruleset::default()
    };
    let masquerade_from = config.cluster_cidr.as_deref().and_then(|c| {
        let parsed = parse_cidr(c);
        if parsed.is_none() {
            tracing::warn!(
                cluster_cidr = c,
                "not an IPv4 CIDR; nothing masqueraded by source"
            );
        }
        parsed
    });
    let mut cluster_keys = BTreeSet::new();
    let mut node_port_keys = BTreeSet::new();
    let mut suffixes = BTreeSet::new();
    for port in ports {
        let cluster_key = (port.cluster_ip, port.protocol, port.port);
        let node_port_key = port.node_port.map(|p| (port.protocol, p));
        let suffix = object_suffix(port);
        if cluster_keys.contains(&cluster_key)
            || node_port_key.is_some_and(|k| node_port_keys.contains(&k))
            || suffixes.contains(&suffix)
        {
            tracing::warn!(
                service_port = %port.name,
                "its ClusterIP and port, its NodePort or its name is another service port's; skipped"
            );
            continue;
        }
        cluster_keys.insert(cluster_key);
        node_port_keys.extend(node_port_key);
        suffixes.insert(suffix.clone());

        if port.endpoints.is_empty() {
            rs.no_endpoint_services.insert(cluster_key);
            rs.no_endpoint_nodeports.extend(node_port_key);
            continue;
        }
        rs.hairpin.extend(port.endpoints.iter().map(|e| *e.ip()));
        rs.service_ips.insert(cluster_key, suffix.clone());
        if let Some(key) = node_port_key {
            rs.service_nodeports.insert(key, suffix.clone());
        }
        let rules = ServiceRules {
            protocol: port.protocol,
            cluster_ip: port.cluster_ip,
            node_port: port.node_port.is_some(),
            masquerade_from: masquerade_from.clone(),
            endpoints: port.endpoints.len(),
        };
        rs.services.insert(
            suffix,
            ServiceObjects {
                rules,
                endpoints: port.endpoints.clone(),
            },
        );
    }
    rs
}

/// The rules of the chain `service-<suffix>`.
fn service_rules(suffix: &str, r: &ServiceRules) -> Vec<String> {
    let mut rules = Vec::new();
    if r.node_port {
        // The chain is reached by the ClusterIP or by the NodePort: anything not to the
        // ClusterIP came by the NodePort, and NodePort traffic is always masqueraded (the
        // reply must come back through this node).
        rules.push(format!("ip daddr != {} {}", r.cluster_ip, mark()));
    }
    if let Some(cidr) = &r.masquerade_from {
        rules.push(format!("ip saddr != {cidr} {}", mark()));
    }
    // Each new connection draws 0..N-1 and is DNATed to that element of the map.
    rules.push(format!(
        "meta l4proto {} dnat ip to numgen random mod {} map @{ENDPOINTS_PREFIX}{suffix}",
        r.protocol.iptables_name(),
        r.endpoints
    ));
    rules
}

fn service_key(k: &ServiceKey) -> String {
    format!("{} . {} . {}", k.0, k.1.iptables_name(), k.2)
}

fn node_port_key(k: &NodePortKey) -> String {
    format!("{} . {}", k.0.iptables_name(), k.1)
}

fn goto(suffix: &str) -> String {
    format!("goto {SERVICE_PREFIX}{suffix}")
}

fn hairpin(ip: &Ipv4Addr) -> String {
    format!("{ip} . {ip}")
}

fn endpoint(i: usize, e: &SocketAddrV4) -> String {
    format!("{i} : {} . {}", e.ip(), e.port())
}

/// One `nft -f` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The text; empty when nothing differs.
    pub text: String,
    /// Whether it replaces the whole table.
    pub full: bool,
}

/// The transaction that makes the kernel's table `after`: only the differences from `before`
/// (what the last transaction left), or, without it, the whole table. A frame chain whose
/// declaration changed (a base chain's hook or priority: new code) cannot be altered in
/// place; then the whole table is replaced too.
pub fn transaction(after: &Ruleset, before: Option<&Ruleset>) -> Transaction {
    let incremental = before.filter(|before| {
        after
            .chains
            .iter()
            .all(|(name, chain)| before.chains.get(name).is_none_or(|b| b.spec == chain.spec))
    });
    match incremental {
        Some(before) => Transaction {
            text: changes(before, after),
            full: false,
        },
        None => Transaction {
            text: whole(after),
            full: true,
        },
    }
}

/// The whole table, replacing whatever is there. Declarations come before what references
/// them: sets and maps, then chains, then rules (which name sets, maps and chains), then
/// elements (verdicts name chains).
fn whole(rs: &Ruleset) -> String {
    let mut out = String::new();
    // Adding the table first makes the delete succeed whether or not it existed.
    let _ = writeln!(out, "add table {T}");
    let _ = writeln!(out, "delete table {T}");
    let _ = writeln!(out, "add table {T}");
    for (name, kind, spec) in SETS {
        let _ = writeln!(out, "add {kind} {T} {name} {{ {spec} }}");
    }
    for (suffix, svc) in &rs.services {
        declare_endpoints(&mut out, suffix, svc);
    }
    for (name, chain) in &rs.chains {
        declare_chain(&mut out, name, &chain.spec);
    }
    for suffix in rs.services.keys() {
        declare_chain(&mut out, &format!("{SERVICE_PREFIX}{suffix}"), "");
    }
    for (name, chain) in &rs.chains {
        add_rules(&mut out, name, &chain.rules);
    }
    for (suffix, svc) in &rs.services {
        let chain = format!("{SERVICE_PREFIX}{suffix}");
        add_rules(&mut out, &chain, &service_rules(suffix, &svc.rules));
    }
    for (suffix, svc) in &rs.services {
        let all: Vec<String> = svc
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| endpoint(i, e))
            .collect();
        add_elements(&mut out, &format!("{ENDPOINTS_PREFIX}{suffix}"), &all);
    }
    let hairpins: Vec<String> = rs.hairpin.iter().map(hairpin).collect();
    add_elements(&mut out, HAIRPIN, &hairpins);
    let list: Vec<String> = rs.no_endpoint_nodeports.iter().map(node_port_key).collect();
    add_elements(&mut out, NO_ENDPOINT_NODEPORTS, &list);
    let list: Vec<String> = rs.no_endpoint_services.iter().map(service_key).collect();
    add_elements(&mut out, NO_ENDPOINT_SERVICES, &list);
    let list: Vec<String> = rs
        .service_ips
        .iter()
        .map(|(k, s)| format!("{} : {}", service_key(k), goto(s)))
        .collect();
    add_elements(&mut out, SERVICE_IPS, &list);
    let list: Vec<String> = rs
        .service_nodeports
        .iter()
        .map(|(k, s)| format!("{} : {}", node_port_key(k), goto(s)))
        .collect();
    add_elements(&mut out, SERVICE_NODEPORTS, &list);
    out
}

/// The keys of `before` whose value is not the same in `after` (gone or changed).
fn changed_keys<'a, K: Ord, V: PartialEq>(
    before: &'a BTreeMap<K, V>,
    after: &BTreeMap<K, V>,
) -> Vec<&'a K> {
    before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect()
}

/// Only what differs between `before` and `after` (frame declarations known to agree).
fn changes(before: &Ruleset, after: &Ruleset) -> String {
    let mut out = String::new();
    // 1. New maps and chains.
    for (suffix, svc) in &after.services {
        if !before.services.contains_key(suffix) {
            declare_endpoints(&mut out, suffix, svc);
        }
    }
    for (name, chain) in &after.chains {
        if !before.chains.contains_key(name) {
            declare_chain(&mut out, name, &chain.spec);
        }
    }
    for suffix in after.services.keys() {
        if !before.services.contains_key(suffix) {
            declare_chain(&mut out, &format!("{SERVICE_PREFIX}{suffix}"), "");
        }
    }
    // 2. Rules of new chains, and of changed ones after a flush.
    for (name, chain) in &after.chains {
        match before.chains.get(name) {
            None => add_rules(&mut out, name, &chain.rules),
            Some(old) if old.rules != chain.rules => {
                let _ = writeln!(out, "flush chain {T} {name}");
                add_rules(&mut out, name, &chain.rules);
            }
            Some(_) => {}
        }
    }
    for (suffix, svc) in &after.services {
        let chain = format!("{SERVICE_PREFIX}{suffix}");
        match before.services.get(suffix) {
            None => add_rules(&mut out, &chain, &service_rules(suffix, &svc.rules)),
            Some(old) if old.rules != svc.rules => {
                let _ = writeln!(out, "flush chain {T} {chain}");
                add_rules(&mut out, &chain, &service_rules(suffix, &svc.rules));
            }
            Some(_) => {}
        }
    }
    // 3. Elements gone or changed are deleted, then new or changed ones added (a map
    //    element's value cannot be replaced in place). The maps of gone service ports go
    //    whole, in step 4.
    let no_endpoints: Vec<SocketAddrV4> = Vec::new();
    for (suffix, old) in &before.services {
        let Some(new) = after.services.get(suffix) else {
            continue;
        };
        if old.endpoints != new.endpoints {
            let gone: Vec<String> = (0..old.endpoints.len())
                .filter(|i| new.endpoints.get(*i) != old.endpoints.get(*i))
                .map(|i| i.to_string())
                .collect();
            delete_elements(&mut out, &format!("{ENDPOINTS_PREFIX}{suffix}"), &gone);
        }
    }
    let gone: Vec<String> = before
        .hairpin
        .difference(&after.hairpin)
        .map(hairpin)
        .collect();
    delete_elements(&mut out, HAIRPIN, &gone);
    let gone: Vec<String> = before
        .no_endpoint_nodeports
        .difference(&after.no_endpoint_nodeports)
        .map(node_port_key)
        .collect();
    delete_elements(&mut out, NO_ENDPOINT_NODEPORTS, &gone);
    let gone: Vec<String> = before
        .no_endpoint_services
        .difference(&after.no_endpoint_services)
        .map(service_key)
        .collect();
    delete_elements(&mut out, NO_ENDPOINT_SERVICES, &gone);
    let gone: Vec<String> = changed_keys(&before.service_ips, &after.service_ips)
        .into_iter()
        .map(service_key)
        .collect();
    delete_elements(&mut out, SERVICE_IPS, &gone);
    let gone: Vec<String> = changed_keys(&before.service_nodeports, &after.service_nodeports)
        .into_iter()
        .map(node_port_key)
        .collect();
    delete_elements(&mut out, SERVICE_NODEPORTS, &gone);

    for (suffix, new) in &after.services {
        let old = before
            .services
            .get(suffix)
            .map_or(&no_endpoints, |o| &o.endpoints);
        if *old != new.endpoints {
            let added: Vec<String> = new
                .endpoints
                .iter()
                .enumerate()
                .filter(|(i, e)| old.get(*i) != Some(*e))
                .map(|(i, e)| endpoint(i, e))
                .collect();
            add_elements(&mut out, &format!("{ENDPOINTS_PREFIX}{suffix}"), &added);
        }
    }
    let added: Vec<String> = after
        .hairpin
        .difference(&before.hairpin)
        .map(hairpin)
        .collect();
    add_elements(&mut out, HAIRPIN, &added);
    let added: Vec<String> = after
        .no_endpoint_nodeports
        .difference(&before.no_endpoint_nodeports)
        .map(node_port_key)
        .collect();
    add_elements(&mut out, NO_ENDPOINT_NODEPORTS, &added);
    let added: Vec<String> = after
        .no_endpoint_services
        .difference(&before.no_endpoint_services)
        .map(service_key)
        .collect();
    add_elements(&mut out, NO_ENDPOINT_SERVICES, &added);
    let added: Vec<String> = changed_keys(&after.service_ips, &before.service_ips)
        .into_iter()
        .map(|k| format!("{} : {}", service_key(k), goto(&after.service_ips[k])))
        .collect();
    add_elements(&mut out, SERVICE_IPS, &added);
    let added: Vec<String> = changed_keys(&after.service_nodeports, &before.service_nodeports)
        .into_iter()
        .map(|k| {
            format!(
                "{} : {}",
                node_port_key(k),
                goto(&after.service_nodeports[k])
            )
        })
        .collect();
    add_elements(&mut out, SERVICE_NODEPORTS, &added);

    // 4. Chains that are gone, now that no element points to them (deleting a chain deletes
    //    its rules); then the maps only their rules used.
    for name in before.chains.keys() {
        if !after.chains.contains_key(name) {
            let _ = writeln!(out, "delete chain {T} {name}");
        }
    }
    for suffix in before.services.keys() {
        if !after.services.contains_key(suffix) {
            let _ = writeln!(out, "delete chain {T} {SERVICE_PREFIX}{suffix}");
        }
    }
    for suffix in before.services.keys() {
        if !after.services.contains_key(suffix) {
            let _ = writeln!(out, "delete map {T} {ENDPOINTS_PREFIX}{suffix}");
        }
    }
    out
}

fn declare_endpoints(out: &mut String, suffix: &str, svc: &ServiceObjects) {
    // `typeof ... th dport` would do for every protocol, but nft 1.0.6 then fails to list the
    // map ("conflicting protocols specified: tcp vs. th").
    let _ = writeln!(
        out,
        "add map {T} {ENDPOINTS_PREFIX}{suffix} {{ typeof numgen random mod 1 : ip daddr . {} dport ; }}",
        svc.rules.protocol.iptables_name()
    );
}

fn declare_chain(out: &mut String, name: &str, spec: &str) {
    if spec.is_empty() {
        let _ = writeln!(out, "add chain {T} {name}");
    } else {
        let _ = writeln!(out, "add chain {T} {name} {{ {spec} }}");
    }
}

fn add_rules(out: &mut String, name: &str, rules: &[String]) {
    for rule in rules {
        let _ = writeln!(out, "add rule {T} {name} {rule}");
    }
}

fn add_elements(out: &mut String, set: &str, elements: &[String]) {
    if !elements.is_empty() {
        let _ = writeln!(out, "add element {T} {set} {{ {} }}", elements.join(", "));
    }
}

fn delete_elements(out: &mut String, set: &str, keys: &[String]) {
    if !keys.is_empty() {
        let _ = writeln!(out, "delete element {T} {set} {{ {} }}", keys.join(", "));
    }
}

/// The transaction that removes our table, whether or not it exists.
pub fn cleanup() -> String {
    format!("add table {T}\ndelete table {T}\n")
}

/// Whether `nft list tables` output lists our table.
pub fn table_listed(list_tables: &str) -> bool {
    list_tables
        .lines()
        .any(|l| l.trim() == format!("table {T}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{config, port};

    #[test]
    fn a_first_sync_replaces_the_whole_table() {
        let ports = [
            port(
                "web",
                "10.96.0.50",
                Some(30080),
                &["10.244.1.2:8080", "10.244.2.2:8080"],
            ),
            port("empty", "10.96.0.51", Some(30081), &[]),
        ];
        let tx = transaction(&render(&ports, &config()), None);
        assert!(tx.full);
        let expected = r#"add table ip minik8s-proxy
delete table ip minik8s-proxy
add table ip minik8s-proxy
add map ip minik8s-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map ip minik8s-proxy service-nodeports { type inet_proto . inet_service : verdict ; }
add set ip minik8s-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service ; }
add set ip minik8s-proxy no-endpoint-nodeports { type inet_proto . inet_service ; }
add set ip minik8s-proxy hairpin { type ipv4_addr . ipv4_addr ; }
add map ip minik8s-proxy endpoints-SVQSTTPXCHYGJVAY-default/web/tcp { typeof numgen random mod 1 : ip daddr . tcp dport ; }
add chain ip minik8s-proxy filter-forward { type filter hook forward priority -10 ; }
add chain ip minik8s-proxy filter-input { type filter hook input priority -10 ; }
add chain ip minik8s-proxy filter-output { type filter hook output priority -10 ; }
add chain ip minik8s-proxy masquerading
add chain ip minik8s-proxy nat-output { type nat hook output priority -100 ; }
add chain ip minik8s-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add chain ip minik8s-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip minik8s-proxy no-endpoints
add chain ip minik8s-proxy services
add chain ip minik8s-proxy service-SVQSTTPXCHYGJVAY-default/web/tcp
add rule ip minik8s-proxy filter-forward ct state new jump no-endpoints
add rule ip minik8s-proxy filter-input ct state new jump no-endpoints
add rule ip minik8s-proxy filter-output ct state new jump no-endpoints
add rule ip minik8s-proxy masquerading ct status dnat ip saddr . ip daddr @hairpin meta mark set meta mark | 0x4000
add rule ip minik8s-proxy masquerading meta mark & 0x4000 == 0 return
add rule ip minik8s-proxy masquerading meta mark set meta mark ^ 0x4000
add rule ip minik8s-proxy masquerading masquerade fully-random
add rule ip minik8s-proxy nat-output jump services
add rule ip minik8s-proxy nat-postrouting jump masquerading
add rule ip minik8s-proxy nat-prerouting jump services
add rule ip minik8s-proxy no-endpoints meta l4proto tcp ip daddr . meta l4proto . th dport @no-endpoint-services reject with tcp reset
add rule ip minik8s-proxy no-endpoints ip daddr . meta l4proto . th dport @no-endpoint-services reject
add rule ip minik8s-proxy no-endpoints meta l4proto tcp ip daddr 192.168.1.10 meta l4proto . th dport @no-endpoint-nodeports reject with tcp reset
add rule ip minik8s-proxy no-endpoints ip daddr 192.168.1.10 meta l4proto . th dport @no-endpoint-nodeports reject
add rule ip minik8s-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip minik8s-proxy services ip daddr 192.168.1.10 meta l4proto . th dport vmap @service-nodeports
add rule ip minik8s-proxy service-SVQSTTPXCHYGJVAY-default/web/tcp ip daddr != 10.96.0.50 meta mark set meta mark | 0x4000
add rule ip minik8s-proxy service-SVQSTTPXCHYGJVAY-default/web/tcp ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x4000
add rule ip minik8s-proxy service-SVQSTTPXCHYGJVAY-default/web/tcp meta l4proto tcp dnat ip to numgen random mod 2 map @endpoints-SVQSTTPXCHYGJVAY-default/web/tcp
add element ip minik8s-proxy endpoints-SVQSTTPXCHYGJVAY-default/web/tcp { 0 : 10.244.1.2 . 8080, 1 : 10.244.2.2 . 8080 }
add element ip minik8s-proxy hairpin { 10.244.1.2 . 10.244.1.2, 10.244.2.2 . 10.244.2.2 }
add element ip minik8s-proxy no-endpoint-nodeports { tcp . 30081 }
add element ip minik8s-proxy no-endpoint-services { 10.96.0.51 . tcp . 80 }
add element ip minik8s-proxy service-ips { 10.96.0.50 . tcp . 80 : goto service-SVQSTTPXCHYGJVAY-default/web/tcp }
add element ip minik8s-proxy service-nodeports { tcp . 30080 : goto service-SVQSTTPXCHYGJVAY-default/web/tcp }
"#;
        assert_eq!(tx.text, expected);
    }

    #[test]
    fn one_endpoint_replaced_is_a_few_elements_and_nothing_else() {
        let config = config();
        let before = render(
            &[port(
                "web",
                "10.96.0.50",
                None,
                &["10.0.0.1:80", "10.0.0.2:80"],
            )],
            &config,
        );
        // Nothing changed: nothing to write.
        assert_eq!(transaction(&before, Some(&before)).text, "");

        let after = render(
            &[port(
                "web",
                "10.96.0.50",
                None,
                &["10.0.0.1:80", "10.0.0.3:80"],
            )],
            &config,
        );
        let tx = transaction(&after, Some(&before));
        assert!(!tx.full);
        assert_eq!(
            tx.text,
            "delete element ip minik8s-proxy endpoints-SVQSTTPXCHYGJVAY-default/web/tcp { 1 }
delete element ip minik8s-proxy hairpin { 10.0.0.2 . 10.0.0.2 }
add element ip minik8s-proxy endpoints-SVQSTTPXCHYGJVAY-default/web/tcp { 1 : 10.0.0.3 . 80 }
add element ip minik8s-proxy hairpin { 10.0.0.3 . 10.0.0.3 }
"
        );
    }

    #[test]
    fn a_new_count_of_endpoints_rewrites_the_one_chain() {
        let config = config();
        let before = render(
            &[port("web", "10.96.0.50", None, &["10.0.0.1:80"])],
            &config,
        );
        let after = render(
            &[port(
                "web",
                "10.96.0.50",
                None,
                &["10.0.0.1:80", "10.0.0.2:80"],
            )],
            &config,
        );
        let text = transaction(&after, Some(&before)).text;
        let chain = "service-SVQSTTPXCHYGJVAY-default/web/tcp";
        assert!(text.starts_with(&format!("flush chain ip minik8s-proxy {chain}\n")));
        assert!(text.contains("numgen random mod 2 map"));
        assert!(text.contains("{ 1 : 10.0.0.2 . 80 }"));
        assert_eq!(text.matches("flush chain").count(), 1, "{text}");
        assert!(!text.contains("delete"), "{text}");
    }

    #[test]
    fn a_service_gone_or_without_endpoints_takes_its_chain_and_map_along() {
        let config = config();
        let web = port("web", "10.96.0.50", Some(30080), &["10.0.0.1:80"]);
        let other = port("other", "10.96.0.60", None, &["10.0.0.9:80"]);
        let before = render(&[web.clone(), other.clone()], &config);
        let chain = service_chain(&web);
        let map = endpoints_map(&web);

        // Its endpoints gone: refused from now on; chain and map deleted after the elements
        // that pointed to the chain.
        let mut none = web.clone();
        none.endpoints.clear();
        let text = transaction(&render(&[none, other.clone()], &config), Some(&before)).text;
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} not in {text}"))
        };
        assert!(
            at("delete element ip minik8s-proxy service-ips { 10.96.0.50 . tcp . 80 }")
                < at(&format!("delete chain ip minik8s-proxy {chain}\n"))
        );
        assert!(
            at(&format!("delete chain ip minik8s-proxy {chain}\n"))
                < at(&format!("delete map ip minik8s-proxy {map}\n"))
        );
        assert!(text.contains(
            "add element ip minik8s-proxy no-endpoint-services { 10.96.0.50 . tcp . 80 }"
        ));
        assert!(text.contains("add element ip minik8s-proxy no-endpoint-nodeports { tcp . 30080 }"));
        assert!(text.contains("delete element ip minik8s-proxy hairpin { 10.0.0.1 . 10.0.0.1 }"));
        assert!(!text.contains("other"), "{text}");

        // The Service deleted: nothing of it is left, nothing is refused for it.
        let after = render(&[other], &config);
        let text = transaction(&after, Some(&before)).text;
        assert!(text.contains(&format!("delete chain ip minik8s-proxy {chain}\n")));
        assert!(!text.contains("no-endpoint"), "{text}");
        assert!(after.services.keys().all(|s| !chain.ends_with(s.as_str())));
        assert!(after.service_ips.len() == 1 && after.hairpin.len() == 1);
    }

    #[test]
    fn a_changed_declaration_replaces_the_whole_table() {
        let config = config();
        let after = render(
            &[port("web", "10.96.0.50", None, &["10.0.0.1:80"])],
            &config,
        );
        let mut before = after.clone();
        before.chains.get_mut("nat-output").unwrap().spec =
            "type nat hook output priority 0 ;".into();
        assert!(transaction(&after, Some(&before)).full);
        // A new --node-ip is only new rules.
        let other = RulesConfig {
            node_ip: None,
            ..config.clone()
        };
        let tx = transaction(&render(&[], &other), Some(&render(&[], &config)));
        assert!(!tx.full);
        assert!(tx
            .text
            .contains("fib daddr type local ip daddr != 127.0.0.0/8"));
    }

    #[test]
    fn bad_input_is_left_out_or_made_harmless_never_written_as_is() {
        let mut odd = port(
            "Odd Name\"; flush ruleset\n",
            "10.96.0.70",
            None,
            &["10.0.0.7:80"],
        );
        odd.name.namespace = "x".repeat(300);
        odd.name.port = "HTTP".into();
        let first = port("a", "10.96.0.50", Some(30080), &["10.0.0.1:80"]);
        // the same ClusterIP and port as `a`, sorted after it
        let same_ip = port("b", "10.96.0.50", None, &["10.0.0.2:80"]);
        // the same NodePort as `a`
        let same_node_port = port("c", "10.96.0.51", Some(30080), &["10.0.0.3:80"]);
        // the same name and protocol as `a` (two unnamed ports of one Service)
        let same_name = port("a", "10.96.0.52", None, &["10.0.0.4:80"]);
        let rs = render(
            &[first, same_ip, same_node_port, same_name, odd.clone()],
            &RulesConfig {
                node_ip: None,
                // host bits set: written as the network; garbage: left out
                cluster_cidr: Some("10.244.3.4/16".into()),
            },
        );
        assert_eq!(rs.service_ips.len(), 2, "{rs:#?}");
        assert_eq!(rs.service_nodeports.len(), 1);
        for left_out in ["10.0.0.2", "10.0.0.3", "10.0.0.4"] {
            assert!(!rs.hairpin.contains(&left_out.parse().unwrap()));
        }
        let odd_chain = service_chain(&odd);
        let odd_suffix = odd_chain.strip_prefix(SERVICE_PREFIX).unwrap();
        assert!(rs.services.contains_key(odd_suffix));
        let readable = odd_suffix.split_once('-').unwrap().1;
        assert_eq!(readable.len(), READABLE_MAX);
        let names: Vec<String> = rs
            .services
            .keys()
            .flat_map(|s| {
                [
                    format!("{SERVICE_PREFIX}{s}"),
                    format!("{ENDPOINTS_PREFIX}{s}"),
                ]
            })
            .chain(rs.chains.keys().cloned())
            .collect();
        for name in &names {
            assert!(name.len() < 256);
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)),
                "{name}"
            );
            assert!(name.as_bytes()[0].is_ascii_lowercase(), "{name}");
        }
        let text = transaction(&rs, None).text;
        assert!(text.contains("ip saddr != 10.244.0.0/16"), "{text}");
        assert!(!text.contains("flush ruleset"));
        assert!(text
            .lines()
            .all(|l| l.starts_with("add ") || l.starts_with("delete table")));

        let garbage = RulesConfig {
            node_ip: None,
            cluster_cidr: Some("10.244.0.0/33".into()),
        };
        let text = transaction(&render(&[odd], &garbage), None).text;
        assert!(!text.contains("ip saddr !="), "{text}");
    }

    #[test]
    fn the_table_is_found_in_nft_list_tables() {
        assert!(table_listed("table ip filter\ntable ip minik8s-proxy\n"));
        assert!(!table_listed("table ip filter\ntable ip6 minik8s-proxy\n"));
        assert_eq!(
            cleanup(),
            "add table ip minik8s-proxy\ndelete table ip minik8s-proxy\n"
        );
    }
}
