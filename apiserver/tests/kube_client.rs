//! The `kube` crate (what every Rust controller uses) against our apiserver: typed CRUD,
//! selectors and pagination, server-side apply, and a `kube::runtime` reflector that keeps an
//! exact copy of the truth through an apiserver restart and an etcd compaction (410 Expired →
//! relist).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{send, wait_for, EtcdProcess, ServerConfig, TestServer, WatchStream};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher};
use serde_json::json;

fn client_for(url: &str) -> kube::Client {
    kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}

fn pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}
    }))
    .unwrap()
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        }
    }))
    .unwrap()
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect();
    v.sort();
    v
}

fn local(addr: &str) -> SocketAddr {
    addr.parse().unwrap()
}

fn unique_prefix() -> String {
    format!("/registry-kube-{}", std::process::id())
        + &format!(
            "-{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_crud_selectors_and_pagination() {
    let etcd = EtcdProcess::start();
    let server = TestServer::start(&etcd, ServerConfig::default()).await;
    let client = client_for(&server.url);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    for i in 0..7 {
        let app = if i % 2 == 0 { "web" } else { "db" };
        let created = pods
            .create(&PostParams::default(), &pod(&format!("p{i}"), app))
            .await
            .unwrap();
        assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    }
    let err = pods
        .create(&PostParams::default(), &pod("p0", "web"))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("{other:?}"),
    }

    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(names(&web.items), ["p0", "p2", "p4", "p6"]);
    let not_web = pods
        .list(&ListParams::default().labels("app!=web"))
        .await
        .unwrap();
    assert_eq!(names(&not_web.items), ["p1", "p3", "p5"]);
    let by_field = pods
        .list(&ListParams::default().fields("metadata.name=p3"))
        .await
        .unwrap();
    assert_eq!(names(&by_field.items), ["p3"]);

    // Pages of 3 pinned to the first page's revision: a pod created mid-way is not in them.
    let first = pods.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let pinned = first.metadata.resource_version.clone().unwrap();
    pods.create(&PostParams::default(), &pod("p9", "web"))
        .await
        .unwrap();
    let mut all = first.items.clone();
    let mut token = first.metadata.continue_.clone();
    let mut pages = 1;
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = pods
            .list(&ListParams::default().limit(3).continue_token(&t))
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(pinned.as_str()),
            "pages share one revision"
        );
        all.extend(page.items);
        token = page.metadata.continue_;
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(names(&all), ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
    // Paging with a selector.
    let page = pods
        .list(&ListParams::default().labels("app=web").limit(2))
        .await
        .unwrap();
    assert_eq!(names(&page.items), ["p0", "p2"]);
    let rest = pods
        .list(
            &ListParams::default()
                .labels("app=web")
                .limit(10)
                .continue_token(page.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(&rest.items), ["p4", "p6", "p9"]);
    assert!(rest.metadata.continue_.as_deref().unwrap_or("").is_empty());

    // Deployments: get, replace with the read resourceVersion, merge patch, delete.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    let mut d = deploys.get("web").await.unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    d.spec.as_mut().unwrap().replicas = Some(3);
    let replaced = deploys
        .replace("web", &PostParams::default(), &d)
        .await
        .unwrap();
    assert_eq!(replaced.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(replaced.metadata.generation, Some(2));
    // The same (now stale) object again: 409 Conflict.
    let err = deploys
        .replace("web", &PostParams::default(), &d)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{err:?}"
    );
    let patched = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["tier"], "front");
    assert_eq!(patched.metadata.generation, Some(2));
    let listed = deploys
        .list(&ListParams::default().labels("tier=front"))
        .await
        .unwrap();
    assert_eq!(names(&listed.items), ["web"]);
    deploys
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let err = deploys.get("web").await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"),
        "{err:?}"
    );
    assert!(deploys.get_opt("web").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_then_updates() {
    let etcd = EtcdProcess::start();
    let server = TestServer::start(&etcd, ServerConfig::default()).await;
    let deploys: Api<Deployment> = Api::namespaced(client_for(&server.url), "default");
    let params = PatchParams::apply("minik8s-test").force();

    let created = deploys
        .patch("applied", &params, &Patch::Apply(deployment("applied", 2)))
        .await
        .unwrap();
    assert_eq!(created.spec.as_ref().unwrap().replicas, Some(2));
    assert!(created.metadata.uid.is_some());
    let again = deploys
        .patch("applied", &params, &Patch::Apply(deployment("applied", 2)))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version, created.metadata.resource_version,
        "an unchanged apply writes nothing"
    );
    let updated = deploys
        .patch("applied", &params, &Patch::Apply(deployment("applied", 5)))
        .await
        .unwrap();
    assert_eq!(updated.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    assert_eq!(updated.metadata.generation, Some(2));
    assert_eq!(
        deploys.get("applied").await.unwrap().spec.unwrap().replicas,
        Some(5)
    );

    // Apply of status through the status subresource (kube-rs controllers do this).
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "status": {"replicas": 5, "observedGeneration": 2}});
    let with_status = deploys
        .patch_status("applied", &params, &Patch::Apply(status))
        .await
        .unwrap();
    assert_eq!(with_status.status.unwrap().observed_generation, Some(2));

    // Raw: the first apply answers 201, and fieldManager is required (422 on PatchOptions).
    let url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments/raw",
        server.url
    );
    let body = serde_json::to_string(&deployment("raw", 1)).unwrap();
    let http = reqwest::Client::new();
    let apply = |query: &str| {
        http.patch(format!("{url}{query}"))
            .header("content-type", "application/apply-patch+yaml")
            .body(body.clone())
    };
    let (code, status) = send(apply("")).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["kind"], "PatchOptions");
    assert_eq!(status["details"]["causes"][0]["field"], "fieldManager");
    let (code, created) = send(apply("?fieldManager=raw")).await;
    assert_eq!(code, 201, "{created}");
    let (code, _) = send(apply("?fieldManager=raw")).await;
    assert_eq!(code, 200);
    // YAML bodies work too.
    let yaml =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: raw\nspec:\n  replicas: 4\n";
    let (code, updated) = send(
        http.patch(format!("{url}?fieldManager=raw"))
            .header("content-type", "application/apply-patch+yaml")
            .body(yaml),
    )
    .await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["spec"]["replicas"], 4);
}

