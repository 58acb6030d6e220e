//! From a Kubernetes container to runtime options (the kubelet's `generateContainerConfig`):
//! `command`/`args` against the image's Entrypoint/Cmd, env (values and downward-API field
//! refs, `$(VAR)` expansion), resources → cgroup limits, securityContext → user,
//! capabilities, privileged, read-only rootfs, `no_new_privs` and the seccomp profile. The
//! runtime takes limits in
//! the cgroup files' units (bytes, a CFS quota and period, shares): the Kubernetes quantities
//! are converted here, and only here ([`memory_bytes`], [`cpu_millis`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use client::quantity;
use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements, SeccompProfile};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use runtime::cgroups::{CpuQuota, CPU_PERIOD_US};
use runtime::{seccomp, CreateOptions};

use crate::volumes::{self, VolumeError};

/// Runtime container name: `<pod uid>_<container>_<attempt>` (container names are DNS labels,
/// so `_` separates unambiguously); the attempt number is the restart count.
pub fn runtime_name(pod_uid: &str, container: &str, attempt: u32) -> String {
    format!("{pod_uid}_{container}_{attempt}")
}

/// Inverse of [`runtime_name`]: (pod uid, container, attempt).
pub fn parse_runtime_name(name: &str) -> Option<(String, String, u32)> {
    let mut it = name.rsplitn(3, '_');
    let attempt = it.next()?.parse().ok()?;
    let container = it.next()?.to_string();
    let uid = it.next()?.to_string();
    Some((uid, container, attempt))
}

