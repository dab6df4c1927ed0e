//! Rule: every reference resolves.

use crate::operators::{CNPG_USER_SECRET_KEYS, cnpg_secrets, services};
use crate::render::{containers, id, items, kind, name, namespace, pod_spec, s};
use crate::rules::endpoint_violations;
use crate::world::{assert_rule_catches, object, set, world};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------
// Rule: every reference resolves

/// Keys of every ConfigMap and Secret; `None` keys: exists, contents unknown.
pub(crate) struct Stores {
    pub(crate) config_maps: BTreeMap<(String, String), Option<BTreeSet<String>>>,
    pub(crate) secrets: BTreeMap<(String, String), Option<BTreeSet<String>>>,
}

impl Stores {
    pub(crate) fn new(objects: &[Value], external_secrets: &[&str]) -> Self {
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

    pub(crate) fn check(
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

pub(crate) fn reference_violations(objects: &[Value], external_secrets: &[&str]) -> Vec<String> {
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
// Tests

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
