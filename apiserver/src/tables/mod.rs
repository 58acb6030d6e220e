//! Server-side printing: `kubectl get` asks for `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`
//! and prints whatever columns the server returns, so the apiserver, not kubectl, decides what
//! `kubectl get pods` shows (NAME READY STATUS RESTARTS AGE, and with priority 1 the `-o wide`
//! columns). Each row carries cells plus the object (as `PartialObjectMetadata` by default, from
//! which kubectl adds NAMESPACE and LABELS). The column logic follows kubernetes'
//! `pkg/printers/internalversion/printers.go`; read `pods.rs` for the STATUS reasoning.

mod certificates;
mod cluster;
mod config;
mod pods;
mod services;
mod workloads;

use serde_json::{json, Value};

/// What a row's `object` holds (`?includeObject=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` (kubectl's default).
    Metadata,
    /// The whole object.
    Object,
}

/// The `columnDefinitions` of a resource's table (plural name, e.g. `pods`).
pub fn column_definitions(resource: &str) -> Vec<Value> {
    let cols: &[Col] = match resource {
        "pods" => pods::COLUMNS,
        "deployments" => workloads::DEPLOYMENT_COLUMNS,
        "replicasets" => workloads::REPLICASET_COLUMNS,
        "nodes" => cluster::NODE_COLUMNS,
        "namespaces" => cluster::NAMESPACE_COLUMNS,
        "events" => cluster::EVENT_COLUMNS,
        "leases" => cluster::LEASE_COLUMNS,
        "configmaps" => config::CONFIGMAP_COLUMNS,
        "secrets" => config::SECRET_COLUMNS,
        "certificatesigningrequests" => certificates::CSR_COLUMNS,
        "services" => services::SERVICE_COLUMNS,
        "endpoints" => services::ENDPOINTS_COLUMNS,
        "endpointslices" => services::ENDPOINT_SLICE_COLUMNS,
        _ => DEFAULT_COLUMNS,
    };
    cols.iter().map(Col::to_json).collect()
}

/// One table row: `{cells, object}` (and `conditions` for finished pods).
pub fn row(resource: &str, obj: &Value, now: jiff::Timestamp, include: IncludeObject) -> Value {
    let mut row = match resource {
        "pods" => pods::row(obj, now),
        "deployments" => json!({"cells": workloads::deployment_cells(obj, now)}),
        "replicasets" => json!({"cells": workloads::replicaset_cells(obj, now)}),
        "nodes" => json!({"cells": cluster::node_cells(obj, now)}),
        "namespaces" => json!({"cells": cluster::namespace_cells(obj, now)}),
        "events" => json!({"cells": cluster::event_cells(obj, now)}),
        "leases" => json!({"cells": cluster::lease_cells(obj, now)}),
        "configmaps" => json!({"cells": config::configmap_cells(obj, now)}),
        "secrets" => json!({"cells": config::secret_cells(obj, now)}),
        "certificatesigningrequests" => json!({"cells": certificates::csr_cells(obj, now)}),
        "services" => json!({"cells": services::service_cells(obj, now)}),
        "endpoints" => json!({"cells": services::endpoints_cells(obj, now)}),
        "endpointslices" => json!({"cells": services::endpoint_slice_cells(obj, now)}),
        _ => {
            json!({"cells": [name(obj), obj.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null)]})
        }
    };
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
        }
        IncludeObject::Object => row["object"] = obj.clone(),
    }
    row
}

/// A whole `meta.k8s.io/v1 Table`; the caller fills `metadata.resourceVersion`/`continue`.
pub fn table(
    resource: &str,
    items: &[Value],
    now: jiff::Timestamp,
    include: IncludeObject,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": column_definitions(resource),
        "rows": items.iter().map(|o| row(resource, o, now, include)).collect::<Vec<_>>(),
    })
}

/// A column definition; priority 1 columns show only with `-o wide`.
pub(crate) struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

