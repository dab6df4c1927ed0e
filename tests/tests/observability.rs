//! The monitoring, exercised before deploying: a real Prometheus with the
//! local configuration `./x up` uses and the cluster's alerting rules,
//! scraping the real worker and the embedded host of a running stack.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use xtream_tests::monitoring::{UPSTREAM_METRICS, dashboards, metric_names, queries};
use xtream_tests::worker::{corrupt_bytes, wait_for_status};
use xtream_tests::{Prometheus, Stack, Worker, clips};

const PATIENCE: Duration = Duration::from_secs(120);

/// The worker, and Prometheus scraping it and the host.
async fn monitored(stack: &Stack) -> (Worker, Prometheus) {
    let worker = stack.worker(&[]).await.unwrap();
    let worker_target = worker.base.trim_start_matches("http://").to_owned();
    let host_target = stack
        .platform
        .metrics_addr()
        .expect("the embedded host serves /metrics")
        .to_string();
    let prometheus = Prometheus::start(&[
        ("xtream-worker", worker_target),
        ("xtream-functions", host_target),
    ])
    .await
    .unwrap();
    // Every target scraped at least once, so counters start from a sample.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let health = prometheus.target_health().await.unwrap();
        if health.len() == 3 && health.iter().all(|(_, h)| h == "up") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "targets not up: {health:?}\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (worker, prometheus)
}

async fn upload(stack: &Stack, body: Vec<u8>) -> String {
    let response = stack.platform.upload_raw(body).await;
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_dead_lettered_upload_fires_the_alert_in_a_local_prometheus() {
    let stack = Stack::start().await.unwrap();
    let (worker, prometheus) = monitored(&stack).await;
    assert_eq!(
        prometheus.alert_state("XtreamDeadLetters").await.unwrap(),
        None,
        "quiet before any dead letter"
    );

    let poisoned = upload(&stack, corrupt_bytes(64 * 1024)).await;
    let failed = wait_for_status(&stack.db, &poisoned, &["failed", "ready"], PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", worker.log()));
    assert_eq!(failed["status"], "failed", "{failed}");

    // No `for:` on this alert: pending is skipped and it fires at the first
    // evaluation that sees the increase.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = prometheus.alert_state("XtreamDeadLetters").await.unwrap();
        if state.as_deref() == Some("firing") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "XtreamDeadLetters is {state:?}; worker metrics:\n{}",
            worker.metrics().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // And nothing else is: a running worker is not "down".
    let alerts = prometheus.api("alerts").await.unwrap();
    let firing: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert_eq!(firing, ["XtreamDeadLetters"], "{alerts}");
}

#[tokio::test]
async fn every_metric_the_dashboards_and_rules_name_is_scraped_or_upstream() {
    let stack = Stack::start().await.unwrap();
    let (worker, prometheus) = monitored(&stack).await;
    // A job of each ending, so that every series has been born.
    let dir = tempfile::tempdir().unwrap();
    let clip = std::fs::read(clips::mp4(dir.path(), "clip.mp4", 2, 320, 240).unwrap()).unwrap();
    for body in [clip, corrupt_bytes(64 * 1024)] {
        let id = upload(&stack, body).await;
        wait_for_status(&stack.db, &id, &["failed", "ready"], PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", worker.log()));
    }
    assert_eq!(stack.platform.get_json("/api/videos").await.unwrap().0, 200);

    let upstream: BTreeSet<&str> = UPSTREAM_METRICS
        .iter()
        .flat_map(|(_, names)| names.iter().copied())
        .collect();
    let mut expressions: Vec<(String, String)> = queries(&dashboards())
        .into_iter()
        .filter(|q| q.2 == "prometheus")
        .map(|(file, title, _, expr)| (format!("{file} {title:?}"), expr))
        .collect();
    // The rules as Prometheus loaded them.
    let rules = prometheus.api("rules").await.unwrap();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            expressions.push((
                format!("alert {}", rule["name"].as_str().unwrap()),
                rule["query"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert!(expressions.len() > 30, "{expressions:#?}");
    let missing_from = |scraped: &BTreeSet<String>| -> Vec<String> {
        let mut missing = Vec::new();
        for (from, expr) in &expressions {
            for name in metric_names(expr) {
                // Ours must be exported for real; the host's counter is the
                // one Spin pushes on the cluster.
                let ours = name.starts_with("xtream_") || name.starts_with("spin_");
                if !scraped.contains(&name) && (ours || !upstream.contains(name.as_str())) {
                    missing.push(format!("{from}: {name}"));
                }
            }
        }
        missing
    };

    // What Prometheus holds, once it has scraped after the jobs ended. Some
    // series are born late (the consumer lag, from librdkafka's statistics
    // every 5 s): wait for them, up to a deadline.
    let deadline = Instant::now() + PATIENCE;
    let (scraped, missing) = loop {
        let names: BTreeSet<String> = prometheus
            .api("label/__name__/values")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect();
        let counted = prometheus
            .api("query?query=sum(xtream_worker_jobs_succeeded_total)%20%3E%200")
            .await
            .unwrap();
        let missing = missing_from(&names);
        let done = counted["result"].as_array().is_some_and(|r| !r.is_empty());
        if (done && missing.is_empty()) || Instant::now() > deadline {
            break (names, missing);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        missing.is_empty(),
        "named but neither scraped from the running worker and host nor an upstream exporter's:\n  {}\nscraped: {scraped:?}",
        missing.join("\n  ")
    );
}
