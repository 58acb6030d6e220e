//! The records of the cluster domain, computed from Services and EndpointSlices: the pure part
//! of cluster DNS, with no socket and no clock, following Kubernetes' DNS specification
//! (github.com/kubernetes/dns, `docs/specification.md`, schema 1.1.0).
//!
//! - A Service with a cluster IP: `<svc>.<ns>.svc.<zone>` A → that IP, and for each *named*
//!   port `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV → `0 100 <port> <svc>.<ns>.svc.<zone>`.
//! - A headless Service (`clusterIP: None`) has no address of its own: its name answers with the
//!   A records of its *ready* endpoints (all of them with `publishNotReadyAddresses`), each
//!   endpoint also gets `<hostname>.<svc>.<ns>.svc.<zone>` (its `hostname`, else its IP with
//!   dashes), and the SRV records of a named port point at those per-endpoint names.
//! - An ExternalName Service: `<svc>.<ns>.svc.<zone>` CNAME → its `externalName`.
//! - Reverse lookups: `<d>.<c>.<b>.<a>.in-addr.arpa` PTR → the Service owning that ClusterIP,
//!   or the per-endpoint name of a headless Service's endpoint that has a `hostname`; other
//!   reverse names are not ours.
//! - `<a-b-c-d>.<ns>.pod.<zone>` → `a.b.c.d`, whatever the pods (kube-dns' and CoreDNS'
//!   "pods insecure" mode); `dns-version.<zone>` TXT → the schema version.
//! - Any other name inside the zone is NXDOMAIN; a name that exists but has no record of the
//!   asked type (AAAA: minik8s has no IPv6) is NODATA. Names outside the zone are not ours.
//!
//! The [`Index`] is built once per change of the watch caches and answers a question with one
//! hash lookup (pod names are parsed, not looked up). Read next: `server.rs`, which turns an
//! [`Answer`] into a DNS message.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The version of the Kubernetes DNS schema these records follow (`dns-version.<zone>`).
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One record's data; its owner name is the name asked about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rdata {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// A service location: where a named port of a Service is served.
    Srv(Srv),
    /// A text record (only `dns-version`).
    Txt(String),
    /// An alias: ask about this name instead (fully qualified, without the final dot).
    Cname(String),
    /// A reverse-lookup answer: the name of an address (without the final dot).
    Ptr(String),
}

/// An SRV record's data (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Srv {
    /// Lower is tried first; always 0 here.
    pub priority: u16,
    /// Share among records of the same priority (100 split between the endpoints).
    pub weight: u16,
    /// The port number.
    pub port: u16,
    /// The host serving it, a fully qualified name without the final dot.
    pub target: String,
}

/// What the cluster domain says about one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The name has records of the asked type (never empty).
    Records(Vec<Rdata>),
    /// The name exists but has no record of that type.
    NoData,
    /// The name is inside the zone and does not exist.
    NxDomain,
    /// The name is outside the cluster domain: someone else's (forward it).
    NotOurs,
}

/// The records of one name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Node {
    a: BTreeSet<Ipv4Addr>,
    srv: BTreeSet<Srv>,
    /// An ExternalName Service's alias; then the name has no other record.
    cname: Option<String>,
}

/// Every name of the cluster domain that Services and EndpointSlices make, by lowercase name.
#[derive(Clone, Debug)]
pub struct Index {
    /// The cluster domain, lowercase, without the final dot (`cluster.local`).
    zone: String,
    names: HashMap<String, Node>,
    /// The names of an address, for `in-addr.arpa` questions.
    ptr: HashMap<Ipv4Addr, BTreeSet<String>>,
}

impl Index {
    /// The index of a zone with no Service: only the zone's own structure.
    pub fn empty(zone: &str) -> Index {
        let zone = normalize(zone);
        let mut index = Index {
            names: HashMap::new(),
            ptr: HashMap::new(),
            zone,
        };
        for sub in ["svc", "pod"] {
            let name = format!("{sub}.{}", index.zone);
            index.node(&name);
        }
        index
    }

