//! What the operators create from custom resources: the Pods, Services and
//! Secrets of spin-operator, Strimzi and CloudNativePG, modelled with the names
//! and labels those operators give them.

use crate::references::{Stores, reference_violations};
use crate::render::{
    Labels, containers, id, items, kind, labels, labels_at, name, namespace, pod_spec, s,
};
use crate::world::{assert_rule_catches, set, world};
use serde_json::{Value, json};
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------
// What the operators create from custom resources

/// A pod (template) in the rendered set: written or made by an operator.
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    pub(crate) owner: String,
    pub(crate) namespace: String,
    pub(crate) labels: Labels,
    /// (port name, number); the name may be empty.
    pub(crate) ports: Vec<(String, u64)>,
}

pub(crate) fn pods(objects: &[Value]) -> Vec<Pod> {
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
                        namespace: ns.clone(),
                        labels: labels(&[
                            ("strimzi.io/cluster", cluster),
                            ("strimzi.io/kind", "Kafka"),
                            ("strimzi.io/name", &format!("{cluster}-entity-operator")),
                        ]),
                        ports: vec![],
                    });
                }
                // Kafka Exporter: a Deployment of its own, metrics on 9404.
                if o.pointer("/spec/kafkaExporter").is_some() {
                    out.push(Pod {
                        owner: format!("{}:kafka-exporter", id(o)),
                        namespace: ns,
                        labels: strimzi_kafka_exporter_labels(cluster),
                        ports: vec![("tcp-prometheus".into(), 9404)],
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
            // cert-manager: an HTTP-01 solver pod per Ingress it issues a
            // certificate for, while the challenge lasts.
            "Ingress"
                if !s(o, "/metadata/annotations/cert-manager.io~1cluster-issuer").is_empty()
                    || !s(o, "/metadata/annotations/cert-manager.io~1issuer").is_empty() =>
            {
                out.push(Pod {
                    owner: format!("{}:acme-solver", id(o)),
                    namespace: ns,
                    labels: labels(&[("acme.cert-manager.io/http01-solver", "true")]),
                    ports: vec![("http".into(), 8089)],
                });
            }
            _ => {}
        }
    }
    out
}

pub(crate) fn cnpg_instance_labels(cluster: &str, serial: usize, role: &str) -> Labels {
    labels(&[
        ("cnpg.io/cluster", cluster),
        ("cnpg.io/instanceName", &format!("{cluster}-{serial}")),
        ("cnpg.io/podRole", "instance"),
        ("cnpg.io/instanceRole", role),
        ("role", role),
    ])
}

/// Keys of the Secrets CloudNativePG writes for a database user.
pub(crate) const CNPG_USER_SECRET_KEYS: &[&str] = &[
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
pub(crate) fn cnpg_secrets(cluster: &Value) -> Vec<String> {
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

pub(crate) fn spin_app_ready_labels(app: &str) -> Labels {
    labels(&[
        ("core.spinkube.dev/app-name", app),
        (&format!("core.spinkube.dev/app.{app}.status"), "ready"),
    ])
}

pub(crate) fn strimzi_kafka_labels(cluster: &str) -> Labels {
    labels(&[
        ("strimzi.io/cluster", cluster),
        ("strimzi.io/kind", "Kafka"),
        ("strimzi.io/name", &format!("{cluster}-kafka")),
    ])
}

pub(crate) fn strimzi_kafka_exporter_labels(cluster: &str) -> Labels {
    labels(&[
        ("strimzi.io/cluster", cluster),
        ("strimzi.io/kind", "Kafka"),
        ("strimzi.io/name", &format!("{cluster}-kafka-exporter")),
    ])
}

pub(crate) fn strimzi_bridge_labels(bridge: &str) -> Labels {
    labels(&[
        ("strimzi.io/cluster", bridge),
        ("strimzi.io/kind", "KafkaBridge"),
        ("strimzi.io/name", &format!("{bridge}-bridge")),
    ])
}

/// A Service in the rendered set: written, or made by an operator.
#[derive(Debug)]
pub(crate) struct Svc {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) ports: Vec<(String, u64)>,
}

pub(crate) fn services(objects: &[Value]) -> Vec<Svc> {
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
pub(crate) fn scalable(objects: &[Value]) -> BTreeSet<(String, String, String)> {
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
// Tests

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
