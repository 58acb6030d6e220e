//! A pod's `/etc/resolv.conf`, as the real kubelet forms it (`GetPodDNS` in
//! `pkg/kubelet/network/dns`). The pod's `dnsPolicy` picks the base: `ClusterFirst` (the
//! default) makes the cluster DNS Service (`--cluster-dns`) the only nameserver and searches
//! `<ns>.svc.<domain>`, `svc.<domain>`, `<domain>` (`--cluster-domain`) before the node's own
//! search domains, with `options ndots:5`, so that `web` and `web.other` are tried as Service
//! names first; `Default` takes the node's resolver (`--resolv-conf`); `None` starts empty.
//! A `hostNetwork` pod shares the node's network, so `ClusterFirst` falls back to `Default`
//! for it unless it asks for `ClusterFirstWithHostNet`. Then the pod's `dnsConfig` is merged
//! in (nameservers and searches appended without duplicates, options overriding by name), and
//! the result is cut to the resolver's limits with a `DNSConfigForming` warning.
//!
//! [`pod_dns`] is the pure part; the pod worker reads the node's file and hands the result to
//! the runtime's sandbox as CRI's `DNSConfig`, which the runtime writes (`runtime::container::
//! DnsConfig`), one file for all the pod's containers. Read `pod_worker/pass.rs` next.

use std::net::IpAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};
use runtime::container::DnsConfig;

use crate::events::PodEvent;

/// `--cluster-domain`'s default, kubeadm's `clusterDomain`.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// glibc reads at most three `nameserver` lines (`MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;
/// Search domains a pod may have (Kubernetes' `MaxDNSSearchPaths`: 6 before 1.28's
/// `ExpandedDNSConfig`, 32 since, as glibc 2.26 lifted its own limit).
pub const MAX_SEARCH_PATHS: usize = 32;
/// Characters of the whole search line (`MaxDNSSearchListChars`: 256 before, 2048 since).
pub const MAX_SEARCH_LINE_CHARS: usize = 2048;
/// A longer search domain makes some resolvers abort (glibc 2.28): it is left out.
const MAX_SEARCH_DOMAIN_CHARS: usize = 253;
/// `ClusterFirst`'s options: a name with fewer than 5 dots is tried with each search domain
/// first (`web.default` → `web.default.svc.cluster.local`).
const CLUSTER_OPTIONS: &str = "ndots:5";

/// The node's DNS settings: the kubelet's flags.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// `--cluster-dns`: the cluster DNS Service's address(es).
    pub cluster_dns: Vec<IpAddr>,
    /// `--cluster-domain` (empty: no cluster search domains).
    pub cluster_domain: String,
    /// `--resolv-conf`: the node's resolver file, the base of every policy but `None`;
    /// `None` (given as `""`): no file, `Default` pods get the node's loopback resolver.
    pub resolv_conf: Option<PathBuf>,
    /// The node's address: with no `--resolv-conf`, its family picks `127.0.0.1` or `::1`.
    pub node_ip: Option<IpAddr>,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            cluster_dns: Vec::new(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.into(),
            resolv_conf: Some("/etc/resolv.conf".into()),
            node_ip: None,
        }
    }
}

impl DnsSettings {
    /// Read and parse `--resolv-conf` (`None` when there is none).
    pub fn read_node_resolv_conf(&self) -> std::io::Result<Option<DnsConfig>> {
        let Some(path) = &self.resolv_conf else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Some(parse_resolv_conf(&text)))
    }
}

/// What [`pod_dns`] decided: the sandbox's resolver and the Events to post about it.
#[derive(Debug, Clone)]
pub struct PodDns {
    pub config: DnsConfig,
    pub events: Vec<PodEvent>,
}

/// Where a pod's resolver starts from (upstream's `podDNSType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    /// `ClusterFirst` (not on the host network) and `ClusterFirstWithHostNet`.
    Cluster,
    /// `Default`, and `ClusterFirst` on the host network.
    Node,
    /// `None`: only the pod's `dnsConfig`.
    Empty,
}

