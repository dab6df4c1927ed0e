//! The observability stack of `k8s/base/monitoring/`: logs from every node
//! (Fluent Bit to Loki), dashboards (Grafana, provisioned from the JSON files
//! in the repository), alerts (Prometheus rules, Alertmanager).
//!
//! Besides the rules every object meets (overlays.rs, hardening/), this
//! checks what is particular to it: the objects are there in every overlay,
//! the log collector reads only what it needs, the NetworkPolicies allow the
//! monitoring's flows and nothing more, Fluent Bit's parsers lift the
//! worker's fields out of lines rendered as the worker renders them, every
//! dashboard is valid, every PromQL expression parses and names only metrics
//! that are really exported, and `promtool` accepts the Prometheus
//! configuration and the rules.
//!
//! `promtool` is Debian's (`./x setup` installs the `prometheus` package):
//! 2.42, built without Kubernetes service discovery and older than the
//! `otlp` block, so the configuration it checks is a copy with those parts
//! replaced, and this module checks the replaced parts itself.

use crate::flows::{End, Flow, elsewhere, flow_violations, owner, tcp};
use crate::operators::services;
use crate::render::{
    OVERLAYS, containers, id, items, kind, name, parse_yaml, pod_spec, render, repo_root, s,
};
use crate::world::{assert_rule_catches, set};
use regex::Regex;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use xtream_tests::monitoring::{
    UPSTREAM_METRICS, dashboard_files, dashboards, metric_names, panels, queries,
};

const MONITORING: &str = "k8s/base/monitoring";

fn monitoring(file: &str) -> PathBuf {
    repo_root().join(MONITORING).join(file)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn yaml_file(path: &Path) -> Value {
    parse_yaml(&read(path))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{}: empty", path.display()))
}

// ---------------------------------------------------------------------------
// The objects

/// What each overlay must run for logs, dashboards and alerts.
const OBSERVABILITY: &[&str] = &[
    "DaemonSet/fluent-bit",
    "StatefulSet/loki",
    "Service/loki",
    "Deployment/grafana",
    "Service/grafana",
    "Deployment/alertmanager",
    "Service/alertmanager",
    "Deployment/kube-state-metrics",
    "Service/kube-state-metrics",
    "ClusterRole/xtream-fluent-bit",
    "ClusterRoleBinding/xtream-fluent-bit",
];

#[test]
fn every_overlay_runs_the_observability_stack() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let ids: BTreeSet<String> = objects.iter().map(id).collect();
        for want in OBSERVABILITY {
            assert!(ids.contains(*want), "{overlay}: no {want}");
        }
        let find = |id_: &str| objects.iter().find(|o| id(o) == id_).unwrap();
        let kafka = find("Kafka/xtream");
        assert!(
            kafka.pointer("/spec/kafkaExporter").is_some(),
            "{overlay}: the Kafka resource enables Strimzi's Kafka Exporter"
        );
        let loki = find("StatefulSet/loki");
        let args = items(loki, "/spec/template/spec/containers/0/args");
        assert!(
            args.contains(&json!("-target=all")),
            "{overlay}: Loki runs as a single binary: {args:?}"
        );
        let claims = items(loki, "/spec/volumeClaimTemplates");
        assert!(
            claims.iter().any(|c| s(c, "/metadata/name") == "data"),
            "{overlay}: Loki keeps its data on a PersistentVolumeClaim"
        );
        let mounts = items(loki, "/spec/template/spec/containers/0/volumeMounts");
        assert!(
            mounts
                .iter()
                .any(|m| s(m, "/name") == "data" && s(m, "/mountPath") == "/loki"),
            "{overlay}: the claim is Loki's /loki"
        );
        // Every dashboard file is provisioned, and nothing else.
        let dashboards = config_map(&objects, "grafana-dashboards");
        let provisioned: BTreeSet<String> = dashboards
            .get("data")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let on_disk: BTreeSet<String> = dashboard_files()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(provisioned, on_disk, "{overlay}: grafana-dashboards");
        // Prometheus reads its rules from beside its configuration.
        let prometheus = config_map(&objects, "prometheus-config");
        for file in rule_files() {
            assert!(
                prometheus.pointer(&format!("/data/{file}")).is_some(),
                "{overlay}: prometheus.yml loads {file}, which the prometheus-config ConfigMap lacks"
            );
        }
    }
}

/// A generated ConfigMap, by the name it was generated from.
fn config_map<'a>(objects: &'a [Value], generator: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            kind(o) == "ConfigMap"
                && name(o)
                    .strip_prefix(generator)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
        })
        .unwrap_or_else(|| panic!("no ConfigMap {generator}"))
}

