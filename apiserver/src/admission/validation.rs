//! Validation: the last admission step, after defaulting. Every resource's create runs
//! `ValidateObjectMeta` plus its own spec rules; an update also checks what may not change
//! (name, namespace, uid, a pod's spec, a deployment's selector). A non-empty result is
//! answered 422 `Invalid`, with `super::invalid_message` as the Status message and each
//! `Cause::to_status_cause` in `details.causes`. Call `defaults::apply_defaults` first: like the
//! real apiserver, validation requires the defaulted fields (restartPolicy, imagePullPolicy, ...).

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Cause;

pub mod certificates;
pub mod cluster;
pub mod config;
pub mod meta;
pub mod names;
pub mod pod;
pub mod resources;
pub mod services;
pub mod workloads;

use meta::NameRule;

/// Decodes the typed object, or explains (as a cause on the root) why it does not decode.
fn decode<T: DeserializeOwned>(obj: &Value) -> Result<T, Vec<Cause>> {
    T::deserialize(obj).map_err(|e| {
        vec![Cause::type_invalid(
            "<root>",
            super::BadValue::Raw("object".into()),
            &e.to_string(),
        )]
    })
}

/// `metadata` of a JSON object, typed (empty if it does not decode).
pub fn object_meta(obj: &Value) -> ObjectMeta {
    obj.get("metadata")
        .and_then(|m| ObjectMeta::deserialize(m).ok())
        .unwrap_or_default()
}

fn has_selector(obj: &Value) -> bool {
    obj.pointer("/spec/selector").is_some_and(|s| !s.is_null())
}

/// The field errors of a new object of `resource` (`pods`, `deployments`, ...). Resources this
/// module does not know get metadata validation only.
pub fn validate_create(resource: &str, obj: &Value) -> Vec<Cause> {
    let rule = match resource {
        "namespaces" => NameRule::Label,
        "services" => NameRule::Dns1035Label,
        _ => NameRule::Subdomain,
    };
    let namespaced = super::is_namespaced(resource);
    // Core/v1 events skip metadata validation entirely (legacy compatibility).
    let mut causes = if resource == "events" && !super::is_events_v1(obj) {
        Vec::new()
    } else {
        meta::validate_object_meta(&object_meta(obj), namespaced, rule)
    };
    let spec_causes = match resource {
        "pods" => decode::<Pod>(obj).map(|p| pod::validate_pod(&p)),
        "deployments" => {
            decode::<Deployment>(obj).map(|d| workloads::validate_deployment(&d, has_selector(obj)))
        }
        "replicasets" => decode::<ReplicaSet>(obj)
            .map(|rs| workloads::validate_replicaset(&rs, has_selector(obj))),
        "nodes" => decode::<Node>(obj).map(|n| cluster::validate_node(&n)),
        "namespaces" => decode::<Namespace>(obj).map(|_| Vec::new()),
        "leases" => decode::<Lease>(obj).map(|l| cluster::validate_lease(&l)),
        "configmaps" => decode::<ConfigMap>(obj).map(|c| config::validate_config_map(&c)),
        "secrets" => decode::<Secret>(obj).map(|s| config::validate_secret(&s)),
        "certificatesigningrequests" => {
            decode::<CertificateSigningRequest>(obj).map(|c| certificates::validate_csr(&c))
        }
        "events" => Ok(cluster::validate_event(obj)),
        "services" => decode::<Service>(obj).map(|s| services::validate_service(&s)),
        "endpoints" => decode::<Endpoints>(obj).map(|e| services::validate_endpoints(&e)),
        "endpointslices" => {
            decode::<EndpointSlice>(obj).map(|e| services::validate_endpoint_slice(&e))
        }
        _ => Ok(Vec::new()),
    };
    causes.extend(spec_causes.unwrap_or_else(|e| e));
    causes
}

/// [`validate_create`] of a Pod already decoded (its `metadata` decoded as [`object_meta`]
/// does): the same causes, without decoding the object again.
pub fn validate_pod_create(p: &Pod) -> Vec<Cause> {
    let mut causes = meta::validate_object_meta(&p.metadata, true, NameRule::Subdomain);
    causes.extend(pod::validate_pod(p));
    causes
}

