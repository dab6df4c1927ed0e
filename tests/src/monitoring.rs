//! The monitoring's committed files as the tests read them: the Grafana
//! dashboards' queries, the metric names a PromQL expression selects, and
//! the names upstream exporters document. Shared by the manifest tests
//! (every name is a real one) and the observability tests (every name is
//! scraped from a running stack).

use regex::Regex;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Where the dashboards' JSON lives.
pub const DASHBOARDS: &str = "k8s/base/monitoring/grafana/dashboards";

fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The dashboards' files, sorted.
pub fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(crate::workspace_root().join(DASHBOARDS))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Every dashboard, by file name.
pub fn dashboards() -> Vec<(String, Value)> {
    dashboard_files()
        .into_iter()
        .map(|p| {
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{file}: not valid JSON: {e}"));
            (file, v)
        })
        .collect()
}

/// Every panel of a dashboard, rows' nested panels included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in items(dashboard, "/panels") {
        out.push(p);
        out.extend(items(p, "/panels"));
    }
    out
}

/// (dashboard file, panel title, datasource type, expression) of every query.
pub fn queries(dashboards: &[(String, Value)]) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for (file, d) in dashboards {
        for p in panels(d) {
            for t in items(p, "/targets") {
                let ds = t
                    .pointer("/datasource/type")
                    .or_else(|| p.pointer("/datasource/type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                out.push((
                    file.clone(),
                    s(p, "/title").to_owned(),
                    ds.to_owned(),
                    s(t, "/expr").to_owned(),
                ));
            }
        }
    }
    out
}

/// Metric names of the exporters upstream documents, each with its source.
/// A name outside these lists and the worker's own is an invented one.
pub const UPSTREAM_METRICS: &[(&str, &[&str])] = &[
    // Prometheus itself: the health of each scrape.
    ("Prometheus", &["up"]),
    // Spin's HTTP trigger counts `spin.request_count` (attributes
    // trigger_type, app_id, component_id); Prometheus' OTLP receiver turns
    // it into this name (dots to underscores, `_total` on a monotonic sum).
    // The embedded host serves the same counter (host/src/metrics.rs).
    ("Spin (OTLP)", &["spin_request_count_total"]),
    // node_exporter's cpu, meminfo, filesystem, loadavg and diskstats
    // collectors.
    (
        "node-exporter",
        &[
            "node_cpu_seconds_total",
            "node_memory_MemAvailable_bytes",
            "node_memory_MemTotal_bytes",
            "node_filesystem_avail_bytes",
            "node_filesystem_size_bytes",
            "node_filesystem_readonly",
            "node_load1",
            "node_load5",
            "node_disk_read_bytes_total",
            "node_disk_written_bytes_total",
        ],
    ),
    // kafka_exporter (danielqsj/kafka_exporter), which Strimzi runs.
    (
        "Kafka Exporter",
        &[
            "kafka_brokers",
            "kafka_consumergroup_lag",
            "kafka_consumergroup_current_offset",
            "kafka_consumergroup_members",
            "kafka_topic_partition_current_offset",
            "kafka_topic_partition_under_replicated_partition",
        ],
    ),
    // kube-state-metrics' pod and deployment metrics.
    (
        "kube-state-metrics",
        &[
            "kube_pod_status_ready",
            "kube_pod_status_phase",
            "kube_pod_container_status_restarts_total",
            "kube_deployment_spec_replicas",
            "kube_deployment_status_replicas_available",
        ],
    ),
];

const PROMQL_WORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// The metric names an expression selects: identifiers that are neither
/// functions, keywords, label names nor inside strings or ranges.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let strings = Regex::new(r#""(?:[^"\\]|\\.)*""#).unwrap();
    let matchers = Regex::new(r"\{[^}]*\}").unwrap();
    let ranges = Regex::new(r"\[[^\]]*\]").unwrap();
    let groupings =
        Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)").unwrap();
    let ident = Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?").unwrap();
    let mut e = strings.replace_all(expr, "\"\"").into_owned();
    e = matchers.replace_all(&e, " ").into_owned();
    e = ranges.replace_all(&e, " ").into_owned();
    e = groupings.replace_all(&e, " ").into_owned();
    ident
        .captures_iter(&e)
        .filter(|c| c.get(1).is_none()) // a function call
        .map(|c| c[0].trim().to_owned())
        .filter(|w| !PROMQL_WORDS.contains(&w.to_lowercase().as_str()))
        .filter(|w| !w.chars().next().unwrap().is_ascii_digit())
        .collect()
}
