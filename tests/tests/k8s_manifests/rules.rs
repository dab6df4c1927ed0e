//! The project's other rules: autoscalers have targets, NetworkPolicies (and
//! PodDisruptionBudgets) select pods, the settings that must agree across
//! objects do, and the database schema is migrated before it is used.

use crate::operators::{pods, scalable, services};
use crate::render::{containers, id, items, kind, name, namespace, pod_spec, s};
use crate::selectors::{selector_is_empty, selects_some_pod};
use crate::world::{assert_rule_catches, object, remove, set};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------
// Rule: autoscalers have targets, one autoscaler each

pub(crate) fn autoscaler_violations(objects: &[Value]) -> Vec<String> {
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

pub(crate) fn policy_selector_violations(objects: &[Value]) -> Vec<String> {
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

pub(crate) fn default_deny_violations(objects: &[Value]) -> Vec<String> {
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
// Rules: settings that must agree across objects

/// A container's environment, with ConfigMap references resolved.
pub(crate) fn env_of(objects: &[Value], o: &Value) -> BTreeMap<String, String> {
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

pub(crate) fn config_value(objects: &[Value], ns: &str, cm: &str, key: &str) -> Option<String> {
    objects
        .iter()
        .find(|o| kind(o) == "ConfigMap" && namespace(o) == ns && name(o) == cm)
        .and_then(|o| o.pointer(&format!("/data/{key}")))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// KEDA's Kafka trigger watches the group and topic the worker consumes, and
/// the topic has a partition for every replica KEDA may start.
pub(crate) fn kafka_scaling_violations(objects: &[Value]) -> Vec<String> {
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
                // The worker consumes upload events and chunk jobs.
                let topic_var = if env.get("XTREAM_CHUNKS_TOPIC").map(String::as_str) == Some(topic)
                {
                    "XTREAM_CHUNKS_TOPIC"
                } else {
                    "XTREAM_UPLOADS_TOPIC"
                };
                for (var, want) in [("XTREAM_KAFKA_GROUP", group), (topic_var, topic)] {
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
pub(crate) fn duration_seconds(text: &str) -> Option<u64> {
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
pub(crate) fn grace_period_violations(objects: &[Value]) -> Vec<String> {
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
pub(crate) fn upload_bytes(text: &str) -> Option<u64> {
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
pub(crate) fn nginx_size(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let (n, factor) = match text.chars().last()? {
        'k' => (&text[..text.len() - 1], 1u64 << 10),
        'm' => (&text[..text.len() - 1], 1 << 20),
        'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text.as_str(), 1),
    };
    n.parse::<u64>().ok().map(|n| n * factor)
}

/// Room above `max_upload_bytes` a body needs for the multipart framing
/// around a file (boundaries, part headers, the title field).
const MULTIPART_ALLOWANCE: u64 = 1 << 20;

/// An Ingress in front of the SpinApp lets its biggest upload through,
/// streamed, multipart framing included: at the limit itself nginx would
/// answer its own HTML 413 where the platform answers JSON.
pub(crate) fn ingress_upload_violations(objects: &[Value]) -> Vec<String> {
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
                Some(n) if n >= max_bytes + MULTIPART_ALLOWANCE => {}
                _ => out.push(format!(
                    "{}: proxy-body-size {:?} is below max_upload_bytes {max} plus multipart framing",
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
pub(crate) fn endpoint_violations(objects: &[Value]) -> Vec<String> {
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
pub(crate) fn runs_migrate(c: &Value) -> bool {
    items(c, "/command").is_empty()
        && items(c, "/args").first().and_then(Value::as_str) == Some("migrate")
}

/// Where a container's XTREAM_DATABASE_URL comes from (`value` or `valueFrom`).
pub(crate) fn database_url(c: &Value) -> Option<Value> {
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
pub(crate) fn config_maps_named(spec: &Value) -> Vec<String> {
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
/// worker while KEDA keeps it at zero). A migrate Job retries (backoffLimit);
/// that it survives the next `kubectl apply` is every Job's rule
/// (`operations::job_template_violations`).
pub(crate) fn migration_violations(objects: &[Value]) -> Vec<String> {
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
        if o.pointer("/spec/backoffLimit").is_none() {
            out.push(format!("{}: a migrate Job needs spec.backoffLimit", id(o)));
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
// Tests

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
    // Exactly the limit: a multipart body of a file at the limit is larger.
    assert_rule_catches(
        ingress_upload_violations,
        |o| {
            set(
                o,
                "Ingress/app",
                "/metadata/annotations/nginx.ingress.kubernetes.io~1proxy-body-size",
                json!("1g"),
            )
        },
        "plus multipart framing",
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
fn a_migrate_job_retries() {
    assert_rule_catches(
        migration_violations,
        |o| remove(o, "Job/migrate", "/spec/backoffLimit"),
        "Job/migrate: a migrate Job needs spec.backoffLimit",
    );
}
