//! Rules for running in production: pods locked down (security contexts, no
//! host access, no API token they do not use), the namespace's Pod Security
//! level, disruption budgets, images pinned by digest, and Kafka brokers
//! spread over nodes and zones.

use crate::operators::{pods, strimzi_kafka_labels};
use crate::render::{
    Labels, OVERLAYS, containers, id, items, kind, labels_at, name, namespace, parse_yaml,
    pod_spec, render, s,
};
use crate::selectors::{selector_is_empty, selector_matches};
use crate::world::{object, remove, set};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;

// ---------------------------------------------------------------------------
// The exceptions, each with its reason

/// Pods allowed onto the host, with exactly what each uses and why. Anything
/// else a pod takes from the host is a violation.
pub(crate) const HOST_ACCESS: &[(&str, &[&str], &str)] = &[
    (
        "DaemonSet/node-exporter",
        &["hostPID", "hostPath /proc", "hostPath /sys", "hostPath /"],
        "node metrics come from the host's /proc, /sys and filesystems (read-only)",
    ),
    (
        "DaemonSet/fluent-bit",
        &["hostPath /var/log"],
        "every container's log file is on the node, under /var/log (read-only)",
    ),
];

/// Pods that call the Kubernetes API, and why. Every other pod the project
/// writes mounts no ServiceAccount token.
pub(crate) const API_CLIENTS: &[(&str, &str)] = &[
    (
        "Deployment/prometheus",
        "finds its scrape targets with kubernetes_sd_configs",
    ),
    (
        "DaemonSet/fluent-bit",
        "adds each log line's pod and namespace metadata (kubernetes filter)",
    ),
    (
        "Deployment/kube-state-metrics",
        "turns the namespace's pods and workloads into metrics",
    ),
];

/// Workloads that must have a PodDisruptionBudget selecting their pods: the
/// API, the object store and the metrics each stop while none of their pods
/// runs, so a drain must take them one pod at a time.
pub(crate) const BUDGETED: &[&str] = &[
    "SpinApp/xtream",
    "StatefulSet/minio",
    "Deployment/prometheus",
];

/// Image repositories that production may run by tag alone, and why.
pub(crate) const TAG_PINNED_IN_PRODUCTION: &[(&str, &str)] = &[
    (
        "registry.invalid/xtream",
        "the project's own release; its pinning belongs to the release process",
    ),
    (
        "registry.invalid/xtream-worker",
        "the project's own release; its pinning belongs to the release process",
    ),
];

// ---------------------------------------------------------------------------
// Effective security settings

/// A container's setting, else its pod's (`field` is a JSON pointer below
/// `securityContext`).
fn effective<'a>(pod: &'a Value, container: &'a Value, field: &str) -> Option<&'a Value> {
    container
        .pointer(&format!("/securityContext{field}"))
        .or_else(|| pod.pointer(&format!("/securityContext{field}")))
}

fn strings<'a>(v: &'a Value, pointer: &str) -> Vec<&'a str> {
    items(v, pointer).iter().filter_map(Value::as_str).collect()
}

/// What a pod takes from its node: host namespaces, hostPath volumes (by
/// path) and host ports.
fn host_uses(spec: &Value) -> Vec<String> {
    let mut uses: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|f| spec.get(*f) == Some(&Value::Bool(true)))
        .map(String::from)
        .collect();
    for v in items(spec, "/volumes") {
        if v.get("hostPath").is_some() {
            uses.push(format!("hostPath {}", s(v, "/hostPath/path")));
        }
    }
    for (c, _) in containers(spec) {
        for p in items(c, "/ports") {
            if let Some(port) = p.get("hostPort").and_then(Value::as_u64).filter(|p| *p > 0) {
                uses.push(format!("hostPort {port}"));
            }
        }
    }
    uses
}

// ---------------------------------------------------------------------------
// Pod Security Standards levels

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(text: &str) -> Option<Level> {
        match text {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        })
    }
}

