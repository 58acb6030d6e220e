//! CertificateSigningRequests (issue 13: a joining kubelet obtains its client certificate by
//! TLS bootstrapping) on a real etcd, with static bearer tokens standing for a bootstrap
//! token's user (`system:bootstrap:abcdef` in `system:bootstrappers`) and an admin: the
//! requestor is the authenticated user whatever the body says, `kubectl get csr` prints
//! kubectl's columns, `kubectl certificate approve` goes through the `approval` subresource,
//! the signer's `status` write issues the certificate but cannot touch the decision, and a
//! request that is not a signed PEM `CERTIFICATE REQUEST` is a 422; `kubectl certificate deny`,
//! the `spec.signerName` field selector, and Denied being final. (kubectl sends no bearer
//! token over plain HTTP, so its part runs on an API without authentication.)

mod common;

use apiserver::auth::{Authentication, Authenticator, TokenAuth};
use client::pki::{new_request, parse_request, Pki, Sans, Usage};
use common::{Cluster, ServerConfig};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use serde_json::json;

const ADMIN_TOKEN: &str = "admin-token";
const BOOTSTRAP_TOKEN: &str = "abcdef.0123456789abcdef";
const TOKENS: &str = "admin-token,kubernetes-admin,1,\"system:masters\"\n\
                      abcdef.0123456789abcdef,system:bootstrap:abcdef,,\"system:bootstrappers\"\n";
const KUBELET_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// A cluster that authenticates the two tokens of [`TOKENS`].
async fn cluster() -> Cluster {
    let tokens = TokenAuth::parse(TOKENS).unwrap();
    Cluster::with_config(ServerConfig {
        authentication: Authentication::new(vec![Authenticator::Token(tokens)]),
        ..Default::default()
    })
    .await
}

/// A kube-rs client presenting `token`.
fn client_with_token(c: &Cluster, token: &str) -> kube::Client {
    let mut config = kube::Config::new(c.url().parse().unwrap());
    config.auth_info = serde_json::from_value(json!({ "token": token })).unwrap();
    kube::Client::try_from(config).unwrap()
}

/// A node's CSR for the kubelet signer, with a forged requestor in the body.
fn node_csr(name: &str, node: &str) -> CertificateSigningRequest {
    let (pem, _key) = new_request(&format!("system:node:{node}"), &["system:nodes"]).unwrap();
    CertificateSigningRequest {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
            signer_name: KUBELET_SIGNER.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            username: Some("mallory".into()),
            groups: Some(vec!["system:masters".into()]),
            ..Default::default()
        },
        status: None,
    }
}

