//! Compute resources of a container: `resources.requests` and `resources.limits` map resource
//! names (`cpu`, `memory`, `ephemeral-storage`, `hugepages-2Mi`, `example.com/gpu`) to quantities.
//! Requests are what the scheduler reserves, limits what the kubelet enforces, so a request may
//! never exceed its limit; extended resources cannot be overcommitted at all (request = limit).

use std::collections::BTreeMap;

use client::quantity;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::super::Cause;
use super::names;

/// `ValidateContainerResourceRequirements`: names, non-negative parseable quantities, requests ≤ limits.
pub fn validate_resources(res: &ResourceRequirements, path: &str, causes: &mut Vec<Cause>) {
    let empty = BTreeMap::new();
    let limits = res.limits.as_ref().unwrap_or(&empty);
    let requests = res.requests.as_ref().unwrap_or(&empty);
    let mut parsed_limits = BTreeMap::new();
    for (name, q) in limits {
        let fp = format!("{path}.limits[{name}]");
        validate_resource_name(name, &fp, causes);
        if let Some(v) = validate_quantity(name, q, &fp, causes) {
            parsed_limits.insert(name.clone(), v);
        }
    }
    for (name, q) in requests {
        let fp = format!("{path}.requests[{name}]");
        validate_resource_name(name, &fp, causes);
        let Some(v) = validate_quantity(name, q, &fp, causes) else {
            continue;
        };
        if let Some(limit) = parsed_limits.get(name) {
            let shown = v.canonical();
            if !overcommit_allowed(name) && v.compare(limit).is_ne() {
                let detail = format!("must be equal to {name} limit of {}", limit.canonical());
                causes.push(Cause::invalid(format!("{path}.requests"), shown, &detail));
            } else if v.compare(limit).is_gt() {
                let detail = format!(
                    "must be less than or equal to {name} limit of {}",
                    limit.canonical()
                );
                causes.push(Cause::invalid(format!("{path}.requests"), shown, &detail));
            }
        }
    }
}

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !name.starts_with("hugepages-")
}

fn validate_resource_name(name: &str, path: &str, causes: &mut Vec<Cause>) {
    for msg in names::qualified_name(name) {
        causes.push(Cause::invalid(path, name, &msg));
    }
    let standard =
        matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if is_native(name) && !standard {
        causes.push(Cause::invalid(
            path,
            name,
            "must be a standard resource for containers",
        ));
    }
}

/// Parses a quantity; the Go decoder would refuse a bad one with this same text.
fn validate_quantity(
    name: &str,
    q: &Quantity,
    path: &str,
    causes: &mut Vec<Cause>,
) -> Option<quantity::Quantity> {
    match quantity::Quantity::try_from(q) {
        Err(e) => {
            causes.push(Cause::invalid(path, q.0.as_str(), &e.to_string()));
            None
        }
        Ok(v) if v.is_negative() => {
            causes.push(Cause::invalid(
                path,
                v.canonical(),
                "must be greater than or equal to 0",
            ));
            None
        }
        Ok(v) => {
            if !overcommit_allowed(name) && v.millis() % 1000 != 0 {
                causes.push(Cause::invalid(path, v.canonical(), "must be an integer"));
            }
            Some(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reqs(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> ResourceRequirements {
        let list = |l: &[(&str, &str)]| {
            Some(
                l.iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            )
        };
        ResourceRequirements {
            requests: list(requests),
            limits: list(limits),
            claims: None,
        }
    }

    fn errors(r: &ResourceRequirements) -> Vec<String> {
        let mut causes = Vec::new();
        validate_resources(r, "r", &mut causes);
        causes.iter().map(|c| c.error()).collect()
    }

    #[test]
    fn requests_within_limits_across_suffixes() {
        assert!(errors(&reqs(
            &[("cpu", "500m"), ("memory", "1Gi")],
            &[("cpu", "0.5"), ("memory", "1024Mi")]
        ))
        .is_empty());
        assert_eq!(
            errors(&reqs(&[("memory", "2Gi")], &[("memory", "1G")])),
            vec!["r.requests: Invalid value: \"2Gi\": must be less than or equal to memory limit of 1G".to_string()]
        );
    }

    #[test]
    fn names_signs_and_extended_resources() {
        assert_eq!(
            errors(&reqs(&[("cpu", "-1")], &[])),
            vec![
                "r.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
                    .to_string()
            ]
        );
        assert_eq!(errors(&reqs(&[("gpus", "1")], &[])), vec!["r.requests[gpus]: Invalid value: \"gpus\": must be a standard resource for containers".to_string()]);
        assert_eq!(
            errors(&reqs(
                &[("example.com/gpu", "1")],
                &[("example.com/gpu", "2")]
            )),
            vec![
                "r.requests: Invalid value: \"1\": must be equal to example.com/gpu limit of 2"
                    .to_string()
            ]
        );
        assert_eq!(
            errors(&reqs(&[("example.com/gpu", "500m")], &[])),
            vec![
                "r.requests[example.com/gpu]: Invalid value: \"500m\": must be an integer"
                    .to_string()
            ]
        );
    }
}