/// The field errors of replacing `old` by `new` (both full objects, `new` already defaulted).
/// Status-only writes (`pods/status`, ...) should not call this: their strategy keeps the old spec.
pub fn validate_update(resource: &str, new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = meta::validate_object_meta_update(&object_meta(new), &object_meta(old));
    let rest = (|| -> Result<Vec<Cause>, Vec<Cause>> {
        Ok(match resource {
            "pods" => pod::validate_pod_update(&decode(new)?, &decode(old)?),
            "deployments" => {
                let (n, o): (Deployment, Deployment) = (decode(new)?, decode(old)?);
                let mut c = workloads::validate_deployment(&n, has_selector(new));
                let (ns, os) = (
                    n.spec.unwrap_or_default().selector,
                    o.spec.unwrap_or_default().selector,
                );
                c.extend(workloads::validate_selector_update(&ns, &os));
                c
            }
            "replicasets" => {
                let (n, o): (ReplicaSet, ReplicaSet) = (decode(new)?, decode(old)?);
                let mut c = workloads::validate_replicaset(&n, has_selector(new));
                let (ns, os) = (
                    n.spec.unwrap_or_default().selector,
                    o.spec.unwrap_or_default().selector,
                );
                c.extend(workloads::validate_selector_update(&ns, &os));
                c
            }
            "nodes" => cluster::validate_node_update(&decode(new)?, &decode(old)?),
            "leases" => cluster::validate_lease(&decode(new)?),
            "configmaps" => config::validate_config_map_update(&decode(new)?, &decode(old)?),
            "secrets" => config::validate_secret_update(&decode(new)?, &decode(old)?),
            "events" => cluster::validate_event(new),
            "services" => services::validate_service_update(&decode(new)?, &decode(old)?),
            "endpoints" => services::validate_endpoints(&decode(new)?),
            "endpointslices" => services::validate_endpoint_slice(&decode(new)?),
            _ => Vec::new(),
        })
    })();
    causes.extend(rest.unwrap_or_else(|e| e));
    causes
}

/// The field errors of a subresource write (`status`, `approval`) whose strategy validates
/// it; most subresources are server code and need none.
pub fn validate_subresource_update(
    resource: &str,
    subresource: &str,
    new: &Value,
    old: &Value,
) -> Vec<Cause> {
    match (resource, subresource) {
        ("certificatesigningrequests", "status" | "approval") => {
            certificates::validate_status_update(subresource, new, old)
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{defaults::apply_defaults, invalid_message};
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_pod_name_gives_the_real_status_message() {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Foo", "namespace": "default"},
                           "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        apply_defaults("pods", &mut p);
        let causes = validate_create("pods", &p);
        assert_eq!(
            invalid_message("Pod", "", "Foo", &causes),
            "Pod \"Foo\" is invalid: metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
    }

    #[test]
    fn namespaces_use_label_names_and_no_namespace() {
        let mut ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}});
        apply_defaults("namespaces", &mut ns);
        assert!(validate_create("namespaces", &ns).is_empty());
        let bad = json!({"metadata": {"name": "team.a"}});
        assert_eq!(
            validate_create("namespaces", &bad)[0].message,
            "Invalid value: \"team.a\": must not contain dots"
        );
    }

    #[test]
    fn deployment_update_keeps_selector_and_name() {
        let mut old = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        apply_defaults("deployments", &mut old);
        assert!(validate_create("deployments", &old).is_empty());
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["metadata"].as_object_mut().unwrap().remove("uid");
        assert!(validate_update("deployments", &new, &old).is_empty());
        new["spec"]["selector"]["matchLabels"]["app"] = json!("api");
        new["spec"]["template"]["metadata"]["labels"]["app"] = json!("api");
        new["metadata"]["name"] = json!("api");
        let fields: Vec<String> = validate_update("deployments", &new, &old)
            .iter()
            .map(|c| c.field.clone())
            .collect();
        assert_eq!(
            fields,
            vec!["metadata.name".to_string(), "spec.selector".to_string()]
        );
    }

    #[test]
    fn undecodable_objects_are_reported_not_ignored() {
        let bad =
            json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": "nope"}});
        let causes = validate_create("pods", &bad);
        assert_eq!(causes[0].reason.as_str(), "FieldValueTypeInvalid");
    }
}