/// The AGE cell (second column) of each row replaced by `AGE`, the column kept as wide.
fn without_ages(table: &str) -> String {
    table
        .lines()
        .map(|line| {
            let name_end = line.find(' ').unwrap_or(line.len());
            let rest = &line[name_end..];
            let age_start = name_end + rest.len() - rest.trim_start().len();
            let age_len = line[age_start..].find(' ').unwrap_or(0);
            let cell_end = age_start + age_len + line[age_start + age_len..].len()
                - line[age_start + age_len..].trim_start().len();
            if line.starts_with("NAME") || age_len == 0 {
                return line.to_string();
            }
            let width = cell_end - age_start;
            format!(
                "{}{:<width$}{}",
                &line[..age_start],
                "AGE",
                &line[cell_end..]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrappers_request_names_the_authenticated_requestor() {
    let c = cluster().await;
    let boot: Api<CertificateSigningRequest> = Api::all(client_with_token(&c, BOOTSTRAP_TOKEN));
    let created = boot
        .create(&PostParams::default(), &node_csr("node-csr-1", "n1"))
        .await
        .unwrap();
    assert_eq!(
        created.spec.username.as_deref(),
        Some("system:bootstrap:abcdef")
    );
    assert_eq!(
        created.spec.groups.clone().unwrap(),
        ["system:bootstrappers", "system:authenticated"]
    );
    assert!(created.status.is_none_or(|s| s.conditions.is_none()));

    let all: Api<CertificateSigningRequest> = Api::all(client_with_token(&c, ADMIN_TOKEN));
    assert_eq!(all.get("node-csr-1").await.unwrap().spec, created.spec);
}

/// kubectl sends no bearer token over plain HTTP, so its part runs on an API without
/// authentication, where the requestor is kept as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_and_approves_requests_and_the_signer_issues_through_status() {
    let c = Cluster::start().await;
    let all: Api<CertificateSigningRequest> = Api::all(c.client());
    let mut csr = node_csr("node-csr-1", "n1");
    csr.spec.username = Some("system:bootstrap:abcdef".into());
    all.create(&PostParams::default(), &csr).await.unwrap();
    let table = c.kubectl_ok(&["get", "csr"]).await;
    assert_eq!(
        without_ages(&table),
        "NAME         AGE   SIGNERNAME                                    REQUESTOR                 REQUESTEDDURATION   CONDITION\n\
         node-csr-1   AGE   kubernetes.io/kube-apiserver-client-kubelet   system:bootstrap:abcdef   <none>              Pending",
        "{table}"
    );
    let mut other = node_csr("other-signer", "n2");
    other.spec.signer_name = "example.com/other".into();
    all.create(&PostParams::default(), &other).await.unwrap();
    let selected = c
        .kubectl_ok(&[
            "get",
            "csr",
            "-o",
            "name",
            "--field-selector",
            &format!("spec.signerName={KUBELET_SIGNER}"),
        ])
        .await;
    assert_eq!(
        selected,
        "certificatesigningrequest.certificates.k8s.io/node-csr-1\n"
    );
    let out = c.kubectl_ok(&["certificate", "deny", "other-signer"]).await;
    assert_eq!(
        out,
        "certificatesigningrequest.certificates.k8s.io/other-signer denied\n"
    );
    let out = c
        .kubectl_ok(&["certificate", "approve", "node-csr-1"])
        .await;
    assert_eq!(
        out,
        "certificatesigningrequest.certificates.k8s.io/node-csr-1 approved\n"
    );
    let approved = all.get("node-csr-1").await.unwrap();
    let condition = &approved.status.clone().unwrap().conditions.unwrap()[0];
    assert_eq!(
        (condition.type_.as_str(), condition.status.as_str()),
        ("Approved", "True")
    );
    assert_eq!(condition.reason.as_deref(), Some("KubectlApprove"));
    assert!(condition.last_update_time.is_some());
    assert_eq!(
        approved.spec.username.as_deref(),
        Some("system:bootstrap:abcdef"),
        "the approval left the spec alone"
    );

    // The signer's status write: the certificate is issued, the decision stays as it was.
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), &Sans::default()).unwrap();
    let request = parse_request(&approved.spec.request.0).unwrap();
    let cert = pki
        .sign_request(
            &request,
            &[Usage::DigitalSignature, Usage::ClientAuth],
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
    let mut signed = approved.clone();
    let status = signed.status.as_mut().unwrap();
    status.certificate = Some(ByteString(cert.clone().into_bytes()));
    status.conditions.as_mut().unwrap()[0].reason = Some("Forged".into());
    let issued = all
        .replace_status("node-csr-1", &PostParams::default(), &signed)
        .await
        .unwrap();
    let status = issued.status.unwrap();
    assert_eq!(status.certificate.unwrap().0, cert.as_bytes());
    assert_eq!(
        status.conditions.unwrap()[0].reason.as_deref(),
        Some("KubectlApprove")
    );
    let table = c
        .kubectl_ok(&["get", "csr", "node-csr-1", "--no-headers"])
        .await;
    assert!(table.trim_end().ends_with("Approved,Issued"), "{table}");
    let table = c
        .kubectl_ok(&["get", "csr", "other-signer", "--no-headers"])
        .await;
    assert!(table.trim_end().ends_with("Denied"), "{table}");
    // Denied is final (kubectl refuses on its own; the server too): approving it as well is 422.
    let mut both = serde_json::to_value(all.get("other-signer").await.unwrap()).unwrap();
    both["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Approved", "status": "True", "reason": "Sneaky"}));
    let both: CertificateSigningRequest = serde_json::from_value(both).unwrap();
    let err = all
        .replace_subresource("approval", "other-signer", &PostParams::default(), &both)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("Approved and Denied conditions are mutually exclusive"),
        "{}",
        status.message
    );

    // A status write may not withdraw the approval, nor replace the certificate.
    let mut withdrawn = serde_json::to_value(all.get("node-csr-1").await.unwrap()).unwrap();
    withdrawn["status"]["conditions"] = json!([]);
    withdrawn["status"]["certificate"] = json!("b3RoZXI=");
    let err = all
        .replace_status(
            "node-csr-1",
            &PostParams::default(),
            &serde_json::from_value(withdrawn).unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("updates may not remove a condition of type \"Approved\""),
        "{}",
        status.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_is_not_a_signed_pem_csr_is_invalid() {
    let c = cluster().await;
    let all: Api<CertificateSigningRequest> = Api::all(client_with_token(&c, ADMIN_TOKEN));
    let mut bad = node_csr("bad", "n1");
    bad.spec.request = ByteString(b"not a CSR".to_vec());
    bad.spec.signer_name = String::new();
    let err = all.create(&PostParams::default(), &bad).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .starts_with("CertificateSigningRequest.certificates.k8s.io \"bad\" is invalid: [spec.request: Invalid value: []byte{0x6e, 0x6f, 0x74"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains(
            "PEM block type must be CERTIFICATE REQUEST, spec.signerName: Required value]"
        ),
        "{}",
        status.message
    );
    // Anonymous requests are refused before any of this.
    let anonymous: Api<CertificateSigningRequest> = Api::all(c.client());
    let err = anonymous.list(&Default::default()).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 401));
}
