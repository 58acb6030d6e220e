//! `metadata` and the other metav1 pieces every object shares: the object's name and namespace,
//! labels, annotations, finalizers, and label selectors (their grammar, how they match a label
//! set, and how Go prints them in an error).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::super::{BadValue, Cause};
use super::names;

/// Which grammar an object's name must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// `NameIsDNSSubdomain`: pods, nodes, deployments, ...
    Subdomain,
    /// `NameIsDNSLabel`: namespaces.
    Label,
    /// `ValidateServiceName` (`NameIsDNS1035Label`): services.
    Dns1035Label,
}

impl NameRule {
    fn check(self, v: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => names::dns1123_subdomain(v),
            NameRule::Label => names::dns1123_label(v),
            NameRule::Dns1035Label => names::dns1035_label(v),
        }
    }
}

/// The annotation size limit (`TotalAnnotationSizeLimitB`, 256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `ValidateObjectMeta`. The name may be absent when `generateName` is set: the lead generates
/// the name after validation.
pub fn validate_object_meta(meta: &ObjectMeta, namespaced: bool, rule: NameRule) -> Vec<Cause> {
    let mut causes = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        for msg in rule.check(&names::mask_trailing_dash(generate_name)) {
            causes.push(Cause::invalid("metadata.generateName", generate_name, &msg));
        }
    }
    let name = meta.name.as_deref().unwrap_or("");
    if name.is_empty() {
        if generate_name.is_empty() {
            causes.push(Cause::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for msg in rule.check(name) {
            causes.push(Cause::invalid("metadata.name", name, &msg));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if namespace.is_empty() {
            causes.push(Cause::required("metadata.namespace", ""));
        } else {
            for msg in names::dns1123_label(namespace) {
                causes.push(Cause::invalid("metadata.namespace", namespace, &msg));
            }
        }
    } else if !namespace.is_empty() {
        causes.push(Cause::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    causes.extend(validate_meta_contents(meta));
    causes
}

/// The parts of `metadata` checked on create and on every update alike: generation, labels,
/// annotations, finalizers, ownerReferences.
fn validate_meta_contents(meta: &ObjectMeta) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(generation) = meta.generation.filter(|g| *g < 0) {
        causes.push(Cause::invalid(
            "metadata.generation",
            generation,
            "must be greater than or equal to 0",
        ));
    }
    causes.extend(validate_labels(meta.labels.as_ref(), "metadata.labels"));
    causes.extend(validate_annotations(
        meta.annotations.as_ref(),
        "metadata.annotations",
    ));
    for f in meta.finalizers.iter().flatten() {
        for msg in names::qualified_name(f) {
            causes.push(Cause::invalid("metadata.finalizers", f, &msg));
        }
    }
    for (i, owner) in meta.owner_references.iter().flatten().enumerate() {
        let path = format!("metadata.ownerReferences[{i}]");
        if owner.api_version.is_empty() {
            causes.push(Cause::invalid(
                format!("{path}.apiVersion"),
                owner.api_version.as_str(),
                "version must not be empty",
            ));
        }
        if owner.kind.is_empty() {
            causes.push(Cause::invalid(
                format!("{path}.kind"),
                owner.kind.as_str(),
                "must not be empty",
            ));
        }
        if owner.name.is_empty() {
            causes.push(Cause::invalid(
                format!("{path}.name"),
                owner.name.as_str(),
                "must not be empty",
            ));
        }
        if owner.uid.is_empty() {
            causes.push(Cause::invalid(
                format!("{path}.uid"),
                owner.uid.as_str(),
                "must not be empty",
            ));
        }
    }
    causes
}

/// `ValidateObjectMetaUpdate`: name, namespace and uid never change (an empty new uid means
/// "keep the stored one": the registry copies it before validating); an object being deleted
/// gains no finalizers; labels and annotations are checked again.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<Cause> {
    let mut causes = Vec::new();
    if old.deletion_timestamp.is_some() {
        let old_finalizers = old.finalizers.clone().unwrap_or_default();
        let added: BTreeSet<&String> = new
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !old_finalizers.contains(f))
            .collect();
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|f| super::super::go_quote(f)).collect();
            let detail = format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}", list.join(", "));
            causes.push(Cause::forbidden("metadata.finalizers", &detail));
        }
    }
    let pairs = [
        ("metadata.name", &new.name, &old.name),
        ("metadata.namespace", &new.namespace, &old.namespace),
    ];
    for (path, n, o) in pairs {
        let n = n.as_deref().unwrap_or("");
        if n != o.as_deref().unwrap_or("") {
            causes.push(Cause::invalid(path, n, "field is immutable"));
        }
    }
    let new_uid = new.uid.as_deref().unwrap_or("");
    if !new_uid.is_empty() && new_uid != old.uid.as_deref().unwrap_or("") {
        causes.push(Cause::invalid(
            "metadata.uid",
            new_uid,
            "field is immutable",
        ));
    }
    causes.extend(validate_meta_contents(new));
    causes
}

/// `ValidateLabels`: qualified-name keys and label values, reported on the map's own path.
pub fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        for msg in names::qualified_name(k) {
            causes.push(Cause::invalid(path, k, &msg));
        }
        for msg in names::label_value(v) {
            causes.push(Cause::invalid(path, v, &msg));
        }
    }
    causes
}

