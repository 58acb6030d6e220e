//! A fake apiserver for the reconcilers' unit tests: a real `kube::Client` whose transport
//! hands every request to the test instead of the network.
//!
//! A reconciler reads its caches (reflector `Store`s the test fills, see [`store`]) and writes
//! through the client. The test runs the reconcile in a task and plays the apiserver: it takes
//! each request in the order the reconciler makes it ([`FakeApi::expect`]), checks the method,
//! path and body, and answers it ([`Call::respond`]). A request the test did not expect, or an
//! expected one that never comes, fails the test; so the test spells out exactly what one sync
//! writes. Events (`events.rs`) are answered on the fly and kept for [`FakeApi::event_reasons`]:
//! they are notes, not the reconciler's work. This is the model of kube-rs's `controller-rs`
//! example (its `fixtures.rs`), built on a plain `tower::service_fn`. Builders for the test
//! objects are in `objects.rs`.

pub mod objects;

use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long a test waits for the reconciler's next request before it fails.
const PATIENCE: Duration = Duration::from_secs(5);

/// One request the reconciler made, waiting for its answer.
pub struct Call {
    pub method: Method,
    /// The URL path, e.g. `/api/v1/namespaces/default/pods`.
    pub path: String,
    /// The request body as JSON (`Null` when empty).
    pub body: Value,
    reply: oneshot::Sender<Response<Body>>,
}

/// A request as the transport hands it over, before its body is read.
type Pending = (Request<Body>, oneshot::Sender<Response<Body>>);

/// The test's side of the fake apiserver.
pub struct FakeApi {
    requests: mpsc::UnboundedReceiver<Pending>,
    events: Vec<Value>,
}

/// A client whose requests go to the returned [`FakeApi`]; its default namespace is `default`.
pub fn client() -> (kube::Client, FakeApi) {
    let (tx, requests) = mpsc::unbounded_channel::<Pending>();
    let service = tower::service_fn(move |req: Request<Body>| {
        // Queue the request now, not when the response future is first polled: requests then
        // reach the test in the order the reconciler made them.
        let (reply, answer) = oneshot::channel();
        let queued = tx.send((req, reply));
        async move {
            queued.map_err(|_| "the fake apiserver is gone")?;
            answer
                .await
                .map_err(|_| tower::BoxError::from("the test dropped a request unanswered"))
        }
    });
    let api = FakeApi {
        requests,
        events: Vec::new(),
    };
    (kube::Client::new(service, "default"), api)
}

/// A synced cache holding `objects`, as a reflector has it after its first list.
pub fn store<K>(objects: impl IntoIterator<Item = K>) -> Store<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, mut writer) = reflector::store::<K>();
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    store
}

impl FakeApi {
    /// The reconciler's next request other than an Event. Fails the test if none comes.
    pub async fn next(&mut self) -> Call {
        loop {
            let pending = tokio::time::timeout(PATIENCE, self.requests.recv())
                .await
                .expect("the reconciler made no further request")
                .expect("the client is gone");
            let call = Call::read(pending).await;
            match self.take_event(call) {
                Some(call) => return call,
                None => continue,
            }
        }
    }

    /// The next request, which must be `method path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Call {
        let call = self.next().await;
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&method, path),
            "unexpected request; body: {}",
            call.body
        );
        call
    }

    /// Await the reconcile in `sync`, answering the Events it records meanwhile; any other
    /// request it makes fails the test.
    pub async fn finish<T>(&mut self, sync: JoinHandle<T>) -> T {
        let mut sync = sync;
        loop {
            tokio::select! {
                biased;
                done = &mut sync => return done.expect("the reconcile panicked"),
                Some(pending) = self.requests.recv() => {
                    let call = Call::read(pending).await;
                    if let Some(call) = self.take_event(call) {
                        panic!("unexpected request {} {}; body: {}", call.method, call.path, call.body);
                    }
                }
                // The task dropped its client: it is about to finish.
                else => return (&mut sync).await.expect("the reconcile panicked"),
            }
        }
    }

    /// The reasons of the Events recorded so far, in order.
    pub fn event_reasons(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| e["reason"].as_str().map(String::from))
            .collect()
    }

    /// The messages of the Events recorded so far, in order.
    pub fn event_messages(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| e["message"].as_str().map(String::from))
            .collect()
    }

    /// Answer and keep `call` if it posts an Event; else hand it back.
    fn take_event(&mut self, call: Call) -> Option<Call> {
        if call.method != Method::POST || !call.path.ends_with("/events") {
            return Some(call);
        }
        self.events.push(call.body.clone());
        let body = call.body.clone();
        call.respond(201, &body);
        None
    }
}

impl Call {
    async fn read((req, reply): Pending) -> Call {
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.expect("a readable request body");
        Call {
            method: parts.method,
            path: parts.uri.path().to_string(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            reply,
        }
    }

    /// Answer with `status` and `body` as JSON.
    pub fn respond(self, status: u16, body: &impl Serialize) {
        let bytes = serde_json::to_vec(body).expect("a serializable answer");
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(bytes))
            .expect("a valid response");
        // The reconciler may have given up on the request (an error elsewhere): no one to tell.
        let _ = self.reply.send(response);
    }

    /// Answer `200 OK` with `obj`.
    pub fn ok(self, obj: &impl Serialize) {
        self.respond(200, obj)
    }

    /// Answer a create with the posted object, named `name` (the apiserver's `generateName`
    /// suffix) and given a uid.
    pub fn created_as(self, name: &str) -> Value {
        let mut obj = self.body.clone();
        obj["metadata"]["name"] = name.into();
        obj["metadata"]["uid"] = format!("uid-{name}").into();
        self.respond(201, &obj);
        obj
    }

    /// Answer a JSON merge patch (RFC 7386) with `base` patched by it, as the apiserver would.
    pub fn patched(self, base: &impl Serialize) -> Value {
        let mut obj = serde_json::to_value(base).expect("a serializable object");
        merge(&mut obj, &self.body);
        self.respond(200, &obj);
        obj
    }

    /// Answer with a failure `Status` of `code` and `reason` (`NotFound`, `Conflict`, ...).
    pub fn fail(self, code: u16, reason: &str) {
        let status = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("fake apiserver: {reason}"), "reason": reason, "code": code,
        });
        self.respond(code, &status)
    }
}

/// Apply a JSON merge patch: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (k, v) in fields {
        if v.is_null() {
            map.remove(k);
        } else {
            merge(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, PostParams};

    #[tokio::test]
    async fn a_request_reaches_the_test_and_its_answer_the_client() {
        let (client, mut api) = client();
        let pods: Api<Pod> = Api::default_namespaced(client);
        let created = tokio::spawn(async move {
            pods.create(&PostParams::default(), &objects::pod("a").build())
                .await
        });
        let call = api
            .expect(Method::POST, "/api/v1/namespaces/default/pods")
            .await;
        assert_eq!(call.body["metadata"]["name"], "a");
        call.created_as("a");
        let pod = api.finish(created).await.unwrap();
        assert_eq!(pod.metadata.uid.as_deref(), Some("uid-a"));
    }

    #[test]
    fn a_merge_patch_merges_objects_and_null_removes() {
        let mut v = serde_json::json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(
            &mut v,
            &serde_json::json!({"a": {"b": null, "e": 3}, "d": [2]}),
        );
        assert_eq!(v, serde_json::json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }
}
