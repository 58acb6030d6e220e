//! `minikctl cluster token create` where it cannot work: a kubeconfig without the cluster's CA
//! (a plain-HTTP test cluster) gives no CA to publish or pin, so the command says so in one
//! line, exits 1 and creates nothing. The working path, over TLS and through a joining
//! kubelet, is `tests/tests/join.rs`.

mod common;

use common::{minikctl, Cluster};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};

#[tokio::test]
async fn without_ca_data_no_token_is_made() {
    let cluster = Cluster::start().await;
    for args in [
        &["cluster", "token", "create"][..],
        &["cluster", "token", "create", "--print-join-command"],
    ] {
        let err = minikctl(&cluster, args).await.failed();
        assert_eq!(
            err,
            "error: the kubeconfig has no certificate-authority data: a joining node needs the cluster's CA (use the admin kubeconfig of a cluster served over TLS)\n"
        );
    }
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), "kube-system");
    assert!(secrets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "kube-public");
    assert!(cms.get_opt("cluster-info").await.unwrap().is_none());
    let err = minikctl(&cluster, &["cluster", "token", "create", "--ttl", "soon"])
        .await
        .failed();
    assert!(err.contains("--ttl"), "{err}");
}
