//! Rule: every object validates against its schema (the Kubernetes JSON
//! schemas, or its operator's CRD schema).

use crate::render::{KUBERNETES_SCHEMAS, id, items, kind, parse_yaml, repo_root, s};
use crate::world::{assert_rule_catches, object, remove, set};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------
// Rule: schemas

pub(crate) struct Schemas {
    pub(crate) by_kind: BTreeMap<(String, String), jsonschema::Validator>,
    pub(crate) object_meta: jsonschema::Validator,
}

pub(crate) fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let data = repo_root().join("tests/data/k8s");
        let k8s: Value = serde_json::from_str(
            &std::fs::read_to_string(data.join(KUBERNETES_SCHEMAS)).expect("vendored schemas"),
        )
        .expect("JSON");
        let defs = &k8s["$defs"];
        let compile = |root: &str| {
            jsonschema::validator_for(&json!({ "$ref": format!("#/$defs/{root}"), "$defs": defs }))
                .unwrap_or_else(|e| panic!("schema {root}: {e}"))
        };
        let mut by_kind = BTreeMap::new();
        for (key, root) in k8s["kinds"].as_object().expect("kinds") {
            let (api, kind) = key.split_once(' ').expect("'apiVersion Kind'");
            by_kind.insert(
                (api.to_owned(), kind.to_owned()),
                compile(root.as_str().unwrap()),
            );
        }
        let object_meta = compile(k8s["objectMeta"].as_str().expect("objectMeta"));
        let mut crds: Vec<_> = std::fs::read_dir(data.join("crds"))
            .expect("crds/")
            .map(|e| e.unwrap().path())
            .collect();
        crds.sort();
        for path in crds {
            let crd = &parse_yaml(&std::fs::read_to_string(&path).unwrap())[0];
            let schema = structural_to_json_schema(&crd["openAPIV3Schema"]);
            let validator = jsonschema::validator_for(&schema)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            by_kind.insert(
                (s(crd, "/apiVersion").into(), s(crd, "/kind").into()),
                validator,
            );
        }
        Schemas {
            by_kind,
            object_meta,
        }
    })
}

/// A CRD's structural schema as the API server applies it, in JSON Schema:
/// fields a level does not declare are errors (kubectl's strict field
/// validation) unless it preserves unknown fields; int-or-string and
/// nullable become types.
pub(crate) fn structural_to_json_schema(schema: &Value) -> Value {
    let Some(map) = schema.as_object() else {
        return schema.clone();
    };
    let flag = |key: &str| map.get(key) == Some(&Value::Bool(true));
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "properties" => {
                let props = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), structural_to_json_schema(s)))
                    .collect();
                out.insert(key.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" | "not" if value.is_object() => {
                out.insert(key.clone(), structural_to_json_schema(value));
            }
            "anyOf" | "allOf" | "oneOf" => {
                let all = items(value, "")
                    .iter()
                    .map(structural_to_json_schema)
                    .collect();
                out.insert(key.clone(), Value::Array(all));
            }
            // Kubernetes extensions and annotations: meaning handled below, or none.
            k if k.starts_with("x-") => {}
            "nullable" | "default" | "format" | "example" => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if flag("x-kubernetes-int-or-string") && !map.contains_key("anyOf") {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if flag("nullable")
        && let Some(Value::String(t)) = out.get("type").cloned()
    {
        out.insert("type".into(), json!([t, "null"]));
    }
    Value::Object(out)
}

pub(crate) fn schema_violations(objects: &[Value]) -> Vec<String> {
    let schemas = schemas();
    let mut out = Vec::new();
    for o in objects {
        let key = (s(o, "/apiVersion").to_owned(), kind(o).to_owned());
        let Some(validator) = schemas.by_kind.get(&key) else {
            out.push(format!(
                "{}: no schema for {} {} (vendor it under tests/data/k8s/)",
                id(o),
                key.0,
                key.1
            ));
            continue;
        };
        for e in validator.iter_errors(o) {
            out.push(format!("{}: {}: {e}", id(o), e.instance_path()));
        }
        for e in schemas.object_meta.iter_errors(&o["metadata"]) {
            out.push(format!("{}: /metadata{}: {e}", id(o), e.instance_path()));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn schema_rejects_wrong_types_in_builtin_kinds() {
    assert_rule_catches(
        schema_violations,
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/terminationGracePeriodSeconds",
                json!("long"),
            )
        },
        "Deployment/worker: /spec/template/spec/terminationGracePeriodSeconds",
    );
}

#[test]
fn schema_rejects_unknown_fields_in_builtin_kinds() {
    assert_rule_catches(
        schema_violations,
        |o| {
            object(o, "Service/store")["spec"]["selectr"] = json!({"app": "store"});
        },
        "Service/store",
    );
}

#[test]
fn schema_rejects_unknown_fields_in_custom_resources() {
    assert_rule_catches(
        schema_violations,
        |o| {
            object(o, "SpinApp/app")["spec"]["replica"] = json!(2);
        },
        "SpinApp/app",
    );
}

#[test]
fn schema_enforces_crd_constraints() {
    assert_rule_catches(
        schema_violations,
        |o| set(o, "KafkaTopic/uploads", "/spec/partitions", json!(0)),
        "KafkaTopic/uploads: /spec/partitions",
    );
    assert_rule_catches(
        schema_violations,
        |o| remove(o, "ScaledObject/worker", "/spec/triggers/0/type"),
        "ScaledObject/worker: /spec/triggers/0",
    );
    assert_rule_catches(
        schema_violations,
        |o| {
            set(
                o,
                "Kafka/kafka",
                "/spec/kafka/listeners/0/name",
                json!("Plain_Listener"),
            )
        },
        "Kafka/kafka: /spec/kafka/listeners/0/name",
    );
}

#[test]
fn schema_checks_custom_resources_metadata() {
    assert_rule_catches(
        schema_violations,
        |o| {
            set(
                o,
                "KafkaNodePool/pool",
                "/metadata/labels",
                json!({"strimzi.io/cluster": 1}),
            )
        },
        "KafkaNodePool/pool: /metadata/labels",
    );
}

#[test]
fn schema_rejects_kinds_without_a_schema() {
    assert_rule_catches(
        schema_violations,
        |o| {
            o.push(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}))
        },
        "no schema for example.com/v1 Widget",
    );
}

#[test]
fn schema_checks_database_clusters() {
    assert_rule_catches(
        schema_violations,
        |o| set(o, "Cluster/db", "/spec/instances", json!(0)),
        "Cluster/db: /spec/instances",
    );
    assert_rule_catches(
        schema_violations,
        |o| {
            object(o, "Cluster/db")["spec"]["enablePdb"] = json!(true);
        },
        "Cluster/db",
    );
    assert_rule_catches(
        schema_violations,
        |o| {
            object(o, "Cluster/db")["spec"]["backup"] = json!({"retentionPolicy": "30 days",
                "barmanObjectStore": {"destinationPath": "s3://b/", "wal": {"compression": "gzip"}}});
        },
        "Cluster/db: /spec/backup/retentionPolicy",
    );
}
