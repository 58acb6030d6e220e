//! Command-line flags of `minik8s-apiserver`, named like kube-apiserver's where one exists.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The Kubernetes API server of minik8s, backed by etcd.
#[derive(Debug, Parser, Clone)]
#[command(name = "minik8s-apiserver", version)]
pub struct Flags {
    /// etcd endpoints, comma separated (http://127.0.0.1:2379).
    #[arg(long = "etcd-servers", required = true, value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Key prefix of every object in etcd.
    #[arg(long = "etcd-prefix", default_value = "/registry")]
    pub etcd_prefix: String,
    /// CSV file of bearer tokens: token,user,uid[,"group1,group2"].
    #[arg(long = "token-auth-file")]
    pub token_auth_file: Option<PathBuf>,
    /// PEM bundle of CAs: a client certificate signed by one authenticates as its CN (user)
    /// in its O values (groups); clients without a certificate may still use a token.
    #[arg(long = "client-ca-file", requires = "tls_cert_file")]
    pub client_ca_file: Option<PathBuf>,
    /// PEM certificate chain to serve HTTPS with.
    #[arg(long = "tls-cert-file", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for --tls-cert-file.
    #[arg(long = "tls-private-key-file", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Authenticate bearer tokens `<id>.<secret>` by their Secret `kube-system/bootstrap-token-<id>`
    /// (type bootstrap.kubernetes.io/token), as nodes joining with kubeadm's tokens send them.
    #[arg(long = "enable-bootstrap-token-auth")]
    pub enable_bootstrap_token_auth: bool,
    /// Serve a non-loopback address without TLS and authentication anyway (labs only).
    #[arg(long = "allow-anonymous")]
    pub allow_anonymous: bool,
    /// Events kept per resource so watchers can resume.
    #[arg(long = "watch-cache-size", default_value_t = 10_000)]
    pub watch_cache_size: usize,
    /// Seconds a watch without timeoutSeconds lasts at least (random in [t, 2t]).
    #[arg(long = "min-request-timeout", default_value_t = 1800)]
    pub min_request_timeout: u64,
    /// Seconds between BOOKMARK events for watchers that allow them.
    #[arg(long = "bookmark-interval", default_value_t = 60)]
    pub bookmark_interval: u64,
    /// File holding the bearer token presented to kubelets (logs, exec).
    #[arg(long = "kubelet-token-file")]
    pub kubelet_token_file: Option<PathBuf>,
    /// PEM CA bundle that kubelet serving certificates must chain to (default: not verified,
    /// like kube-apiserver without --kubelet-certificate-authority).
    #[arg(long = "kubelet-certificate-authority")]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// PEM client certificate presented to kubelets (with --kubelet-client-key); the kubelet's
    /// --client-ca-file verifies it.
    #[arg(long = "kubelet-client-certificate", requires = "kubelet_client_key")]
    pub kubelet_client_certificate: Option<PathBuf>,
    /// PEM private key of --kubelet-client-certificate.
    #[arg(long = "kubelet-client-key", requires = "kubelet_client_certificate")]
    pub kubelet_client_key: Option<PathBuf>,
    /// tolerationSeconds of the not-ready:NoExecute toleration added to every pod that has none.
    #[arg(long = "default-not-ready-toleration-seconds", default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,
    /// tolerationSeconds of the unreachable:NoExecute toleration added to every pod that has
    /// none: how long pods stay bound to a lost node (labs use a few seconds).
    #[arg(long = "default-unreachable-toleration-seconds", default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,
    /// CIDR Services' ClusterIPs are allocated from; its first address is the `kubernetes`
    /// Service's.
    #[arg(long = "service-cluster-ip-range", default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: crate::allocator::IpRange,
    /// Ports NodePort Services' node ports are allocated from (inclusive).
    #[arg(long = "service-node-port-range", default_value = "30000-32767")]
    pub service_node_port_range: crate::allocator::PortRange,
    /// The IP the `kubernetes` Service's endpoints name (default: the --listen address, or
    /// when that is unspecified, the address of the interface towards the default route).
    #[arg(long = "advertise-address")]
    pub advertise_address: Option<IpAddr>,
}

impl Flags {
    /// Refuse to expose an unauthenticated, unencrypted API beyond this machine.
    pub fn check_exposure(&self) -> Result<(), String> {
        let authenticated = self.token_auth_file.is_some()
            || self.client_ca_file.is_some()
            || self.enable_bootstrap_token_auth;
        let secured = self.tls_cert_file.is_some() && authenticated;
        if !self.listen.ip().is_loopback() && !secured && !self.allow_anonymous {
            return Err(format!(
                "refusing to serve {} without TLS and authentication: pass --tls-cert-file and --tls-private-key-file with --client-ca-file, --token-auth-file and/or --enable-bootstrap-token-auth, or --allow-anonymous",
                self.listen
            ));
        }
        Ok(())
    }