fn base(pod: &Pod) -> Base {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network) == Some(true);
    match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("None") => Base::Empty,
        Some("Default") => Base::Node,
        Some("ClusterFirstWithHostNet") => Base::Cluster,
        // ClusterFirst, and anything the apiserver should have refused
        _ if host_network => Base::Node,
        _ => Base::Cluster,
    }
}

/// resolv.conf(5) as the kubelet reads the node's: `nameserver` lines accumulate, the last
/// `search` and the last `options` line win, `#` comments are skipped, and a search domain's
/// trailing dot is dropped (so `a.` and `a` count once).
pub fn parse_resolv_conf(text: &str) -> DnsConfig {
    let mut dns = DnsConfig::default();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => dns.servers.extend(fields.next().map(str::to_string)),
            Some("search") => {
                dns.searches = fields
                    .map(|s| s.trim_end_matches('.').to_string())
                    .collect();
            }
            Some("options") => dns.options = fields.map(str::to_string).collect(),
            _ => {}
        }
    }
    dns
}

/// The pod's resolver from its spec, the node's settings and the node's parsed resolv.conf
/// (`node`: `None` when there is no `--resolv-conf`).
pub fn pod_dns(pod: &Pod, settings: &DnsSettings, node: Option<&DnsConfig>) -> PodDns {
    let mut events = Vec::new();
    let node_base = || node_resolver(pod, settings, node);
    let mut config = match base(pod) {
        Base::Empty => DnsConfig::default(),
        Base::Cluster if !settings.cluster_dns.is_empty() => DnsConfig {
            servers: settings.cluster_dns.iter().map(IpAddr::to_string).collect(),
            searches: cluster_searches(pod, settings, node),
            options: vec![CLUSTER_OPTIONS.into()],
        },
        Base::Cluster => {
            let msg = "kubelet does not have ClusterDNS IP configured and cannot create Pod \
                       using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
            tracing::warn!(pod = %pod_ref(pod), "{msg}");
            events.push(PodEvent::warning(
                "MissingClusterDNS",
                None,
                format!("pod: {:?}. {msg}", pod_ref(pod)),
            ));
            node_base()
        }
        Base::Node => node_base(),
    };
    if let Some(extra) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        merge(&mut config, extra);
    }
    fit_limits(&mut config, &mut events);
    PodDns { config, events }
}

