//! One stored Event, two API views. `core/v1` Events (what kubectl describe lists) and
//! `events.k8s.io/v1` Events (what the kube crate's Recorder writes) are the same object with
//! renamed fields: involvedObject↔regarding, message↔note, reportingComponent↔reportingController,
//! source/firstTimestamp/lastTimestamp/count↔deprecated*. Store the core/v1 shape; convert on the
//! way in and out, as `pkg/apis/events/v1/conversion.go` does. Fields with no rename pass through.

use serde_json::{Map, Value};

/// core/v1 field name → events.k8s.io/v1 field name. Every other key (metadata, reason, type,
/// action, eventTime, series, related, reportingInstance) has the same name in both.
const RENAMES: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename(obj: &Value, api_version: &str, to_events_v1: bool) -> Value {
    let Some(fields) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    for (key, value) in fields {
        if key == "apiVersion" || key == "kind" {
            continue;
        }
        let renamed = RENAMES
            .iter()
            .find_map(|(core, v1)| match to_events_v1 {
                true if key == core => Some(*v1),
                false if key == v1 => Some(*core),
                _ => None,
            })
            .unwrap_or(key.as_str());
        out.insert(renamed.to_string(), value.clone());
    }
    Value::Object(out)
}

/// The `events.k8s.io/v1` view of a stored core/v1 Event.
pub fn core_to_events_v1(core: &Value) -> Value {
    rename(core, "events.k8s.io/v1", true)
}

/// The core/v1 view (and storage shape) of an `events.k8s.io/v1` Event.
pub fn events_v1_to_core(ev: &Value) -> Value {
    rename(ev, "v1", false)
}

/// The other view's name of a field path's first segment, for field selectors such as
/// `regarding.name` asked of the events.k8s.io view of core-shaped storage.
pub fn events_v1_field_to_core(field: &str) -> String {
    let (head, rest) = field
        .split_once('.')
        .map(|(h, r)| (h, Some(r)))
        .unwrap_or((field, None));
    let head = RENAMES
        .iter()
        .find(|(_, v1)| *v1 == head)
        .map(|(core, _)| *core)
        .unwrap_or(head);
    match rest {
        Some(r) => format!("{head}.{r}"),
        None => head.to_string(),
    }
}

/// A whole `fieldSelector` of the events.k8s.io view in core/v1 field names
/// (`regarding.name=p,type=Normal` → `involvedObject.name=p,type=Normal`), as that group's
/// field label conversion does. Values, escapes included, are left alone.
pub fn events_v1_selector_to_core(selector: &str) -> String {
    let mut terms = vec![String::new()];
    let mut escaped = false;
    for ch in selector.chars() {
        let term = terms.last_mut().expect("at least one term");
        match ch {
            _ if escaped => {
                term.push(ch);
                escaped = false;
            }
            '\\' => {
                term.push(ch);
                escaped = true;
            }
            ',' => terms.push(String::new()),
            _ => term.push(ch),
        }
    }
    terms
        .iter()
        .map(|t| {
            let end = t.find(['!', '=']).unwrap_or(t.len());
            format!("{}{}", events_v1_field_to_core(t[..end].trim()), &t[end..])
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recorder_event() -> Value {
        // What kube-runtime's Recorder POSTs.
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.17a", "namespace": "default"},
            "eventTime": "2024-05-01T10:00:00.000000Z",
            "action": "Reconciling", "reason": "Scaled", "note": "scaled to 3", "type": "Normal",
            "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "default", "uid": "u1"},
            "reportingController": "example.com/ctl", "reportingInstance": "ctl-0",
            "series": {"count": 2, "lastObservedTime": "2024-05-01T10:05:00.000000Z"}
        })
    }

    #[test]
    fn recorder_events_read_as_core_events() {
        let core = events_v1_to_core(&recorder_event());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "scaled to 3");
        assert_eq!(core["reportingComponent"], "example.com/ctl");
        assert_eq!(core["reportingInstance"], "ctl-0");
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
        // And the core shape decodes as the typed core/v1 Event kubectl reads.
        let typed: k8s_openapi::api::core::v1::Event =
            serde_json::from_value(core.clone()).unwrap();
        assert_eq!(typed.involved_object.kind.as_deref(), Some("Deployment"));
        assert_eq!(core_to_events_v1(&core), recorder_event());
    }

    #[test]
    fn kubelet_events_read_as_events_v1() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default", "fieldPath": "spec.containers{c}"},
            "reason": "Pulled", "message": "image pulled", "type": "Normal",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:01:00Z", "count": 3
        });
        let v1 = core_to_events_v1(&core);
        assert_eq!(v1["deprecatedSource"]["component"], "kubelet");
        assert_eq!(v1["deprecatedCount"], 3);
        assert_eq!(v1["deprecatedFirstTimestamp"], "2024-05-01T10:00:00Z");
        assert_eq!(v1["regarding"]["fieldPath"], "spec.containers{c}");
        let typed: k8s_openapi::api::events::v1::Event =
            serde_json::from_value(v1.clone()).unwrap();
        assert_eq!(typed.note.as_deref(), Some("image pulled"));
        assert_eq!(events_v1_to_core(&v1), core);
    }

    #[test]
    fn field_selectors_translate() {
        assert_eq!(
            events_v1_field_to_core("regarding.name"),
            "involvedObject.name"
        );
        assert_eq!(events_v1_field_to_core("reason"), "reason");
        assert_eq!(
            events_v1_selector_to_core("regarding.name=a\\,b,regarding.kind!=Pod,type==Normal"),
            "involvedObject.name=a\\,b,involvedObject.kind!=Pod,type==Normal"
        );
        assert_eq!(events_v1_selector_to_core(""), "");
        assert_eq!(
            events_v1_field_to_core("reportingController"),
            "reportingComponent"
        );
    }
}
