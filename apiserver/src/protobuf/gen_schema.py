#!/usr/bin/env python3
"""Regenerates schema.txt, the protobuf schema of the kinds minik8s speaks in protobuf.

Field numbers and wire types come from the prost code of the `k8s-pb` crate (generated from
Kubernetes' generated.proto files); JSON field names come from the serde code of `k8s-openapi`
(prost snake_cases names, so `podIP` cannot be recovered from `pod_ip` alone).
Run after bumping either crate:  python3 gen_schema.py > schema.txt
"""
import glob, os, re, sys

REGISTRY = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/"))[0]
K8S_PB = os.path.join(REGISTRY, "k8s-pb-0.9.0/src")
K8S_OPENAPI = os.path.join(REGISTRY, "k8s-openapi-0.29.0/src/v1_33")

# API groups whose kinds (and their lists) are served in protobuf.
GROUPS = ["api/core/v1", "api/apps/v1", "api/batch/v1", "api/autoscaling/v1", "api/policy/v1",
          "api/certificates/v1", "api/coordination/v1", "api/events/v1", "api/discovery/v1",
          "api/networking/v1", "api/rbac/v1", "api/scheduling/v1", "api/storage/v1"]
# Types with a JSON form of their own (see convert.rs); their fields are not expanded.
SPECIAL = {
    "apimachinery/pkg/apis/meta/v1/Time": "time",
    "apimachinery/pkg/apis/meta/v1/MicroTime": "microtime",
    "apimachinery/pkg/apis/meta/v1/Duration": "duration",
    "apimachinery/pkg/apis/meta/v1/FieldsV1": "fieldsv1",
    "apimachinery/pkg/api/resource/Quantity": "quantity",
    "apimachinery/pkg/util/intstr/IntOrString": "intorstring",
    "apimachinery/pkg/runtime/RawExtension": "rawextension",
}
# Kinds that are not `Resource`s in k8s-pb but travel as request or response bodies.
EXTRA_KINDS = [
    ("v1", "Status", "apimachinery/pkg/apis/meta/v1/Status"),
    ("policy/v1", "Eviction", "api/policy/v1/Eviction"),
    ("autoscaling/v1", "Scale", "api/autoscaling/v1/Scale"),
    ("meta.k8s.io/v1", "Status", "apimachinery/pkg/apis/meta/v1/Status"),
    ("v1", "DeleteOptions", "apimachinery/pkg/apis/meta/v1/DeleteOptions"),
    ("meta.k8s.io/v1", "DeleteOptions", "apimachinery/pkg/apis/meta/v1/DeleteOptions"),
]


def norm(name):
    return name.replace("_", "").replace("r#", "").lower()


def parse_k8s_pb():
    """Returns {type_path: [(tag, rust_name, label, kind, type)]} and [(apiVersion, kind, path)]."""
    messages, kinds = {}, []
    for path in glob.glob(os.path.join(K8S_PB, "**/mod.rs"), recursive=True):
        module = os.path.relpath(os.path.dirname(path), K8S_PB).split(os.sep)
        text = "\n".join(l for l in open(path).read().splitlines() if not l.strip().startswith("///"))
        for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
            fields = []
            for chunk in m.group(2).split("#[prost(")[1:]:
                attr, rest = chunk.split(")]", 1)
                fm = re.match(r"\s*pub\s+(?:r#)?(\w+)\s*:\s*(.*),\s*$", rest, re.S)
                name, rtype = fm.group(1), fm.group(2)
                tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
                first = attr.split(",")[0].strip()
                if first.startswith("btree_map"):
                    key, val = re.search(r'"(\w+), (\w+)"', attr).groups()
                    label, kind = "map", val
                else:
                    label = "repeated" if "repeated" in attr else "optional"
                    kind = first.split(" ")[0]
                ty = kind
                if kind == "message":
                    ty = resolve(module, rtype)
                fields.append((tag, name, label, kind, ty))
            messages["/".join(module + [m.group(1)])] = fields
        for m in re.finditer(r'impl crate::Resource for (\w+) \{\s*const API_VERSION: &\'static str = "([^"]+)";'
                             r'.*?const KIND: &\'static str = "([^"]+)";', text, re.S):
            kinds.append((m.group(2), m.group(3), "/".join(module + [m.group(1)])))
    return messages, kinds


def resolve(module, rtype):
    paths = [p for p in re.findall(r"((?:super::)*(?:\w+::)*\w+)", rtype)
             if p.split("::")[-1] not in ("Option", "Vec", "String", "BTreeMap", "Box", "option", "alloc")
             and not p.startswith("::")]
    path = [p for p in paths if p[0].isupper() or "::" in p][-1].split("::")
    base = list(module)
    while path[0] == "super":
        base, path = base[:-1], path[1:]
    return "/".join(base + path)


def parse_k8s_openapi():
    """Returns {(module, lowercase struct name): {normalized json name: json name}}."""
    names = {}
    for path in glob.glob(os.path.join(K8S_OPENAPI, "**/*.rs"), recursive=True):
        text = open(path).read()
        s = re.search(r"pub struct (\w+)", text)
        if not s:
            continue
        module = os.path.relpath(os.path.dirname(path), K8S_OPENAPI)
        keys = re.findall(r'"([^"]+)" => Field::Key_', text)
        names[(module, s.group(1).lower())] = {norm(k): k for k in keys}
    return names


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def main():
    messages, resource_kinds = parse_k8s_pb()
    json_names = parse_k8s_openapi()
    kinds = [k for k in resource_kinds if any(k[2].startswith(g + "/") for g in GROUPS)]
    kinds += [(av, kind + "List", path + "List") for av, kind, path in list(kinds) if path + "List" in messages]
    kinds += EXTRA_KINDS
    out, seen, todo = [], set(), [k[2] for k in kinds]
    while todo:
        path = todo.pop()
        if path in seen or path in SPECIAL:
            continue
        seen.add(path)
        for f in messages[path]:
            if f[3] == "message":
                todo.append(f[4])
    print("# Generated by gen_schema.py from k8s-pb 0.9.0 (field numbers) and k8s-openapi 0.29.0 v1_33")
    print("# (JSON names); do not edit. `kind <apiVersion> <kind> <message>` maps an envelope to a message;")
    print("# `<number> <jsonName> <optional|repeated|map|inline> <type>` is one field of the message above it.")
    for av, kind, path in sorted(set(kinds)):
        print(f"kind {av} {kind} {path}")
    for path in sorted(seen):
        module, name = path.rsplit("/", 1)
        known = json_names.get((module, name.lower()), {})
        print(f"message {path}")
        for tag, rust, label, kind, ty in sorted(messages[path]):
            json = known.get(norm(rust))
            if json is None and kind == "message" and known and ty in messages and \
                    sum(norm(sub[1]) in known for sub in messages[ty]) * 5 >= len(messages[ty]) * 4:
                # A Go struct embedded with `json:",inline"`: its own message on the wire,
                # its fields spliced into the parent in JSON (Volume.volumeSource, Probe.handler).
                json, label = camel(rust), "inline"
            if json is None:
                json = camel(rust)
                if known:
                    print(f"warning: {path}.{rust} not in k8s-openapi, using {json}", file=sys.stderr)
            ty = SPECIAL.get(ty, ty)
            print(f"{tag} {json} {label} {ty}")


main()