// ---------------------------------------------------------------------------
// Rule: the log collector reads pods and namespaces, nothing else

const LOG_COLLECTOR: &str = "fluent-bit";

pub(crate) fn log_collector_rbac_violations(objects: &[Value]) -> Vec<String> {
    let want = json!([{"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]}]);
    let bindings: Vec<&Value> = objects
        .iter()
        .filter(|o| matches!(kind(o), "ClusterRoleBinding" | "RoleBinding"))
        .filter(|o| {
            items(o, "/subjects")
                .iter()
                .any(|s_| s(s_, "/kind") == "ServiceAccount" && s(s_, "/name") == LOG_COLLECTOR)
        })
        .collect();
    let mut out = Vec::new();
    if bindings.is_empty() {
        out.push(format!(
            "ServiceAccount {LOG_COLLECTOR}: bound to no role, so it cannot read pod metadata"
        ));
    }
    for b in bindings {
        let role_kind = s(b, "/roleRef/kind");
        let role_name = s(b, "/roleRef/name");
        match objects
            .iter()
            .find(|o| kind(o) == role_kind && name(o) == role_name)
        {
            None => out.push(format!("{}: {role_kind} {role_name} does not exist", id(b))),
            Some(role) if role.get("rules") != Some(&want) => out.push(format!(
                "{}: {LOG_COLLECTOR} may only get, list and watch pods and namespaces, not {}",
                id(role),
                role.get("rules").unwrap_or(&Value::Null)
            )),
            Some(_) => {}
        }
    }
    out
}

#[test]
fn the_log_collector_reads_only_pods_and_namespaces() {
    for overlay in OVERLAYS {
        let v = log_collector_rbac_violations(&render(overlay));
        assert!(v.is_empty(), "{overlay}: {v:#?}");
    }
}

const COLLECTOR_WORLD: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: logs}
rules:
  - {apiGroups: [""], resources: [pods, namespaces], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: logs}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: logs}
subjects: [{kind: ServiceAccount, name: fluent-bit, namespace: demo}]
"#;

#[test]
fn a_log_collector_reading_more_is_caught() {
    let clean = log_collector_rbac_violations(&parse_yaml(COLLECTOR_WORLD));
    assert!(clean.is_empty(), "{clean:#?}");
    let mut objects = parse_yaml(COLLECTOR_WORLD);
    objects[0]["rules"][0]["resources"] = json!(["pods", "namespaces", "secrets"]);
    let found = log_collector_rbac_violations(&objects);
    assert!(
        found
            .iter()
            .any(|v| v.contains("may only get, list and watch")),
        "{found:#?}"
    );
    let mut objects = parse_yaml(COLLECTOR_WORLD);
    objects[0]["rules"][0]["verbs"] = json!(["get", "list", "watch", "delete"]);
    assert!(!log_collector_rbac_violations(&objects).is_empty());
    let objects = parse_yaml(COLLECTOR_WORLD).split_off(1);
    let found = log_collector_rbac_violations(&objects);
    assert!(
        found.iter().any(|v| v.contains("does not exist")),
        "{found:#?}"
    );
}

// ---------------------------------------------------------------------------
// Rule: the monitoring's flows, and nothing more

/// The flows of the monitoring, allowed and denied, for one overlay (the
/// platform's own are overlays.rs' `xtream_flows`).
pub(crate) fn observability_flows(overlay: &str) -> (Vec<Flow>, Vec<Flow>) {
    let ingress_nginx = || {
        elsewhere(
            "ingress-nginx",
            &[("app.kubernetes.io/name", "ingress-nginx")],
        )
    };
    let fluent_bit = || owner("DaemonSet/fluent-bit");
    let loki = || owner("StatefulSet/loki");
    let grafana = || owner("Deployment/grafana");
    let prometheus = || owner("Deployment/prometheus");
    let alertmanager = || owner("Deployment/alertmanager");
    let kube_state_metrics = || owner("Deployment/kube-state-metrics");
    let kafka_exporter = || owner("Kafka/xtream:kafka-exporter");
    let kafka = || owner("Kafka/xtream");
    let functions = || owner("SpinApp/xtream");
    let worker = || owner("Deployment/xtream-worker");
    let minio = || owner("StatefulSet/minio");
    let postgres = || owner("Cluster/xtream-db");
    let mut allowed = vec![
        tcp(fluent_bit(), loki(), 3100),
        tcp(fluent_bit(), End::External, 443), // pod metadata
        tcp(grafana(), prometheus(), 9090),
        tcp(grafana(), loki(), 3100),
        tcp(grafana(), alertmanager(), 9093),
        tcp(prometheus(), alertmanager(), 9093),
        tcp(prometheus(), kafka_exporter(), 9404),
        tcp(prometheus(), kube_state_metrics(), 8080),
        tcp(kafka_exporter(), kafka(), 9091),
        tcp(kube_state_metrics(), End::External, 443),
    ];
    let mut denied = vec![
        // Loki: only Fluent Bit writes, only Grafana reads; it sends nothing.
        tcp(functions(), loki(), 3100),
        tcp(worker(), loki(), 3100),
        tcp(prometheus(), loki(), 3100),
        tcp(loki(), End::External, 443),
        tcp(loki(), minio(), 9000),
        // Fluent Bit: Loki and the API, nothing else.
        tcp(fluent_bit(), prometheus(), 9090),
        tcp(fluent_bit(), minio(), 9000),
        tcp(fluent_bit(), postgres(), 5432),
        tcp(fluent_bit(), End::External, 80),
        tcp(functions(), fluent_bit(), 2020),
        // Grafana: its data sources only; no plugin downloads, no reports.
        tcp(grafana(), End::External, 443),
        tcp(grafana(), postgres(), 5432),
        tcp(grafana(), minio(), 9000),
        tcp(grafana(), kafka(), 9092),
        tcp(functions(), grafana(), 3000),
        tcp(worker(), grafana(), 3000),
        // Alertmanager: no receiver yet, so no way out.
        tcp(alertmanager(), End::External, 443),
        tcp(functions(), alertmanager(), 9093),
        tcp(worker(), alertmanager(), 9093),
        // The exporters: scraped by Prometheus, reaching only their source.
        // (Strimzi's own policy also opens 9404 to every pod; that one is
        // the operator's, not rendered here.)
        tcp(kafka_exporter(), kafka(), 9092),
        tcp(kafka_exporter(), postgres(), 5432),
        tcp(kafka_exporter(), End::External, 443),
        tcp(functions(), kube_state_metrics(), 8080),
        tcp(kube_state_metrics(), minio(), 9000),
        tcp(worker(), kafka(), 9091),
    ];
    // Only minikube publishes Grafana through the ingress controller.
    if overlay == "minikube" {
        allowed.push(tcp(ingress_nginx(), grafana(), 3000));
    } else {
        denied.push(tcp(ingress_nginx(), grafana(), 3000));
    }
    (allowed, denied)
}

#[test]
fn network_policies_allow_the_monitoring_flows_and_nothing_more() {
    for overlay in OVERLAYS {
        let (allowed, denied) = observability_flows(overlay);
        let v = flow_violations(&render(overlay), &allowed, &denied);
        assert!(v.is_empty(), "{overlay}: {v:#?}");
    }
}

// ---------------------------------------------------------------------------
// Rule: the worker logs plain text, which Fluent Bit parses

/// Containers running the worker image set NO_COLOR: tracing-subscriber
/// colours its lines otherwise, and Fluent Bit's parsers would not match.
pub(crate) fn plain_log_violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for o in objects {
        let Some(spec) = pod_spec(o) else { continue };
        for (c, _) in containers(spec) {
            if !s(c, "/image").contains("xtream-worker") {
                continue;
            }
            let plain = items(c, "/env")
                .iter()
                .any(|e| s(e, "/name") == "NO_COLOR" && !s(e, "/value").is_empty());
            if !plain {
                out.push(format!(
                    "{} container {:?}: runs the worker without NO_COLOR, so its logs are coloured and Fluent Bit cannot parse them",
                    id(o),
                    s(c, "/name")
                ));
            }
        }
    }
    out
}

