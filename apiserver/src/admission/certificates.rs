//! The CertificateSigningRequest's write strategy (kube-apiserver's
//! `pkg/registry/certificates/certificates/strategy.go`): which fields each door may change.
//!
//! A CSR asks the cluster to sign a public key for a name. The *requestor* is whoever posted
//! it, and that is the one thing an approver must be able to trust, so the server, not the
//! client, writes it: on create `spec.username`, `spec.uid` and `spec.groups` are the
//! authenticated user's, whatever the body said, and the status starts empty (nobody can post
//! a pre-approved request). After that the spec never changes, and the decision and its result
//! go through separate doors:
//!
//! - `approval` (`kubectl certificate approve|deny`, the controller's approver) changes only
//!   `status.conditions`: Approved, Denied;
//! - `status` (the signer) sets `status.certificate` and other conditions (Failed), but keeps
//!   the Approved/Denied conditions exactly as they are;
//! - the main resource changes only metadata.
//!
//! Read next: `validation/certificates.rs` (what a request and its conditions must look like).

use serde_json::{json, Value};

use crate::auth::User;
use crate::object;

/// The plural this strategy is for.
pub const RESOURCE: &str = "certificatesigningrequests";

/// The condition types kube-apiserver knows on a CSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionType {
    /// A human or the approver allowed the signer to sign.
    Approved,
    /// The request was refused; it will never be signed.
    Denied,
    /// The signer could not or would not sign it.
    Failed,
}