/// `name_namespace(uid)`, how the kubelet names a pod in its messages.
fn pod_ref(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or("default"),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// `Default`: the node's resolver. Without `--resolv-conf`, the loopback resolver (the
/// kubelet's way of saying "none": `nameserver 127.0.0.1`, `search .`). Pods here always
/// have their own network namespace, so a loopback nameserver of the node's file (a local
/// stub such as systemd-resolved's 127.0.0.53) is dropped, as Docker drops it: the pod
/// could not reach it. Point `--resolv-conf` at the stub's upstream file instead.
fn node_resolver(pod: &Pod, settings: &DnsSettings, node: Option<&DnsConfig>) -> DnsConfig {
    let Some(node) = node else {
        let lo = match settings.node_ip {
            Some(IpAddr::V6(_)) => "::1",
            _ => "127.0.0.1",
        };
        return DnsConfig {
            servers: vec![lo.into()],
            searches: vec![".".into()],
            options: Vec::new(),
        };
    };
    let mut dns = node.clone();
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    if !host_network {
        dns.servers.retain(|s| {
            s.parse::<IpAddr>()
                .map_or(true, |ip: IpAddr| !ip.is_loopback())
        });
    }
    dns
}

/// `ClusterFirst`'s search line: the pod's namespace's Services, all Services, the cluster
/// domain, then the node's own search domains, without duplicates.
fn cluster_searches(pod: &Pod, settings: &DnsSettings, node: Option<&DnsConfig>) -> Vec<String> {
    let node_searches = node.map(|n| n.searches.clone()).unwrap_or_default();
    let domain = &settings.cluster_domain;
    if domain.is_empty() {
        return node_searches;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut searches = vec![
        format!("{ns}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.clone(),
    ];
    searches.extend(node_searches);
    dedup(searches)
}

/// The pod's `dnsConfig` on top of the policy's: nameservers and searches appended (each
/// once), options replaced by name or appended (`ndots:2` overrides `ndots:5`; a name
/// without a value is written bare).
fn merge(config: &mut DnsConfig, extra: &PodDNSConfig) {
    let servers = std::mem::take(&mut config.servers);
    config.servers = dedup(
        servers
            .into_iter()
            .chain(extra.nameservers.clone().unwrap_or_default()),
    );
    let searches = std::mem::take(&mut config.searches);
    config.searches = dedup(
        searches
            .into_iter()
            .chain(extra.searches.clone().unwrap_or_default()),
    );
    for opt in extra.options.iter().flatten() {
        let Some(name) = opt.name.as_deref() else {
            continue;
        };
        let line = match opt.value.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{name}:{v}"),
            None => name.to_string(),
        };
        let same_name = |o: &String| o.split(':').next() == Some(name);
        match config.options.iter_mut().find(|o| same_name(o)) {
            Some(o) => *o = line,
            None => config.options.push(line),
        }
    }
}

fn dedup(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Cut the config to what resolvers read, with upstream's `DNSConfigForming` warnings: three
/// nameservers; then the search domains: at most [`MAX_SEARCH_PATHS`], none longer than 253
/// characters, and domains dropped from the end until the line fits [`MAX_SEARCH_LINE_CHARS`].
fn fit_limits(config: &mut DnsConfig, events: &mut Vec<PodEvent>) {
    if config.servers.len() > MAX_NAMESERVERS {
        config.servers.truncate(MAX_NAMESERVERS);
        events.push(forming_warning(format!(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied \
             nameserver line is: {}",
            config.servers.join(" ")
        )));
    }
    let before = config.searches.len();
    config.searches.truncate(MAX_SEARCH_PATHS);
    config
        .searches
        .retain(|s| s.len() <= MAX_SEARCH_DOMAIN_CHARS);
    while config.searches.join(" ").len() > MAX_SEARCH_LINE_CHARS {
        config.searches.pop();
    }
    if config.searches.len() < before {
        events.push(forming_warning(format!(
            "Search Line limits were exceeded, some search paths have been omitted, the \
             applied search line is: {}",
            config.searches.join(" ")
        )));
    }
}

fn forming_warning(message: String) -> PodEvent {
    tracing::warn!(%message, "DNS config cut to the resolver's limits");
    PodEvent::warning("DNSConfigForming", None, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn settings() -> DnsSettings {
        DnsSettings {
            cluster_dns: vec!["10.96.0.10".parse().unwrap()],
            ..Default::default()
        }
    }

    fn node() -> DnsConfig {
        parse_resolv_conf(
            "# written by hand\nnameserver 192.0.2.53\nnameserver 127.0.0.53\n\
             search lab.example. corp.example\noptions timeout:2 edns0\n",
        )
    }

    /// The file the pod gets, and the reasons of the Events about it.
    fn resolv(
        pod: &Pod,
        settings: &DnsSettings,
        node: Option<&DnsConfig>,
    ) -> (String, Vec<&'static str>) {
        let dns = pod_dns(pod, settings, node);
        let reasons = dns.events.iter().map(|e| e.reason).collect();
        (dns.config.to_resolv_conf(), reasons)
    }

    #[test]
    fn the_nodes_file_is_parsed_as_the_kubelet_reads_it() {
        let n = parse_resolv_conf(
            "nameserver 1.1.1.1\nsearch a b\n  nameserver 2.2.2.2 \n; note\nsearch c.\noptions x\noptions ndots:2\n",
        );
        assert_eq!(n.servers, ["1.1.1.1", "2.2.2.2"]);
        assert_eq!(n.searches, ["c"]);
        assert_eq!(n.options, ["ndots:2"]);
    }

    #[test]
    fn cluster_first_searches_the_namespace_then_the_nodes_domains() {
        let (text, events) = resolv(&pod(json!({})), &settings(), Some(&node()));
        assert_eq!(
            text,
            "search shop.svc.cluster.local svc.cluster.local cluster.local lab.example corp.example\n\
             nameserver 10.96.0.10\noptions ndots:5\n"
        );
        assert!(events.is_empty());
        let explicit = pod(json!({"dnsPolicy": "ClusterFirst"}));
        assert_eq!(resolv(&explicit, &settings(), Some(&node())).0, text);
    }

    #[test]
    fn cluster_first_with_several_servers_and_another_domain() {
        let s = DnsSettings {
            cluster_dns: vec!["10.96.0.10".parse().unwrap(), "fd00::a".parse().unwrap()],
            cluster_domain: "k8s.test".into(),
            ..Default::default()
        };
        let (text, _) = resolv(&pod(json!({})), &s, None);
        assert_eq!(
            text,
            "search shop.svc.k8s.test svc.k8s.test k8s.test\n\
             nameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5\n"
        );
        let no_domain = DnsSettings {
            cluster_domain: String::new(),
            ..settings()
        };
        let (text, _) = resolv(&pod(json!({})), &no_domain, Some(&node()));
        assert_eq!(
            text,
            "search lab.example corp.example\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_is_the_nodes_resolver_without_its_loopback_stub() {
        let (text, events) = resolv(
            &pod(json!({"dnsPolicy": "Default"})),
            &settings(),
            Some(&node()),
        );
        assert_eq!(
            text,
            "search lab.example corp.example\nnameserver 192.0.2.53\noptions timeout:2 edns0\n"
        );
        assert!(events.is_empty());
    }

    #[test]
    fn default_without_resolv_conf_is_the_loopback_resolver() {
        let p = pod(json!({"dnsPolicy": "Default"}));
        let (text, _) = resolv(&p, &settings(), None);
        assert_eq!(text, "search .\nnameserver 127.0.0.1\n");
        let v6 = DnsSettings {
            node_ip: Some("fd00::1".parse().unwrap()),
            ..settings()
        };
        assert_eq!(resolv(&p, &v6, None).0, "search .\nnameserver ::1\n");
    }

    #[test]
    fn host_network_falls_back_to_default_unless_cluster_first_with_host_net() {
        let host = pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirst"}));
        let (text, events) = resolv(&host, &settings(), Some(&node()));
        // the node's own stub is reachable from the node's network namespace
        assert_eq!(
            text,
            "search lab.example corp.example\nnameserver 192.0.2.53\nnameserver 127.0.0.53\n\
             options timeout:2 edns0\n"
        );
        assert!(events.is_empty());
        let with_host_net =
            pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert_eq!(
            resolv(&with_host_net, &settings(), Some(&node())).0,
            resolv(&pod(json!({})), &settings(), Some(&node())).0
        );
    }

    #[test]
    fn missing_cluster_dns_falls_back_to_default_with_a_warning() {
        let no_dns = DnsSettings::default();
        let dns = pod_dns(&pod(json!({})), &no_dns, Some(&node()));
        assert_eq!(
            dns.config.to_resolv_conf(),
            "search lab.example corp.example\nnameserver 192.0.2.53\noptions timeout:2 edns0\n"
        );
        assert_eq!(dns.events.len(), 1);
        assert!(dns.events[0].warning);
        assert_eq!(dns.events[0].reason, "MissingClusterDNS");
        assert_eq!(
            dns.events[0].message,
            "pod: \"web_shop(u1)\". kubelet does not have ClusterDNS IP configured and cannot \
             create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy."
        );
        // Default and None never needed it
        for policy in ["Default", "None"] {
            let p = pod(json!({"dnsPolicy": policy, "dnsConfig": {"nameservers": ["1.2.3.4"]}}));
            assert!(
                pod_dns(&p, &no_dns, Some(&node())).events.is_empty(),
                "{policy}"
            );
        }
    }

    #[test]
    fn none_is_only_the_pods_dns_config() {
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.2.3.4"],
            "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix", "ns1.svc.cluster-domain.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        let (text, events) = resolv(&p, &settings(), Some(&node()));
        assert_eq!(
            text,
            "search ns1.svc.cluster-domain.example my.dns.search.suffix\n\
             nameserver 1.2.3.4\noptions ndots:2 edns0\n"
        );
        assert!(events.is_empty());
        let nothing = pod(json!({"dnsPolicy": "None"}));
        assert!(pod_dns(&nothing, &settings(), Some(&node()))
            .config
            .is_empty());
    }

    #[test]
    fn dns_config_is_merged_into_the_policys() {
        let p = pod(json!({"dnsConfig": {
            "nameservers": ["10.96.0.10", "192.0.2.1"],
            "searches": ["svc.cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request-reopen"}]}}));
        let (text, _) = resolv(&p, &settings(), None);
        assert_eq!(
            text,
            "search shop.svc.cluster.local svc.cluster.local cluster.local extra.example\n\
             nameserver 10.96.0.10\nnameserver 192.0.2.1\noptions ndots:1 single-request-reopen\n"
        );
        let default = pod(json!({"dnsPolicy": "Default", "dnsConfig": {
            "options": [{"name": "timeout", "value": "5"}]}}));
        assert_eq!(
            resolv(&default, &settings(), Some(&node())).0,
            "search lab.example corp.example\nnameserver 192.0.2.53\noptions timeout:5 edns0\n"
        );
    }

    #[test]
    fn more_than_three_nameservers_are_cut_with_a_warning() {
        let p = pod(json!({"dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3"]}}));
        let dns = pod_dns(&p, &settings(), None);
        assert_eq!(dns.config.servers, ["10.96.0.10", "1.1.1.1", "2.2.2.2"]);
        assert_eq!(dns.events.len(), 1);
        assert_eq!(dns.events[0].reason, "DNSConfigForming");
        assert_eq!(
            dns.events[0].message,
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied \
             nameserver line is: 10.96.0.10 1.1.1.1 2.2.2.2"
        );
    }

    #[test]
    fn search_domains_are_cut_to_32_and_2048_characters_with_a_warning() {
        let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {"searches": many}}));
        let dns = pod_dns(&p, &settings(), None);
        assert_eq!(dns.config.searches.len(), MAX_SEARCH_PATHS);
        assert_eq!(dns.config.searches[31], "d31.example");
        assert_eq!(dns.events.len(), 1);
        assert_eq!(dns.events[0].reason, "DNSConfigForming");
        assert!(dns.events[0]
            .message
            .starts_with("Search Line limits were exceeded, some search paths have been omitted, the applied search line is: d0.example d1.example"));

        // 250-character domains: 8 fit in 2048 characters (8 × 251 - 1 = 2007), the 9th not
        let long: Vec<String> = (0..10)
            .map(|i| format!("{i}{}", ".a".repeat(124)) + "b")
            .collect();
        assert!(long.iter().all(|d| d.len() == 250));
        let too_long = "x".repeat(254);
        let mut searches = vec![too_long.clone()];
        searches.extend(long.clone());
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {"searches": searches}}));
        let dns = pod_dns(&p, &settings(), None);
        assert_eq!(dns.config.searches, long[..8]);
        assert!(dns.config.searches.join(" ").len() <= MAX_SEARCH_LINE_CHARS);
        assert_eq!(dns.events.len(), 1);

        let within = pod(json!({"dnsPolicy": "None", "dnsConfig": {"searches": long[..8]}}));
        assert!(pod_dns(&within, &settings(), None).events.is_empty());
    }
}
