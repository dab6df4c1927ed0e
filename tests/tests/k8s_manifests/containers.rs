//! Rules: containers declare resources and health checks, and images are
//! pinned.

use crate::render::{containers, id, kind, pod_spec, s};
use crate::world::{assert_rule_catches, remove, set};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Rule: containers declare resources and health checks

pub(crate) fn has_quantities(resources: Option<&Value>) -> bool {
    ["requests", "limits"].iter().all(|side| {
        ["cpu", "memory"].iter().all(|r| {
            resources
                .and_then(|v| v.get(*side))
                .and_then(|v| v.get(*r))
                .is_some()
        })
    })
}

pub(crate) fn hygiene_violations(objects: &[Value]) -> Vec<String> {
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
            // The operator-made pods the Kafka resource sizes.
            for path in [
                "entityOperator/topicOperator",
                "entityOperator/userOperator",
                "kafkaExporter",
            ] {
                let Some(component) = o.pointer(&format!("/spec/{path}")) else {
                    continue;
                };
                if !has_quantities(component.get("resources")) {
                    out.push(format!(
                        "{} /spec/{path}/resources: needs cpu and memory requests and limits",
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

pub(crate) fn image_violations(objects: &[Value]) -> Vec<String> {
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
// Tests

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
