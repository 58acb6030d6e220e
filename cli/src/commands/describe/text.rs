//! The page `describe` writes, and the pieces every describer shares.
//!
//! kubectl builds a description as lines of tab-separated cells at an indentation *level* (two
//! spaces each), then aligns the cells with Go's tabwriter (`../../printer/tabwriter.rs`,
//! padding 2): that is why `Name:` and `Namespace:` line up, while a table further down (the
//! Events' `Type  Reason  Age  From  Message`) has columns of its own. [`Page`] is that
//! writer; the functions below are kubectl's shared printers: labels and annotations one per
//! line, tolerations and taints, resource lists, times in RFC 1123 (`Mon, 02 Jan 2006 15:04:05
//! -0700`, the local zone), and the `Events:` table that ends most descriptions.
//! Read next: `pod.rs`, the fullest describer.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, ResourceRequirements, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::commands::events::interval;
use crate::printer::tabwriter;

/// Annotations kubectl never shows: the whole object again, written by `apply`.
const SKIPPED_ANNOTATIONS: [&str; 1] = ["kubectl.kubernetes.io/last-applied-configuration"];

/// An annotation longer than this (with its key) goes on lines of its own, cut short.
const MAX_ANNOTATION_LEN: usize = 140;

/// A description being written: text with tab-separated cells, aligned at the end.
#[derive(Debug, Default)]
pub struct Page {
    buf: String,
}

impl Page {
    /// `text` at indentation `level` (two spaces a level), as kubectl's `PrefixWriter.Write`.
    /// Escape characters and carriage returns in the data are shown, not obeyed.
    pub fn w(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.buf.push_str("  ");
        }
        self.buf
            .push_str(&text.replace('\x1b', "^[").replace('\r', "\\r"));
    }

    /// The aligned text.
    pub fn finish(self) -> String {
        tabwriter::align(&self.buf, 0, 2)
    }

    /// The text as written, its tabs kept: what kubectl prints where its `PrefixWriter`
    /// writes straight into a buffer instead of a tabwriter (`rollout history --revision=N`).
    pub fn unaligned(self) -> String {
        self.buf
    }
}

/// `Title:\tk=v`, further labels on lines of their own (`printLabelsMultiline`).
pub fn labels(w: &mut Page, title: &str, labels: Option<&BTreeMap<String, String>>) {
    w.w(0, &format!("{title}:\t"));
    let Some(labels) = labels.filter(|l| !l.is_empty()) else {
        w.w(0, "<none>\n");
        return;
    };
    for (i, (k, v)) in labels.iter().enumerate() {
        if i != 0 {
            w.w(0, "\t");
        }
        w.w(0, &format!("{k}={v}\n"));
    }
}

/// `Annotations:\tk: v`, long or multi-line values below their key (`printAnnotationsMultiline`).
pub fn annotations(w: &mut Page, title: &str, annotations: Option<&BTreeMap<String, String>>) {
    w.w(0, &format!("{title}:\t"));
    let shown: Vec<(&String, &String)> = annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| !SKIPPED_ANNOTATIONS.contains(&k.as_str()))
        .collect();
    if shown.is_empty() {
        w.w(0, "<none>\n");
        return;
    }
    for (i, (key, value)) in shown.into_iter().enumerate() {
        if i != 0 {
            w.w(0, "\t");
        }
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + key.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            w.w(0, &format!("{key}:\n"));
            for line in value.split('\n') {
                w.w(
                    0,
                    &format!("\t  {}\n", shorten(line, MAX_ANNOTATION_LEN - 2)),
                );
            }
        } else {
            w.w(0, &format!("{key}: {value}\n"));
        }
    }
}

/// The first `max` bytes of `s` and `...`, if it is longer (on a character boundary).
fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `Tolerations:\tkey=value:Effect op=Exists for 300s`, one per line, sorted by key.
pub fn tolerations(w: &mut Page, title: &str, tolerations: Option<&Vec<Toleration>>) {
    w.w(0, &format!("{title}:\t"));
    let mut list: Vec<&Toleration> = tolerations.into_iter().flatten().collect();
    if list.is_empty() {
        w.w(0, "<none>\n");
        return;
    }
    list.sort_by(|a, b| a.key.cmp(&b.key));
    for (i, t) in list.into_iter().enumerate() {
        if i != 0 {
            w.w(0, "\t");
        }
        let (key, value, effect) = (
            t.key.as_deref().unwrap_or_default(),
            t.value.as_deref().unwrap_or_default(),
            t.effect.as_deref().unwrap_or_default(),
        );
        let mut s = key.to_string();
        if !value.is_empty() {
            s.push_str(&format!("={value}"));
        }
        if !effect.is_empty() {
            s.push_str(&format!(":{effect}"));
        }
        if t.operator.as_deref() == Some("Exists") && value.is_empty() {
            let sep = if key.is_empty() && effect.is_empty() {
                ""
            } else {
                " "
            };
            s.push_str(&format!("{sep}op=Exists"));
        }
        if let Some(secs) = t.toleration_seconds {
            s.push_str(&format!(" for {secs}s"));
        }
        w.w(0, &format!("{s}\n"));
    }
}