impl ConditionType {
    /// The `type` string of the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Approved => "Approved",
            ConditionType::Denied => "Denied",
            ConditionType::Failed => "Failed",
        }
    }

    /// The known type named `s`.
    pub fn parse(s: &str) -> Option<ConditionType> {
        [
            ConditionType::Approved,
            ConditionType::Denied,
            ConditionType::Failed,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// `PrepareForCreate`: the requestor from the authenticated user (when there is one; an API
/// without authentication keeps what was sent) and an empty status.
pub fn prepare_create(obj: &mut Value, user: Option<&User>) {
    if let Some(user) = user {
        if !obj.get("spec").is_some_and(Value::is_object) {
            obj["spec"] = json!({});
        }
        let spec = &mut obj["spec"];
        spec["username"] = json!(user.name);
        if user.uid.is_empty() {
            spec.as_object_mut().map(|s| s.remove("uid"));
        } else {
            spec["uid"] = json!(user.uid);
        }
        spec["groups"] = json!(user.groups);
        spec.as_object_mut().map(|s| s.remove("extra"));
    }
    obj.as_object_mut().map(|o| o.remove("status"));
}

/// `PrepareForUpdate` of the main resource and of the `status` and `approval` subresources:
/// the stored object `old` with only what this door may change taken from `new`.
pub fn prepare_update(subresource: Option<&str>, old: &Value, new: Value) -> Value {
    match subresource {
        None => {
            let mut out = new;
            out["spec"] = old.get("spec").cloned().unwrap_or(Value::Null);
            match old.get("status") {
                Some(s) => out["status"] = s.clone(),
                None => {
                    out.as_object_mut().map(|o| o.remove("status"));
                }
            }
            out
        }
        Some("approval") => {
            let mut out = old.clone();
            set_conditions(&mut out, conditions(&new).to_vec());
            stamp_conditions(&mut out, old);
            out
        }
        _ => {
            let mut out = old.clone();
            out["status"] = new.get("status").cloned().unwrap_or(json!({}));
            preserve_decisions(&mut out, old);
            stamp_conditions(&mut out, old);
            out
        }
    }
}

/// The conditions of a CSR (empty when it has none).
pub fn conditions(obj: &Value) -> &[Value] {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// How many conditions of `ty` the CSR has.
pub fn count(obj: &Value, ty: ConditionType) -> usize {
    conditions(obj)
        .iter()
        .filter(|c| c["type"] == ty.as_str())
        .count()
}

fn set_conditions(obj: &mut Value, list: Vec<Value>) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    if list.is_empty() {
        obj["status"]
            .as_object_mut()
            .map(|s| s.remove("conditions"));
    } else {
        obj["status"]["conditions"] = Value::Array(list);
    }
}

/// `preserveConditionInstances`: a status write keeps the Approved and Denied conditions as
/// stored (when it carries as many of them; otherwise validation refuses the change).
fn preserve_decisions(new: &mut Value, old: &Value) {
    let mut list = conditions(new).to_vec();
    for ty in [ConditionType::Approved, ConditionType::Denied] {
        let olds: Vec<&Value> = conditions(old)
            .iter()
            .filter(|c| c["type"] == ty.as_str())
            .collect();
        let news: Vec<usize> = (0..list.len())
            .filter(|&i| list[i]["type"] == ty.as_str())
            .collect();
        if olds.len() == news.len() {
            for (i, o) in news.into_iter().zip(olds) {
                list[i] = o.clone();
            }
        }
    }
    set_conditions(new, list);
}

/// `populateConditionTimestamps`: `lastUpdateTime` now where unset; `lastTransitionTime` kept
/// from the stored condition of the same type and status, else now.
fn stamp_conditions(new: &mut Value, old: &Value) {
    let now = object::now();
    let mut list = conditions(new).to_vec();
    for c in &mut list {
        if c.get("lastUpdateTime").is_none_or(Value::is_null) {
            c["lastUpdateTime"] = json!(now);
        }
        if c.get("lastTransitionTime").is_none_or(Value::is_null) {
            let before = conditions(old)
                .iter()
                .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
                .and_then(|o| o.get("lastTransitionTime"))
                .filter(|t| !t.is_null());
            c["lastTransitionTime"] = before.cloned().unwrap_or_else(|| json!(now));
        }
    }
    if !list.is_empty() {
        set_conditions(new, list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr() -> Value {
        json!({"metadata": {"name": "c"},
            "spec": {"request": "cmVx", "signerName": "kubernetes.io/kube-apiserver-client",
                     "usages": ["client auth"], "username": "mallory", "groups": ["system:masters"]},
            "status": {"conditions": [{"type": "Approved", "status": "True"}]}})
    }

    #[test]
    fn create_takes_the_requestor_from_the_authenticated_user() {
        let user = User {
            name: "system:bootstrap:abcdef".into(),
            uid: String::new(),
            groups: vec!["system:bootstrappers".into(), "system:authenticated".into()],
        };
        let mut obj = csr();
        prepare_create(&mut obj, Some(&user));
        assert_eq!(obj["spec"]["username"], "system:bootstrap:abcdef");
        assert_eq!(
            obj["spec"]["groups"],
            json!(["system:bootstrappers", "system:authenticated"])
        );
        assert!(obj.get("status").is_none(), "no pre-approved requests");
        let mut anonymous = csr();
        prepare_create(&mut anonymous, None);
        assert_eq!(anonymous["spec"]["username"], "mallory");
    }

    #[test]
    fn each_door_changes_only_its_fields() {
        let mut old = csr();
        old["status"] = json!({"conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved"}]});
        let mut new = old.clone();
        new["spec"]["username"] = json!("eve");
        new["status"]["certificate"] = json!("Y2VydA==");
        new["status"]["conditions"][0]["reason"] = json!("Changed");
        let main = prepare_update(None, &old, new.clone());
        assert_eq!(main["spec"], old["spec"]);
        assert_eq!(main["status"], old["status"]);
        let status = prepare_update(Some("status"), &old, new.clone());
        assert_eq!(status["spec"], old["spec"]);
        assert_eq!(status["status"]["certificate"], "Y2VydA==");
        assert_eq!(status["status"]["conditions"][0]["reason"], "AutoApproved");
        let approval = prepare_update(Some("approval"), &old, new);
        assert!(approval["status"].get("certificate").is_none());
        assert_eq!(approval["status"]["conditions"][0]["reason"], "Changed");
        assert!(approval["status"]["conditions"][0]["lastUpdateTime"].is_string());
    }
}
