"""The official Python client (`pip install kubernetes`) against minik8s: its models are strict
(every required field present, lists never null), so this catches wire-format slips that
kubectl and kube-rs tolerate. Usage: client_smoke.py http://127.0.0.1:PORT"""
import sys

from kubernetes import client, watch

api = client.ApiClient(client.Configuration(host=sys.argv[1]))
v1, apps, coord = client.CoreV1Api(api), client.AppsV1Api(api), client.CoordinationV1Api(api)

names = [n.metadata.name for n in v1.list_namespace().items]
assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(names), names

# The Python client posts without apiVersion/kind; the server fills them from the URL.
pod = {"metadata": {"name": "py"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
created = v1.create_namespaced_pod("default", pod)
assert created.status.phase == "Pending" and created.spec.restart_policy == "Always"

# A JSON patch with a list body.
v1.patch_namespaced_pod("py", "default", [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])
assert v1.read_namespaced_pod("py", "default").metadata.labels == {"a": "b"}
assert [p.metadata.name for p in v1.list_namespaced_pod("default", label_selector="a=b").items] == ["py"]

dep = {"metadata": {"name": "d"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
       "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
apps.create_namespaced_deployment("default", dep)
scale = apps.read_namespaced_deployment_scale("d", "default")
assert scale.spec.replicas == 2 and scale.status.selector == "app=d", scale
assert apps.list_namespaced_replica_set("default").items == []

info = {k: "x" for k in ["machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                         "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion",
                         "operatingSystem", "architecture"]}
v1.create_node({"metadata": {"name": "n1"}, "status": {"nodeInfo": info}})
assert [n.metadata.name for n in v1.list_node().items] == ["n1"]

seen = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(v1.list_namespaced_pod, "default", timeout_seconds=1)]
assert seen == [("ADDED", "py")], seen

v1.delete_namespaced_pod("py", "default")
assert v1.list_namespaced_pod("default").items == []
assert coord.list_namespaced_lease("kube-node-lease").items == []
try:
    v1.read_namespaced_pod("py", "default")
    raise AssertionError("pod still there")
except client.exceptions.ApiException as e:
    assert e.status == 404, e
print("python client: ok")
