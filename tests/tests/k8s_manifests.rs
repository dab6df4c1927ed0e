//! The Kubernetes manifests in `k8s/`, checked offline.
//!
//! Every overlay is rendered with the real kustomize (`kubectl kustomize`,
//! which embeds it; `./x setup` installs a pinned kubectl) and every rendered
//! object is validated:
//!
//! - built-in kinds against the Kubernetes JSON schemas of the pinned release
//!   (strict: unknown fields are errors, as `kubectl apply` treats them),
//! - SpinApp, SpinAppExecutor, Kafka, KafkaNodePool, KafkaTopic, KafkaBridge,
//!   ScaledObject, Cluster and ScheduledBackup (CloudNativePG) against their
//!   operators' published CRD schemas,
//! - the project's rules (selectors match pods, references resolve, every
//!   container has resources and probes, images are pinned, autoscalers have
//!   targets, NetworkPolicies select pods and allow exactly the designed flows,
//!   database clients migrate the schema first, and the settings that must
//!   agree across objects do).
//!
//! The schemas are vendored under `tests/data/k8s/` (provenance in its
//! README). Pods, Services and Secrets that operators create (spin-operator,
//! Strimzi, CloudNativePG) are modelled from the custom resources with the
//! names and labels those operators give them, so that Services,
//! NetworkPolicies, autoscalers and references aimed at them are checked
//! too. Each rule has a test below that breaks a small valid "world" and
//! expects the violation.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const OVERLAYS: &[&str] = &["minikube", "production"];
const KUBERNETES_SCHEMAS: &str = "kubernetes-v1.32.0.json";

// ---------------------------------------------------------------------------
// Rendering

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// The kustomize to render with: the kubectl `./x setup` pinned into the tool
/// cache, else a `kustomize` on PATH, else a `kubectl` on PATH.
fn kustomize(dir: &Path) -> Command {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")));
    let pinned = cache.map(|c| c.join("xtream/tools/bin/kubectl"));
    let on_path = |tool: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(tool))
                .find(|p| p.is_file())
        })
    };
    if let Some(kubectl) = pinned.filter(|p| p.is_file()) {
        let mut cmd = Command::new(kubectl);
        cmd.arg("kustomize").arg(dir);
        cmd
    } else if let Some(kustomize) = on_path("kustomize") {
        let mut cmd = Command::new(kustomize);
        cmd.arg("build").arg(dir);
        cmd
    } else if let Some(kubectl) = on_path("kubectl") {
        let mut cmd = Command::new(kubectl);
        cmd.arg("kustomize").arg(dir);
        cmd
    } else {
        panic!("neither kubectl nor kustomize found: run ./x setup (it installs a pinned kubectl)")
    }
}