#[test]
fn worker_containers_log_plain_text() {
    for overlay in OVERLAYS {
        let v = plain_log_violations(&render(overlay));
        assert!(v.is_empty(), "{overlay}: {v:#?}");
    }
}

#[test]
fn a_worker_logging_in_colour_is_caught() {
    // The world's worker runs another image; give it the worker's, still
    // without NO_COLOR.
    assert_rule_catches(
        plain_log_violations,
        |o| {
            set(
                o,
                "Deployment/worker",
                "/spec/template/spec/containers/0/image",
                json!("registry.example:5000/xtream-worker:1.0"),
            )
        },
        "Deployment/worker container \"worker\": runs the worker without NO_COLOR",
    )
}

// ---------------------------------------------------------------------------
// Fluent Bit's parsers against the worker's and the host's real lines

/// `[PARSER]` sections of a Fluent Bit parsers file: name -> regex.
fn fluent_bit_parsers(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for section in text.split("[PARSER]").skip(1) {
        let mut entry: BTreeMap<String, String> = BTreeMap::new();
        for line in section.lines().map(str::trim) {
            if line.starts_with('[') {
                break;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((key, value)) = line.split_once(char::is_whitespace) {
                entry.insert(key.to_lowercase(), value.trim().to_owned());
            }
        }
        assert_eq!(
            entry.get("format").map(String::as_str),
            Some("regex"),
            "{entry:?}"
        );
        out.insert(entry["name"].clone(), entry["regex"].clone());
    }
    out
}

/// What Fluent Bit's parser filters make of one line: the fields of every
/// parser that matches, in the configuration's order.
fn parse_line(line: &str) -> BTreeMap<String, String> {
    let parsers = fluent_bit_parsers(&read(&monitoring("fluent-bit/parsers.conf")));
    let mut fields = BTreeMap::new();
    for parser in filter_parsers() {
        let re = Regex::new(&parsers[&parser]).unwrap_or_else(|e| panic!("{parser}: {e}"));
        if let Some(caps) = re.captures(line) {
            for group in re.capture_names().flatten() {
                if let Some(m) = caps.name(group) {
                    fields.insert(group.to_owned(), m.as_str().to_owned());
                }
            }
        }
    }
    fields
}

/// The parsers fluent-bit.conf's parser filters apply, in order.
fn filter_parsers() -> Vec<String> {
    read(&monitoring("fluent-bit/fluent-bit.conf"))
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("Parser "))
        .map(|p| p.trim().to_owned())
        .collect()
}