/// Expand `$(VAR)` references from `vars`; `$$` escapes; unknown references stay as written.
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(') {
            match r.find(')') {
                Some(j) if vars.contains_key(&r[..j]) => {
                    out.push_str(&vars[&r[..j]]);
                    rest = &r[j + 1..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn pod_field(pod: &Pod, path: &str, host_ip: &str, pod_ip: Option<&str>) -> String {
    let m = &pod.metadata;
    match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => host_ip.to_string(),
        // without a pod network the pod has only loopback; the node's address is the best answer
        "status.podIP" | "status.podIPs" => pod_ip.unwrap_or(host_ip).to_string(),
        p => p
            .strip_prefix("metadata.labels['")
            .and_then(|r| r.strip_suffix("']"))
            .and_then(|k| m.labels.as_ref()?.get(k).cloned())
            .or_else(|| {
                p.strip_prefix("metadata.annotations['")
                    .and_then(|r| r.strip_suffix("']"))
                    .and_then(|k| m.annotations.as_ref()?.get(k).cloned())
            })
            .unwrap_or_default(),
    }
}

/// Why a container's runtime options cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ContainerConfigError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The pod's `/etc/hosts` could not be made (`etc_hosts.rs`).
    #[error(transparent)]
    HostsFile(#[from] crate::etc_hosts::HostsFileError),
    /// A `seccompProfile` of an unknown type, or `Localhost` without a usable
    /// `localhostProfile`.
    #[error("securityContext.seccompProfile: {reason}")]
    SeccompProfile { reason: String },
    /// A `Localhost` profile that cannot be read or is not a seccomp profile.
    #[error("securityContext.seccompProfile: localhost profile {path:?}: {reason}")]
    LocalhostProfile { path: PathBuf, reason: String },
    /// A resource limit the runtime cannot take.
    #[error("resources.limits.{resource}: {source}")]
    Limit {
        resource: &'static str,
        #[source]
        source: QuantityError,
    },
}

/// A quantity the runtime cannot take: unreadable (`cause` says why), or out of its range.
#[derive(Debug, thiserror::Error)]
#[error("invalid quantity {quantity:?}")]
pub struct QuantityError {
    pub quantity: String,
    #[source]
    pub cause: Option<quantity::QuantityError>,
}

impl QuantityError {
    fn of(q: &Quantity, cause: Option<quantity::QuantityError>) -> QuantityError {
        QuantityError {
            quantity: q.0.clone(),
            cause,
        }
    }
}

/// Reads `q` with the workspace's parser (Kubernetes' grammar, exact arithmetic).
fn parse(q: &Quantity) -> Result<quantity::Quantity, QuantityError> {
    quantity::Quantity::try_from(q).map_err(|e| QuantityError::of(q, Some(e)))
}

/// A memory quantity in bytes, rounded up as Kubernetes' `Value()` does; must be positive.
pub fn memory_bytes(q: &Quantity) -> Result<u64, QuantityError> {
    u64::try_from(parse(q)?.value())
        .ok()
        .filter(|b| *b > 0)
        .ok_or_else(|| QuantityError::of(q, None))
}

/// A CPU quantity (`500m`, `0.5`, `2`, `1k`) in millicores, rounded up as Kubernetes'
/// `MilliValue()` does; must not be negative.
pub fn cpu_millis(q: &Quantity) -> Result<u64, QuantityError> {
    u64::try_from(parse(q)?.millis()).map_err(|_| QuantityError::of(q, None))
}

/// A CPU limit as the kubelet sets it (`MilliCPUToQuota`): `millis` thousandths of the default
/// period, at least the kernel's 1 ms.
fn cpu_quota(millis: u64) -> CpuQuota {
    CpuQuota::per_default_period((millis * CPU_PERIOD_US / 1000).max(CpuQuota::MIN_US))
}

/// A container's cgroup limits in the runtime's units.
struct Limits {
    cpu_quota: Option<CpuQuota>,
    cpu_shares: Option<u64>,
    memory_bytes: Option<u64>,
}

/// The cgroup limits of `resources`: `limits.cpu` → CFS quota, `limits.memory` → bytes,
/// `requests.cpu` → shares (1024 per CPU, at least 2; an unreadable request sets none).
fn limits(resources: Option<&ResourceRequirements>) -> Result<Limits, ContainerConfigError> {
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limit = |resource: &'static str| limits.and_then(|l| l.get(resource));
    let cpu_quota = match limit("cpu") {
        None => None,
        Some(q) => Some(
            cpu_millis(q)
                .and_then(|m| {
                    (m > 0)
                        .then(|| cpu_quota(m))
                        .ok_or_else(|| QuantityError::of(q, None))
                })
                .map_err(|source| ContainerConfigError::Limit {
                    resource: "cpu",
                    source,
                })?,
        ),
    };
    let memory_bytes = limit("memory")
        .map(memory_bytes)
        .transpose()
        .map_err(|source| ContainerConfigError::Limit {
            resource: "memory",
            source,
        })?;
    let cpu_shares = requests
        .and_then(|r| r.get("cpu"))
        .and_then(|q| cpu_millis(q).ok())
        .map(|m| (m * 1024 / 1000).max(2));
    Ok(Limits {
        cpu_quota,
        cpu_shares,
        memory_bytes,
    })
}

/// The seccomp filter of a container from its `seccompProfile` (the container's, else the
/// pod's): `RuntimeDefault` is the runtime's default profile; `Unconfined` or none is no filter,
/// Kubernetes' default without the `SeccompDefault` feature; `Localhost` is the OCI-format
/// profile `localhostProfile` names, relative to the kubelet's `<root-dir>/seccomp`
/// (`seccomp_dir`), as the kubelet's seccomp profile root. A profile that cannot be used fails
/// the container rather than run it unconfined.
fn seccomp_policy(
    profile: Option<&SeccompProfile>,
    seccomp_dir: &Path,
) -> Result<seccomp::Policy, ContainerConfigError> {
    let Some(profile) = profile else {
        return Ok(seccomp::Policy::Unconfined);
    };
    match profile.type_.as_str() {
        "Unconfined" => Ok(seccomp::Policy::Unconfined),
        "RuntimeDefault" => Ok(seccomp::Policy::RuntimeDefault),
        "Localhost" => {
            let name = profile.localhost_profile.as_deref().unwrap_or_default();
            let relative = Path::new(name);
            let inside = relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if name.is_empty() || !inside {
                return Err(ContainerConfigError::SeccompProfile {
                    reason: format!(
                        "localhostProfile {name:?} must be a relative path below the \
                         kubelet's seccomp directory"
                    ),
                });
            }
            let path = seccomp_dir.join(relative);
            let local = |reason: String| ContainerConfigError::LocalhostProfile {
                path: path.clone(),
                reason,
            };
            let text = std::fs::read_to_string(&path).map_err(|e| local(e.to_string()))?;
            let parsed = seccomp::Profile::parse(&text).map_err(|e| local(e.to_string()))?;
            Ok(seccomp::Policy::Profile(Box::new(parsed)))
        }
        other => Err(ContainerConfigError::SeccompProfile {
            reason: format!("type {other:?} is not supported"),
        }),
    }
}

/// Everything the runtime needs to create this container of `pod`.
pub fn create_options(
    pod: &Pod,
    c: &Container,
    attempt: u32,
    volumes: &BTreeMap<String, PathBuf>,
    host_ip: &str,
    pod_ip: Option<&str>,
    seccomp_dir: &Path,
) -> Result<CreateOptions, ContainerConfigError> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    // environment, in order, each value expanded against the ones before it
    let mut vars = BTreeMap::new();
    let mut env = Vec::new();
    for e in c.env.iter().flatten() {
        let value = match (
            &e.value,
            e.value_from.as_ref().and_then(|v| v.field_ref.as_ref()),
        ) {
            (Some(v), _) => expand(v, &vars),
            (None, Some(f)) => pod_field(pod, &f.field_path, host_ip, pod_ip),
            (None, None) => String::new(),
        };
        vars.insert(e.name.clone(), value.clone());
        env.push(format!("{}={value}", e.name));
    }
    let command: Vec<String> = c
        .command
        .iter()
        .flatten()
        .map(|s| expand(s, &vars))
        .collect();
    let args: Vec<String> = c.args.iter().flatten().map(|s| expand(s, &vars)).collect();
    // Kubernetes: `command` replaces the Entrypoint (and drops the image's Cmd); `args` the Cmd
    let (entrypoint, command) = if command.is_empty() {
        (None, args)
    } else {
        (Some(Vec::new()), command.into_iter().chain(args).collect())
    };

    let pod_sc = spec.and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or(pod_sc.and_then(|s| s.run_as_group));
    let user = match (run_as_user, run_as_group) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!("0:{g}")),
        (None, None) => None,
    };
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let cap_names = |l: Option<&Vec<String>>| {
        l.into_iter()
            .flatten()
            .map(|n| n.trim_start_matches("CAP_").to_string())
            .collect::<Vec<_>>()
    };

    let limits = limits(c.resources.as_ref())?;

    let mut binds = volumes::binds(c, volumes)?;
    binds.dedup();
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    Ok(CreateOptions {
        name: Some(runtime_name(uid, &c.name, attempt)),
        image: c.image.clone().unwrap_or_default(),
        command,
        entrypoint,
        env,
        volumes: binds,
        hostname: Some(hostname.chars().take(63).collect()),
        workdir: c.working_dir.clone().filter(|w| !w.is_empty()),
        user,
        cpu_quota: limits.cpu_quota,
        cpu_shares: limits.cpu_shares,
        memory_bytes: limits.memory_bytes,
        pids: None,
        cpuset: None,
        tty: c.tty == Some(true),
        sandbox: Some(uid.to_string()),
        readonly: sc.and_then(|s| s.read_only_root_filesystem) == Some(true),
        privileged: sc.and_then(|s| s.privileged) == Some(true),
        cap_add: cap_names(caps.and_then(|c| c.add.as_ref())),
        cap_drop: cap_names(caps.and_then(|c| c.drop.as_ref())),
        no_new_privs: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        seccomp: seccomp_policy(
            sc.and_then(|s| s.seccomp_profile.as_ref())
                .or(pod_sc.and_then(|s| s.seccomp_profile.as_ref())),
            seccomp_dir,
        )?,
        auto_remove: false,
        wait_for_start: false,
        teaching: Default::default(),
        init: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = runtime_name("3f2a-11", "web-1", 4);
        assert_eq!(
            parse_runtime_name(&n),
            Some(("3f2a-11".into(), "web-1".into(), 4))
        );
        assert_eq!(parse_runtime_name("c-abc"), None);
    }

    #[test]
    fn expansion() {
        let vars = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(expand("$(A)-$(B)-$$(A)", &vars), "x-$(B)-$(A)");
    }

    #[test]
    fn command_args_and_security() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"securityContext": {"runAsUser": 1000},
                     "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c"], "args": ["echo $(X)"],
                        "env": [{"name": "X", "value": "hi"}, {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}, {"name": "H", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}],
                        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}},
                        "securityContext": {"runAsGroup": 7, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["CAP_NET_ADMIN"]}}}]}
        }))
        .unwrap();
        let o = create_options(
            &pod,
            &pod.spec.as_ref().unwrap().containers[0],
            2,
            &BTreeMap::new(),
            "10.0.0.1",
            Some("10.244.0.7"),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(o.entrypoint, Some(vec![]));
        assert_eq!(o.command, vec!["sh", "-c", "echo hi"]);
        assert_eq!(o.env, vec!["X=hi", "N=p", "IP=10.244.0.7", "H=10.0.0.1"]);
        assert_eq!(o.user.as_deref(), Some("1000:7"));
        assert_eq!(o.cpu_quota, Some(CpuQuota::per_default_period(50_000)));
        assert_eq!(o.memory_bytes, Some(64 << 20));
        assert_eq!(o.cpu_shares, Some(256));
        assert!(o.no_new_privs);
        assert_eq!(o.cap_add, vec!["NET_ADMIN"]);
        assert_eq!(o.name.as_deref(), Some("u_c_2"));
        assert!(matches!(o.seccomp, seccomp::Policy::Unconfined));
    }

    #[test]
    fn the_containers_seccomp_profile_wins_over_the_pods() {
        let dir = std::env::temp_dir().join(format!("kubelet-seccomp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let options = |pod_type: &str, container: serde_json::Value| {
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "uid": "u"},
                "spec": {"securityContext": {"seccompProfile": {"type": pod_type}},
                         "containers": [{"name": "c", "image": "busybox", "securityContext": container}]}
            }))
            .unwrap();
            let c = &pod.spec.as_ref().unwrap().containers[0];
            create_options(&pod, c, 0, &BTreeMap::new(), "10.0.0.1", None, &dir)
        };
        let none = serde_json::json!({});
        let policy = |r: Result<CreateOptions, _>| r.unwrap().seccomp;
        assert!(matches!(
            policy(options("RuntimeDefault", none.clone())),
            seccomp::Policy::RuntimeDefault
        ));
        assert!(matches!(
            policy(options("Unconfined", none)),
            seccomp::Policy::Unconfined
        ));
        let unconfined = serde_json::json!({"seccompProfile": {"type": "Unconfined"}});
        assert!(matches!(
            policy(options("RuntimeDefault", unconfined)),
            seccomp::Policy::Unconfined
        ));
        let local = |name: &str| {
            let profile = serde_json::json!({"type": "Localhost", "localhostProfile": name});
            serde_json::json!({ "seccompProfile": profile })
        };
        std::fs::write(
            dir.join("ok.json"),
            r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#,
        )
        .unwrap();
        std::fs::write(dir.join("bad.json"), "{}").unwrap();
        let found = options("RuntimeDefault", local("ok.json"));
        let missing = options("RuntimeDefault", local("missing.json"));
        let bad = options("RuntimeDefault", local("bad.json"));
        let outside = options("RuntimeDefault", local("../ok.json"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            found.unwrap().seccomp,
            seccomp::Policy::Profile(_)
        ));
        assert!(matches!(
            missing,
            Err(ContainerConfigError::LocalhostProfile { .. })
        ));
        assert!(matches!(
            bad,
            Err(ContainerConfigError::LocalhostProfile { .. })
        ));
        assert!(matches!(
            outside,
            Err(ContainerConfigError::SeccompProfile { .. })
        ));
    }

    #[test]
    fn quantities_become_the_runtimes_units() {
        let q = |s: &str| Quantity(s.into());
        assert_eq!(memory_bytes(&q("64Mi")).unwrap(), 64 << 20);
        assert_eq!(memory_bytes(&q("1G")).unwrap(), 1_000_000_000);
        assert_eq!(memory_bytes(&q("4096")).unwrap(), 4096);
        assert!(memory_bytes(&q("12Q")).is_err());
        assert!(memory_bytes(&q("0")).is_err());
        assert_eq!(cpu_millis(&q("250m")).unwrap(), 250);
        assert_eq!(cpu_millis(&q("0.2")).unwrap(), 200);
        assert_eq!(cpu_millis(&q("2")).unwrap(), 2000);
        assert!(cpu_millis(&q("abc")).is_err());
        assert!(cpu_millis(&q("-1")).is_err());
        assert_eq!(cpu_millis(&q("1k")).unwrap(), 1_000_000);
        assert_eq!(cpu_millis(&q("1.5m")).unwrap(), 2);
        assert_eq!(memory_bytes(&q("1e3")).unwrap(), 1000);
        assert_eq!(memory_bytes(&q("0.5Ki")).unwrap(), 512);
        assert_eq!(cpu_quota(200), CpuQuota::per_default_period(20_000));
        assert_eq!(cpu_quota(1), CpuQuota::per_default_period(1000));
    }

    #[test]
    fn a_bad_limit_is_a_config_error() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "resources": {"limits": {"memory": "lots"}}
        }))
        .unwrap();
        let e = limits(c.resources.as_ref()).err().unwrap();
        assert_eq!(
            e.to_string(),
            "resources.limits.memory: invalid quantity \"lots\""
        );
    }
}