    /// Server tunables from the flags.
    pub fn server_config(
        &self,
        authentication: crate::auth::Authentication,
    ) -> crate::state::ServerConfig {
        crate::state::ServerConfig {
            watch_cache_size: self.watch_cache_size,
            min_request_timeout: Duration::from_secs(self.min_request_timeout.max(1)),
            bookmark_interval: Duration::from_secs(self.bookmark_interval.max(1)),
            authentication,
            kubelet_token: None,
            kubelet_ca_pem: None,
            kubelet_client_cert: None,
            service_ranges: crate::allocator::ServiceRanges {
                cluster_ip: self.service_cluster_ip_range,
                node_port: self.service_node_port_range,
            },
            advertise_address: Some(SocketAddr::new(self.advertise_ip(), self.listen.port())),
        }
    }

    /// `--advertise-address`, else the listen IP, else (listening on 0.0.0.0 or ::) the source
    /// address the kernel picks towards a public address (a connected UDP socket; nothing is
    /// sent), else loopback.
    pub fn advertise_ip(&self) -> IpAddr {
        if let Some(ip) = self.advertise_address {
            return ip;
        }
        let ip = self.listen.ip();
        if !ip.is_unspecified() {
            return ip;
        }
        UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("8.8.8.8:53").map(|()| s))
            .and_then(|s| s.local_addr())
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ranges_default_to_kube_apiservers_and_are_checked() {
        let f = Flags::parse_from(["x", "--etcd-servers", "http://e:1"]);
        let c = f.server_config(Default::default());
        assert_eq!(c.service_ranges, crate::allocator::ServiceRanges::default());
        assert_eq!(c.advertise_address, Some("127.0.0.1:6443".parse().unwrap()));
        let bad = |flag: &str, v: &str| {
            Flags::try_parse_from(["x", "--etcd-servers", "http://e:1", flag, v]).is_err()
        };
        assert!(bad("--service-cluster-ip-range", "10.96.0.0"));
        assert!(bad("--service-node-port-range", "32767-30000"));
    }

    #[test]
    fn kubelet_client_certificate_and_key_come_together() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["x", "--etcd-servers", "http://e:1"];
            args.extend_from_slice(extra);
            Flags::try_parse_from(args)
        };
        assert!(parse(&["--kubelet-client-certificate", "c"]).is_err());
        assert!(parse(&["--kubelet-client-key", "k"]).is_err());
        let f = parse(&[
            "--kubelet-client-certificate",
            "c",
            "--kubelet-client-key",
            "k",
        ])
        .unwrap();
        assert_eq!(f.kubelet_client_certificate, Some(PathBuf::from("c")));
        assert_eq!(f.kubelet_client_key, Some(PathBuf::from("k")));
    }

    #[test]
    fn exposure_needs_tls_and_authentication_or_explicit_consent() {
        let f = Flags::parse_from([
            "x",
            "--etcd-servers",
            "http://127.0.0.1:2379",
            "--listen",
            "0.0.0.0:6443",
        ]);
        assert!(f.check_exposure().unwrap_err().contains("refusing"));
        let f = Flags::parse_from([
            "x",
            "--etcd-servers",
            "http://e:1",
            "--listen",
            "0.0.0.0:6443",
            "--allow-anonymous",
        ]);
        assert!(f.check_exposure().is_ok());
        let f = Flags::parse_from(["x", "--etcd-servers", "http://e:1"]);
        assert!(f.check_exposure().is_ok());
        // a client CA is authentication too, but only with TLS
        let secured = |extra: &[&str]| {
            let mut args = vec![
                "x",
                "--etcd-servers",
                "http://e:1",
                "--listen",
                "10.0.0.2:6443",
            ];
            args.extend_from_slice(extra);
            Flags::try_parse_from(args).map(|f| f.check_exposure())
        };
        let tls = ["--tls-cert-file", "c", "--tls-private-key-file", "k"];
        assert!(secured(&tls).unwrap().is_err());
        assert!(secured(&[&tls[..], &["--client-ca-file", "ca"]].concat())
            .unwrap()
            .is_ok());
        assert!(secured(&[&tls[..], &["--token-auth-file", "t"]].concat())
            .unwrap()
            .is_ok());
        assert!(
            secured(&[&tls[..], &["--enable-bootstrap-token-auth"]].concat())
                .unwrap()
                .is_ok()
        );
        assert!(
            secured(&["--client-ca-file", "ca"]).is_err(),
            "needs --tls-cert-file"
        );
    }
}