/// name → resourceVersion.
type Snapshot = BTreeMap<String, String>;

fn snapshot<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Snapshot {
    pods.into_iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap(),
                p.metadata.resource_version.clone().unwrap(),
            )
        })
        .collect()
}

async fn truth(api: &Api<Pod>) -> Snapshot {
    snapshot(&api.list(&ListParams::default()).await.unwrap().items)
}

async fn wait_for_store(store: &reflector::Store<Pod>, api: &Api<Pod>, what: &str) -> Snapshot {
    wait_for(60, what, || async {
        let want = truth(api).await;
        let have = snapshot(store.state().iter().map(|p| p.as_ref()));
        (have == want).then_some(want)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_survives_restart_and_compaction_with_410_and_relist() {
    let etcd = EtcdProcess::start();
    let prefix = unique_prefix();
    let a = TestServer::start_on(
        &etcd,
        &prefix,
        local("127.0.0.1:0"),
        ServerConfig::default(),
    )
    .await;
    let a_addr = a.addr;
    let a_api: Api<Pod> = Api::namespaced(client_for(&a.url), "default");

    let (store, writer) = reflector::store();
    let relists = Arc::new(AtomicUsize::new(0));
    let counter = relists.clone();
    let watch_api: Api<Pod> = Api::namespaced(client_for(&a.url), "default");
    let informer = tokio::spawn(async move {
        let mut stream = reflector(writer, watcher(watch_api, watcher::Config::default())).boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Init) => {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                // Server down: retry soon (the default back-off would only slow the test).
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), store.wait_until_ready())
        .await
        .expect("store ready")
        .unwrap();

    // Live changes: created, modified, deleted.
    for name in ["p1", "p2", "p3"] {
        a_api
            .create(&PostParams::default(), &pod(name, "web"))
            .await
            .unwrap();
    }
    a_api
        .patch(
            "p1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"v": "2"}}})),
        )
        .await
        .unwrap();
    a_api.delete("p2", &DeleteParams::default()).await.unwrap();
    let seen = wait_for_store(&store, &a_api, "the reflector to see the live changes").await;
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["p1", "p3"]);
    let last_seen_rv = a_api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    assert_eq!(relists.load(Ordering::SeqCst), 1);

    // A goes away; another apiserver on the same etcd data changes things meanwhile.
    a.shutdown();
    wait_for(30, "server A's port to close", || async {
        std::net::TcpStream::connect(a_addr).is_err().then_some(())
    })
    .await;
    let b = TestServer::start_on(
        &etcd,
        &prefix,
        local("127.0.0.1:0"),
        ServerConfig::default(),
    )
    .await;
    let b_api: Api<Pod> = Api::namespaced(client_for(&b.url), "default");
    b_api
        .create(&PostParams::default(), &pod("p4", "db"))
        .await
        .unwrap();
    b_api
        .patch(
            "p3",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"v": "3"}}})),
        )
        .await
        .unwrap();
    b_api.delete("p1", &DeleteParams::default()).await.unwrap();
    b_api
        .create(&PostParams::default(), &pod("p5", "db"))
        .await
        .unwrap();
    b_api.delete("p5", &DeleteParams::default()).await.unwrap();

    // Compact etcd at the current revision: the history the watcher would resume from is gone.
    let mut etcd_client = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let rev = etcd_client
        .get("/", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    etcd_client
        .compact(
            rev,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();

    // A comes back on the same address; the watcher's resourceVersion is now too old.
    let a2 = TestServer::start_on(&etcd, &prefix, a_addr, ServerConfig::default()).await;
    let mut probe = WatchStream::open(&format!(
        "{}/api/v1/namespaces/default/pods?watch=true&resourceVersion={last_seen_rv}",
        a2.url
    ))
    .await;
    let ev = probe.next().await;
    assert_eq!(
        (ev["type"].as_str(), ev["object"]["code"].as_i64()),
        (Some("ERROR"), Some(410)),
        "{ev}"
    );
    // A continue token from before the compaction is expired too.
    let (code, status) = send(reqwest::Client::new().get(format!(
        "{}/api/v1/namespaces/default/pods?limit=1&resourceVersion={last_seen_rv}&resourceVersionMatch=Exact",
        a2.url
    )))
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (410, Some("Expired")),
        "{status}"
    );

    let relisted = wait_for_store(&store, &b_api, "the reflector to relist after 410").await;
    assert_eq!(relisted.keys().collect::<Vec<_>>(), ["p3", "p4"]);
    let p3 = store
        .state()
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some("p3"))
        .unwrap();
    assert_eq!(p3.metadata.labels.as_ref().unwrap()["v"], "3");
    assert!(relists.load(Ordering::SeqCst) >= 2, "the watcher relisted");

    // And it keeps following.
    let a2_api: Api<Pod> = Api::namespaced(client_for(&a2.url), "default");
    a2_api
        .create(&PostParams::default(), &pod("p6", "web"))
        .await
        .unwrap();
    a2_api.delete("p3", &DeleteParams::default()).await.unwrap();
    let after = wait_for_store(
        &store,
        &a2_api,
        "the reflector to follow the restarted server",
    )
    .await;
    assert_eq!(after.keys().collect::<Vec<_>>(), ["p4", "p6"]);
    informer.abort();
    drop(b);
}