/// `Taints:\tkey=value:Effect`, sorted by effect then key (`printNodeTaintsMultiline`).
pub fn taints(w: &mut Page, title: &str, taints: Option<&Vec<Taint>>) {
    w.w(0, &format!("{title}:\t"));
    let mut list: Vec<&Taint> = taints.into_iter().flatten().collect();
    if list.is_empty() {
        w.w(0, "<none>\n");
        return;
    }
    list.sort_by_key(|t| format!("{},{}", t.effect, t.key));
    for (i, t) in list.into_iter().enumerate() {
        if i != 0 {
            w.w(0, "\t");
        }
        let mut s = t.key.clone();
        if let Some(v) = t.value.as_deref().filter(|v| !v.is_empty()) {
            s.push_str(&format!("={v}"));
        }
        if !t.effect.is_empty() {
            s.push_str(&format!(":{}", t.effect));
        }
        w.w(0, &format!("{s}\n"));
    }
}

/// A quantity as `Quantity.String()` prints it: canonical (`1000m` → `1`); as written if it
/// does not parse.
pub fn quantity(q: &Quantity) -> String {
    client::quantity::Quantity::try_from(q)
        .map(|q| q.canonical())
        .unwrap_or_else(|_| q.0.clone())
}

/// `Limits:` and `Requests:`, one resource a line, sorted by name (`describeResources`).
pub fn resources(w: &mut Page, r: Option<&ResourceRequirements>, level: usize) {
    let Some(r) = r else { return };
    for (title, list) in [("Limits", &r.limits), ("Requests", &r.requests)] {
        let Some(list) = list.as_ref().filter(|l| !l.is_empty()) else {
            continue;
        };
        w.w(level, &format!("{title}:\n"));
        for (name, q) in list {
            w.w(level + 1, &format!("{name}:\t{}\n", quantity(q)));
        }
    }
}

/// Go's `time.RFC1123Z` in the local zone: `Mon, 02 Jan 2006 15:04:05 -0700`.
pub fn rfc1123z(t: &Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

/// As [`rfc1123z`]; Go's zero time for a missing one.
pub fn time(t: Option<&Time>) -> String {
    match t {
        Some(t) => rfc1123z(&t.0),
        None => "Mon, 01 Jan 0001 00:00:00 +0000".to_string(),
    }
}

/// `ReplicaSet/web-5d4f`: the object's controller, from its ownerReferences.
pub fn controlled_by(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| format!("{}/{}", r.kind, r.name))
}

/// `True`/`False`, as kubectl prints a Go bool in a status.
pub fn bool_word(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// The `Events:` table (`DescribeEvents`): oldest first, `<none>` when there are none;
/// nothing at all with `--show-events=false` (`None`).
pub fn events(w: &mut Page, events: Option<&mut [Event]>, now: Timestamp) {
    let Some(events) = events else { return };
    if events.is_empty() {
        w.w(0, "Events:\t<none>\n");
        return;
    }
    events.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    w.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w.w(1, "----\t------\t----\t----\t-------\n");
    for e in events.iter() {
        let source = e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| e.reporting_component.clone())
            .unwrap_or_default();
        w.w(
            1,
            &format!(
                "{}\t{}\t{}\t{}\t{}\n",
                e.type_.as_deref().unwrap_or_default(),
                e.reason.as_deref().unwrap_or_default(),
                interval(e, now),
                source,
                e.message.as_deref().unwrap_or_default().trim()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_annotations_line_up() {
        let mut w = Page::default();
        w.w(0, "Name:\tweb\n");
        let l: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        labels(&mut w, "Labels", Some(&l));
        annotations(&mut w, "Annotations", None);
        assert_eq!(
            w.finish(),
            "Name:         web\nLabels:       app=web\n              tier=front\nAnnotations:  <none>\n"
        );
    }

    #[test]
    fn quantities_print_canonically() {
        assert_eq!(quantity(&Quantity("1000m".into())), "1");
        assert_eq!(quantity(&Quantity("128Mi".into())), "128Mi");
        assert_eq!(quantity(&Quantity("junk".into())), "junk");
    }

    #[test]
    fn tolerations_sort_by_key_and_read_like_kubectls() {
        let mut w = Page::default();
        let ts: Vec<Toleration> = serde_json::from_value(serde_json::json!([
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            {"operator": "Exists"},
            {"key": "j", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ]))
        .unwrap();
        tolerations(&mut w, "  Tolerations", Some(&ts));
        assert_eq!(
            w.unaligned(),
            "  Tolerations:\top=Exists\n\tj:NoExecute op=Exists for 300s\n\tk=v:NoSchedule\n"
        );
    }

    #[test]
    fn long_annotations_are_cut() {
        assert_eq!(shorten("abcdef", 3), "abc...");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