impl Col {
    fn to_json(&self) -> Value {
        json!({"name": self.name, "type": self.ty, "format": self.format, "description": self.description, "priority": self.priority})
    }
}

/// A column shown by default.
pub(crate) const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

/// A column shown with `-o wide` only.
pub(crate) const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 1,
    }
}

/// The NAME column.
pub(crate) const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    description: NAME_DOC,
    priority: 0,
};
/// The AGE column.
pub(crate) const AGE: Col = col("Age", "string", AGE_DOC);

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

const DEFAULT_COLUMNS: &[Col] = &[
    NAME,
    Col {
        name: "Created At",
        ty: "date",
        format: "",
        description: AGE_DOC,
        priority: 0,
    },
];

/// `metadata.name`.
pub(crate) fn name(obj: &Value) -> Value {
    Value::String(str_at(obj, "/metadata/name").to_string())
}

/// The string at a JSON pointer, or "".
pub(crate) fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The integer at a JSON pointer, or `default`.
pub(crate) fn int_at(obj: &Value, pointer: &str, default: i64) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// A timestamp field (RFC 3339, `Time` or `MicroTime`), if set.
pub(crate) fn time_at(obj: &Value, pointer: &str) -> Option<jiff::Timestamp> {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
pub(crate) fn since(ts: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    match ts {
        None => "<unknown>".into(),
        Some(ts) => human_duration(now.as_millisecond() - ts.as_millisecond()),
    }
}

/// The AGE cell of an object.
pub(crate) fn age(obj: &Value, now: jiff::Timestamp) -> Value {
    Value::String(since(time_at(obj, "/metadata/creationTimestamp"), now))
}

/// `duration.HumanDuration`: two significant units at most, coarser as time passes
/// (`45s`, `2m30s`, `10m`, `3h5m`, `10h`, `5d2h`, `30d`, `2y100d`, `9y`).
pub fn human_duration(millis: i64) -> String {
    let seconds = millis / 1000;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fixed "now" for tests.
    pub fn now() -> jiff::Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    /// `now` minus `secs` seconds.
    pub fn ago(secs: i64) -> jiff::Timestamp {
        now() - jiff::SignedDuration::from_secs(secs)
    }

    #[test]
    fn human_duration_matches_upstream_buckets() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (180, "3m"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (5 * 3600, "5h"),
            (30 * 3600, "30h"),
            (5 * 86400, "5d"),
            (5 * 86400 + 7200, "5d2h"),
            (300 * 86400, "300d"),
            ((2 * 365 + 100) * 86400, "2y100d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs * 1000), want, "{secs}s");
        }
    }

    #[test]
    fn metadata_and_full_object_and_none() {
        let lease = json!({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"name": "n1", "namespace": "kube-node-lease", "labels": {"a": "b"}, "creationTimestamp": ago(30).to_string()},
            "spec": {"holderIdentity": "n1"}});
        let r = row("leases", &lease, now(), IncludeObject::Metadata);
        assert_eq!(r["cells"], json!(["n1", "n1", "30s"]));
        assert_eq!(r["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(r["object"]["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(r["object"]["metadata"]["labels"], json!({"a": "b"}));
        assert_eq!(
            row("leases", &lease, now(), IncludeObject::Object)["object"],
            lease
        );
        assert!(row("leases", &lease, now(), IncludeObject::None)
            .get("object")
            .is_none());
    }

    #[test]
    fn table_has_definitions_and_rows() {
        let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
        let t = table("namespaces", &[ns], now(), IncludeObject::Metadata);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        let names: Vec<_> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Status", "Age"]);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["default", "Active", "<unknown>"])
        );
    }

    #[test]
    fn unknown_resources_get_name_and_created_at() {
        let crd = json!({"metadata": {"name": "c", "creationTimestamp": "2025-01-01T00:00:00Z"}});
        assert_eq!(
            row("widgets", &crd, now(), IncludeObject::None)["cells"],
            json!(["c", "2025-01-01T00:00:00Z"])
        );
        assert_eq!(column_definitions("widgets")[1]["type"], "date");
    }
}