/// `ValidateAnnotations`: case-insensitive qualified-name keys, 256 KiB in total.
pub fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &str,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut total = 0;
    for (k, v) in annotations.into_iter().flatten() {
        for msg in names::qualified_name(&k.to_lowercase()) {
            causes.push(Cause::invalid(path, k, &msg));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        causes.push(Cause::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    causes
}

/// `ValidateLabelSelector`.
pub fn validate_label_selector(sel: &LabelSelector, path: &str) -> Vec<Cause> {
    let mut causes = validate_labels(sel.match_labels.as_ref(), &format!("{path}.matchLabels"));
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let has_values = req.values.as_ref().is_some_and(|v| !v.is_empty());
        match req.operator.as_str() {
            "In" | "NotIn" if !has_values => causes.push(Cause::required(
                format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if has_values => causes.push(Cause::forbidden(
                format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(Cause::invalid(
                format!("{p}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for msg in names::qualified_name(&req.key) {
            causes.push(Cause::invalid(format!("{p}.key"), req.key.as_str(), &msg));
        }
    }
    causes
}

/// True when the selector selects nothing-in-particular (no labels, no expressions).
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// `selector.Matches(labels)`.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|req| {
        let values = req.values.clone().unwrap_or_default();
        let got = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => got.is_some_and(|v| values.contains(v)),
            "NotIn" => got.is_none_or(|v| !values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// How a `*metav1.LabelSelector` prints in a field error (its generated `String()` method).
pub fn render_selector(sel: &LabelSelector) -> BadValue {
    let labels: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let exprs: Vec<String> = sel
        .match_expressions
        .iter()
        .flatten()
        .map(|r| {
            let values = r.values.clone().unwrap_or_default().join(" ");
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{values}],}},",
                r.key, r.operator
            )
        })
        .collect();
    BadValue::Raw(format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{}}},MatchExpressions:[]LabelSelectorRequirement{{{}}},}}",
        labels.join(""),
        exprs.join("")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn names_namespaces_and_generate_name() {
        assert!(
            validate_object_meta(&meta("web", Some("default")), true, NameRule::Subdomain)
                .is_empty()
        );
        let c = validate_object_meta(&meta("Foo", Some("default")), true, NameRule::Subdomain);
        assert_eq!(c[0].field, "metadata.name");
        assert!(c[0]
            .message
            .starts_with("Invalid value: \"Foo\": a lowercase RFC 1123 subdomain"));
        assert_eq!(
            validate_object_meta(&meta("a.b", None), false, NameRule::Label)[0].message,
            "Invalid value: \"a.b\": must not contain dots"
        );
        assert_eq!(
            validate_object_meta(&meta("n", Some("x")), false, NameRule::Subdomain)[0].message,
            "Forbidden: not allowed on this type"
        );
        assert_eq!(
            validate_object_meta(&meta("p", None), true, NameRule::Subdomain)[0].field,
            "metadata.namespace"
        );
        let generated = ObjectMeta {
            generate_name: Some("web-".into()),
            namespace: Some("d".into()),
            ..Default::default()
        };
        assert!(validate_object_meta(&generated, true, NameRule::Subdomain).is_empty());
        let nothing = ObjectMeta {
            namespace: Some("d".into()),
            ..Default::default()
        };
        assert_eq!(
            validate_object_meta(&nothing, true, NameRule::Subdomain)[0].message,
            "Required value: name or generateName is required"
        );
    }

    #[test]
    fn labels_annotations_and_update() {
        let mut m = meta("x", None);
        m.labels = Some(BTreeMap::from([
            ("bad key".into(), "ok".into()),
            ("k".into(), "-bad".into()),
        ]));
        m.annotations = Some(BTreeMap::from([(
            "Big".into(),
            "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT),
        )]));
        let c = validate_object_meta(&m, false, NameRule::Subdomain);
        assert_eq!(c.iter().filter(|c| c.field == "metadata.labels").count(), 2);
        assert_eq!(
            c.last().unwrap().message,
            "Too long: must have at most 262144 bytes"
        );
        let upd = validate_object_meta_update(&meta("y", None), &meta("x", None));
        assert_eq!(
            upd[0].error(),
            "metadata.name: Invalid value: \"y\": field is immutable"
        );
        let mut deleting = meta("x", None);
        deleting.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ));
        let mut more = deleting.clone();
        more.finalizers = Some(vec!["example.com/keep".into()]);
        assert_eq!(
            validate_object_meta_update(&more, &deleting)[0].message,
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/keep\"}"
        );
        let mut relabeled = meta("x", None);
        relabeled.labels = Some(BTreeMap::from([("ok".into(), "not ok!".into())]));
        assert_eq!(
            validate_object_meta_update(&relabeled, &meta("x", None))[0].field,
            "metadata.labels"
        );
    }

    #[test]
    fn selectors_match_and_render() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "b".to_string()),
        ]);
        assert!(selector_matches(&sel, &labels));
        assert!(!selector_matches(
            &sel,
            &BTreeMap::from([("app".to_string(), "web".to_string())])
        ));
        assert_eq!(
            render_selector(&sel).render(),
            "&LabelSelector{MatchLabels:map[string]string{app: web,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:tier,Operator:In,Values:[a b],},},}"
        );
        assert!(selector_is_empty(&LabelSelector::default()));
    }
}