fn render(overlay: &str) -> Vec<Value> {
    let dir = repo_root().join("k8s/overlays").join(overlay);
    let output = kustomize(&dir).output().expect("run kustomize");
    assert!(
        output.status.success(),
        "kustomize failed for {overlay}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_yaml(&String::from_utf8(output.stdout).expect("UTF-8 manifests"))
}

/// Every document of a multi-document YAML stream, as JSON values.
fn parse_yaml(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

// ---------------------------------------------------------------------------
// Small accessors

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn kind(o: &Value) -> &str {
    s(o, "/kind")
}

fn name(o: &Value) -> &str {
    s(o, "/metadata/name")
}

fn namespace(o: &Value) -> &str {
    s(o, "/metadata/namespace")
}

fn id(o: &Value) -> String {
    format!("{}/{}", kind(o), name(o))
}

fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

type Labels = BTreeMap<String, String>;

fn labels_at(v: &Value, pointer: &str) -> Labels {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const POD_TEMPLATE_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job"];

fn pod_spec(o: &Value) -> Option<&Value> {
    POD_TEMPLATE_KINDS
        .contains(&kind(o))
        .then(|| o.pointer("/spec/template/spec"))
        .flatten()
}

/// Containers and init containers of a pod spec, with whether they are init.
fn containers(spec: &Value) -> impl Iterator<Item = (&Value, bool)> {
    items(spec, "/initContainers")
        .iter()
        .map(|c| (c, true))
        .chain(items(spec, "/containers").iter().map(|c| (c, false)))
}

// ---------------------------------------------------------------------------
// What the operators create from custom resources

/// A pod (template) in the rendered set: written or made by an operator.
#[derive(Debug, Clone)]
struct Pod {
    owner: String,
    namespace: String,
    labels: Labels,
    /// (port name, number); the name may be empty.
    ports: Vec<(String, u64)>,
}

fn pods(objects: &[Value]) -> Vec<Pod> {
    let mut out = Vec::new();
    for o in objects {
        let ns = namespace(o).to_owned();
        if let Some(spec) = pod_spec(o) {
            out.push(Pod {
                owner: id(o),
                namespace: ns,
                labels: labels_at(o, "/spec/template/metadata/labels"),
                ports: containers(spec)
                    .flat_map(|(c, _)| items(c, "/ports"))
                    .map(|p| {
                        (
                            s(p, "/name").to_owned(),
                            p["containerPort"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect(),
            });
            continue;
        }
        match kind(o) {
            // spin-operator: pods labelled with the app's name and readiness.
            "SpinApp" => {
                let mut l = spin_app_ready_labels(name(o));
                l.extend(labels_at(o, "/spec/podLabels"));
                out.push(Pod {
                    owner: id(o),
                    namespace: ns,
                    labels: l,
                    ports: vec![("http-app".into(), 80)],
                });
            }
            // Strimzi: broker/controller pods per node pool, and the entity operator.
            "Kafka" => {
                let cluster = name(o);
                let mut ports: Vec<(String, u64)> = vec![
                    ("tcp-ctrlplane".into(), 9090),
                    ("tcp-replication".into(), 9091),
                    ("tcp-kafkaagent".into(), 8443),
                ];
                for l in items(o, "/spec/kafka/listeners") {
                    ports.push((
                        format!("tcp-{}", s(l, "/name")),
                        l["port"].as_u64().unwrap_or(0),
                    ));
                }
                for pool in objects.iter().filter(|p| {
                    kind(p) == "KafkaNodePool"
                        && namespace(p) == ns
                        && s(p, "/metadata/labels/strimzi.io~1cluster") == cluster
                }) {
                    let mut l = strimzi_kafka_labels(cluster);
                    l.insert("strimzi.io/pool-name".into(), name(pool).into());
                    out.push(Pod {
                        owner: id(o),
                        namespace: ns.clone(),
                        labels: l,
                        ports: ports.clone(),
                    });
                }
                if o.pointer("/spec/entityOperator").is_some() {
                    out.push(Pod {
                        owner: format!("{}:entity-operator", id(o)),
                        namespace: ns,
                        labels: labels(&[
                            ("strimzi.io/cluster", cluster),
                            ("strimzi.io/kind", "Kafka"),
                            ("strimzi.io/name", &format!("{cluster}-entity-operator")),
                        ]),
                        ports: vec![],
                    });
                }
            }
            "KafkaBridge" => out.push(Pod {
                owner: id(o),
                namespace: ns,
                labels: strimzi_bridge_labels(name(o)),
                ports: vec![(
                    "rest-api".into(),
                    o.pointer("/spec/http/port")
                        .and_then(Value::as_u64)
                        .unwrap_or(8080),
                )],
            }),
            // CloudNativePG: a pod per instance. Roles move on failover, so a
            // flow to the cluster must reach the primary and a replica alike.
            "Cluster" => {
                let instances = o
                    .pointer("/spec/instances")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                for (n, role) in ["primary", "replica"].iter().enumerate() {
                    if (n as u64) < instances {
                        out.push(Pod {
                            owner: id(o),
                            namespace: ns.clone(),
                            labels: cnpg_instance_labels(name(o), n + 1, role),
                            ports: vec![
                                ("postgresql".into(), 5432),
                                ("metrics".into(), 9187),
                                ("status".into(), 8000),
                            ],
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn cnpg_instance_labels(cluster: &str, serial: usize, role: &str) -> Labels {
    labels(&[
        ("cnpg.io/cluster", cluster),
        ("cnpg.io/instanceName", &format!("{cluster}-{serial}")),
        ("cnpg.io/podRole", "instance"),
        ("cnpg.io/instanceRole", role),
        ("role", role),
    ])
}

/// Keys of the Secrets CloudNativePG writes for a database user.
const CNPG_USER_SECRET_KEYS: &[&str] = &[
    "username",
    "user",
    "password",
    "dbname",
    "host",
    "port",
    "pgpass",
    "uri",
    "jdbc-uri",
    "fqdn-uri",
    "fqdn-jdbc-uri",
];

/// The Secrets CloudNativePG makes for a Cluster: `<name>-app` for the
/// application's owner when it bootstraps with initdb (its default) without a
/// Secret of yours, and `<name>-superuser` when superuser access is on.
fn cnpg_secrets(cluster: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let bootstrap = cluster.pointer("/spec/bootstrap");
    let initdb = bootstrap.is_none() || bootstrap.and_then(|b| b.get("initdb")).is_some();
    if initdb && cluster.pointer("/spec/bootstrap/initdb/secret").is_none() {
        out.push(format!("{}-app", name(cluster)));
    }
    if cluster.pointer("/spec/enableSuperuserAccess") == Some(&Value::Bool(true)) {
        out.push(format!("{}-superuser", name(cluster)));
    }
    out
}

fn spin_app_ready_labels(app: &str) -> Labels {
    labels(&[
        ("core.spinkube.dev/app-name", app),
        (&format!("core.spinkube.dev/app.{app}.status"), "ready"),
    ])
}

fn strimzi_kafka_labels(cluster: &str) -> Labels {
    labels(&[
        ("strimzi.io/cluster", cluster),
        ("strimzi.io/kind", "Kafka"),
        ("strimzi.io/name", &format!("{cluster}-kafka")),
    ])
}

fn strimzi_bridge_labels(bridge: &str) -> Labels {
    labels(&[
        ("strimzi.io/cluster", bridge),
        ("strimzi.io/kind", "KafkaBridge"),
        ("strimzi.io/name", &format!("{bridge}-bridge")),
    ])
}

/// A Service in the rendered set: written, or made by an operator.
#[derive(Debug)]
struct Svc {
    name: String,
    namespace: String,
    ports: Vec<(String, u64)>,
}

fn services(objects: &[Value]) -> Vec<Svc> {
    let mut out = Vec::new();
    for o in objects {
        let ns = namespace(o).to_owned();
        let svc = |name: String, ports: Vec<(String, u64)>| Svc {
            name,
            namespace: ns.clone(),
            ports,
        };
        match kind(o) {
            "Service" => out.push(svc(
                name(o).into(),
                items(o, "/spec/ports")
                    .iter()
                    .map(|p| (s(p, "/name").into(), p["port"].as_u64().unwrap_or(0)))
                    .collect(),
            )),
            "SpinApp" => out.push(svc(name(o).into(), vec![("http-app".into(), 80)])),
            "Kafka" => out.push(svc(
                format!("{}-kafka-bootstrap", name(o)),
                items(o, "/spec/kafka/listeners")
                    .iter()
                    .map(|l| {
                        (
                            format!("tcp-{}", s(l, "/name")),
                            l["port"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect(),
            )),
            "KafkaBridge" => out.push(svc(
                format!("{}-bridge-service", name(o)),
                vec![(
                    "rest-api".into(),
                    o.pointer("/spec/http/port")
                        .and_then(Value::as_u64)
                        .unwrap_or(8080),
                )],
            )),
            // CloudNativePG: the primary (-rw), the replicas (-ro), any (-r).
            "Cluster" => {
                for suffix in ["rw", "ro", "r"] {
                    out.push(svc(
                        format!("{}-{suffix}", name(o)),
                        vec![("postgres".into(), 5432)],
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// Workloads that can be scaled: written, or the Deployment spin-operator
/// makes for a SpinApp (named like it).
fn scalable(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for o in objects {
        match kind(o) {
            "Deployment" | "StatefulSet" => {
                out.insert((namespace(o).into(), kind(o).into(), name(o).into()));
            }
            "SpinApp" => {
                out.insert((namespace(o).into(), "Deployment".into(), name(o).into()));
            }
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Label selectors

fn selector_matches(selector: &Value, labels: &Labels) -> bool {
    let by_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| {
            m.iter()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        });
    let by_expressions = items(selector, "/matchExpressions").iter().all(|e| {
        let value = labels.get(s(e, "/key"));
        let values: Vec<&str> = items(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        match s(e, "/operator") {
            "In" => value.is_some_and(|v| values.contains(&v.as_str())),
            "NotIn" => value.is_none_or(|v| !values.contains(&v.as_str())),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

fn selector_is_empty(selector: &Value) -> bool {
    selector.as_object().is_none_or(|m| {
        m.values().all(|v| {
            v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
        })
    })
}

fn selects_some_pod(pods: &[Pod], ns: &str, selector: &Value) -> bool {
    pods.iter()
        .any(|p| p.namespace == ns && selector_matches(selector, &p.labels))
}

// ---------------------------------------------------------------------------
// Rule: schemas

struct Schemas {
    by_kind: BTreeMap<(String, String), jsonschema::Validator>,
    object_meta: jsonschema::Validator,
}

fn schemas() -> &'static Schemas {
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
fn structural_to_json_schema(schema: &Value) -> Value {
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

fn schema_violations(objects: &[Value]) -> Vec<String> {
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
// Rule: Services select pods, on ports those pods have

fn service_violations(objects: &[Value]) -> Vec<String> {
    let pods = pods(objects);
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| kind(o) == "Service") {
        let Some(selector) = o
            .pointer("/spec/selector")
            .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
        else {
            continue; // selector-less Services are managed by hand (none here)
        };
        let selector = json!({ "matchLabels": selector });
        let matched: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.namespace == namespace(o) && selector_matches(&selector, &p.labels))
            .collect();
        if matched.is_empty() {
            out.push(format!(
                "{}: selector {} matches no pod",
                id(o),
                selector["matchLabels"]
            ));
            continue;
        }
        for port in items(o, "/spec/ports") {
            let Some(target) = port.get("targetPort").and_then(Value::as_str) else {
                continue;
            };
            if !matched
                .iter()
                .any(|p| p.ports.iter().any(|(n, _)| n == target))
            {
                out.push(format!(
                    "{}: targetPort {target:?} is not a port of the selected pods",
                    id(o)
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: every reference resolves

/// Keys of every ConfigMap and Secret; `None` keys: exists, contents unknown.
struct Stores {
    config_maps: BTreeMap<(String, String), Option<BTreeSet<String>>>,
    secrets: BTreeMap<(String, String), Option<BTreeSet<String>>>,
}

impl Stores {
    fn new(objects: &[Value], external_secrets: &[&str]) -> Self {
        let keys = |o: &Value, fields: &[&str]| {
            Some(
                fields
                    .iter()
                    .filter_map(|f| o.get(*f).and_then(Value::as_object))
                    .flat_map(|m| m.keys().cloned())
                    .collect(),
            )
        };
        let mut stores = Stores {
            config_maps: BTreeMap::new(),
            secrets: BTreeMap::new(),
        };
        for o in objects {
            let at = (namespace(o).to_owned(), name(o).to_owned());
            match kind(o) {
                "ConfigMap" => {
                    stores
                        .config_maps
                        .insert(at, keys(o, &["data", "binaryData"]));
                }
                "Secret" => {
                    stores.secrets.insert(at, keys(o, &["data", "stringData"]));
                }
                "Cluster" => {
                    for secret in cnpg_secrets(o) {
                        let generated = CNPG_USER_SECRET_KEYS.iter().map(|k| (*k).to_owned());
                        stores
                            .secrets
                            .insert((at.0.clone(), secret), Some(generated.collect()));
                    }
                }
                "Namespace" => {
                    for secret in external_secrets {
                        stores
                            .secrets
                            .insert((name(o).into(), (*secret).into()), None);
                    }
                }
                _ => {}
            }
        }
        stores
    }

    fn check(
        &self,
        what: &str,
        ns: &str,
        r: &Value,
        name_field: &str,
        out: &mut Vec<String>,
        from: &str,
    ) {
        if r.get("optional") == Some(&Value::Bool(true)) {
            return;
        }
        let store = if what == "ConfigMap" {
            &self.config_maps
        } else {
            &self.secrets
        };
        let name = s(r, name_field);
        match store.get(&(ns.to_owned(), name.to_owned())) {
            None => out.push(format!("{from}: {what} {name:?} does not exist")),
            Some(Some(keys)) => {
                if let Some(key) = r.get("key").and_then(Value::as_str)
                    && !keys.contains(key)
                {
                    out.push(format!("{from}: {what} {name:?} has no key {key:?}"));
                }
            }
            Some(None) => {}
        }
    }
}

fn reference_violations(objects: &[Value], external_secrets: &[&str]) -> Vec<String> {
    let stores = Stores::new(objects, external_secrets);
    let exists = |k: &str, ns: &str, n: &str| {
        objects
            .iter()
            .any(|o| kind(o) == k && name(o) == n && (ns.is_empty() || namespace(o) == ns))
    };
    let svcs = services(objects);
    let mut out = Vec::new();
    for o in objects {
        let ns = namespace(o);
        let from = id(o);
        if let Some(spec) = pod_spec(o) {
            for (c, _) in containers(spec) {
                for e in items(c, "/env") {
                    if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
                        stores.check("ConfigMap", ns, r, "/name", &mut out, &from);
                    }
                    if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
                        stores.check("Secret", ns, r, "/name", &mut out, &from);
                    }
                }
                for e in items(c, "/envFrom") {
                    if let Some(r) = e.get("configMapRef") {
                        stores.check("ConfigMap", ns, r, "/name", &mut out, &from);
                    }
                    if let Some(r) = e.get("secretRef") {
                        stores.check("Secret", ns, r, "/name", &mut out, &from);
                    }
                }
            }
            for v in items(spec, "/volumes") {
                if let Some(r) = v.get("configMap") {
                    stores.check("ConfigMap", ns, r, "/name", &mut out, &from);
                }
                if let Some(r) = v.get("secret") {
                    stores.check("Secret", ns, r, "/secretName", &mut out, &from);
                }
                for src in items(v, "/projected/sources") {
                    if let Some(r) = src.get("configMap") {
                        stores.check("ConfigMap", ns, r, "/name", &mut out, &from);
                    }
                    if let Some(r) = src.get("secret") {
                        stores.check("Secret", ns, r, "/name", &mut out, &from);
                    }
                }
                let claim = s(v, "/persistentVolumeClaim/claimName");
                if !claim.is_empty() && !exists("PersistentVolumeClaim", ns, claim) {
                    out.push(format!(
                        "{from}: PersistentVolumeClaim {claim:?} does not exist"
                    ));
                }
            }
            let sa = s(spec, "/serviceAccountName");
            if !sa.is_empty() && sa != "default" && !exists("ServiceAccount", ns, sa) {
                out.push(format!("{from}: ServiceAccount {sa:?} does not exist"));
            }
        }
        match kind(o) {
            "SpinApp" => {
                for v in items(o, "/spec/variables") {
                    if let Some(r) = v.pointer("/valueFrom/configMapKeyRef") {
                        stores.check("ConfigMap", ns, r, "/name", &mut out, &from);
                    }
                    if let Some(r) = v.pointer("/valueFrom/secretKeyRef") {
                        stores.check("Secret", ns, r, "/name", &mut out, &from);
                    }
                }
                let executor = s(o, "/spec/executor");
                if !exists("SpinAppExecutor", ns, executor) {
                    out.push(format!(
                        "{from}: SpinAppExecutor {executor:?} does not exist in its namespace"
                    ));
                }
            }
            "Ingress" => {
                for rule in items(o, "/spec/rules") {
                    for path in items(rule, "/http/paths") {
                        let svc_name = s(path, "/backend/service/name");
                        let port = path
                            .pointer("/backend/service/port")
                            .cloned()
                            .unwrap_or_default();
                        let found = svcs.iter().any(|svc| {
                            svc.namespace == ns
                                && svc.name == svc_name
                                && svc.ports.iter().any(|(n, p)| {
                                    port.get("number").and_then(Value::as_u64) == Some(*p)
                                        || port.get("name").and_then(Value::as_str)
                                            == Some(n.as_str())
                                })
                        });
                        if !found {
                            out.push(format!(
                                "{from}: backend Service {svc_name:?} port {port} does not exist"
                            ));
                        }
                    }
                }
            }
            "ClusterRoleBinding" | "RoleBinding" => {
                let role_kind = s(o, "/roleRef/kind");
                let role = s(o, "/roleRef/name");
                let role_ns = if role_kind == "Role" { ns } else { "" };
                if !exists(role_kind, role_ns, role) {
                    out.push(format!("{from}: {role_kind} {role:?} does not exist"));
                }
                for subject in items(o, "/subjects") {
                    if s(subject, "/kind") == "ServiceAccount"
                        && !exists(
                            "ServiceAccount",
                            s(subject, "/namespace"),
                            s(subject, "/name"),
                        )
                    {
                        out.push(format!(
                            "{from}: ServiceAccount {}/{} does not exist",
                            s(subject, "/namespace"),
                            s(subject, "/name")
                        ));
                    }
                }
            }
            "KafkaNodePool" | "KafkaTopic" => {
                let cluster = s(o, "/metadata/labels/strimzi.io~1cluster");
                if !exists("Kafka", ns, cluster) {
                    out.push(format!(
                        "{from}: strimzi.io/cluster {cluster:?} names no Kafka"
                    ));
                }
            }
            "Cluster" => {
                let refs = ["accessKeyId", "secretAccessKey", "sessionToken", "region"]
                    .map(|k| format!("/spec/backup/barmanObjectStore/s3Credentials/{k}"))
                    .into_iter()
                    .chain(["/spec/bootstrap/initdb/secret".to_owned()]);
                for pointer in refs {
                    if let Some(r) = o.pointer(&pointer) {
                        stores.check("Secret", ns, r, "/name", &mut out, &from);
                    }
                }
            }
            "ScheduledBackup" => {
                let cluster = s(o, "/spec/cluster/name");
                // Each method backs up to what the Cluster configures for it.
                let target = match o
                    .pointer("/spec/method")
                    .and_then(Value::as_str)
                    .unwrap_or("barmanObjectStore")
                {
                    "volumeSnapshot" => Some("volumeSnapshot"),
                    "plugin" => None,
                    _ => Some("barmanObjectStore"),
                };
                match objects
                    .iter()
                    .find(|c| kind(c) == "Cluster" && namespace(c) == ns && name(c) == cluster)
                {
                    None => out.push(format!("{from}: Cluster {cluster:?} does not exist")),
                    Some(c) => {
                        if let Some(target) = target
                            && c.pointer(&format!("/spec/backup/{target}")).is_none()
                        {
                            out.push(format!(
                                "{from}: Cluster {cluster:?} has no backup.{target} to back up to"
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: containers declare resources and health checks

fn has_quantities(resources: Option<&Value>) -> bool {
    ["requests", "limits"].iter().all(|side| {
        ["cpu", "memory"].iter().all(|r| {
            resources
                .and_then(|v| v.get(*side))
                .and_then(|v| v.get(*r))
                .is_some()
        })
    })
}

fn hygiene_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        if let Some(spec) = pod_spec(o) {
            let is_job = kind(o) == "Job";
            for (c, init) in containers(spec) {
                let at = format!("{} container {:?}", id(o), s(c, "/name"));
                if !has_quantities(c.get("resources")) {
                    out.push(format!("{at}: needs cpu and memory requests and limits"));
                }
                if !is_job && !init {
                    for probe in ["livenessProbe", "readinessProbe"] {
                        if c.get(probe).is_none() {
                            out.push(format!("{at}: has no {probe}"));
                        }
                    }
                }
            }
        }
        if kind(o) == "SpinApp" {
            for check in ["liveness", "readiness"] {
                if o.pointer(&format!("/spec/checks/{check}/httpGet/path"))
                    .is_none()
                {
                    out.push(format!("{}: has no {check} check", id(o)));
                }
            }
        }
        // Operators create these pods from the resource's own settings.
        if matches!(
            kind(o),
            "SpinApp" | "KafkaNodePool" | "KafkaBridge" | "Cluster"
        ) && !has_quantities(o.pointer("/spec/resources"))
        {
            out.push(format!(
                "{} /spec/resources: needs cpu and memory requests and limits",
                id(o)
            ));
        }
        if kind(o) == "Kafka" {
            for operator in ["topicOperator", "userOperator"] {
                let Some(component) = o.pointer(&format!("/spec/entityOperator/{operator}")) else {
                    continue;
                };
                if !has_quantities(component.get("resources")) {
                    out.push(format!(
                        "{} /spec/entityOperator/{operator}/resources: needs cpu and memory requests and limits",
                        id(o)
                    ));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: images are pinned

fn image_violations(objects: &[Value]) -> Vec<String> {
    let mut images = Vec::new();
    for o in objects {
        if let Some(spec) = pod_spec(o) {
            for (c, _) in containers(spec) {
                images.push((id(o), s(c, "/image").to_owned()));
            }
        }
        if kind(o) == "SpinApp" {
            images.push((id(o), s(o, "/spec/image").to_owned()));
        }
        // Without one (or a catalog), CloudNativePG runs its built-in default,
        // which changes with the operator: an operator upgrade would become a
        // PostgreSQL upgrade.
        if kind(o) == "Cluster" && o.pointer("/spec/imageCatalogRef").is_none() {
            images.push((id(o), s(o, "/spec/imageName").to_owned()));
        }
    }
    images
        .into_iter()
        .filter_map(|(from, image)| {
            if image.is_empty() {
                return Some(format!(
                    "{from}: names no image; the operator's default would drift"
                ));
            }
            if image.contains("@sha256:") {
                return None;
            }
            // A registry port is not a tag: look after the last '/'.
            let last = image.rsplit('/').next().unwrap_or_default();
            match last.split_once(':') {
                None => Some(format!("{from}: image {image:?} has no tag")),
                Some((_, "latest")) => Some(format!("{from}: image {image:?} uses latest")),
                Some(_) => None,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Rule: autoscalers have targets, one autoscaler each

fn autoscaler_violations(objects: &[Value]) -> Vec<String> {
    let targets = scalable(objects);
    let mut seen: BTreeMap<(String, String, String), String> = BTreeMap::new();
    let mut out = Vec::new();
    for o in objects {
        let (target_kind, target_name) = match kind(o) {
            "HorizontalPodAutoscaler" => (
                s(o, "/spec/scaleTargetRef/kind"),
                s(o, "/spec/scaleTargetRef/name"),
            ),
            "ScaledObject" => (
                o.pointer("/spec/scaleTargetRef/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("Deployment"),
                s(o, "/spec/scaleTargetRef/name"),
            ),
            _ => continue,
        };
        let target = (
            namespace(o).to_owned(),
            target_kind.to_owned(),
            target_name.to_owned(),
        );
        if !targets.contains(&target) {
            out.push(format!(
                "{}: target {target_kind}/{target_name} does not exist",
                id(o)
            ));
            continue;
        }
        if let Some(other) = seen.insert(target.clone(), id(o)) {
            out.push(format!(
                "{}: {target_kind}/{target_name} is already scaled by {other}",
                id(o)
            ));
        }
        for t in objects
            .iter()
            .filter(|t| namespace(t) == target.0 && name(t) == target_name)
        {
            if kind(t) == "SpinApp" && target_kind == "Deployment" {
                if t.pointer("/spec/enableAutoscaling") != Some(&Value::Bool(true)) {
                    out.push(format!(
                        "{}: {} must set enableAutoscaling: true",
                        id(o),
                        id(t)
                    ));
                }
                if t.pointer("/spec/replicas").is_some() {
                    out.push(format!(
                        "{}: {} sets replicas, which the autoscaler owns",
                        id(o),
                        id(t)
                    ));
                }
            }
            if kind(t) == target_kind && t.pointer("/spec/replicas").is_some() {
                out.push(format!(
                    "{}: {} sets spec.replicas; every apply would reset the autoscaler's count",
                    id(o),
                    id(t)
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: NetworkPolicies (and PodDisruptionBudgets) select pods

fn policy_selector_violations(objects: &[Value]) -> Vec<String> {
    let pods = pods(objects);
    let mut out = Vec::new();
    let mut check = |o: &Value, what: &str, selector: &Value| {
        if !selector_is_empty(selector) && !selects_some_pod(&pods, namespace(o), selector) {
            out.push(format!("{}: {what} {selector} matches no pod", id(o)));
        }
    };
    for o in objects {
        match kind(o) {
            "NetworkPolicy" => {
                check(o, "podSelector", &o["spec"]["podSelector"]);
                for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
                    for rule in items(o, &format!("/spec/{dir}")) {
                        for peer in items(rule, &format!("/{peers}")) {
                            // Peers in other namespaces are not ours to check.
                            if peer.get("namespaceSelector").is_none()
                                && let Some(sel) = peer.get("podSelector")
                            {
                                check(o, &format!("{dir}.{peers}.podSelector"), sel);
                            }
                        }
                    }
                }
            }
            "PodDisruptionBudget" => check(o, "selector", &o["spec"]["selector"]),
            _ => {}
        }
    }
    out
}

fn default_deny_violations(objects: &[Value]) -> Vec<String> {
    let namespaces: BTreeSet<String> = pods(objects).into_iter().map(|p| p.namespace).collect();
    namespaces
        .into_iter()
        .filter(|ns| {
            !objects.iter().any(|o| {
                kind(o) == "NetworkPolicy"
                    && namespace(o) == ns
                    && selector_is_empty(&o["spec"]["podSelector"])
                    && ["Ingress", "Egress"]
                        .iter()
                        .all(|t| items(o, "/spec/policyTypes").iter().any(|v| v == t))
                    && items(o, "/spec/ingress").is_empty()
                    && items(o, "/spec/egress").is_empty()
            })
        })
        .map(|ns| {
            format!("namespace {ns:?} has no default-deny NetworkPolicy (Ingress and Egress)")
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Rule: the NetworkPolicies allow exactly the designed flows

/// One end of a connection.
#[derive(Debug, Clone)]
enum End {
    /// Pods of a rendered object (see `pods`), by owner id.
    Owner(String),
    /// Any pod with these labels in another namespace.
    Elsewhere { namespace: String, labels: Labels },
    /// Outside the cluster's pod network (the Kubernetes API server, the internet).
    External,
}

fn owner(id: &str) -> End {
    End::Owner(id.to_owned())
}

fn elsewhere(namespace: &str, pairs: &[(&str, &str)]) -> End {
    End::Elsewhere {
        namespace: namespace.to_owned(),
        labels: labels(pairs),
    }
}

#[derive(Debug, Clone)]
struct Flow {
    from: End,
    to: End,
    port: u64,
    protocol: &'static str,
}

fn tcp(from: End, to: End, port: u64) -> Flow {
    Flow {
        from,
        to,
        port,
        protocol: "TCP",
    }
}

/// A resolved endpoint: namespace labels and pod labels, or external.
struct Peer {
    namespace: Option<String>,
    labels: Labels,
    ports: Vec<(String, u64)>,
}

fn resolve(end: &End, pods: &[Pod]) -> Vec<Peer> {
    match end {
        End::Owner(owner) => pods
            .iter()
            .filter(|p| &p.owner == owner)
            .map(|p| Peer {
                namespace: Some(p.namespace.clone()),
                labels: p.labels.clone(),
                ports: p.ports.clone(),
            })
            .collect(),
        End::Elsewhere { namespace, labels } => vec![Peer {
            namespace: Some(namespace.clone()),
            labels: labels.clone(),
            ports: vec![],
        }],
        End::External => vec![Peer {
            namespace: None,
            labels: Labels::new(),
            ports: vec![],
        }],
    }
}

fn namespace_labels(objects: &[Value], ns: &str) -> Labels {
    let mut l = labels(&[("kubernetes.io/metadata.name", ns)]);
    if let Some(o) = objects
        .iter()
        .find(|o| kind(o) == "Namespace" && name(o) == ns)
    {
        l.extend(labels_at(o, "/metadata/labels"));
    }
    l
}

fn peer_matches(
    objects: &[Value],
    policy_ns: &str,
    rule_peers: Option<&Value>,
    other: &Peer,
) -> bool {
    let Some(peers) = rule_peers.and_then(Value::as_array) else {
        return true; // no from/to: everyone
    };
    peers.iter().any(|peer| {
        if let Some(block) = peer.get("ipBlock") {
            // Only "anywhere" blocks are modelled; pod IPs are not known here.
            return other.namespace.is_none() && s(block, "/cidr").ends_with("/0");
        }
        let Some(other_ns) = &other.namespace else {
            return false;
        };
        let ns_ok = match peer.get("namespaceSelector") {
            Some(sel) => selector_matches(sel, &namespace_labels(objects, other_ns)),
            None => other_ns == policy_ns,
        };
        let pod_ok = peer
            .get("podSelector")
            .is_none_or(|sel| selector_matches(sel, &other.labels));
        ns_ok && pod_ok
    })
}

fn port_matches(rule: &Value, dest: &Peer, port: u64, protocol: &str) -> bool {
    let ports = items(rule, "/ports");
    ports.is_empty()
        || ports.iter().any(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            let number = match p.get("port") {
                None => return proto == protocol,
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(named)) => dest
                    .ports
                    .iter()
                    .find(|(n, _)| n == named)
                    .map(|(_, number)| *number),
                _ => None,
            };
            let end = p.get("endPort").and_then(Value::as_u64);
            proto == protocol
                && number.is_some_and(|n| n == port || end.is_some_and(|e| (n..=e).contains(&port)))
        })
}

/// Whether `direction` ("Ingress"/"Egress") policies on `subject` admit `other`.
fn admitted(
    objects: &[Value],
    subject: &Peer,
    other: &Peer,
    dest: &Peer,
    direction: &str,
    port: u64,
    protocol: &str,
) -> bool {
    let Some(ns) = &subject.namespace else {
        return true; // not a pod: no policy applies
    };
    let (rules_key, peers_key) = if direction == "Ingress" {
        ("ingress", "from")
    } else {
        ("egress", "to")
    };
    let applying: Vec<&Value> = objects
        .iter()
        .filter(|o| kind(o) == "NetworkPolicy" && namespace(o) == ns)
        .filter(|o| selector_matches(&o["spec"]["podSelector"], &subject.labels))
        .filter(|o| {
            let types = items(o, "/spec/policyTypes");
            if types.is_empty() {
                direction == "Ingress" || o.pointer("/spec/egress").is_some()
            } else {
                types.iter().any(|t| t == direction)
            }
        })
        .collect();
    if applying.is_empty() {
        return true;
    }
    applying.iter().any(|policy| {
        items(policy, &format!("/spec/{rules_key}"))
            .iter()
            .any(|rule| {
                peer_matches(objects, ns, rule.get(peers_key), other)
                    && port_matches(rule, dest, port, protocol)
            })
    })
}

fn flow_allowed(objects: &[Value], pods: &[Pod], flow: &Flow) -> Result<bool, String> {
    let sources = resolve(&flow.from, pods);
    let dests = resolve(&flow.to, pods);
    if sources.is_empty() || dests.is_empty() {
        return Err(format!("flow {flow:?}: an end names no pod"));
    }
    // Only pods of the rendered set are governed by its policies.
    let governed = |p: &Peer| {
        p.namespace
            .as_ref()
            .is_some_and(|ns| pods.iter().any(|q| &q.namespace == ns))
    };
    Ok(sources.iter().all(|src| {
        dests.iter().all(|dst| {
            let out_ok = !governed(src)
                || admitted(objects, src, dst, dst, "Egress", flow.port, flow.protocol);
            let in_ok = !governed(dst)
                || admitted(objects, dst, src, dst, "Ingress", flow.port, flow.protocol);
            out_ok && in_ok
        })
    }))
}

fn flow_violations(objects: &[Value], allowed: &[Flow], denied: &[Flow]) -> Vec<String> {
    let pods = pods(objects);
    let mut out = Vec::new();
    for (flows, want) in [(allowed, true), (denied, false)] {
        for flow in flows {
            match flow_allowed(objects, &pods, flow) {
                Err(e) => out.push(e),
                Ok(got) if got != want => out.push(format!(
                    "{:?} -> {:?} :{}/{} should be {}",
                    flow.from,
                    flow.to,
                    flow.port,
                    flow.protocol,
                    if want { "allowed" } else { "denied" }
                )),
                Ok(_) => {}
            }
        }
    }
    // Every pod resolves names.
    for pod in &pods {
        let dns = Flow {
            from: owner(&pod.owner),
            to: elsewhere("kube-system", &[("k8s-app", "kube-dns")]),
            port: 53,
            protocol: "UDP",
        };
        if flow_allowed(objects, &pods, &dns) != Ok(true) {
            out.push(format!("{}: cannot reach cluster DNS", pod.owner));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rules: settings that must agree across objects

/// A container's environment, with ConfigMap references resolved.
fn env_of(objects: &[Value], o: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Some(spec) = pod_spec(o) else { return env };
    for (c, _) in containers(spec) {
        for e in items(c, "/env") {
            let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
                Some(v.to_owned())
            } else {
                e.pointer("/valueFrom/configMapKeyRef")
                    .and_then(|r| config_value(objects, namespace(o), s(r, "/name"), s(r, "/key")))
            };
            if let Some(v) = value {
                env.insert(s(e, "/name").to_owned(), v);
            }
        }
    }
    env
}

fn config_value(objects: &[Value], ns: &str, cm: &str, key: &str) -> Option<String> {
    objects
        .iter()
        .find(|o| kind(o) == "ConfigMap" && namespace(o) == ns && name(o) == cm)
        .and_then(|o| o.pointer(&format!("/data/{key}")))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// KEDA's Kafka trigger watches the group and topic the worker consumes, and
/// the topic has a partition for every replica KEDA may start.
fn kafka_scaling_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for so in objects.iter().filter(|o| kind(o) == "ScaledObject") {
        let target = objects.iter().find(|o| {
            kind(o) == "Deployment"
                && namespace(o) == namespace(so)
                && name(o) == s(so, "/spec/scaleTargetRef/name")
        });
        let max = so
            .pointer("/spec/maxReplicaCount")
            .and_then(Value::as_u64)
            .unwrap_or(100); // KEDA's default
        for trigger in items(so, "/spec/triggers")
            .iter()
            .filter(|t| s(t, "/type") == "kafka")
        {
            let at = id(so);
            let topic = s(trigger, "/metadata/topic");
            let group = s(trigger, "/metadata/consumerGroup");
            for field in ["lagThreshold", "activationLagThreshold"] {
                if trigger.pointer(&format!("/metadata/{field}")).is_none() {
                    out.push(format!("{at}: kafka trigger has no {field}"));
                }
            }
            match objects.iter().find(|o| {
                kind(o) == "KafkaTopic"
                    && namespace(o) == namespace(so)
                    && o.pointer("/spec/topicName")
                        .and_then(Value::as_str)
                        .unwrap_or(name(o))
                        == topic
            }) {
                None => out.push(format!("{at}: topic {topic:?} is not a KafkaTopic")),
                Some(t) => {
                    let partitions = t
                        .pointer("/spec/partitions")
                        .and_then(Value::as_u64)
                        .unwrap_or(1);
                    if partitions < max {
                        out.push(format!(
                            "{at}: maxReplicaCount {max} > {partitions} partitions of {topic:?}; the extra workers would idle"
                        ));
                    }
                }
            }
            if let Some(target) = target {
                let env = env_of(objects, target);
                for (var, want) in [
                    ("XTREAM_KAFKA_GROUP", group),
                    ("XTREAM_UPLOADS_TOPIC", topic),
                ] {
                    if env.get(var).map(String::as_str) != Some(want) {
                        out.push(format!(
                            "{at}: trigger watches {want:?} but {} has {var}={:?}",
                            id(target),
                            env.get(var)
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Seconds in a duration like `90s`, `10m`, `1h30m` (humantime's units).
fn duration_seconds(text: &str) -> Option<u64> {
    let mut total = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match rest[..unit_len].trim() {
            "s" | "sec" | "secs" => 1,
            "m" | "min" | "mins" => 60,
            "h" | "hr" | "hrs" => 3600,
            "d" | "day" | "days" => 86400,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// Kubernetes waits longer than the worker's own shutdown grace before SIGKILL.
fn grace_period_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| pod_spec(o).is_some()) {
        let Some(grace) = env_of(objects, o).get("XTREAM_SHUTDOWN_GRACE").cloned() else {
            continue;
        };
        let pod_grace = o
            .pointer("/spec/template/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(30);
        match duration_seconds(&grace) {
            None => out.push(format!("{}: XTREAM_SHUTDOWN_GRACE={grace:?} is not a duration", id(o))),
            Some(secs) if secs >= pod_grace => out.push(format!(
                "{}: terminationGracePeriodSeconds {pod_grace} must exceed XTREAM_SHUTDOWN_GRACE={grace} ({secs}s)",
                id(o)
            )),
            Some(_) => {}
        }
    }
    out
}

/// Bytes in `max_upload_bytes` syntax: a number, optionally with KiB/MiB/GiB/TiB.
fn upload_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let units = [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, factor) in units {
        if let Some(n) = text.strip_suffix(unit) {
            return n.trim().parse::<u64>().ok().map(|n| n * factor);
        }
    }
    text.parse().ok()
}

/// Bytes in nginx size syntax: a number, optionally with k/m/g (binary).
fn nginx_size(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let (n, factor) = match text.chars().last()? {
        'k' => (&text[..text.len() - 1], 1u64 << 10),
        'm' => (&text[..text.len() - 1], 1 << 20),
        'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text.as_str(), 1),
    };
    n.parse::<u64>().ok().map(|n| n * factor)
}

/// An Ingress in front of the SpinApp lets its biggest upload through, streamed.
fn ingress_upload_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for app in objects.iter().filter(|o| kind(o) == "SpinApp") {
        let Some(max) = items(app, "/spec/variables")
            .iter()
            .find(|v| s(v, "/name") == "max_upload_bytes")
            .and_then(|v| {
                v.get("value")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| {
                        v.pointer("/valueFrom/configMapKeyRef").and_then(|r| {
                            config_value(objects, namespace(app), s(r, "/name"), s(r, "/key"))
                        })
                    })
            })
        else {
            continue;
        };
        let Some(max_bytes) = upload_bytes(&max) else {
            out.push(format!(
                "{}: max_upload_bytes {max:?} does not parse",
                id(app)
            ));
            continue;
        };
        for ing in objects.iter().filter(|o| {
            kind(o) == "Ingress"
                && namespace(o) == namespace(app)
                && items(o, "/spec/rules").iter().any(|r| {
                    items(r, "/http/paths")
                        .iter()
                        .any(|p| s(p, "/backend/service/name") == name(app))
                })
        }) {
            let annotation = |a: &str| {
                s(
                    ing,
                    &format!("/metadata/annotations/nginx.ingress.kubernetes.io~1{a}"),
                )
            };
            match nginx_size(annotation("proxy-body-size")) {
                Some(0) => {} // nginx: 0 disables the check
                Some(n) if n >= max_bytes => {}
                _ => out.push(format!(
                    "{}: proxy-body-size {:?} is below max_upload_bytes {max}",
                    id(ing),
                    annotation("proxy-body-size")
                )),
            }
            if annotation("proxy-request-buffering") != "off" {
                out.push(format!(
                    "{}: uploads must stream (proxy-request-buffering: \"off\")",
                    id(ing)
                ));
            }
        }
    }
    out
}

/// Every in-cluster address in the settings names a Service with that port.
fn endpoint_violations(objects: &[Value]) -> Vec<String> {
    let svcs = services(objects);
    let mut addresses: Vec<(String, String, String)> = Vec::new(); // (from, namespace, address)
    for o in objects {
        let ns = namespace(o).to_owned();
        match kind(o) {
            "ConfigMap" => {
                for (key, v) in o
                    .get("data")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let v = v.as_str().unwrap_or_default();
                    if !v.contains(char::is_whitespace) {
                        addresses.push((format!("{} {key}", id(o)), ns.clone(), v.to_owned()));
                    }
                }
            }
            "SpinAppExecutor" => {
                for (key, v) in o
                    .pointer("/spec/deploymentConfig/otel")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    addresses.push((
                        format!("{} {key}", id(o)),
                        ns.clone(),
                        v.as_str().unwrap_or_default().into(),
                    ));
                }
            }
            "Cluster" => {
                let pointer = "/spec/backup/barmanObjectStore/endpointURL";
                if let Some(v) = o.pointer(pointer).and_then(Value::as_str) {
                    addresses.push((format!("{} {pointer}", id(o)), ns.clone(), v.into()));
                }
            }
            "ScaledObject" | "KafkaBridge" => {
                for pointer in ["/spec/bootstrapServers"] {
                    if let Some(v) = o.pointer(pointer).and_then(Value::as_str) {
                        addresses.push((id(o), ns.clone(), v.into()));
                    }
                }
                for t in items(o, "/spec/triggers") {
                    for server in s(t, "/metadata/bootstrapServers")
                        .split(',')
                        .filter(|v| !v.is_empty())
                    {
                        addresses.push((id(o), ns.clone(), server.into()));
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (from, ns, address) in addresses {
        let authority = address
            .split_once("://")
            .map_or(address.as_str(), |(_, rest)| rest);
        let authority = authority.split('/').next().unwrap_or_default();
        let Some((host, port)) = authority.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u64>() else {
            continue;
        };
        // Bare Service names and NAME.NAMESPACE.svc[.cluster.local] only.
        let mut parts = host.split('.');
        let svc_name = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        let svc_ns = match rest.as_slice() {
            [] => ns.clone(),
            [n, "svc"] | [n, "svc", "cluster", "local"] => (*n).to_owned(),
            _ => continue,
        };
        if host == "localhost" {
            continue;
        }
        if !svcs.iter().any(|s| {
            s.name == svc_name && s.namespace == svc_ns && s.ports.iter().any(|(_, p)| *p == port)
        }) {
            out.push(format!(
                "{from}: {address:?} names no Service {svc_ns}/{svc_name} with port {port}"
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: the database schema is migrated before it is used

/// Whether a container runs the worker's `migrate` subcommand (the image's
/// entrypoint is the worker binary).
fn runs_migrate(c: &Value) -> bool {
    items(c, "/command").is_empty()
        && items(c, "/args").first().and_then(Value::as_str) == Some("migrate")
}

/// Where a container's XTREAM_DATABASE_URL comes from (`value` or `valueFrom`).
fn database_url(c: &Value) -> Option<Value> {
    items(c, "/env")
        .iter()
        .find(|e| s(e, "/name") == "XTREAM_DATABASE_URL")
        .map(|e| {
            let mut source = e.clone();
            if let Some(m) = source.as_object_mut() {
                m.remove("name");
            }
            source
        })
}

/// ConfigMaps a pod template names (env, envFrom, volumes).
fn config_maps_named(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (c, _) in containers(spec) {
        for e in items(c, "/env") {
            out.push(s(e, "/valueFrom/configMapKeyRef/name").to_owned());
        }
        for e in items(c, "/envFrom") {
            out.push(s(e, "/configMapRef/name").to_owned());
        }
    }
    for v in items(spec, "/volumes") {
        out.push(s(v, "/configMap/name").to_owned());
        for src in items(v, "/projected/sources") {
            out.push(s(src, "/configMap/name").to_owned());
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// Every workload that uses the database runs `migrate` first, in an init
/// container with its own image and database, and a Job runs the same
/// migration for the clients that have no init step (the functions, and the
/// worker while KEDA keeps it at zero). A migrate Job must survive the next
/// `kubectl apply`: its template is immutable once created, so it goes away
/// after it finishes (ttlSecondsAfterFinished) and names no ConfigMap (a
/// generated ConfigMap's name changes with its content).
fn migration_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let mut jobs: Vec<(&str, &str, Option<Value>)> = Vec::new(); // namespace, image, database
    for o in objects.iter().filter(|o| kind(o) == "Job") {
        let Some(spec) = pod_spec(o) else { continue };
        let migrations: Vec<&Value> = containers(spec)
            .map(|(c, _)| c)
            .filter(|c| runs_migrate(c))
            .collect();
        for c in &migrations {
            if database_url(c).is_none() {
                out.push(format!(
                    "{} container {:?}: runs migrate without XTREAM_DATABASE_URL",
                    id(o),
                    s(c, "/name")
                ));
            }
            jobs.push((namespace(o), s(c, "/image"), database_url(c)));
        }
        if migrations.is_empty() {
            continue;
        }
        for field in ["ttlSecondsAfterFinished", "backoffLimit"] {
            if o.pointer(&format!("/spec/{field}")).is_none() {
                out.push(format!("{}: a migrate Job needs spec.{field}", id(o)));
            }
        }
        for cm in config_maps_named(spec) {
            out.push(format!(
                "{}: the template names ConfigMap {cm:?}; a generated name changes with the content, and a Job's template cannot change",
                id(o)
            ));
        }
    }
    for o in objects.iter().filter(|o| kind(o) != "Job") {
        let Some(spec) = pod_spec(o) else { continue };
        let inits: Vec<&Value> = items(spec, "/initContainers")
            .iter()
            .filter(|c| runs_migrate(c))
            .collect();
        for c in items(spec, "/containers")
            .iter()
            .filter(|c| !runs_migrate(c))
        {
            let Some(url) = database_url(c) else { continue };
            let image = s(c, "/image");
            let at = format!("{} container {:?}", id(o), s(c, "/name"));
            let same_db: Vec<&&Value> = inits
                .iter()
                .filter(|i| database_url(i).as_ref() == Some(&url))
                .collect();
            if inits.is_empty() {
                out.push(format!(
                    "{at}: uses the database but no init container runs migrate first"
                ));
            } else if same_db.is_empty() {
                out.push(format!(
                    "{at}: the migrate init container migrates another database"
                ));
            } else if !same_db.iter().any(|i| s(i, "/image") == image) {
                out.push(format!(
                    "{at}: the migrate init container runs another image than {image:?}"
                ));
            }
            if !jobs
                .iter()
                .any(|(ns, i, u)| *ns == namespace(o) && *i == image && u.as_ref() == Some(&url))
            {
                out.push(format!(
                    "{at}: no migrate Job runs {image:?} against its database"
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The overlays

/// Secrets an overlay expects to exist in the cluster before it is applied
/// (created by hand; see the overlay's kustomization.yaml).
fn external_secrets(overlay: &str) -> &'static [&'static str] {
    match overlay {
        "production" => &[
            "minio-root",
            "xtream-s3",
            "xtream-api",
            "xtream-db-backup-s3",
        ],
        _ => &[],
    }
}

fn xtream_flows() -> (Vec<Flow>, Vec<Flow>) {
    let ingress_nginx = || {
        elsewhere(
            "ingress-nginx",
            &[("app.kubernetes.io/name", "ingress-nginx")],
        )
    };
    let keda = || elsewhere("keda", &[("app", "keda-operator")]);
    let strimzi = || elsewhere("strimzi", &[("name", "strimzi-cluster-operator")]);
    let functions = || owner("SpinApp/xtream");
    let worker = || owner("Deployment/xtream-worker");
    let minio = || owner("StatefulSet/minio");
    let kafka = || owner("Kafka/xtream");
    let entity_operator = || owner("Kafka/xtream:entity-operator");
    let bridge = || owner("KafkaBridge/xtream-bridge");
    let prometheus = || owner("Deployment/prometheus");
    let node_exporter = || owner("DaemonSet/node-exporter");
    let postgres = || owner("Cluster/xtream-db");
    let migrate = || owner("Job/xtream-migrate");
    let cnpg = || {
        elsewhere(
            "cnpg-system",
            &[("app.kubernetes.io/name", "cloudnative-pg")],
        )
    };
    let allowed = vec![
        tcp(ingress_nginx(), functions(), 80),
        tcp(ingress_nginx(), minio(), 9001),
        tcp(functions(), minio(), 9000),
        tcp(functions(), bridge(), 8080),
        tcp(functions(), prometheus(), 9090),
        tcp(bridge(), kafka(), 9092),
        tcp(worker(), kafka(), 9092),
        tcp(worker(), minio(), 9000),
        tcp(owner("Job/minio-bucket"), minio(), 9000),
        tcp(keda(), kafka(), 9092),
        tcp(kafka(), kafka(), 9090),
        tcp(kafka(), kafka(), 9091),
        tcp(entity_operator(), kafka(), 9091),
        tcp(entity_operator(), End::External, 443),
        tcp(strimzi(), kafka(), 9091),
        tcp(strimzi(), kafka(), 8443),
        tcp(prometheus(), node_exporter(), 9100),
        tcp(prometheus(), worker(), 9090),
        tcp(prometheus(), End::External, 443),
        tcp(functions(), postgres(), 5432),
        tcp(worker(), postgres(), 5432),
        tcp(migrate(), postgres(), 5432),
        tcp(postgres(), postgres(), 5432),
        tcp(postgres(), postgres(), 8000),
        tcp(cnpg(), postgres(), 8000),
        tcp(cnpg(), postgres(), 5432),
        tcp(prometheus(), postgres(), 9187),
        tcp(postgres(), minio(), 9000),
        tcp(postgres(), End::External, 443),
    ];
    let denied = vec![
        tcp(functions(), kafka(), 9092),      // only through the bridge
        tcp(functions(), End::External, 443), // no internet from the functions
        tcp(worker(), End::External, 443),
        tcp(worker(), functions(), 80),
        tcp(ingress_nginx(), minio(), 9000), // the S3 API stays internal
        tcp(elsewhere("default", &[]), minio(), 9000),
        tcp(keda(), minio(), 9000),
        tcp(functions(), node_exporter(), 9100),
        tcp(bridge(), minio(), 9000),
        // PostgreSQL: only its three clients, the operator and its peers.
        tcp(ingress_nginx(), postgres(), 5432),
        tcp(kafka(), postgres(), 5432),
        tcp(bridge(), postgres(), 5432),
        tcp(minio(), postgres(), 5432),
        tcp(owner("Job/minio-bucket"), postgres(), 5432),
        tcp(keda(), postgres(), 5432),
        tcp(strimzi(), postgres(), 5432),
        tcp(elsewhere("default", &[]), postgres(), 5432),
        tcp(elsewhere("cnpg-system", &[]), postgres(), 5432), // not the operator
        tcp(prometheus(), postgres(), 5432),
        tcp(functions(), postgres(), 8000),
        tcp(worker(), postgres(), 9187),
        tcp(migrate(), minio(), 9000),
        tcp(migrate(), End::External, 443),
        tcp(postgres(), functions(), 80),
        tcp(postgres(), kafka(), 9092),
    ];
    (allowed, denied)
}

fn all_violations(objects: &[Value], overlay: &str) -> Vec<String> {
    let (allowed, denied) = xtream_flows();
    [
        schema_violations(objects),
        service_violations(objects),
        reference_violations(objects, external_secrets(overlay)),
        hygiene_violations(objects),
        image_violations(objects),
        autoscaler_violations(objects),
        policy_selector_violations(objects),
        default_deny_violations(objects),
        flow_violations(objects, &allowed, &denied),
        kafka_scaling_violations(objects),
        grace_period_violations(objects),
        ingress_upload_violations(objects),
        endpoint_violations(objects),
        migration_violations(objects),
    ]
    .concat()
}

fn assert_overlay_valid(overlay: &str) {
    let objects = render(overlay);
    assert!(
        objects.len() > 30,
        "{overlay}: only {} objects rendered",
        objects.len()
    );
    let violations = all_violations(&objects, overlay);
    assert!(
        violations.is_empty(),
        "{overlay}: {} violations:\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

#[test]
fn minikube_overlay_renders_and_validates() {
    assert_overlay_valid("minikube");
}

#[test]
fn production_overlay_renders_and_validates() {
    assert_overlay_valid("production");
}

#[test]
fn every_overlay_is_tested() {
    let mut found: Vec<String> = std::fs::read_dir(repo_root().join("k8s/overlays"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.')) // k8s/minikube.sh's scratch overlay
        .collect();
    found.sort();
    assert_eq!(found, OVERLAYS);
}

#[test]
fn overlays_deploy_everything_the_platform_needs() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let kinds: BTreeSet<&str> = objects.iter().map(kind).collect();
        for want in [
            "SpinApp",
            "SpinAppExecutor",
            "HorizontalPodAutoscaler",
            "ScaledObject",
            "Kafka",
            "KafkaNodePool",
            "KafkaTopic",
            "KafkaBridge",
            "StatefulSet",
            "Job",
            "DaemonSet",
            "Ingress",
            "NetworkPolicy",
            "ClusterRole",
            "ClusterRoleBinding",
            "Cluster",
        ] {
            assert!(kinds.contains(want), "{overlay}: no {want}");
        }
        let topics: BTreeSet<&str> = objects
            .iter()
            .filter(|o| kind(o) == "KafkaTopic")
            .map(name)
            .collect();
        for topic in ["xtream.uploads", "xtream.results", "xtream.uploads.dlq"] {
            assert!(topics.contains(topic), "{overlay}: no topic {topic}");
        }
        let kafka = objects.iter().find(|o| kind(o) == "Kafka").unwrap();
        assert_eq!(
            s(kafka, "/metadata/annotations/strimzi.io~1kraft"),
            "enabled",
            "KRaft mode"
        );
        assert!(kafka.pointer("/spec/zookeeper").is_none(), "no ZooKeeper");
        let app = objects.iter().find(|o| kind(o) == "SpinApp").unwrap();
        assert_eq!(s(app, "/spec/executor"), "containerd-shim-spin");
        let variables: BTreeSet<&str> = items(app, "/spec/variables")
            .iter()
            .map(|v| s(v, "/name"))
            .collect();
        for var in [
            "s3_endpoint",
            "s3_bucket",
            "s3_region",
            "s3_access_key",
            "s3_secret_key",
            "max_upload_bytes",
            "kafka_bridge_url",
            "uploads_topic",
            "api_keys",
            "read_requires_key",
            "s3_public_endpoint",
            "db_host",
            "db_port",
            "db_name",
            "db_user",
            "db_password",
            "db_sslmode",
        ] {
            assert!(
                variables.contains(var),
                "{overlay}: SpinApp lacks variable {var}"
            );
        }
        for secret in ["s3_access_key", "s3_secret_key", "api_keys", "db_password"] {
            let v = items(app, "/spec/variables")
                .iter()
                .find(|v| s(v, "/name") == secret)
                .unwrap();
            assert!(
                v.pointer("/valueFrom/secretKeyRef").is_some(),
                "{secret} must come from a Secret"
            );
        }
        let hosts: BTreeSet<&str> = objects
            .iter()
            .filter(|o| kind(o) == "Ingress")
            .flat_map(|o| items(o, "/spec/rules"))
            .map(|r| s(r, "/host"))
            .collect();
        assert_eq!(
            hosts.len(),
            2,
            "{overlay}: the app and the MinIO console: {hosts:?}"
        );
    }
}

#[test]
fn overlays_wire_postgres_into_the_platform() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let find = |id_: &str| {
            objects
                .iter()
                .find(|o| id(o) == id_)
                .unwrap_or_else(|| panic!("{overlay}: no {id_}"))
        };
        let db = find("Cluster/xtream-db");
        let want_instances = if *overlay == "production" { 3 } else { 1 };
        assert_eq!(db["spec"]["instances"], json!(want_instances), "{overlay}");
        assert_eq!(
            db["spec"]["enablePDB"],
            json!(true),
            "{overlay}: PDBs are the operator's, said explicitly"
        );
        assert_eq!(
            db["spec"]["bootstrap"]["initdb"],
            json!({"database": "xtream", "owner": "xtream"}),
            "{overlay}"
        );
        assert!(
            services(&objects)
                .iter()
                .any(|svc| svc.name == "xtream-db-rw" && svc.ports.iter().any(|(_, p)| *p == 5432)),
            "{overlay}: the read-write Service"
        );

        // The functions: connection settings from the operator's Secret.
        let app = find("SpinApp/xtream");
        let variable = |n: &str| {
            items(app, "/spec/variables")
                .iter()
                .find(|v| s(v, "/name") == n)
                .unwrap_or_else(|| panic!("{overlay}: no variable {n}"))
                .clone()
        };
        for (var, key) in [
            ("db_host", "host"),
            ("db_port", "port"),
            ("db_name", "dbname"),
            ("db_user", "username"),
            ("db_password", "password"),
        ] {
            assert_eq!(
                variable(var)["valueFrom"],
                json!({"secretKeyRef": {"name": "xtream-db-app", "key": key}}),
                "{overlay}: {var}"
            );
        }
        let sslmode = variable("db_sslmode");
        let r = &sslmode["valueFrom"]["configMapKeyRef"];
        assert_eq!(
            config_value(&objects, "xtream", s(r, "/name"), s(r, "/key")).as_deref(),
            Some("prefer"),
            "{overlay}: db_sslmode"
        );

        // The worker and the migrations: the operator's connection URI.
        let uri = json!({"valueFrom": {"secretKeyRef": {"name": "xtream-db-app", "key": "uri"}}});
        let worker = find("Deployment/xtream-worker");
        let run = &items(worker, "/spec/template/spec/containers")[0];
        assert_eq!(database_url(run), Some(uri.clone()), "{overlay}: worker");
        let init = &items(worker, "/spec/template/spec/initContainers")[0];
        assert_eq!(items(init, "/args"), [json!("migrate")], "{overlay}");
        assert_eq!(database_url(init), Some(uri.clone()), "{overlay}: init");
        let job = find("Job/xtream-migrate");
        let c = &items(job, "/spec/template/spec/containers")[0];
        assert_eq!(items(c, "/args"), [json!("migrate")], "{overlay}");
        assert_eq!(database_url(c), Some(uri), "{overlay}: Job");
        assert_eq!(s(c, "/image"), s(run, "/image"), "{overlay}: one image");

        // Backups: production only, nightly, to the in-cluster MinIO.
        let scheduled: Vec<&Value> = objects
            .iter()
            .filter(|o| kind(o) == "ScheduledBackup")
            .collect();
        if *overlay == "production" {
            assert_eq!(scheduled.len(), 1, "production: one ScheduledBackup");
            assert_eq!(s(scheduled[0], "/spec/cluster/name"), "xtream-db");
            assert_eq!(
                s(db, "/spec/backup/barmanObjectStore/endpointURL"),
                "http://minio:9000"
            );
        } else {
            assert!(scheduled.is_empty(), "{overlay}: no backups");
            assert!(
                db.pointer("/spec/backup").is_none(),
                "{overlay}: no backups"
            );
        }
    }
}

#[test]
fn minikube_keeps_the_original_hostnames() {
    let objects = render("minikube");
    let hosts: BTreeSet<&str> = objects
        .iter()
        .filter(|o| kind(o) == "Ingress")
        .flat_map(|o| items(o, "/spec/rules"))
        .map(|r| s(r, "/host"))
        .collect();
    assert_eq!(
        hosts,
        BTreeSet::from(["server.video.localhost", "minio-console.video.localhost"])
    );
}

#[test]
fn minikube_script_is_valid_bash() {
    let script = repo_root().join("k8s/minikube.sh");
    let status = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success(), "bash -n {}", script.display());
}

// ---------------------------------------------------------------------------
// Each rule fails on a broken object. The world below is small and valid;
// every test breaks one thing in it.

const WORLD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: demo}
data:
  S3_ENDPOINT: http://store:9000
  BOOTSTRAP: kafka-kafka-bootstrap:9092
  KAFKA_GROUP: workers
  UPLOADS_TOPIC: uploads
  MAX_UPLOAD_BYTES: 1GiB
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: demo}
stringData: {access-key: a, secret-key: b}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: demo}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      terminationGracePeriodSeconds: 120
      initContainers:
        - name: migrate
          image: registry.example:5000/worker:1.0
          args: [migrate]
          env:
            - {name: XTREAM_DATABASE_URL, valueFrom: {secretKeyRef: {name: db-app, key: uri}}}
          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 50m, memory: 32Mi}}
      containers:
        - name: worker
          image: registry.example:5000/worker:1.0
          ports: [{name: metrics, containerPort: 9090}]
          env:
            - {name: XTREAM_KAFKA_GROUP, valueFrom: {configMapKeyRef: {name: settings, key: KAFKA_GROUP}}}
            - {name: XTREAM_UPLOADS_TOPIC, valueFrom: {configMapKeyRef: {name: settings, key: UPLOADS_TOPIC}}}
            - {name: XTREAM_S3_ACCESS_KEY, valueFrom: {secretKeyRef: {name: creds, key: access-key}}}
            - {name: XTREAM_SHUTDOWN_GRACE, value: 1m}
            - {name: XTREAM_DATABASE_URL, valueFrom: {secretKeyRef: {name: db-app, key: uri}}}
          resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 200m, memory: 128Mi}}
          livenessProbe: {httpGet: {path: /health, port: metrics}}
          readinessProbe: {httpGet: {path: /health, port: metrics}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: store, namespace: demo}
spec:
  serviceName: store
  selector: {matchLabels: {app: store}}
  template:
    metadata: {labels: {app: store}}
    spec:
      containers:
        - name: store
          image: store@sha256:0f3c4e0d6c2b1a0918273645f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d
          ports: [{name: api, containerPort: 9000}]
          envFrom: [{secretRef: {name: creds}}]
          resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 200m, memory: 128Mi}}
          livenessProbe: {tcpSocket: {port: api}}
          readinessProbe: {tcpSocket: {port: api}}
---
apiVersion: v1
kind: Service
metadata: {name: store, namespace: demo}
spec:
  selector: {app: store}
  ports: [{name: api, port: 9000, targetPort: api}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: setup, namespace: demo}
spec:
  template:
    metadata: {labels: {app: setup}}
    spec:
      restartPolicy: OnFailure
      containers:
        - name: setup
          image: tools:2.0
          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 50m, memory: 32Mi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: demo}
spec:
  backoffLimit: 5
  ttlSecondsAfterFinished: 300
  template:
    metadata: {labels: {app: migrate}}
    spec:
      restartPolicy: OnFailure
      containers:
        - name: migrate
          image: registry.example:5000/worker:1.0
          args: [migrate]
          env:
            - {name: XTREAM_DATABASE_URL, valueFrom: {secretKeyRef: {name: db-app, key: uri}}}
          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 50m, memory: 32Mi}}
---
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: db, namespace: demo}
spec:
  instances: 1
  imageName: ghcr.io/cloudnative-pg/postgresql:18.4-system-trixie
  enablePDB: true
  bootstrap: {initdb: {database: app, owner: app}}
  storage: {size: 1Gi}
  resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: 500m, memory: 256Mi}}
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinAppExecutor
metadata: {name: shim, namespace: demo}
spec: {createDeployment: true, deploymentConfig: {runtimeClassName: wasmtime-spin-v2}}
---
apiVersion: core.spinkube.dev/v1alpha1
kind: SpinApp
metadata: {name: app, namespace: demo}
spec:
  image: ghcr.io/example/app:1.0
  executor: shim
  enableAutoscaling: true
  resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 200m, memory: 128Mi}}
  checks:
    liveness: {httpGet: {path: /health}}
    readiness: {httpGet: {path: /health/ready}}
  variables:
    - {name: s3_endpoint, valueFrom: {configMapKeyRef: {name: settings, key: S3_ENDPOINT}}}
    - {name: s3_access_key, valueFrom: {secretKeyRef: {name: creds, key: access-key}}}
    - {name: max_upload_bytes, valueFrom: {configMapKeyRef: {name: settings, key: MAX_UPLOAD_BYTES}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: app, namespace: demo}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: app}
  minReplicas: 1
  maxReplicas: 3
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  namespace: demo
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: 2g
    nginx.ingress.kubernetes.io/proxy-request-buffering: "off"
spec:
  ingressClassName: nginx
  rules:
    - host: app.localhost
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
---
apiVersion: kafka.strimzi.io/v1beta2
kind: Kafka
metadata: {name: kafka, namespace: demo, annotations: {strimzi.io/kraft: enabled, strimzi.io/node-pools: enabled}}
spec:
  kafka:
    listeners: [{name: plain, port: 9092, type: internal, tls: false}]
---
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaNodePool
metadata: {name: pool, namespace: demo, labels: {strimzi.io/cluster: kafka}}
spec:
  replicas: 1
  roles: [controller, broker]
  storage: {type: ephemeral}
  resources: {requests: {cpu: 100m, memory: 512Mi}, limits: {cpu: 500m, memory: 1Gi}}
---
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaTopic
metadata: {name: uploads, namespace: demo, labels: {strimzi.io/cluster: kafka}}
spec: {partitions: 4, replicas: 1}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: worker, namespace: demo}
spec:
  scaleTargetRef: {name: worker}
  maxReplicaCount: 4
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: kafka-kafka-bootstrap.demo.svc:9092
        consumerGroup: workers
        topic: uploads
        lagThreshold: "5"
        activationLagThreshold: "0"
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: demo}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns, namespace: demo}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
      ports: [{protocol: UDP, port: 53}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: app, namespace: demo}
spec:
  podSelector: {matchLabels: {core.spinkube.dev/app-name: app}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}]
      ports: [{port: 80}]
  egress:
    - to: [{podSelector: {matchLabels: {app: store}}}]
      ports: [{port: 9000}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: store, namespace: demo}
spec:
  podSelector: {matchLabels: {app: store}}
  ingress:
    - from: [{podSelector: {matchLabels: {core.spinkube.dev/app-name: app}}}, {podSelector: {matchLabels: {app: worker}}}]
      ports: [{port: api}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: worker, namespace: demo}
spec:
  podSelector: {matchLabels: {app: worker}}
  policyTypes: [Egress]
  egress:
    - to: [{podSelector: {matchLabels: {strimzi.io/cluster: kafka, strimzi.io/kind: Kafka}}}]
      ports: [{port: 9092}]
    - to: [{podSelector: {matchLabels: {app: store}}}]
      ports: [{port: 9000}]
    - to: [{podSelector: {matchLabels: {cnpg.io/cluster: db}}}]
      ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: kafka, namespace: demo}
spec:
  podSelector: {matchLabels: {strimzi.io/kind: Kafka}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: worker}}}]
      ports: [{port: 9092}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: migrate, namespace: demo}
spec:
  podSelector: {matchLabels: {app: migrate}}
  policyTypes: [Egress]
  egress:
    - to: [{podSelector: {matchLabels: {cnpg.io/cluster: db}}}]
      ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: demo}
spec:
  podSelector: {matchLabels: {cnpg.io/cluster: db}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: worker}}}, {podSelector: {matchLabels: {app: migrate}}}]
      ports: [{port: 5432}]
"#;

fn world() -> Vec<Value> {
    parse_yaml(WORLD)
}

fn world_flows() -> (Vec<Flow>, Vec<Flow>) {
    let ingress = || elsewhere("ingress-nginx", &[]);
    (
        vec![
            tcp(ingress(), owner("SpinApp/app"), 80),
            tcp(owner("SpinApp/app"), owner("StatefulSet/store"), 9000),
            tcp(owner("Deployment/worker"), owner("StatefulSet/store"), 9000),
            tcp(owner("Deployment/worker"), owner("Kafka/kafka"), 9092),
            tcp(owner("Deployment/worker"), owner("Cluster/db"), 5432),
            tcp(owner("Job/migrate"), owner("Cluster/db"), 5432),
        ],
        vec![
            tcp(owner("SpinApp/app"), owner("Kafka/kafka"), 9092),
            tcp(ingress(), owner("StatefulSet/store"), 9000),
            tcp(owner("StatefulSet/store"), owner("Cluster/db"), 5432),
            tcp(owner("Deployment/worker"), owner("Cluster/db"), 8000),
        ],
    )
}

fn object<'a>(objects: &'a mut [Value], id_: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| id(o) == id_)
        .unwrap_or_else(|| panic!("no {id_} in the world"))
}

fn set(objects: &mut [Value], id_: &str, pointer: &str, value: Value) {
    *object(objects, id_)
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{id_} has no {pointer}")) = value;
}

fn remove(objects: &mut [Value], id_: &str, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let key = key.replace("~1", "/").replace("~0", "~");
    let key = key.as_str();
    let parent = object(objects, id_).pointer_mut(parent).unwrap();
    match parent {
        Value::Object(m) => {
            m.remove(key)
                .unwrap_or_else(|| panic!("{id_} has no {pointer}"));
        }
        Value::Array(a) => {
            a.remove(key.parse().unwrap());
        }
        _ => panic!("{id_} {pointer}: not a container"),
    }
}

/// `rule` finds nothing in the world, and something containing `expected`
/// once `break_it` has run.
fn assert_rule_catches(
    rule: impl Fn(&[Value]) -> Vec<String>,
    break_it: impl FnOnce(&mut Vec<Value>),
    expected: &str,
) {
    let mut objects = world();
    let clean = rule(&objects);
    assert!(clean.is_empty(), "the world should be clean: {clean:#?}");
    break_it(&mut objects);
    let found = rule(&objects);
    assert!(
        found.iter().any(|v| v.contains(expected)),
        "expected a violation containing {expected:?}, got {found:#?}"
    );
}

#[test]
fn the_world_passes_every_rule() {
    let (allowed, denied) = world_flows();
    let objects = world();
    let violations = [
        schema_violations(&objects),
        service_violations(&objects),
        reference_violations(&objects, &[]),
        hygiene_violations(&objects),
        image_violations(&objects),
        autoscaler_violations(&objects),
        policy_selector_violations(&objects),
        default_deny_violations(&objects),
        flow_violations(&objects, &allowed, &denied),
        kafka_scaling_violations(&objects),
        grace_period_violations(&objects),
        ingress_upload_violations(&objects),
        endpoint_violations(&objects),
        migration_violations(&objects),
    ]
    .concat();
    assert!(violations.is_empty(), "{violations:#?}");
}

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
fn service_selector_must_match_a_pod() {
    assert_rule_catches(
        service_violations,
        |o| {
            set(
                o,
                "Service/store",
                "/spec/selector",
                json!({"app": "storage"}),
            )
        },
        "Service/store: selector",
    );
}

#[test]
fn service_target_port_must_exist_on_the_pods() {
    assert_rule_catches(
        service_violations,
        |o| set(o, "Service/store", "/spec/ports/0/targetPort", json!("s3")),
        "targetPort \"s3\"",
    );
}

#[test]
fn env_secret_reference_must_exist() {
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/containers/0/env/2/valueFrom/secretKeyRef/name",
                json!("credentials"),
            )
        },
        "Secret \"credentials\" does not exist",
    );
}

#[test]
fn env_config_map_key_must_exist() {
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/containers/0/env/0/valueFrom/configMapKeyRef/key",
                json!("GROUP"),
            )
        },
        "has no key \"GROUP\"",
    );
}

#[test]
fn env_from_reference_must_exist() {
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| o.retain(|p| id(p) != "Secret/creds"),
        "StatefulSet/store: Secret \"creds\" does not exist",
    );
}

#[test]
fn spin_app_variable_reference_must_exist() {
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| {
            set(
                o,
                "SpinApp/app",
                "/spec/variables/1/valueFrom/secretKeyRef/name",
                json!("creds-abc123"),
            )
        },
        "SpinApp/app: Secret \"creds-abc123\" does not exist",
    );
}

#[test]
fn external_secrets_count_as_existing() {
    let mut objects = world();
    objects.retain(|o| kind(o) != "Secret");
    assert!(!reference_violations(&objects, &[]).is_empty());
    assert_eq!(
        reference_violations(&objects, &["creds"]),
        Vec::<String>::new()
    );
}

#[test]
fn spin_app_executor_must_exist() {
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| {
            set(
                o,
                "SpinApp/app",
                "/spec/executor",
                json!("containerd-shim-spin"),
            )
        },
        "SpinAppExecutor \"containerd-shim-spin\"",
    );
}

#[test]
fn ingress_backend_must_exist() {
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| {
            set(
                o,
                "Ingress/app",
                "/spec/rules/0/http/paths/0/backend/service/port/number",
                json!(8080),
            )
        },
        "Ingress/app: backend Service \"app\"",
    );
}

#[test]
fn containers_need_resources() {
    assert_rule_catches(
        hygiene_violations,
        |o| {
            remove(
                o,
                "Deployment/worker",
                "/spec/template/spec/containers/0/resources/limits",
            )
        },
        "Deployment/worker container \"worker\": needs cpu and memory",
    );
}

#[test]
fn jobs_need_resources_but_no_probes() {
    assert_rule_catches(
        hygiene_violations,
        |o| remove(o, "Job/setup", "/spec/template/spec/containers/0/resources"),
        "Job/setup container \"setup\": needs",
    );
}

#[test]
fn containers_need_probes() {
    assert_rule_catches(
        hygiene_violations,
        |o| {
            remove(
                o,
                "StatefulSet/store",
                "/spec/template/spec/containers/0/readinessProbe",
            )
        },
        "StatefulSet/store container \"store\": has no readinessProbe",
    );
}

#[test]
fn spin_apps_need_checks_and_resources() {
    assert_rule_catches(
        hygiene_violations,
        |o| remove(o, "SpinApp/app", "/spec/checks/readiness"),
        "SpinApp/app: has no readiness check",
    );
    assert_rule_catches(
        hygiene_violations,
        |o| remove(o, "SpinApp/app", "/spec/resources/requests"),
        "SpinApp/app /spec/resources",
    );
}

#[test]
fn operator_managed_pods_need_resources() {
    assert_rule_catches(
        hygiene_violations,
        |o| remove(o, "KafkaNodePool/pool", "/spec/resources"),
        "KafkaNodePool/pool /spec/resources",
    );
}

#[test]
fn latest_tags_are_rejected() {
    assert_rule_catches(
        image_violations,
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/containers/0/image",
                json!("registry.example:5000/worker:latest"),
            )
        },
        "uses latest",
    );
}

#[test]
fn untagged_images_are_rejected() {
    // The registry's port must not pass for a tag.
    assert_rule_catches(
        image_violations,
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/containers/0/image",
                json!("registry.example:5000/worker"),
            )
        },
        "has no tag",
    );
    assert_rule_catches(
        image_violations,
        |o| {
            set(
                o,
                "SpinApp/app",
                "/spec/image",
                json!("ghcr.io/example/app"),
            )
        },
        "SpinApp/app: image \"ghcr.io/example/app\" has no tag",
    );
}

#[test]
fn hpa_target_must_exist() {
    assert_rule_catches(
        autoscaler_violations,
        |o| {
            set(
                o,
                "HorizontalPodAutoscaler/app",
                "/spec/scaleTargetRef/name",
                json!("api"),
            )
        },
        "target Deployment/api does not exist",
    );
}

#[test]
fn hpa_on_a_spin_app_needs_enable_autoscaling() {
    assert_rule_catches(
        autoscaler_violations,
        |o| set(o, "SpinApp/app", "/spec/enableAutoscaling", json!(false)),
        "must set enableAutoscaling: true",
    );
}

#[test]
fn scaled_object_target_must_exist() {
    assert_rule_catches(
        autoscaler_violations,
        |o| {
            set(
                o,
                "ScaledObject/worker",
                "/spec/scaleTargetRef/name",
                json!("workers"),
            )
        },
        "ScaledObject/worker: target Deployment/workers",
    );
}

#[test]
fn autoscaled_deployments_leave_replicas_alone() {
    assert_rule_catches(
        autoscaler_violations,
        |o| {
            object(o, "Deployment/worker")["spec"]["replicas"] = json!(2);
        },
        "sets spec.replicas",
    );
}

#[test]
fn one_autoscaler_per_target() {
    assert_rule_catches(
        autoscaler_violations,
        |o| {
            let mut hpa = object(o, "HorizontalPodAutoscaler/app").clone();
            hpa["metadata"]["name"] = json!("worker");
            hpa["spec"]["scaleTargetRef"]["name"] = json!("worker");
            o.push(hpa);
        },
        "is already scaled by",
    );
}

#[test]
fn network_policy_must_select_pods() {
    assert_rule_catches(
        policy_selector_violations,
        |o| {
            set(
                o,
                "NetworkPolicy/store",
                "/spec/podSelector/matchLabels/app",
                json!("minio"),
            )
        },
        "NetworkPolicy/store: podSelector",
    );
}

#[test]
fn network_policy_peers_must_select_pods() {
    assert_rule_catches(
        policy_selector_violations,
        |o| {
            set(
                o,
                "NetworkPolicy/store",
                "/spec/ingress/0/from/1/podSelector/matchLabels/app",
                json!("transcoder"),
            )
        },
        "ingress.from.podSelector",
    );
}

#[test]
fn namespaces_need_a_default_deny_policy() {
    assert_rule_catches(
        default_deny_violations,
        |o| o.retain(|p| id(p) != "NetworkPolicy/default-deny"),
        "namespace \"demo\" has no default-deny",
    );
}

#[test]
fn required_flows_must_be_allowed() {
    let (allowed, denied) = world_flows();
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| {
            set(
                o,
                "NetworkPolicy/store",
                "/spec/ingress/0/ports/0/port",
                json!(9001),
            )
        },
        "should be allowed",
    );
}

#[test]
fn unwanted_flows_must_be_denied() {
    let (allowed, denied) = world_flows();
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| {
            // "Let the app talk to anything": opens the app -> Kafka shortcut.
            let mut open = object(o, "NetworkPolicy/app").clone();
            open["metadata"]["name"] = json!("app-open");
            open["spec"] = json!({"podSelector": {"matchLabels": {"core.spinkube.dev/app-name": "app"}},
                                   "policyTypes": ["Egress"], "egress": [{}]});
            o.push(open);
            set(
                o,
                "NetworkPolicy/kafka",
                "/spec/ingress/0/from",
                json!([{"podSelector": {}}]),
            );
        },
        "should be denied",
    );
}

#[test]
fn every_pod_needs_dns() {
    let (allowed, denied) = world_flows();
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| o.retain(|p| id(p) != "NetworkPolicy/dns"),
        "cannot reach cluster DNS",
    );
}

#[test]
fn uploads_topic_needs_a_partition_per_worker() {
    assert_rule_catches(
        kafka_scaling_violations,
        |o| set(o, "KafkaTopic/uploads", "/spec/partitions", json!(2)),
        "maxReplicaCount 4 > 2 partitions",
    );
}

#[test]
fn keda_trigger_must_watch_the_workers_group() {
    assert_rule_catches(
        kafka_scaling_violations,
        |o| {
            set(
                o,
                "ScaledObject/worker",
                "/spec/triggers/0/metadata/consumerGroup",
                json!("transcoders"),
            )
        },
        "trigger watches \"transcoders\"",
    );
}

#[test]
fn keda_trigger_needs_lag_thresholds() {
    assert_rule_catches(
        kafka_scaling_violations,
        |o| {
            remove(
                o,
                "ScaledObject/worker",
                "/spec/triggers/0/metadata/activationLagThreshold",
            )
        },
        "no activationLagThreshold",
    );
}

#[test]
fn grace_period_must_outlast_the_workers_shutdown() {
    assert_rule_catches(
        grace_period_violations,
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/terminationGracePeriodSeconds",
                json!(60),
            )
        },
        "terminationGracePeriodSeconds 60 must exceed",
    );
}

#[test]
fn durations_parse_like_humantime() {
    assert_eq!(duration_seconds("90s"), Some(90));
    assert_eq!(duration_seconds("10m"), Some(600));
    assert_eq!(duration_seconds("1h30m"), Some(5400));
    assert_eq!(duration_seconds("soon"), None);
    assert_eq!(upload_bytes("10GiB"), Some(10 << 30));
    assert_eq!(nginx_size("10g"), Some(10 << 30));
    assert_eq!(nginx_size("1m"), Some(1 << 20));
}

#[test]
fn ingress_must_accept_the_largest_upload() {
    assert_rule_catches(
        ingress_upload_violations,
        |o| {
            set(
                o,
                "Ingress/app",
                "/metadata/annotations/nginx.ingress.kubernetes.io~1proxy-body-size",
                json!("512m"),
            )
        },
        "proxy-body-size \"512m\" is below max_upload_bytes 1GiB",
    );
    assert_rule_catches(
        ingress_upload_violations,
        |o| {
            remove(
                o,
                "Ingress/app",
                "/metadata/annotations/nginx.ingress.kubernetes.io~1proxy-body-size",
            )
        },
        "is below max_upload_bytes",
    );
}

#[test]
fn ingress_must_stream_uploads() {
    assert_rule_catches(
        ingress_upload_violations,
        |o| {
            remove(
                o,
                "Ingress/app",
                "/metadata/annotations/nginx.ingress.kubernetes.io~1proxy-request-buffering",
            )
        },
        "uploads must stream",
    );
}

#[test]
fn configured_addresses_must_name_services() {
    assert_rule_catches(
        endpoint_violations,
        |o| {
            set(
                o,
                "ConfigMap/settings",
                "/data/S3_ENDPOINT",
                json!("http://minio:9000"),
            )
        },
        "names no Service demo/minio with port 9000",
    );
    assert_rule_catches(
        endpoint_violations,
        |o| {
            set(
                o,
                "ScaledObject/worker",
                "/spec/triggers/0/metadata/bootstrapServers",
                json!("kafka-kafka-bootstrap.demo.svc:9093"),
            )
        },
        "port 9093",
    );
}

// ---------------------------------------------------------------------------
// PostgreSQL (CloudNativePG) and the schema migrations

#[test]
fn cnpg_clusters_are_modelled_like_the_operator_makes_them() {
    let mut objects = world();
    let instances: Vec<Pod> = pods(&objects)
        .into_iter()
        .filter(|p| p.owner == "Cluster/db")
        .collect();
    assert_eq!(instances.len(), 1, "one instance: {instances:?}");
    let pod = &instances[0];
    assert_eq!(pod.labels["cnpg.io/cluster"], "db");
    assert_eq!(pod.labels["cnpg.io/instanceRole"], "primary");
    let ports: BTreeSet<u64> = pod.ports.iter().map(|(_, p)| *p).collect();
    assert_eq!(ports, BTreeSet::from([5432, 8000, 9187]));
    let names: BTreeSet<String> = services(&objects)
        .into_iter()
        .filter(|svc| svc.ports == [("postgres".to_owned(), 5432)])
        .map(|svc| svc.name)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["db-r", "db-ro", "db-rw"].map(String::from))
    );
    let stores = Stores::new(&objects, &[]);
    let app = stores.secrets[&("demo".to_owned(), "db-app".to_owned())]
        .clone()
        .expect("known keys");
    for key in ["username", "password", "host", "port", "dbname", "uri"] {
        assert!(app.contains(key), "db-app has {key}");
    }

    // More instances: replicas, which the same flows must reach.
    set(&mut objects, "Cluster/db", "/spec/instances", json!(3));
    let roles: BTreeSet<String> = pods(&objects)
        .into_iter()
        .filter(|p| p.owner == "Cluster/db")
        .map(|p| p.labels["cnpg.io/instanceRole"].clone())
        .collect();
    assert_eq!(
        roles,
        BTreeSet::from(["primary", "replica"].map(String::from))
    );
}

#[test]
fn operator_made_database_secret_resolves_with_its_keys() {
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/containers/0/env/4/valueFrom/secretKeyRef/key",
                json!("url"),
            )
        },
        "Deployment/worker: Secret \"db-app\" has no key \"url\"",
    );
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| o.retain(|p| id(p) != "Cluster/db"),
        "Job/migrate: Secret \"db-app\" does not exist",
    );
    // With a Secret of yours for the owner, the operator makes no db-app.
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| {
            set(
                o,
                "Cluster/db",
                "/spec/bootstrap/initdb",
                json!({"database": "app", "owner": "app", "secret": {"name": "creds"}}),
            )
        },
        "Secret \"db-app\" does not exist",
    );
}

#[test]
fn database_backups_need_their_credentials_and_a_cluster() {
    let backup = json!({"barmanObjectStore": {
        "destinationPath": "s3://backups/",
        "endpointURL": "http://store:9000",
        "s3Credentials": {
            "accessKeyId": {"name": "backup-creds", "key": "access-key"},
            "secretAccessKey": {"name": "backup-creds", "key": "secret-key"}
        }
    }});
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| object(o, "Cluster/db")["spec"]["backup"] = backup.clone(),
        "Cluster/db: Secret \"backup-creds\" does not exist",
    );
    // The endpoint is a Service of the cluster, like every other address.
    assert_rule_catches(
        endpoint_violations,
        |o| {
            let mut b = backup.clone();
            b["barmanObjectStore"]["endpointURL"] = json!("http://minio:9000");
            object(o, "Cluster/db")["spec"]["backup"] = b;
        },
        "names no Service demo/minio with port 9000",
    );
    let nightly = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "ScheduledBackup",
        "metadata": {"name": "nightly", "namespace": "demo"},
        "spec": {"schedule": "0 0 3 * * *", "cluster": {"name": "db"}}});
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| o.push(nightly.clone()),
        "ScheduledBackup/nightly: Cluster \"db\" has no backup.barmanObjectStore",
    );
    assert_rule_catches(
        |o| reference_violations(o, &[]),
        |o| {
            let mut b = nightly.clone();
            b["spec"]["cluster"]["name"] = json!("postgres");
            o.push(b);
        },
        "ScheduledBackup/nightly: Cluster \"postgres\" does not exist",
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

#[test]
fn database_clusters_need_resources_and_a_pinned_image() {
    assert_rule_catches(
        hygiene_violations,
        |o| remove(o, "Cluster/db", "/spec/resources/limits"),
        "Cluster/db /spec/resources",
    );
    assert_rule_catches(
        image_violations,
        |o| remove(o, "Cluster/db", "/spec/imageName"),
        "Cluster/db: names no image",
    );
    assert_rule_catches(
        image_violations,
        |o| {
            set(
                o,
                "Cluster/db",
                "/spec/imageName",
                json!("ghcr.io/cloudnative-pg/postgresql:latest"),
            )
        },
        "Cluster/db: image \"ghcr.io/cloudnative-pg/postgresql:latest\" uses latest",
    );
}

#[test]
fn database_clients_are_allowed_in_and_nobody_else() {
    let (allowed, denied) = world_flows();
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| remove(o, "NetworkPolicy/db", "/spec/ingress/0/from/1"),
        "Owner(\"Job/migrate\") -> Owner(\"Cluster/db\") :5432/TCP should be allowed",
    );
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| {
            // "Any pod of the namespace may connect": MinIO too.
            set(
                o,
                "NetworkPolicy/db",
                "/spec/ingress/0/from",
                json!([{"podSelector": {}}]),
            );
            let mut open = object(o, "NetworkPolicy/migrate").clone();
            open["metadata"]["name"] = json!("store-open");
            open["spec"] = json!({"podSelector": {"matchLabels": {"app": "store"}},
                                   "policyTypes": ["Egress"], "egress": [{}]});
            o.push(open);
        },
        "Owner(\"StatefulSet/store\") -> Owner(\"Cluster/db\") :5432/TCP should be denied",
    );
    assert_rule_catches(
        |o| flow_violations(o, &allowed, &denied),
        |o| {
            // Clients on every port of the database pods, not just PostgreSQL's.
            remove(o, "NetworkPolicy/db", "/spec/ingress/0/ports");
            remove(o, "NetworkPolicy/worker", "/spec/egress/2/ports");
        },
        "Owner(\"Deployment/worker\") -> Owner(\"Cluster/db\") :8000/TCP should be denied",
    );
}

#[test]
fn database_clients_migrate_first() {
    assert_rule_catches(
        migration_violations,
        |o| remove(o, "Deployment/worker", "/spec/template/spec/initContainers"),
        "Deployment/worker container \"worker\": uses the database but no init container runs migrate first",
    );
    assert_rule_catches(
        migration_violations,
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/initContainers/0/env/0/valueFrom/secretKeyRef/name",
                json!("other-db-app"),
            )
        },
        "the migrate init container migrates another database",
    );
    assert_rule_catches(
        migration_violations,
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/initContainers/0/image",
                json!("registry.example:5000/worker:0.9"),
            )
        },
        "the migrate init container runs another image",
    );
    assert_rule_catches(
        migration_violations,
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/initContainers/0/args",
                json!(["run"]),
            )
        },
        "no init container runs migrate first",
    );
}

#[test]
fn a_migrate_job_runs_the_workers_migrations() {
    assert_rule_catches(
        migration_violations,
        |o| o.retain(|p| id(p) != "Job/migrate"),
        "Deployment/worker container \"worker\": no migrate Job runs \"registry.example:5000/worker:1.0\"",
    );
    assert_rule_catches(
        migration_violations,
        |o| {
            set(
                o,
                "Job/migrate",
                "/spec/template/spec/containers/0/image",
                json!("registry.example:5000/worker:0.9"),
            )
        },
        "no migrate Job runs",
    );
    assert_rule_catches(
        migration_violations,
        |o| remove(o, "Job/migrate", "/spec/template/spec/containers/0/env"),
        "Job/migrate container \"migrate\": runs migrate without XTREAM_DATABASE_URL",
    );
}

#[test]
fn a_migrate_job_survives_the_next_apply() {
    assert_rule_catches(
        migration_violations,
        |o| remove(o, "Job/migrate", "/spec/ttlSecondsAfterFinished"),
        "Job/migrate: a migrate Job needs spec.ttlSecondsAfterFinished",
    );
    assert_rule_catches(
        migration_violations,
        |o| remove(o, "Job/migrate", "/spec/backoffLimit"),
        "Job/migrate: a migrate Job needs spec.backoffLimit",
    );
    assert_rule_catches(
        migration_violations,
        |o| {
            let env = object(o, "Job/migrate")
                .pointer_mut("/spec/template/spec/containers/0/env")
                .and_then(Value::as_array_mut)
                .unwrap();
            env.push(json!({"name": "XTREAM_LOG", "valueFrom": {"configMapKeyRef": {"name": "settings-5h2m8fk4t7", "key": "LOG"}}}));
        },
        "Job/migrate: the template names ConfigMap \"settings-5h2m8fk4t7\"",
    );
}