    /// The index of `services` and the EndpointSlices `slices` (matched to their Service by the
    /// `kubernetes.io/service-name` label, within the namespace).
    pub fn build<'a>(
        zone: &str,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Index {
        let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            let labels = slice.metadata.labels.as_ref();
            let (Some(ns), Some(svc)) = (
                slice.metadata.namespace.as_deref(),
                labels.and_then(|l| l.get(SERVICE_NAME_LABEL)),
            ) else {
                continue;
            };
            by_service
                .entry((ns, svc.as_str()))
                .or_default()
                .push(slice);
        }
        let mut index = Index::empty(zone);
        for service in services {
            let (Some(ns), Some(name)) = (
                service.metadata.namespace.as_deref(),
                service.metadata.name.as_deref(),
            ) else {
                continue;
            };
            let slices = by_service.remove(&(ns, name)).unwrap_or_default();
            index.add_service(ns, name, service, &slices);
        }
        index
    }

    /// The cluster domain this index answers for.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Every name the index holds (lowercase, without the final dot), in no order; pod and
    /// reverse names, which are computed per question, are not among them.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// Whether `name`, one of [`Index::names`], has the same records here as in `other`, in
    /// the same zone: then every A, AAAA, CNAME or TXT question about it has the same answer
    /// in both (an SRV answer's additional section depends on other names too).
    pub fn same_records(&self, other: &Index, name: &str) -> bool {
        self.zone == other.zone
            && matches!((self.names.get(name), other.names.get(name)), (Some(a), Some(b)) if a == b)
    }

    /// The answer to a question of type `qtype` about `name` (any case, final dot or not).
    pub fn lookup(&self, name: &str, qtype: RecordType) -> Answer {
        let name = normalize(name);
        if is_below(&name, "in-addr.arpa") {
            return self.reverse(&name, qtype);
        }
        if name != self.zone && !is_below(&name, &self.zone) {
            return Answer::NotOurs;
        }
        if let Some(node) = self.names.get(&name) {
            if let Some(alias) = &node.cname {
                return Answer::Records(vec![Rdata::Cname(alias.clone())]);
            }
            let mut records = Vec::new();
            if matches!(qtype, RecordType::A | RecordType::ANY) {
                records.extend(node.a.iter().copied().map(Rdata::A));
            }
            if matches!(qtype, RecordType::SRV | RecordType::ANY) {
                records.extend(node.srv.iter().cloned().map(Rdata::Srv));
            }
            return if records.is_empty() {
                Answer::NoData
            } else {
                Answer::Records(records)
            };
        }
        let rest = &name[..name.len() - self.zone.len() - 1];
        if rest == "dns-version" {
            return match qtype {
                RecordType::TXT | RecordType::ANY => {
                    Answer::Records(vec![Rdata::Txt(SCHEMA_VERSION.to_string())])
                }
                _ => Answer::NoData,
            };
        }
        match rest.rsplit_once('.') {
            // `<ns>.pod`: an empty non-terminal for any namespace.
            Some((_, "pod")) if !rest.trim_end_matches(".pod").contains('.') => Answer::NoData,
            _ => match pod_address(rest) {
                Some(ip) if matches!(qtype, RecordType::A | RecordType::ANY) => {
                    Answer::Records(vec![Rdata::A(ip)])
                }
                Some(_) => Answer::NoData,
                None => Answer::NxDomain,
            },
        }
    }

    /// A reverse lookup: the names of the address `name` spells backwards, when we have them.
    fn reverse(&self, name: &str, qtype: RecordType) -> Answer {
        let labels = &name[..name.len() - ".in-addr.arpa".len()];
        let octets: Vec<u8> = labels.rsplit('.').filter_map(|o| o.parse().ok()).collect();
        let (Ok(octets), 4) = (<[u8; 4]>::try_from(octets), labels.split('.').count()) else {
            return Answer::NotOurs;
        };
        let Some(names) = self.ptr.get(&Ipv4Addr::from(octets)) else {
            return Answer::NotOurs;
        };
        match qtype {
            RecordType::PTR | RecordType::ANY => {
                Answer::Records(names.iter().cloned().map(Rdata::Ptr).collect())
            }
            _ => Answer::NoData,
        }
    }

    /// Add one Service's names, with its EndpointSlices `slices` for a headless one.
    fn add_service(&mut self, ns: &str, name: &str, service: &Service, slices: &[&EndpointSlice]) {
        let base = format!("{name}.{ns}.svc.{}", self.zone);
        self.node(&base);
        let Some(spec) = service.spec.as_ref() else {
            return;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(target) = spec.external_name.as_deref().filter(|t| !t.is_empty()) {
                self.node(&base).cname = Some(normalize(target));
            }
            return;
        }
        match spec.cluster_ip.as_deref() {
            Some("None") => {
                let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
                self.add_headless(&base, slices, publish_not_ready);
            }
            Some(ip) => {
                // An address not yet allocated (empty) or not IPv4 gives the name no record.
                let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                    return;
                };
                self.node(&base).a.insert(ip);
                self.ptr.entry(ip).or_default().insert(base.clone());
                for port in spec.ports.iter().flatten() {
                    let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
                        continue;
                    };
                    let (Ok(number), proto) = (u16::try_from(port.port), protocol(&port.protocol))
                    else {
                        continue;
                    };
                    let srv = Srv {
                        priority: 0,
                        weight: 100,
                        port: number,
                        target: base.clone(),
                    };
                    self.node(&format!("_{port_name}._{proto}.{base}"))
                        .srv
                        .insert(srv);
                }
            }
            None => {}
        }
    }

    /// A headless Service's names: its ready endpoints' addresses at `base` and at their own
    /// names below it, and SRV records of its named ports pointing at those names.
    fn add_headless(&mut self, base: &str, slices: &[&EndpointSlice], publish_not_ready: bool) {
        let mut srv_names = BTreeSet::new();
        for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
            for endpoint in &slice.endpoints {
                let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false);
                if !ready && !publish_not_ready {
                    continue;
                }
                for address in &endpoint.addresses {
                    let Ok(ip) = address.parse::<Ipv4Addr>() else {
                        continue;
                    };
                    let hostname = endpoint.hostname.as_deref().filter(|h| !h.is_empty());
                    let host = match hostname {
                        Some(h) => h.to_ascii_lowercase(),
                        None => address.replace('.', "-"),
                    };
                    let target = format!("{host}.{base}");
                    if hostname.is_some() {
                        self.ptr.entry(ip).or_default().insert(target.clone());
                    }
                    self.node(base).a.insert(ip);
                    self.node(&target).a.insert(ip);
                    for port in slice.ports.iter().flatten() {
                        let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
                            continue;
                        };
                        let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
                            continue;
                        };
                        let proto = protocol(&port.protocol);
                        let name = format!("_{port_name}._{proto}.{base}");
                        self.node(&name).srv.insert(Srv {
                            priority: 0,
                            weight: 0,
                            port: number,
                            target: target.clone(),
                        });
                        srv_names.insert(name);
                    }
                }
            }
        }
        // The endpoints of one port share a weight of 100 equally (at least 1 each).
        for name in srv_names {
            let node = self.node(&name);
            let weight = u16::try_from(100 / node.srv.len().max(1))
                .unwrap_or(1)
                .max(1);
            node.srv = std::mem::take(&mut node.srv)
                .into_iter()
                .map(|srv| Srv { weight, ..srv })
                .collect();
        }
    }

    /// The node of `name`, created with every name between it and the zone (empty
    /// non-terminals such as `<ns>.svc.<zone>` exist: NODATA, not NXDOMAIN).
    fn node(&mut self, name: &str) -> &mut Node {
        let mut parent = name;
        while let Some((_, up)) = parent.split_once('.') {
            if up.len() < self.zone.len() {
                break;
            }
            self.names.entry(up.to_string()).or_default();
            parent = up;
        }
        self.names.entry(name.to_string()).or_default()
    }
}