/// Lines as tracing-subscriber's default formatter writes them (the
/// worker's and the host's `tracing_subscriber::fmt()`), with or without
/// colour.
fn rendered(ansi: bool, emit: impl FnOnce()) -> Vec<String> {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(ansi)
        .with_max_level(tracing::Level::TRACE) // the host's request lines are DEBUG
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[derive(Debug)]
#[allow(dead_code)] // only its Debug form is logged, as the worker's JobEnd
enum JobEnd {
    Ready,
}

const VIDEO: &str = "0b6ef1c2-9a3d-4f5e-8c7b-2d1e0f9a8b7c";

#[test]
fn fluent_bit_parsers_lift_the_workers_and_hosts_fields() {
    let parsers = fluent_bit_parsers(&read(&monitoring("fluent-bit/parsers.conf")));
    let used: BTreeSet<String> = filter_parsers().into_iter().collect();
    let defined: BTreeSet<String> = parsers.keys().cloned().collect();
    assert_eq!(
        used, defined,
        "every parser is used, every used one defined"
    );

    // The worker's lines (host-worker/src/job.rs, sweep.rs), by its fields.
    let lines = rendered(false, || {
        tracing::info!(target: "xtream_worker::job", video = %VIDEO, end = ?JobEnd::Ready, elapsed = ?std::time::Duration::from_millis(1500), "job ended");
        tracing::warn!(target: "xtream_worker::sweep", video = %VIDEO, status = "transcoding", "its job stopped renewing its lease; queueing it again");
        tracing::debug!(target: "xtream_host::server", method = %"GET", uri = %format!("/api/videos/{VIDEO}"), component = %"videos", "request");
    });
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let job = parse_line(&lines[0]);
    assert_eq!(
        job.get("level").map(String::as_str),
        Some("INFO"),
        "{job:?}"
    );
    assert_eq!(
        job.get("target").map(String::as_str),
        Some("xtream_worker::job")
    );
    assert_eq!(job.get("video").map(String::as_str), Some(VIDEO), "{job:?}");
    assert_eq!(job.get("job").map(String::as_str), Some("Ready"), "{job:?}");
    assert!(job["message"].starts_with("job ended"), "{job:?}");
    let sweep = parse_line(&lines[1]);
    assert_eq!(sweep.get("level").map(String::as_str), Some("WARN"));
    assert_eq!(sweep.get("video").map(String::as_str), Some(VIDEO));
    assert_eq!(
        sweep.get("status").map(String::as_str),
        Some("transcoding"),
        "{sweep:?}"
    );
    let request = parse_line(&lines[2]);
    assert_eq!(request.get("level").map(String::as_str), Some("DEBUG"));
    assert_eq!(
        request.get("component").map(String::as_str),
        Some("videos"),
        "{request:?}"
    );
    let route = format!("/api/videos/{VIDEO}");
    assert_eq!(request.get("route"), Some(&route), "{request:?}");

    // The functions' own messages (crates/spin-support/src/catalog.rs).
    let deleted = parse_line(&format!(
        "video {VIDEO} deleted; its objects are left to the sweeper: timeout"
    ));
    assert_eq!(deleted.get("video").map(String::as_str), Some(VIDEO));
    assert!(!deleted.contains_key("level"), "not a tracing line");

    // In colour, nothing parses: hence NO_COLOR on the worker's containers.
    let coloured = rendered(true, || {
        tracing::info!(target: "xtream_worker::job", video = %VIDEO, "job ended");
    });
    let fields = parse_line(&coloured[0]);
    assert!(
        !fields.contains_key("level") && !fields.contains_key("video"),
        "{fields:?}"
    );
}

#[test]
fn the_worker_still_logs_the_fields_the_parsers_read() {
    // The parsers read `video=` and `end=`: if the worker renames them, the
    // logs panel loses its video.
    let source: String = std::fs::read_dir(repo_root().join("host-worker/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| read(&p))
        .collect();
    for field in ["video = %", "?end,", "status = "] {
        assert!(
            source.contains(field),
            "host-worker/src no longer logs {field:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Dashboards

pub(crate) fn dashboard_violations(dashboards: &[(String, Value)]) -> Vec<String> {
    let sources = yaml_file(&monitoring("grafana/datasources.yaml"));
    let known: BTreeMap<&str, &str> = items(&sources, "/datasources")
        .iter()
        .map(|d| (s(d, "/uid"), s(d, "/type")))
        .collect();
    let mut out = Vec::new();
    let mut uids = BTreeSet::new();
    for (file, d) in dashboards {
        let uid = s(d, "/uid");
        if format!("{uid}.json") != *file {
            out.push(format!("{file}: uid {uid:?} should be the file's name"));
        }
        if !uids.insert(uid) {
            out.push(format!("{file}: uid {uid:?} is taken"));
        }
        if s(d, "/title").is_empty() || s(d, "/description").is_empty() {
            out.push(format!("{file}: needs a title and a description"));
        }
        let all = panels(d);
        if all.is_empty() {
            out.push(format!("{file}: no panels"));
        }
        let mut ids = BTreeSet::new();
        for p in all {
            let title = s(p, "/title");
            if title.is_empty() {
                out.push(format!("{file}: a panel has no title"));
            }
            if !ids.insert(p.get("id").and_then(Value::as_u64)) {
                out.push(format!("{file} {title:?}: panel id taken"));
            }
            if s(p, "/type") == "text" {
                continue;
            }
            if s(p, "/description").is_empty() {
                out.push(format!("{file} {title:?}: needs a description"));
            }
            let mut refs = vec![p.get("datasource")];
            refs.extend(items(p, "/targets").iter().map(|t| t.get("datasource")));
            for r in refs.into_iter().flatten() {
                let (uid, ty) = (s(r, "/uid"), s(r, "/type"));
                if known.get(uid) != Some(&ty) {
                    out.push(format!(
                        "{file} {title:?}: data source {uid:?} ({ty}) is not provisioned (grafana/datasources.yaml)"
                    ));
                }
            }
            if items(p, "/targets").is_empty() {
                out.push(format!("{file} {title:?}: no queries"));
            }
            for t in items(p, "/targets") {
                if s(t, "/expr").trim().is_empty() {
                    out.push(format!("{file} {title:?}: an empty query"));
                }
            }
        }
    }
    out
}

#[test]
fn dashboards_are_valid_and_use_the_provisioned_data_sources() {
    let all = dashboards();
    assert!(all.len() >= 5, "overview, Kafka, worker, nodes, video logs");
    let v = dashboard_violations(&all);
    assert!(v.is_empty(), "{v:#?}");
    // The logs panel follows one video: a variable, used by every Loki query.
    let (_, logs) = all
        .iter()
        .find(|(f, _)| f == "xtream-video-logs.json")
        .expect("the video logs dashboard");
    assert!(
        items(logs, "/templating/list")
            .iter()
            .any(|v| s(v, "/name") == "video"),
        "a video id variable"
    );
    let loki: Vec<_> = queries(&all)
        .into_iter()
        .filter(|q| q.2 == "loki")
        .collect();
    assert!(!loki.is_empty());
    assert!(loki.iter().all(|q| q.3.contains("$video")), "{loki:#?}");
    assert!(
        panels(logs).iter().any(|p| s(p, "/type") == "logs"),
        "a logs panel"
    );
}

#[test]
fn a_broken_dashboard_is_caught() {
    let mut all = dashboards();
    assert!(dashboard_violations(&all).is_empty());
    all[0].1["panels"][0]["datasource"]["uid"] = json!("elsewhere");
    let v = dashboard_violations(&all);
    assert!(v.iter().any(|v| v.contains("is not provisioned")), "{v:#?}");
    let mut all = dashboards();
    all[1].1["uid"] = all[0].1["uid"].clone();
    let v = dashboard_violations(&all);
    assert!(v.iter().any(|v| v.contains("should be the file's name")));
}

// ---------------------------------------------------------------------------
// PromQL: every expression parses (promtool) and names real metrics

/// Grafana's built-in variables, as values PromQL accepts.
const GRAFANA_VARIABLES: &[(&str, &str)] = &[
    ("$__rate_interval", "2m"),
    ("$__interval", "1m"),
    ("$__range", "6h"),
];

fn substitute_variables(expr: &str) -> String {
    let mut out = expr.to_owned();
    for (var, value) in GRAFANA_VARIABLES {
        out = out.replace(var, value);
    }
    out
}

/// The dashboards' PromQL, variables substituted, by where it comes from.
fn dashboard_promql() -> Vec<(String, String)> {
    queries(&dashboards())
        .into_iter()
        .filter(|q| q.2 == "prometheus")
        .map(|(file, title, _, expr)| (format!("{file} {title:?}"), substitute_variables(&expr)))
        .collect()
}

/// The rules' expressions, by alert name.
fn rule_promql() -> Vec<(String, String)> {
    let rules = yaml_file(&monitoring("alerts.yml"));
    items(&rules, "/groups")
        .iter()
        .flat_map(|g| items(g, "/rules"))
        .map(|r| (s(r, "/alert").to_owned(), s(r, "/expr").to_owned()))
        .collect()
}

fn promtool(args: &[&str]) -> (bool, String) {
    let output = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool runs (./x setup installs Debian's prometheus package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// promtool's verdict on expressions: each becomes a recording rule of a
/// generated rules file, which `promtool check rules` parses.
fn promql_violations(exprs: &[(String, String)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    // All at once first (one promtool run); one by one only to name the
    // expressions that do not parse.
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| json!({"record": format!("xtream:check_{i}"), "expr": expr}))
        .collect();
    let all = dir.path().join("all.yml");
    let text = json!({"groups": [{"name": "check", "rules": rules}]}).to_string();
    std::fs::write(&all, text).unwrap();
    if promtool(&["check", "rules", all.to_str().unwrap()]).0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, (from, expr)) in exprs.iter().enumerate() {
        let rule = json!({"groups": [{"name": "check", "rules": [
            {"record": format!("xtream:check_{i}"), "expr": expr}
        ]}]});
        let path = dir.path().join(format!("expr-{i}.yml"));
        std::fs::write(&path, serde_json::to_string(&rule).unwrap()).unwrap();
        let (ok, text) = promtool(&["check", "rules", path.to_str().unwrap()]);
        if !ok {
            out.push(format!("{from}: {expr:?} does not parse:\n{text}"));
        }
    }
    out
}

#[test]
fn every_promql_expression_in_dashboards_and_rules_parses() {
    let mut exprs = dashboard_promql();
    exprs.extend(rule_promql());
    assert!(exprs.len() > 30, "{} expressions", exprs.len());
    let v = promql_violations(&exprs);
    assert!(v.is_empty(), "{}", v.join("\n"));
}

#[test]
fn a_broken_expression_is_caught() {
    let v = promql_violations(&[
        ("fine".into(), "sum(rate(up[5m]))".into()),
        ("broken".into(), "sum(rate(up[5m])".into()),
        ("grafana".into(), "rate(up[$__rate_interval])".into()),
    ]);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v[0].starts_with("broken"), "{v:#?}");
    assert!(
        v[1].starts_with("grafana"),
        "an unsubstituted variable: {v:#?}"
    );
}

/// The worker's metric names, read from its source, with a histogram's
/// series.
fn worker_metrics() -> BTreeSet<String> {
    let source = read(&repo_root().join("host-worker/src/metrics.rs"));
    let names: BTreeSet<String> = Regex::new(r#""(xtream_worker_[a-z_]+)""#)
        .unwrap()
        .captures_iter(&source)
        .map(|c| c[1].to_owned())
        .collect();
    assert!(
        names.contains("xtream_worker_jobs_started_total"),
        "{names:?}"
    );
    names
        .iter()
        .flat_map(|n| {
            [
                n.clone(),
                format!("{n}_bucket"),
                format!("{n}_sum"),
                format!("{n}_count"),
            ]
        })
        .collect()
}

fn unknown_metric_violations(exprs: &[(String, String)], known: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (from, expr) in exprs {
        for metric in metric_names(expr) {
            if !known.contains(&metric) {
                out.push(format!(
                    "{from}: {metric:?} is neither the worker's (host-worker/src/metrics.rs) nor an upstream exporter's"
                ));
            }
        }
    }
    out
}

fn known_metrics() -> BTreeSet<String> {
    let mut known = worker_metrics();
    for (_, names) in UPSTREAM_METRICS {
        known.extend(names.iter().map(|n| (*n).to_owned()));
    }
    known
}

#[test]
fn dashboards_and_rules_use_only_exported_metric_names() {
    let mut exprs = dashboard_promql();
    exprs.extend(rule_promql());
    let v = unknown_metric_violations(&exprs, &known_metrics());
    assert!(v.is_empty(), "{v:#?}");
}

#[test]
fn an_invented_metric_name_is_caught() {
    assert_eq!(
        metric_names(
            r#"sum by (le) (rate(xtream_worker_job_duration_seconds_bucket{job="x"}[5m])) / on() group_left() up unless absent(node_load1)"#
        ),
        BTreeSet::from(
            [
                "xtream_worker_job_duration_seconds_bucket",
                "up",
                "node_load1"
            ]
            .map(String::from)
        )
    );
    let v = unknown_metric_violations(
        &[(
            "made up".into(),
            "sum(rate(xtream_http_requests_total[5m]))".into(),
        )],
        &known_metrics(),
    );
    assert_eq!(v.len(), 1, "{v:#?}");
}

// ---------------------------------------------------------------------------
// promtool on the committed configuration and rules

/// Prometheus' configuration as Debian's promtool (2.42, built without
/// Kubernetes service discovery) can read it: the `otlp` block dropped and
/// each `kubernetes_sd_configs` replaced by a static target. What was
/// replaced is returned, for the caller to check.
fn for_debian_promtool(config: &mut Value) -> (Value, Vec<Value>) {
    let otlp = config
        .as_object_mut()
        .unwrap()
        .remove("otlp")
        .unwrap_or(Value::Null);
    let mut sd = Vec::new();
    for job in config
        .pointer_mut("/scrape_configs")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let job = job.as_object_mut().unwrap();
        if let Some(k8s) = job.remove("kubernetes_sd_configs") {
            sd.extend(k8s.as_array().cloned().unwrap_or_default());
            job.insert(
                "static_configs".into(),
                json!([{"targets": ["kubernetes-sd.invalid:1"]}]),
            );
        }
    }
    (otlp, sd)
}

#[test]
fn promtool_accepts_the_prometheus_configuration() {
    let mut config = yaml_file(&monitoring("prometheus.yml"));
    let (otlp, sd) = for_debian_promtool(&mut config);
    // What promtool cannot see, checked here: the OTLP block promotes
    // resource attributes only, and service discovery stays in the
    // namespace with the roles Prometheus' RBAC allows (prometheus.yaml).
    let otlp_keys: Vec<&String> = otlp
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(otlp_keys, ["promote_resource_attributes"], "{otlp}");
    assert!(!sd.is_empty());
    for k8s in &sd {
        assert!(["pod", "endpointslice"].contains(&s(k8s, "/role")), "{k8s}");
        assert_eq!(k8s["namespaces"], json!({"own_namespace": true}), "{k8s}");
    }
    let dir = tempfile::tempdir().unwrap();
    for file in rule_files() {
        std::fs::copy(monitoring(&file), dir.path().join(&file)).unwrap();
    }
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let (ok, text) = promtool(&["check", "config", path.to_str().unwrap()]);
    assert!(ok, "promtool check config:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
    // Alerts go to the Alertmanager Service, on its port.
    let targets: Vec<&str> = items(&config, "/alerting/alertmanagers")
        .iter()
        .flat_map(|a| items(a, "/static_configs"))
        .flat_map(|c| items(c, "/targets"))
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(targets, ["alertmanager:9093"]);
    let objects = render("minikube");
    let svc = objects
        .iter()
        .find(|o| id(o) == "Service/alertmanager")
        .unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], json!(9093));
    // Static scrape targets name Services, on their ports.
    let svcs = services(&objects);
    for job in items(&config, "/scrape_configs") {
        for target in items(job, "/static_configs")
            .iter()
            .flat_map(|c| items(c, "/targets"))
            .filter_map(Value::as_str)
        {
            let (host, port) = target.rsplit_once(':').unwrap();
            if host == "localhost" || host.ends_with(".invalid") {
                continue;
            }
            let port: u64 = port.parse().unwrap();
            assert!(
                svcs.iter()
                    .any(|s_| s_.name == host && s_.ports.iter().any(|(_, p)| *p == port)),
                "{}: {target} names no Service with that port",
                s(job, "/job_name")
            );
        }
    }
}

#[test]
fn promtool_accepts_the_local_configuration_with_the_clusters_rules() {
    // As `./x up` and tests/tests/observability.rs lay it out.
    let dir = tempfile::tempdir().unwrap();
    xtream_tests::prometheus::run_directory(
        dir.path(),
        &[
            ("xtream-worker", "127.0.0.1:9090".into()),
            ("xtream-functions", "127.0.0.1:9091".into()),
            ("prometheus", "127.0.0.1:9095".into()),
        ],
    )
    .unwrap();
    let path = dir.path().join("prometheus.yml");
    let (ok, text) = promtool(&["check", "config", path.to_str().unwrap()]);
    assert!(ok, "promtool check config:\n{text}");
    assert!(text.contains("SUCCESS: 1 rule files found"), "{text}");
    // The worker's job has the cluster's name, so its alerts apply here.
    let local = yaml_file(&repo_root().join(xtream_tests::prometheus::LOCAL_CONFIG));
    let cluster = yaml_file(&monitoring("prometheus.yml"));
    let jobs = |config: &Value| -> BTreeSet<String> {
        items(config, "/scrape_configs")
            .iter()
            .map(|j| s(j, "/job_name").to_owned())
            .collect()
    };
    assert!(jobs(&cluster).contains("xtream-worker"));
    assert!(jobs(&local).contains("xtream-worker"));
}

/// The rule files prometheus.yml loads (relative to it).
fn rule_files() -> Vec<String> {
    let config = yaml_file(&monitoring("prometheus.yml"));
    items(&config, "/rule_files")
        .iter()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

#[test]
fn promtool_accepts_the_alerting_rules() {
    let files = rule_files();
    assert_eq!(files, ["alerts.yml"]);
    let path = monitoring("alerts.yml");
    let (ok, text) = promtool(&["check", "rules", path.to_str().unwrap()]);
    assert!(ok, "promtool check rules:\n{text}");
    // And promtool is the judge it seems: it refuses a broken file.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        read(&path).replacen("> 0\n", "> \n", 1), // an operator without operand
    )
    .unwrap();
    let (ok, _) = promtool(&["check", "rules", broken.to_str().unwrap()]);
    assert!(!ok, "promtool accepted a rule without its right operand");
}

/// The alerts the issue asks for, each with a severity, a summary and a
/// runbook.
pub(crate) fn alert_violations(rules: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let alerts: Vec<&Value> = items(rules, "/groups")
        .iter()
        .flat_map(|g| items(g, "/rules"))
        .filter(|r| r.get("alert").is_some())
        .collect();
    for a in &alerts {
        let at = s(a, "/alert");
        if !matches!(s(a, "/labels/severity"), "warning" | "critical") {
            out.push(format!("{at}: severity must be warning or critical"));
        }
        for annotation in ["summary", "description", "runbook"] {
            if s(a, &format!("/annotations/{annotation}")).trim().len() < 10 {
                out.push(format!("{at}: needs a {annotation} annotation"));
            }
        }
    }
    let names: BTreeSet<&str> = alerts.iter().map(|a| s(a, "/alert")).collect();
    for want in [
        "XtreamWorkerDown",
        "XtreamWorkerNotConsuming",
        "XtreamDeadLetters",
        "XtreamReadinessFailing",
        "XtreamTranscodeFailures",
        "XtreamNodeDiskPressure",
        "XtreamNodeMemoryPressure",
        "XtreamPodRestarting",
    ] {
        if !names.contains(want) {
            out.push(format!("no alert {want}"));
        }
    }
    out
}

#[test]
fn every_alert_has_a_severity_and_a_runbook() {
    let rules = yaml_file(&monitoring("alerts.yml"));
    let v = alert_violations(&rules);
    assert!(v.is_empty(), "{v:#?}");
    let mut broken = rules.clone();
    broken["groups"][0]["rules"][0]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("runbook");
    let v = alert_violations(&broken);
    assert!(
        v.iter().any(|v| v.contains("needs a runbook annotation")),
        "{v:#?}"
    );
}

// ---------------------------------------------------------------------------
// The README says what each panel shows

#[test]
fn the_readme_describes_every_dashboard_panel() {
    let readme = read(&repo_root().join("README.md"));
    let mut missing = Vec::new();
    for (file, d) in dashboards() {
        let title = s(&d, "/title");
        if !readme.contains(&format!("**{title}**")) {
            missing.push(format!("dashboard {title:?} ({file})"));
        }
        for p in panels(&d) {
            let panel = s(p, "/title");
            if !readme.contains(&format!("*{panel}*")) {
                missing.push(format!("{title}: panel {panel:?}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's operations section lacks (a line each, the title in *italics*):\n  {}",
        missing.join("\n  ")
    );
}
