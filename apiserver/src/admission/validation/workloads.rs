//! Deployment and ReplicaSet validation (`pkg/apis/apps/validation`): a non-empty selector that
//! matches the pod template's labels (otherwise the controller would adopt pods it never made),
//! a template that restarts Always, non-negative counts, a rolling update that can make progress
//! (maxSurge and maxUnavailable not both 0). In apps/v1 the selector is immutable.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::{BadValue, Cause};
use super::{meta, names, pod};

fn non_negative(value: Option<i32>, path: &str, causes: &mut Vec<Cause>) {
    if let Some(v) = value.filter(|v| *v < 0) {
        causes.push(Cause::invalid(
            path,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

/// Selector presence, grammar, emptiness, then the template checked against it.
fn selector_and_template(
    selector: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    causes: &mut Vec<Cause>,
) {
    match selector {
        None => causes.push(Cause::required("spec.selector", "")),
        Some(sel) => {
            causes.extend(meta::validate_label_selector(sel, "spec.selector"));
            if meta::selector_is_empty(sel) {
                causes.push(Cause::invalid(
                    "spec.selector",
                    meta::render_selector(sel),
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    let Some(template) = template else {
        causes.push(Cause::required("spec.template", ""));
        return;
    };
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    if let Some(sel) = selector.filter(|s| !meta::selector_is_empty(s)) {
        if !meta::selector_matches(sel, &labels.clone().unwrap_or_default()) {
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                BadValue::StrMap(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    causes.extend(pod::validate_pod_template(template, "spec.template"));
    let spec = template.spec.clone().unwrap_or_default();
    let restart = spec.restart_policy.as_deref().unwrap_or("");
    if restart != "Always" {
        causes.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            restart,
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        causes.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

/// `ValidateDeploymentSpec`. `has_selector` says whether the request carried `spec.selector`
/// (k8s-openapi cannot tell a missing selector from an empty one).
pub fn validate_deployment(d: &Deployment, has_selector: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = d.spec.clone().unwrap_or_default();
    non_negative(spec.replicas, "spec.replicas", &mut causes);
    selector_and_template(
        has_selector.then_some(&spec.selector),
        Some(&spec.template),
        &mut causes,
    );
    validate_strategy(spec.strategy.as_ref(), &mut causes);
    non_negative(spec.min_ready_seconds, "spec.minReadySeconds", &mut causes);
    non_negative(
        spec.revision_history_limit,
        "spec.revisionHistoryLimit",
        &mut causes,
    );
    if let Some(pds) = spec.progress_deadline_seconds {
        non_negative(Some(pds), "spec.progressDeadlineSeconds", &mut causes);
        if pds <= spec.min_ready_seconds.unwrap_or(0) {
            causes.push(Cause::invalid(
                "spec.progressDeadlineSeconds",
                pds,
                "must be greater than minReadySeconds",
            ));
        }
    }
    causes
}

fn int_or_string_text(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// The numeric value of an int-or-percent (`getIntOrPercentValue`); a bad percent counts as 0.
fn int_or_percent_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(i) => (*i).into(),
        IntOrString::String(s) => s
            .strip_suffix('%')
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    }
}

fn validate_int_or_percent(v: &IntOrString, path: &str, causes: &mut Vec<Cause>) {
    match v {
        IntOrString::String(s) => {
            let ok = s
                .strip_suffix('%')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                let msg = names::regex_error(
                    "a valid percent string must be a numeric string followed by an ending '%'",
                    "[0-9]+%",
                    &["1%", "93%"],
                );
                causes.push(Cause::invalid(path, BadValue::Raw(s.clone()), &msg));
            }
        }
        IntOrString::Int(i) if *i < 0 => causes.push(Cause::invalid(
            path,
            *i,
            "must be greater than or equal to 0",
        )),
        IntOrString::Int(_) => {}
    }
}

/// `ValidateDeploymentStrategy` and `ValidateRollingUpdateDeployment`.
fn validate_strategy(strategy: Option<&DeploymentStrategy>, causes: &mut Vec<Cause>) {
    let strategy = strategy.cloned().unwrap_or_default();
    match strategy.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                causes.push(Cause::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            let Some(ru) = strategy.rolling_update.as_ref() else {
                causes.push(Cause::required(
                    "spec.strategy.rollingUpdate",
                    "this should be defaulted and never be nil",
                ));
                return;
            };
            let zero = IntOrString::Int(0);
            let max_unavailable = ru.max_unavailable.as_ref().unwrap_or(&zero);
            let max_surge = ru.max_surge.as_ref().unwrap_or(&zero);
            validate_int_or_percent(
                max_unavailable,
                "spec.strategy.rollingUpdate.maxUnavailable",
                causes,
            );
            validate_int_or_percent(max_surge, "spec.strategy.rollingUpdate.maxSurge", causes);
            let shown = BadValue::Raw(int_or_string_text(max_unavailable));
            if int_or_percent_value(max_unavailable) == 0 && int_or_percent_value(max_surge) == 0 {
                causes.push(Cause::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    shown.clone(),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            if matches!(max_unavailable, IntOrString::String(_))
                && int_or_percent_value(max_unavailable) > 100
            {
                causes.push(Cause::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    shown,
                    "must not be greater than 100%",
                ));
            }
        }
        other => {
            let shown = format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}",
                super::super::go_quote(other)
            );
            causes.push(Cause::not_supported(
                "spec.strategy",
                BadValue::Raw(shown),
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
}

/// `ValidateReplicaSetSpec`.
/// `has_selector` as for deployments.
pub fn validate_replicaset(rs: &ReplicaSet, has_selector: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = rs.spec.clone().unwrap_or_default();
    non_negative(spec.replicas, "spec.replicas", &mut causes);
    non_negative(spec.min_ready_seconds, "spec.minReadySeconds", &mut causes);
    selector_and_template(
        has_selector.then_some(&spec.selector),
        spec.template.as_ref(),
        &mut causes,
    );
    causes
}

/// apps/v1: `spec.selector` never changes after create.
pub fn validate_selector_update(new: &LabelSelector, old: &LabelSelector) -> Vec<Cause> {
    if new == old {
        Vec::new()
    } else {
        vec![Cause::invalid(
            "spec.selector",
            meta::render_selector(new),
            "field is immutable",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn deployment(spec: Value) -> (Deployment, bool) {
        let mut v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "default"}, "spec": spec});
        super::super::super::defaults::apply_defaults("deployments", &mut v);
        let has = v.pointer("/spec/selector").is_some();
        (serde_json::from_value(v).unwrap(), has)
    }

    fn template(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    #[test]
    fn selector_must_match_template_labels() {
        let (d, has) = deployment(
            json!({"selector": {"matchLabels": {"app": "y"}}, "template": template(json!({"app": "x"}))}),
        );
        let c = validate_deployment(&d, has);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].error(), "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`");
        let (ok, has) = deployment(
            json!({"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x", "tier": "web"}))}),
        );
        assert!(validate_deployment(&ok, has).is_empty());
    }

    #[test]
    fn selector_required_and_non_empty() {
        let (d, has) = deployment(json!({"template": template(json!({"app": "x"}))}));
        assert_eq!(
            validate_deployment(&d, has)[0].error(),
            "spec.selector: Required value"
        );
        let (d, has) =
            deployment(json!({"selector": {}, "template": template(json!({"app": "x"}))}));
        assert_eq!(
            validate_deployment(&d, has)[0].error(),
            "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}: empty selector is invalid for deployment"
        );
    }

    #[test]
    fn replicas_strategy_and_restart_policy() {
        let mut t = template(json!({"app": "x"}));
        t["spec"]["restartPolicy"] = json!("Never");
        let (d, has) = deployment(
            json!({"replicas": -1, "selector": {"matchLabels": {"app": "x"}}, "template": t,
            "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}),
        );
        let errors: Vec<String> = validate_deployment(&d, has)
            .iter()
            .map(|c| c.error())
            .collect();
        assert_eq!(errors, vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0".to_string(),
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"".to_string(),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0".to_string(),
        ]);
    }

    #[test]
    fn replicaset_and_immutable_selector() {
        let mut v = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r", "namespace": "d"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": template(json!({"app": "b"}))}});
        super::super::super::defaults::apply_defaults("replicasets", &mut v);
        let rs: ReplicaSet = serde_json::from_value(v).unwrap();
        assert_eq!(
            validate_replicaset(&rs, true)[0].field,
            "spec.template.metadata.labels"
        );
        let a = LabelSelector {
            match_labels: Some([("app".to_string(), "a".to_string())].into()),
            ..Default::default()
        };
        let b = LabelSelector {
            match_labels: Some([("app".to_string(), "b".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(
            validate_selector_update(&b, &a)[0].error(),
            "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{app: b,},MatchExpressions:[]LabelSelectorRequirement{},}: field is immutable"
        );
    }
}