/// `a-b-c-d.<ns>.pod` (the part of a pod name above the zone) → `a.b.c.d`.
fn pod_address(rest: &str) -> Option<Ipv4Addr> {
    let mut labels = rest.split('.');
    let (dashed, _ns, pod, end) = (
        labels.next()?,
        labels.next()?,
        labels.next()?,
        labels.next(),
    );
    if pod != "pod" || end.is_some() {
        return None;
    }
    dashed.replace('-', ".").parse().ok()
}

/// A port's protocol as the SRV label wants it (`tcp`, `udp`, `sctp`; TCP by default).
fn protocol(protocol: &Option<String>) -> String {
    protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase()
}

/// `name` lowercase without the final dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `name` lies strictly below `zone` (both normalized).
fn is_below(name: &str, zone: &str) -> bool {
    name.len() > zone.len() + 1
        && name.ends_with(zone)
        && name.as_bytes()[name.len() - zone.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const ZONE: &str = "cluster.local";

    fn service(ns: &str, name: &str, cluster_ip: &str, ports: &[(&str, i32, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(name, port, proto)| ServicePort {
                            name: Some(name.to_string()),
                            port: *port,
                            protocol: Some(proto.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// An IPv4 slice of Service `svc` with endpoints `(ip, ready, hostname)` and ports.
    fn slice(
        ns: &str,
        svc: &str,
        endpoints: &[(&str, Option<bool>, Option<&str>)],
        ports: &[(&str, i32)],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(format!("{svc}-abcde")),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: endpoints
                .iter()
                .map(|(ip, ready, hostname)| Endpoint {
                    addresses: vec![ip.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..Default::default()
                    }),
                    hostname: hostname.map(str::to_string),
                    ..Default::default()
                })
                .collect(),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port)| EndpointPort {
                        name: Some(name.to_string()),
                        port: Some(*port),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    fn a(ips: &[&str]) -> Answer {
        Answer::Records(ips.iter().map(|ip| Rdata::A(ip.parse().unwrap())).collect())
    }

    fn srv(weight: u16, port: u16, target: &str) -> Rdata {
        Rdata::Srv(Srv {
            priority: 0,
            weight,
            port,
            target: target.into(),
        })
    }

    fn web() -> Service {
        service(
            "default",
            "web",
            "10.96.0.20",
            &[("http", 80, "TCP"), ("", 81, "TCP"), ("dns", 53, "UDP")],
        )
    }

    fn headless() -> (Service, EndpointSlice) {
        let svc = service("db", "pg", "None", &[("sql", 5432, "TCP")]);
        let slice = slice(
            "db",
            "pg",
            &[
                ("10.244.0.5", Some(true), Some("pg-0")),
                ("10.244.1.6", None, None),
                ("10.244.1.7", Some(false), None),
            ],
            &[("sql", 5432)],
        );
        (svc, slice)
    }

    #[test]
    fn cluster_ip_service_has_an_a_record() {
        let index = Index::build(ZONE, [&web()], []);
        let want = a(&["10.96.0.20"]);
        assert_eq!(
            index.lookup("web.default.svc.cluster.local.", RecordType::A),
            want
        );
        assert_eq!(
            index.lookup("WEB.Default.svc.cluster.local", RecordType::A),
            want
        );
    }

    #[test]
    fn named_ports_have_srv_records_pointing_at_the_service() {
        let index = Index::build(ZONE, [&web()], []);
        let target = "web.default.svc.cluster.local";
        assert_eq!(
            index.lookup("_http._tcp.web.default.svc.cluster.local", RecordType::SRV),
            Answer::Records(vec![srv(100, 80, target)])
        );
        assert_eq!(
            index.lookup("_dns._udp.web.default.svc.cluster.local", RecordType::SRV),
            Answer::Records(vec![srv(100, 53, target)])
        );
        // The protocol is part of the name, and an unnamed port has no SRV record.
        assert_eq!(
            index.lookup("_dns._tcp.web.default.svc.cluster.local", RecordType::SRV),
            Answer::NxDomain
        );
        assert_eq!(
            index.lookup("_._tcp.web.default.svc.cluster.local", RecordType::SRV),
            Answer::NxDomain
        );
    }

    #[test]
    fn headless_service_answers_with_its_ready_endpoints() {
        let (svc, slice) = headless();
        let index = Index::build(ZONE, [&svc], [&slice]);
        // Ready, or with no readiness said (nil means ready); the unready one left out.
        assert_eq!(
            index.lookup("pg.db.svc.cluster.local", RecordType::A),
            a(&["10.244.0.5", "10.244.1.6"])
        );
        assert_eq!(
            index.lookup("pg-0.pg.db.svc.cluster.local", RecordType::A),
            a(&["10.244.0.5"])
        );
        assert_eq!(
            index.lookup("10-244-1-6.pg.db.svc.cluster.local", RecordType::A),
            a(&["10.244.1.6"])
        );
        assert_eq!(
            index.lookup("10-244-1-7.pg.db.svc.cluster.local", RecordType::A),
            Answer::NxDomain
        );
    }

    #[test]
    fn headless_srv_records_point_at_each_endpoint() {
        let (svc, slice) = headless();
        let index = Index::build(ZONE, [&svc], [&slice]);
        assert_eq!(
            index.lookup("_sql._tcp.pg.db.svc.cluster.local", RecordType::SRV),
            Answer::Records(vec![
                srv(50, 5432, "10-244-1-6.pg.db.svc.cluster.local"),
                srv(50, 5432, "pg-0.pg.db.svc.cluster.local"),
            ])
        );
    }

    #[test]
    fn publish_not_ready_addresses_includes_unready_endpoints() {
        let (mut svc, slice) = headless();
        svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let index = Index::build(ZONE, [&svc], [&slice]);
        assert_eq!(
            index.lookup("pg.db.svc.cluster.local", RecordType::A),
            a(&["10.244.0.5", "10.244.1.6", "10.244.1.7"])
        );
    }

    #[test]
    fn slices_of_another_namespace_or_service_are_not_mixed_in() {
        let (svc, _) = headless();
        let other_ns = slice("default", "pg", &[("10.244.2.2", None, None)], &[]);
        let other_svc = slice("db", "redis", &[("10.244.2.3", None, None)], &[]);
        let index = Index::build(ZONE, [&svc], [&other_ns, &other_svc]);
        assert_eq!(
            index.lookup("pg.db.svc.cluster.local", RecordType::A),
            Answer::NoData
        );
    }

    #[test]
    fn pod_names_resolve_to_their_dashed_address() {
        let index = Index::empty(ZONE);
        assert_eq!(
            index.lookup("10-244-0-5.default.pod.cluster.local", RecordType::A),
            a(&["10.244.0.5"])
        );
        assert_eq!(
            index.lookup("10-244-0-5.default.pod.cluster.local", RecordType::AAAA),
            Answer::NoData
        );
        assert_eq!(
            index.lookup("10-244-0-500.default.pod.cluster.local", RecordType::A),
            Answer::NxDomain
        );
        assert_eq!(
            index.lookup("x.10-244-0-5.default.pod.cluster.local", RecordType::A),
            Answer::NxDomain
        );
        assert_eq!(
            index.lookup("default.pod.cluster.local", RecordType::A),
            Answer::NoData
        );
    }

    #[test]
    fn other_names_in_the_zone_do_not_exist() {
        let index = Index::build(ZONE, [&web()], []);
        for name in [
            "nope.default.svc.cluster.local",
            "web.other.svc.cluster.local",
            "web.default.cluster.local",
            "x.web.default.svc.cluster.local",
            "foo.cluster.local",
        ] {
            assert_eq!(
                index.lookup(name, RecordType::A),
                Answer::NxDomain,
                "{name}"
            );
        }
    }

    #[test]
    fn aaaa_and_other_types_of_an_existing_name_are_nodata() {
        let index = Index::build(ZONE, [&web()], []);
        for qtype in [RecordType::AAAA, RecordType::MX, RecordType::SRV] {
            assert_eq!(
                index.lookup("web.default.svc.cluster.local", qtype),
                Answer::NoData,
                "{qtype}"
            );
        }
        // The names between a Service and the zone exist too.
        for name in [
            "default.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "_tcp.web.default.svc.cluster.local",
        ] {
            assert_eq!(index.lookup(name, RecordType::A), Answer::NoData, "{name}");
        }
    }

    #[test]
    fn names_outside_the_zone_are_not_ours() {
        let index = Index::build(ZONE, [&web()], []);
        for name in [
            "example.com.",
            "cluster.local.example.com",
            "xcluster.local",
            "local",
        ] {
            assert_eq!(index.lookup(name, RecordType::A), Answer::NotOurs, "{name}");
        }
    }

    #[test]
    fn a_service_without_an_allocated_ip_exists_without_records() {
        let index = Index::build(ZONE, [&service("default", "new", "", &[])], []);
        assert_eq!(
            index.lookup("new.default.svc.cluster.local", RecordType::A),
            Answer::NoData
        );
    }

    #[test]
    fn external_name_service_is_an_alias() {
        let mut svc = service("default", "search", "", &[]);
        let spec = svc.spec.as_mut().unwrap();
        spec.type_ = Some("ExternalName".into());
        spec.external_name = Some("Search.Example.com.".into());
        let index = Index::build(ZONE, [&svc], []);
        let alias = Answer::Records(vec![Rdata::Cname("search.example.com".into())]);
        for qtype in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
            assert_eq!(
                index.lookup("search.default.svc.cluster.local", qtype),
                alias,
                "{qtype}"
            );
        }
    }

    #[test]
    fn cluster_ips_and_named_endpoints_have_reverse_names() {
        let (svc, slice) = headless();
        let index = Index::build(ZONE, [&web(), &svc], [&slice]);
        let ptr = |name: &str| Answer::Records(vec![Rdata::Ptr(name.into())]);
        assert_eq!(
            index.lookup("20.0.96.10.in-addr.arpa.", RecordType::PTR),
            ptr("web.default.svc.cluster.local")
        );
        assert_eq!(
            index.lookup("5.0.244.10.in-addr.arpa", RecordType::PTR),
            ptr("pg-0.pg.db.svc.cluster.local")
        );
        assert_eq!(
            index.lookup("20.0.96.10.in-addr.arpa", RecordType::A),
            Answer::NoData
        );
        // An endpoint without a hostname, an unknown address, a partial name: someone else's.
        for name in [
            "6.1.244.10.in-addr.arpa",
            "1.1.168.192.in-addr.arpa",
            "96.10.in-addr.arpa",
        ] {
            assert_eq!(
                index.lookup(name, RecordType::PTR),
                Answer::NotOurs,
                "{name}"
            );
        }
    }

    #[test]
    fn dns_version_is_the_schema_version() {
        let index = Index::empty("Cluster.Local.");
        assert_eq!(
            index.lookup("dns-version.cluster.local", RecordType::TXT),
            Answer::Records(vec![Rdata::Txt(SCHEMA_VERSION.into())])
        );
    }
}