/// Capabilities "baseline" lets a container add (the container runtimes'
/// defaults).
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Volume types "restricted" allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn seccomp_type<'a>(pod: &'a Value, container: &'a Value) -> &'a str {
    effective(pod, container, "/seccompProfile/type")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The strictest Pod Security Standard a pod spec meets. Covers the checks
/// that the pods here could plausibly trip: host namespaces, hostPath and
/// host ports, privileged containers, added capabilities, seccomp, volume
/// types, privilege escalation, non-root users and dropped capabilities (not
/// AppArmor, SELinux, /proc mount types or sysctls, which nothing here sets).
pub(crate) fn pod_level(spec: &Value) -> Level {
    let all: Vec<&Value> = containers(spec).map(|(c, _)| c).collect();
    let seccomp = |c| seccomp_type(spec, c);
    let baseline = host_uses(spec).is_empty()
        && all.iter().all(|c| {
            c.pointer("/securityContext/privileged") != Some(&Value::Bool(true))
                && strings(c, "/securityContext/capabilities/add")
                    .iter()
                    .all(|cap| BASELINE_CAPABILITIES.contains(cap))
                && seccomp(c) != "Unconfined"
        })
        && spec.pointer("/securityContext/seccompProfile/type") != Some(&json!("Unconfined"));
    if !baseline {
        return Level::Privileged;
    }
    let volumes = items(spec, "/volumes").iter().all(|v| {
        v.as_object().is_some_and(|m| {
            m.keys()
                .filter(|k| *k != "name")
                .all(|k| RESTRICTED_VOLUMES.contains(&k.as_str()))
        })
    });
    let restricted = volumes
        && all.iter().all(|c| {
            c.pointer("/securityContext/allowPrivilegeEscalation") == Some(&Value::Bool(false))
                && effective(spec, c, "/runAsNonRoot") == Some(&Value::Bool(true))
                && effective(spec, c, "/runAsUser") != Some(&json!(0))
                && matches!(seccomp(c), "RuntimeDefault" | "Localhost")
                && strings(c, "/securityContext/capabilities/drop").contains(&"ALL")
                && strings(c, "/securityContext/capabilities/add")
                    .iter()
                    .all(|cap| *cap == "NET_BIND_SERVICE")
        });
    if restricted {
        Level::Restricted
    } else {
        Level::Baseline
    }
}

/// A pod spec with the security settings a Strimzi template gives (pod
/// securityContext and containers' securityContexts), to measure like ours.
/// Strimzi's default provider adds only fsGroup and never host access or
/// volumes outside "restricted"'s list, so these settings decide the level.
fn strimzi_pod(pod: Option<&Value>, containers: &[Option<&Value>]) -> Value {
    json!({
        "securityContext": pod.and_then(|p| p.get("securityContext")).cloned().unwrap_or(json!({})),
        "containers": containers
            .iter()
            .map(|c| json!({"securityContext": c.and_then(|c| c.get("securityContext")).cloned().unwrap_or(json!({}))}))
            .collect::<Vec<_>>(),
    })
}

/// A node pool's template part, else the Kafka resource's.
fn kafka_template<'a>(kafka: &'a Value, pool: &'a Value, part: &str) -> Option<&'a Value> {
    pool.pointer(&format!("/spec/template/{part}"))
        .or_else(|| kafka.pointer(&format!("/spec/kafka/template/{part}")))
}

/// A modelled pod: who makes it, where, and the level it meets.
#[derive(Debug)]
pub(crate) struct PodLevel {
    pub(crate) owner: String,
    pub(crate) namespace: String,
    pub(crate) level: Level,
}

/// The level of every pod in the rendered set: written, or made by an
/// operator from a custom resource (what the operator puts in the pod spec,
/// from its code: see the comments in k8s/base).
pub(crate) fn pod_levels(objects: &[Value]) -> Vec<PodLevel> {
    let mut out = Vec::new();
    for o in objects {
        let mut push = |owner: String, level: Level| {
            out.push(PodLevel {
                owner,
                namespace: namespace(o).to_owned(),
                level,
            })
        };
        if let Some(spec) = pod_spec(o) {
            push(id(o), pod_level(spec));
            continue;
        }
        match kind(o) {
            // spin-operator 0.6.1 writes no securityContext and takes none
            // from the SpinApp; nothing in it reaches the host either.
            "SpinApp" => push(id(o), Level::Baseline),
            // CloudNativePG: non-root, no escalation, ALL dropped, read-only
            // root, RuntimeDefault seccomp, on every instance container.
            "Cluster" => push(id(o), Level::Restricted),
            "Kafka" => {
                let rack = o.pointer("/spec/kafka/rack").is_some();
                for pool in objects.iter().filter(|p| {
                    kind(p) == "KafkaNodePool"
                        && namespace(p) == namespace(o)
                        && s(p, "/metadata/labels/strimzi.io~1cluster") == name(o)
                }) {
                    let mut cs = vec![kafka_template(o, pool, "kafkaContainer")];
                    if rack {
                        cs.push(kafka_template(o, pool, "initContainer"));
                    }
                    let spec = strimzi_pod(kafka_template(o, pool, "pod"), &cs);
                    push(format!("{}/{}", id(o), name(pool)), pod_level(&spec));
                }
                if let Some(eo) = o.pointer("/spec/entityOperator") {
                    let cs: Vec<Option<&Value>> = [
                        ("topicOperator", "topicOperatorContainer"),
                        ("userOperator", "userOperatorContainer"),
                    ]
                    .into_iter()
                    .filter(|(op, _)| eo.get(*op).is_some())
                    .map(|(_, c)| eo.pointer(&format!("/template/{c}")))
                    .collect();
                    let spec = strimzi_pod(eo.pointer("/template/pod"), &cs);
                    push(format!("{}:entity-operator", id(o)), pod_level(&spec));
                }
                if let Some(exporter) = o.pointer("/spec/kafkaExporter") {
                    let spec = strimzi_pod(
                        exporter.pointer("/template/pod"),
                        &[exporter.pointer("/template/container")],
                    );
                    push(format!("{}:kafka-exporter", id(o)), pod_level(&spec));
                }
            }
            "KafkaBridge" => {
                let spec = strimzi_pod(
                    o.pointer("/spec/template/pod"),
                    &[o.pointer("/spec/template/bridgeContainer")],
                );
                push(id(o), pod_level(&spec));
            }
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: every pod the project writes runs locked down

pub(crate) fn security_context_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        let Some(spec) = pod_spec(o) else { continue };
        for (c, _) in containers(spec) {
            let at = format!("{} container {:?}", id(o), s(c, "/name"));
            let mut need = |ok: bool, what: &str| {
                if !ok {
                    out.push(format!("{at}: {what}"));
                }
            };
            need(
                effective(spec, c, "/runAsNonRoot") == Some(&Value::Bool(true)),
                "needs runAsNonRoot: true",
            );
            for field in ["runAsUser", "runAsGroup"] {
                // An explicit id: an image's USER may be a name, which the
                // kubelet cannot check against runAsNonRoot.
                need(
                    effective(spec, c, &format!("/{field}"))
                        .and_then(Value::as_u64)
                        .is_some_and(|uid| uid > 0),
                    &format!("needs an explicit non-zero {field}"),
                );
            }
            need(
                matches!(
                    effective(spec, c, "/seccompProfile/type").and_then(Value::as_str),
                    Some("RuntimeDefault" | "Localhost")
                ),
                "needs seccompProfile RuntimeDefault (or Localhost)",
            );
            need(
                c.pointer("/securityContext/allowPrivilegeEscalation") == Some(&Value::Bool(false)),
                "needs allowPrivilegeEscalation: false",
            );
            need(
                c.pointer("/securityContext/readOnlyRootFilesystem") == Some(&Value::Bool(true)),
                "needs readOnlyRootFilesystem: true (an emptyDir for what it writes)",
            );
            need(
                strings(c, "/securityContext/capabilities/drop").contains(&"ALL"),
                "must drop ALL capabilities",
            );
            need(
                strings(c, "/securityContext/capabilities/add").is_empty(),
                "must add no capabilities",
            );
            need(
                c.pointer("/securityContext/privileged") != Some(&Value::Bool(true)),
                "must not be privileged",
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: nothing reaches the host but the listed exceptions, read-only

pub(crate) fn host_access_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        let Some(spec) = pod_spec(o) else { continue };
        let allowed: &[&str] = HOST_ACCESS
            .iter()
            .find(|(owner, _, _)| *owner == id(o))
            .map(|(_, uses, _)| *uses)
            .unwrap_or(&[]);
        for used in host_uses(spec) {
            if !allowed.contains(&used.as_str()) {
                out.push(format!(
                    "{}: uses {used}, which is not among its host-access exceptions",
                    id(o)
                ));
            }
        }
        let host_volumes: Vec<&str> = items(spec, "/volumes")
            .iter()
            .filter(|v| v.get("hostPath").is_some())
            .map(|v| s(v, "/name"))
            .collect();
        for (c, _) in containers(spec) {
            for m in items(c, "/volumeMounts") {
                if host_volumes.contains(&s(m, "/name"))
                    && m.get("readOnly") != Some(&Value::Bool(true))
                {
                    out.push(format!(
                        "{} container {:?}: mounts hostPath volume {:?} writable",
                        id(o),
                        s(c, "/name"),
                        s(m, "/name")
                    ));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: API tokens only for pods that call the API

pub(crate) fn token_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        if let Some(spec) = pod_spec(o) {
            let client = API_CLIENTS.iter().any(|(owner, _)| *owner == id(o));
            let automount = spec.get("automountServiceAccountToken");
            if client {
                if automount != Some(&Value::Bool(true)) {
                    out.push(format!(
                        "{}: calls the Kubernetes API; say automountServiceAccountToken: true",
                        id(o)
                    ));
                }
                if matches!(s(spec, "/serviceAccountName"), "" | "default") {
                    out.push(format!(
                        "{}: calls the Kubernetes API; give it a ServiceAccount of its own",
                        id(o)
                    ));
                }
            } else if automount != Some(&Value::Bool(false)) {
                out.push(format!(
                    "{}: does not call the Kubernetes API; needs automountServiceAccountToken: false",
                    id(o)
                ));
            }
        }
        // The SpinApp cannot say it for its pods: its ServiceAccount must.
        if kind(o) == "SpinApp" {
            let sa = s(o, "/spec/serviceAccountName");
            let account = objects.iter().find(|a| {
                kind(a) == "ServiceAccount" && namespace(a) == namespace(o) && name(a) == sa
            });
            match account {
                _ if sa.is_empty() => out.push(format!(
                    "{}: runs as the namespace's default ServiceAccount; name one that mounts no token",
                    id(o)
                )),
                None => out.push(format!("{}: ServiceAccount {sa:?} does not exist", id(o))),
                Some(a) if a.get("automountServiceAccountToken") != Some(&Value::Bool(false)) => {
                    out.push(format!(
                        "{}: ServiceAccount {sa:?} needs automountServiceAccountToken: false",
                        id(o)
                    ))
                }
                Some(_) => {}
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: each namespace enforces the strictest Pod Security level its pods meet

const PSA: &str = "pod-security.kubernetes.io/";

pub(crate) fn pod_security_violations(objects: &[Value]) -> Vec<String> {
    let mut by_namespace: BTreeMap<String, Vec<PodLevel>> = BTreeMap::new();
    for pod in pod_levels(objects) {
        by_namespace
            .entry(pod.namespace.clone())
            .or_default()
            .push(pod);
    }
    let mut out = Vec::new();
    for (ns, pods) in by_namespace {
        let Some(namespace_object) = objects
            .iter()
            .find(|o| kind(o) == "Namespace" && name(o) == ns)
        else {
            out.push(format!(
                "namespace {ns:?} has pods but is not declared, so nothing sets its Pod Security labels"
            ));
            continue;
        };
        let labels = labels_at(namespace_object, "/metadata/labels");
        let level = |mode: &str| labels.get(&format!("{PSA}{mode}")).map(String::as_str);
        for mode in ["audit", "warn"] {
            if level(mode) != Some("restricted") {
                out.push(format!(
                    "namespace {ns:?}: {PSA}{mode} must be restricted (what every pod should meet), not {:?}",
                    level(mode).unwrap_or("unset")
                ));
            }
        }
        let Some(enforce) = level("enforce").and_then(Level::parse) else {
            out.push(format!(
                "namespace {ns:?}: {PSA}enforce is missing or not a level"
            ));
            continue;
        };
        for pod in pods.iter().filter(|p| p.level < enforce) {
            out.push(format!(
                "namespace {ns:?}: enforce {enforce} would reject {} (meets {})",
                pod.owner, pod.level
            ));
        }
        let lowest = pods
            .iter()
            .map(|p| p.level)
            .min()
            .unwrap_or(Level::Restricted);
        if enforce < lowest {
            out.push(format!(
                "namespace {ns:?}: every pod meets {lowest}; enforce {lowest}, not {enforce}"
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: the workloads that matter have disruption budgets that let drains end

/// The replicas of the workloads a budget selects, if the manifests fix the
/// count of each (None when one leaves it to an autoscaler).
fn fixed_replicas(objects: &[Value], pdb: &Value) -> Option<u64> {
    let selector = &pdb["spec"]["selector"];
    objects
        .iter()
        .filter(|o| matches!(kind(o), "Deployment" | "StatefulSet"))
        .filter(|o| namespace(o) == namespace(pdb))
        .filter(|o| selector_matches(selector, &labels_at(o, "/spec/template/metadata/labels")))
        .map(|o| o.pointer("/spec/replicas").and_then(Value::as_u64))
        .try_fold(0, |sum, r| r.map(|r| sum + r))
}

pub(crate) fn disruption_budget_violations(objects: &[Value]) -> Vec<String> {
    let pods = pods(objects);
    let budgets: Vec<&Value> = objects
        .iter()
        .filter(|o| kind(o) == "PodDisruptionBudget")
        .collect();
    let mut out = Vec::new();
    for owner in BUDGETED {
        let theirs: Vec<(&str, &Labels)> = pods
            .iter()
            .filter(|p| p.owner == *owner)
            .map(|p| (p.namespace.as_str(), &p.labels))
            .collect();
        if theirs.is_empty() {
            out.push(format!(
                "{owner}: must have a PodDisruptionBudget, but is not rendered"
            ));
            continue;
        }
        let covered = theirs.iter().all(|(ns, labels)| {
            budgets.iter().any(|b| {
                namespace(b) == *ns
                    && !selector_is_empty(&b["spec"]["selector"])
                    && selector_matches(&b["spec"]["selector"], labels)
            })
        });
        if !covered {
            out.push(format!("{owner}: no PodDisruptionBudget selects its pods"));
        }
    }
    for b in budgets {
        let spec = &b["spec"];
        if spec
            .get("maxUnavailable")
            .is_some_and(|v| v == &json!(0) || v == "0%")
        {
            out.push(format!(
                "{}: maxUnavailable 0 refuses every eviction, so drains never end",
                id(b)
            ));
        }
        if let Some(min) = spec.get("minAvailable") {
            let replicas = fixed_replicas(objects, b);
            let blocks =
                min == "100%" || matches!((min.as_u64(), replicas), (Some(m), Some(r)) if m >= r);
            if blocks {
                out.push(format!(
                    "{}: minAvailable {min} with {} replica(s) refuses every eviction, so drains never end; use maxUnavailable",
                    id(b),
                    replicas.map_or("all".to_owned(), |r| r.to_string())
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rule: production runs images by digest

/// An image reference's repository: without digest and tag (a registry port
/// is not a tag).
fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or_default();
    match image.rsplit_once('/') {
        Some((path, last)) => {
            &image[..path.len() + 1 + last.split(':').next().unwrap_or_default().len()]
        }
        None => image.split(':').next().unwrap_or_default(),
    }
}

fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub(crate) fn digest_violations(objects: &[Value]) -> Vec<String> {
    let mut images = Vec::new();
    for o in objects {
        if let Some(spec) = pod_spec(o) {
            images.extend(containers(spec).map(|(c, _)| (id(o), s(c, "/image"))));
        }
        match kind(o) {
            "SpinApp" => images.push((id(o), s(o, "/spec/image"))),
            "Cluster" => images.push((id(o), s(o, "/spec/imageName"))),
            _ => {}
        }
    }
    images
        .into_iter()
        .filter(|(_, image)| {
            !TAG_PINNED_IN_PRODUCTION
                .iter()
                .any(|(repo, _)| *repo == repository(image))
        })
        .filter_map(|(from, image)| match image.split_once('@') {
            None => Some(format!("{from}: image {image:?} has no digest")),
            Some((_, digest)) if !is_digest(digest) => Some(format!(
                "{from}: image {image:?}: {digest:?} is not a sha256 digest"
            )),
            Some(_) => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Rule: Kafka brokers spread over nodes (and, in production, zones)

pub(crate) fn kafka_spread_violations(objects: &[Value], production: bool) -> Vec<String> {
    let mut out = Vec::new();
    for kafka in objects.iter().filter(|o| kind(o) == "Kafka") {
        if production && s(kafka, "/spec/kafka/rack/topologyKey") != "topology.kubernetes.io/zone" {
            out.push(format!(
                "{}: needs rack.topologyKey topology.kubernetes.io/zone, so replicas land in different zones",
                id(kafka)
            ));
        }
        for pool in objects.iter().filter(|p| {
            kind(p) == "KafkaNodePool"
                && namespace(p) == namespace(kafka)
                && s(p, "/metadata/labels/strimzi.io~1cluster") == name(kafka)
        }) {
            let mut brokers = strimzi_kafka_labels(name(kafka));
            brokers.insert("strimzi.io/pool-name".into(), name(pool).into());
            let affinity = kafka_template(kafka, pool, "pod")
                .and_then(|p| p.pointer("/affinity/podAntiAffinity"))
                .cloned()
                .unwrap_or(Value::Null);
            let spreads = |term: &Value| {
                s(term, "/topologyKey") == "kubernetes.io/hostname"
                    && selector_matches(&term["labelSelector"], &brokers)
            };
            let required = items(&affinity, "/requiredDuringSchedulingIgnoredDuringExecution")
                .iter()
                .any(spreads);
            let preferred = items(
                &affinity,
                "/preferredDuringSchedulingIgnoredDuringExecution",
            )
            .iter()
            .any(|t| spreads(&t["podAffinityTerm"]));
            let at = format!("{} pool {}", id(kafka), name(pool));
            if production && !required {
                out.push(format!(
                    "{at}: needs a required pod anti-affinity on kubernetes.io/hostname selecting its brokers"
                ));
            } else if !required && !preferred {
                out.push(format!(
                    "{at}: needs a pod anti-affinity on kubernetes.io/hostname selecting its brokers"
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Each overlay

fn assert_clean(overlay: &str, what: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{overlay}: {what}: {} violations:\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

#[test]
fn overlay_pods_run_locked_down() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let mut v = security_context_violations(&objects);
        v.extend(host_access_violations(&objects));
        assert_clean(overlay, "pod security contexts", v);
    }
}

#[test]
fn overlay_pods_mount_api_tokens_only_where_needed() {
    for overlay in OVERLAYS {
        assert_clean(overlay, "API tokens", token_violations(&render(overlay)));
    }
}

#[test]
fn overlay_namespaces_enforce_the_pod_security_their_pods_meet() {
    for overlay in OVERLAYS {
        assert_clean(
            overlay,
            "Pod Security",
            pod_security_violations(&render(overlay)),
        );
    }
}

#[test]
fn overlay_minio_and_prometheus_have_disruption_budgets() {
    for overlay in OVERLAYS {
        assert_clean(
            overlay,
            "disruption budgets",
            disruption_budget_violations(&render(overlay)),
        );
    }
}

#[test]
fn production_runs_images_by_digest() {
    assert_clean(
        "production",
        "digests",
        digest_violations(&render("production")),
    );
}

#[test]
fn kafka_brokers_spread_over_nodes_and_in_production_zones() {
    for overlay in OVERLAYS {
        let production = *overlay == "production";
        assert_clean(
            overlay,
            "Kafka placement",
            kafka_spread_violations(&render(overlay), production),
        );
    }
}

// Each rule fails on a broken object: `cases` breaks a small hardened world
// one thing at a time.
#[cfg(test)]
mod cases;
