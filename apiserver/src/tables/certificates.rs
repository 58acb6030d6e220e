//! Rows for CertificateSigningRequests, as `kubectl get csr` prints them
//! (`printCertificateSigningRequest`): who asked (REQUESTOR, the `spec.username` the server
//! wrote), of which signer, for how long, and where the request stands: CONDITION is
//! `Pending`, `Approved` or `Denied`, then `,Failed` and `,Issued` once the signer acted.

use serde_json::{json, Value};

use super::{age, col, human_duration, name, str_at, Col, AGE, NAME};

pub(super) const CSR_COLUMNS: &[Col] = &[
    NAME,
    AGE,
    col("SignerName", "string", "signerName indicates the requested signer, and is a qualified name."),
    col("Requestor", "string", "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block. When serialized as JSON or YAML, the data is additionally base64-encoded."),
    col("RequestedDuration", "string", "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration."),
    col("Condition", "string", "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\"."),
];

/// NAME, AGE, SIGNERNAME, REQUESTOR, REQUESTEDDURATION, CONDITION.
pub(super) fn csr_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    let signer = match str_at(obj, "/spec/signerName") {
        "" => "<none>",
        s => s,
    };
    let duration = obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .map_or_else(|| "<none>".to_string(), |s| human_duration(s * 1000));
    json!([
        name(obj),
        age(obj, now),
        signer,
        str_at(obj, "/spec/username"),
        duration,
        condition(obj)
    ])
}

/// `extractCSRStatus`: Denied over Approved over Pending, then `,Failed`, then `,Issued`.
fn condition(obj: &Value) -> String {
    let has = |ty: &str| {
        obj.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|c| c["type"] == ty))
    };
    let mut out = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        out.push_str(",Failed");
    }
    if !str_at(obj, "/status/certificate").is_empty() {
        out.push_str(",Issued");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, now};
    use super::super::{column_definitions, row, IncludeObject};
    use serde_json::json;

    #[test]
    fn csr_rows_say_who_asked_and_where_it_stands() {
        let created = ago(90).to_string();
        let pending = json!({"metadata": {"name": "node-csr-a", "creationTimestamp": created},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "username": "system:bootstrap:abcdef"}});
        assert_eq!(
            row(
                "certificatesigningrequests",
                &pending,
                now(),
                IncludeObject::None
            )["cells"],
            json!([
                "node-csr-a",
                "90s",
                "kubernetes.io/kube-apiserver-client-kubelet",
                "system:bootstrap:abcdef",
                "<none>",
                "Pending"
            ])
        );
        let mut issued = pending.clone();
        issued["spec"]["expirationSeconds"] = json!(3600);
        issued["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}],
            "certificate": "Y2VydA=="});
        let cells = &row(
            "certificatesigningrequests",
            &issued,
            now(),
            IncludeObject::None,
        )["cells"];
        assert_eq!(cells[4], "60m");
        assert_eq!(cells[5], "Approved,Issued");
        let names: Vec<_> = column_definitions("certificatesigningrequests")
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Age",
                "SignerName",
                "Requestor",
                "RequestedDuration",
                "Condition"
            ]
        );
    }
}
