#!/usr/bin/env python3
"""Extract the CloudNativePG CRD schemas k8s/ uses into crds/cnpg-*.yaml.

The source is the operator's repository at the release tag pinned in
versions.env (CLOUDNATIVE_PG_VERSION), read from a git clone:

    git clone --bare https://github.com/cloudnative-pg/cloudnative-pg /tmp/cnpg.git
    python3 tests/data/k8s/vendor_cnpg_crds.py /tmp/cnpg.git v1.28.4 tests/data/k8s/crds

Like the other files in crds/: the v1 openAPIV3Schema only, descriptions
dropped. The Cluster schema is ~400 KB, nearly all pod and volume templates,
so levels k8s/ does not use are reduced to "any object" and marked
x-xtream-pruned: every level on a path listed in USED keeps its complete
property list (an unknown or misspelt field there is still an error), and
scalar fields are always kept with their types, enums, patterns and bounds.
Add a path to USED (and rerun) before setting a field below a pruned level.
"""

import subprocess
import sys
from pathlib import Path

import yaml

# Field paths k8s/ sets or may set; "[]" steps into array items. A path keeps
# every level along it; a path ending in "*" keeps the whole subtree.
USED = {
    "Cluster": [
        "spec.instances",
        "spec.imageName",
        "spec.enablePDB",
        "spec.primaryUpdateStrategy",
        "spec.primaryUpdateMethod",
        "spec.storage",
        "spec.walStorage",
        "spec.resources.*",
        "spec.affinity",
        "spec.bootstrap.initdb.secret.*",
        "spec.postgresql.parameters",
        "spec.monitoring",
        "spec.backup.retentionPolicy",
        "spec.backup.target",
        "spec.backup.barmanObjectStore.s3Credentials.*",
        "spec.backup.barmanObjectStore.wal.*",
        "spec.backup.barmanObjectStore.data.*",
        "spec.backup.barmanObjectStore.endpointCA.*",
    ],
    "ScheduledBackup": ["spec.*"],
}

FILES = {
    "Cluster": ("postgresql.cnpg.io_clusters.yaml", "cnpg-cluster.yaml"),
    "ScheduledBackup": ("postgresql.cnpg.io_scheduledbackups.yaml", "cnpg-scheduledbackup.yaml"),
}

PRUNED = {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "x-xtream-pruned": True}


def drop_descriptions(node):
    if isinstance(node, dict):
        return {k: drop_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [drop_descriptions(v) for v in node]
    return node


def is_complex(schema):
    """Whether a schema has nested structure worth pruning."""
    if not isinstance(schema, dict):
        return False
    if "properties" in schema:
        return True
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict) and is_complex(schema[key]) or (
            isinstance(schema.get(key), dict) and "properties" in schema[key]
        ):
            return True
    return False


def prune(schema):
    if schema.get("type") == "array":
        return {"type": "array", "items": dict(PRUNED)}
    return dict(PRUNED)


def tree(paths):
    root = {}
    for path in paths:
        node = root
        for step in path.split("."):
            node = node.setdefault(step, {})
    return root


def keep(schema, used):
    """`schema` with its levels on `used` complete and the rest pruned."""
    if "*" in used:
        return schema
    out = dict(schema)
    if "items" in schema and "[]" in used:
        out["items"] = keep(schema["items"], used["[]"])
    if "properties" in schema:
        props = {}
        for name, sub in schema["properties"].items():
            if name in used:
                props[name] = keep(sub, used[name])
            elif is_complex(sub):
                props[name] = prune(sub)
            else:
                props[name] = sub
        out["properties"] = props
    return out


class Dumper(yaml.SafeDumper):
    pass


def represent_dict(dumper, data):
    # Leaves on one line, like the hand-written files beside these.
    flow = all(not isinstance(v, (dict, list)) or not v for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def represent_list(dumper, data):
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


Dumper.add_representer(dict, represent_dict)
Dumper.add_representer(list, represent_list)


def main():
    repo, tag, out_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    commit = subprocess.check_output(
        ["git", "-C", repo, "rev-parse", f"{tag}^{{commit}}"], text=True
    ).strip()
    for kind, (source, target) in FILES.items():
        text = subprocess.check_output(
            ["git", "-C", repo, "show", f"{tag}:config/crd/bases/{source}"], text=True
        )
        crd = yaml.safe_load(text)
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        schema = drop_descriptions(version["schema"]["openAPIV3Schema"])
        schema = keep(schema, tree(USED[kind]))
        if "status" in schema.get("properties", {}):
            schema["properties"]["status"] = dict(PRUNED)
        header = (
            f"# {kind} (postgresql.cnpg.io/v1): spec.versions[v1].schema.openAPIV3Schema of\n"
            f"# cloudnative-pg/cloudnative-pg config/crd/bases/{source}\n"
            f"# at {tag} ({commit}), descriptions dropped; subtrees marked\n"
            f"# x-xtream-pruned were reduced to \"any object\" (k8s/ does not use them).\n"
            f"# Generated by ../vendor_cnpg_crds.py. Provenance: ../README.md.\n"
        )
        body = yaml.dump(
            {"apiVersion": "postgresql.cnpg.io/v1", "kind": kind, "openAPIV3Schema": schema},
            Dumper=Dumper,
            sort_keys=False,
            width=200,
        )
        (out_dir / target).write_text(header + body)
        print(f"{target}: {len(header) + len(body)} bytes")


if __name__ == "__main__":
    main()
