//! Prometheus metrics of the worker, and the small HTTP server that exposes
//! them with `/health`.

use crate::db::Metadata;
use crate::serve::{self, Reply};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Everything the worker counts.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Jobs taken from the uploads topic.
    pub jobs_started: IntCounter,
    /// Jobs that ended with the video `ready`.
    pub jobs_succeeded: IntCounter,
    /// Jobs that ended with the video `failed`.
    pub jobs_failed: IntCounter,
    /// Events skipped because their video was already done (redeliveries),
    /// moved on by another worker, or deleted.
    pub jobs_skipped: IntCounter,
    /// Jobs released unfinished at shutdown (to be redelivered).
    pub jobs_released: IntCounter,
    /// Events written to the dead-letter topic: uploads given up on and
    /// malformed events. Counted here as well as read from the topic's
    /// offsets on the cluster, so the alert works wherever the worker runs.
    pub dead_letters: IntCounter,
    /// Attempts retried after a transient error.
    pub job_retries: IntCounter,
    /// Wall time of a job, from taking the event to the record written.
    pub job_duration: Histogram,
    /// From taking the event to the video playable (the first segment of
    /// every rendition published), while it still transcodes.
    pub time_to_playable: Histogram,
    /// Jobs running now.
    pub jobs_running: IntGauge,
    /// Chunks of long sources being encoded now, by this worker.
    pub chunks_in_flight: IntGauge,
    /// Chunks this worker encoded and counted done (each chunk is counted
    /// once, by whichever worker stored it first).
    pub chunks_done: IntCounter,
    /// Per partition: high watermark minus committed offset.
    pub consumer_lag: IntGaugeVec,
    /// Outbox events published by the relay.
    pub relayed: IntCounter,
    /// Outbox events the relay could not publish (left for its next run).
    pub relay_failures: IntCounter,
    /// Relay runs, by result (`ok` / `error`).
    pub relay_runs: IntCounterVec,
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let jobs_started = counter(
            "xtream_worker_jobs_started_total",
            "Transcoding jobs taken.",
        );
        let jobs_succeeded = counter(
            "xtream_worker_jobs_succeeded_total",
            "Jobs that made the video ready.",
        );
        let jobs_failed = counter(
            "xtream_worker_jobs_failed_total",
            "Jobs that marked the video failed.",
        );
        let jobs_skipped = counter(
            "xtream_worker_jobs_skipped_total",
            "Events whose video was already ready or failed, moved on by another worker, or deleted.",
        );
        let jobs_released = counter(
            "xtream_worker_jobs_released_total",
            "Jobs stopped at shutdown and left for redelivery.",
        );
        let dead_letters = counter(
            "xtream_worker_dead_letters_total",
            "Events written to the dead-letter topic (uploads given up on, malformed events).",
        );
        let job_retries = counter(
            "xtream_worker_job_retries_total",
            "Attempts retried after a transient error.",
        );
        let chunks_done = counter(
            "xtream_worker_chunks_done_total",
            "Chunks of long sources encoded and counted done by this worker.",
        );
        let relayed = counter(
            "xtream_worker_relayed_total",
            "Outbox events published by the relay (the functions had not).",
        );
        let relay_failures = counter(
            "xtream_worker_relay_failures_total",
            "Outbox events the relay could not publish; left for its next run.",
        );
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let job_duration = histogram(
            "xtream_worker_job_duration_seconds",
            "Wall time of a transcoding job.",
            &[
                1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
            ],
        );
        let time_to_playable = histogram(
            "xtream_worker_time_to_playable_seconds",
            "From taking the event to the video playable (first segment of every rendition published).",
            &[
                0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
            ],
        );
        let jobs_running =
            IntGauge::new("xtream_worker_jobs_running", "Jobs running now.").expect("valid metric");
        registry
            .register(Box::new(jobs_running.clone()))
            .expect("unique metric");
        let chunks_in_flight = IntGauge::new(
            "xtream_worker_chunks_in_flight",
            "Chunks of long sources being encoded now.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(chunks_in_flight.clone()))
            .expect("unique metric");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "xtream_worker_consumer_lag",
                "Records not yet committed by the group, per partition (from librdkafka statistics).",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(consumer_lag.clone()))
            .expect("unique metric");
        let relay_runs = IntCounterVec::new(
            Opts::new(
                "xtream_worker_relay_runs_total",
                "Relay runs over the outbox, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(relay_runs.clone()))
            .expect("unique metric");
        Self {
            registry,
            jobs_started,
            jobs_succeeded,
            jobs_failed,
            jobs_skipped,
            jobs_released,
            dead_letters,
            job_retries,
            job_duration,
            time_to_playable,
            jobs_running,
            chunks_in_flight,
            chunks_done,
            consumer_lag,
            relayed,
            relay_failures,
            relay_runs,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding into memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// How long `/health` waits for the database before calling it down:
/// below the probes' timeout, so a slow database reads as "not ready"
/// rather than as a probe timeout.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves on `listen` until the process ends: `GET /metrics`; `GET /health`,
/// 200 when the database answers and 503 (not ready) when it does not,
/// since a worker can then neither claim nor finish a job; and `GET
/// /health/live`, always 200 while the process serves, for a liveness probe
/// that must not restart workers during a database outage. Returns the
/// bound address (port 0 picks a free one).
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    metadata: Metadata,
) -> std::io::Result<SocketAddr> {
    serve::http(listen, move |request| {
        let metrics = metrics.clone();
        let metadata = metadata.clone();
        async move {
            match (request.method().as_str(), request.uri().path()) {
                ("GET", "/metrics") => {
                    Reply::text(200, "text/plain; version=0.0.4", metrics.render())
                }
                ("GET", "/health") => health(&metadata).await,
                ("GET", "/health/live") => {
                    Reply::text(200, "application/json", r#"{"status":"ok"}"#.into())
                }
                (_, "/metrics" | "/health" | "/health/live") => {
                    Reply::text(405, "text/plain", "use GET\n".into())
                }
                _ => Reply::text(404, "text/plain", "not found\n".into()),
            }
        }
    })
    .await
}

async fn health(metadata: &Metadata) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let problem = match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, metadata.check()).await {
        Ok(Ok(())) => return Reply::text(200, "application/json", r#"{"status":"ok"}"#.into()),
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("the database did not answer within {HEALTH_CHECK_TIMEOUT:?}"),
    };
    tracing::debug!(%problem, "not ready");
    let body = serde_json::json!({ "status": "unavailable", "database": problem });
    Reply::text(503, "application/json", body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_by_name() {
        let metrics = Metrics::new();
        metrics.jobs_started.inc();
        metrics
            .consumer_lag
            .with_label_values(&["xtream.uploads", "0"])
            .set(3);
        metrics.job_duration.observe(4.2);
        let text = metrics.render();
        assert!(text.contains("xtream_worker_jobs_started_total 1"));
        assert!(
            text.contains("xtream_worker_consumer_lag{partition=\"0\",topic=\"xtream.uploads\"} 3")
        );
        assert!(text.contains("xtream_worker_job_duration_seconds_count 1"));
        assert!(text.contains("xtream_worker_jobs_failed_total 0"));
    }
}
