//! Which lists of the built-in kinds merge by key, for the strategic merge patch.
//!
//! In k8s.io/api the strategy is a struct tag (`patchStrategy:"merge" patchMergeKey:"name"`
//! on `PodSpec.Containers`); kubectl reads it from the OpenAPI schema. The lists that carry
//! such tags are few and stable, so this file names them: containers by `name`, a container's
//! ports by `containerPort`, `env` by `name`, `conditions` by `type`... Every other list is
//! atomic: a patch replaces it whole. Read next: `mod.rs`, which walks objects with this.

/// How a patch combines a list with the live one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the live one.
    Atomic,
    /// Items are objects matched by this field; the patch lists only changed items.
    MergeByKey(&'static str),
    /// A set of scalars (`metadata.finalizers`): items are added and removed one by one.
    MergeSet,
}

/// The strategy of the list at `path` (field names from the object's root, list indices
/// left out) in an object of `kind`.
pub fn list_strategy(kind: &str, path: &[String]) -> ListStrategy {
    let Some((field, parents)) = path.split_last() else {
        return ListStrategy::Atomic;
    };
    let parent = parents.last().map(String::as_str).unwrap_or_default();
    let in_container = is_container_list(parent);
    match field.as_str() {
        f if is_container_list(f) => ListStrategy::MergeByKey("name"),
        "ports" if in_container => ListStrategy::MergeByKey("containerPort"),
        "ports" if kind == "Service" && parent == "spec" => ListStrategy::MergeByKey("port"),
        "env" | "resizePolicy" if in_container => ListStrategy::MergeByKey("name"),
        "volumeMounts" if in_container => ListStrategy::MergeByKey("mountPath"),
        "volumeDevices" if in_container => ListStrategy::MergeByKey("devicePath"),
        "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates" => {
            ListStrategy::MergeByKey("name")
        }
        "hostAliases" => ListStrategy::MergeByKey("ip"),
        "topologySpreadConstraints" => ListStrategy::MergeByKey("topologyKey"),
        "conditions" => ListStrategy::MergeByKey("type"),
        "addresses" if kind == "Node" => ListStrategy::MergeByKey("type"),
        "taints" if kind == "Node" => ListStrategy::MergeByKey("key"),
        "ownerReferences" if parent == "metadata" => ListStrategy::MergeByKey("uid"),
        "finalizers" if parent == "metadata" => ListStrategy::MergeSet,
        _ => ListStrategy::Atomic,
    }
}

fn is_container_list(field: &str) -> bool {
    matches!(
        field,
        "containers" | "initContainers" | "ephemeralContainers"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(String::from).collect()
    }

    #[test]
    fn the_keyed_lists_of_pods_and_workloads() {
        use ListStrategy::*;
        for (kind, p, want) in [
            ("Pod", "spec.containers", MergeByKey("name")),
            (
                "Deployment",
                "spec.template.spec.initContainers",
                MergeByKey("name"),
            ),
            ("Pod", "spec.containers.ports", MergeByKey("containerPort")),
            ("Pod", "spec.containers.env", MergeByKey("name")),
            (
                "Pod",
                "spec.containers.volumeMounts",
                MergeByKey("mountPath"),
            ),
            ("Pod", "spec.containers.command", Atomic),
            ("Pod", "spec.tolerations", Atomic),
            ("Service", "spec.ports", MergeByKey("port")),
            ("Pod", "metadata.finalizers", MergeSet),
            ("Pod", "status.conditions", MergeByKey("type")),
        ] {
            assert_eq!(list_strategy(kind, &path(p)), want, "{kind} {p}");
        }
    }
}
