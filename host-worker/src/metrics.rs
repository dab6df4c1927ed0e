//! Prometheus metrics of the worker, and the small HTTP server that exposes
//! them with `/health`.

use crate::serve::{self, Reply};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::net::SocketAddr;
use std::sync::Arc;

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
    /// Events skipped because their video was already done (redeliveries).
    pub jobs_skipped: IntCounter,
    /// Jobs released unfinished at shutdown (to be redelivered).
    pub jobs_released: IntCounter,
    /// Attempts retried after a transient error.
    pub job_retries: IntCounter,
    /// Wall time of a job, from taking the event to the record written.
    pub job_duration: Histogram,
    /// Jobs running now.
    pub jobs_running: IntGauge,
    /// Per partition: high watermark minus committed offset.
    pub consumer_lag: IntGaugeVec,
    /// Upload events published again by the reconciler.
    pub reconciled: IntCounter,
    /// Reconciler scans, by result (`ok` / `error`).
    pub reconcile_scans: IntCounterVec,
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
            "Redelivered events whose video was already ready or failed.",
        );
        let jobs_released = counter(
            "xtream_worker_jobs_released_total",
            "Jobs stopped at shutdown and left for redelivery.",
        );
        let job_retries = counter(
            "xtream_worker_job_retries_total",
            "Attempts retried after a transient error.",
        );
        let reconciled = counter(
            "xtream_worker_reconciled_total",
            "Upload events published again for records stuck in uploaded.",
        );
        let job_duration = Histogram::with_opts(
            HistogramOpts::new(
                "xtream_worker_job_duration_seconds",
                "Wall time of a transcoding job.",
            )
            .buckets(vec![
                1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
            ]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(job_duration.clone()))
            .expect("unique metric");
        let jobs_running =
            IntGauge::new("xtream_worker_jobs_running", "Jobs running now.").expect("valid metric");
        registry
            .register(Box::new(jobs_running.clone()))
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
        let reconcile_scans = IntCounterVec::new(
            Opts::new(
                "xtream_worker_reconcile_scans_total",
                "Reconciler scans of the catalog.",
            ),
            &["result"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(reconcile_scans.clone()))
            .expect("unique metric");
        Self {
            registry,
            jobs_started,
            jobs_succeeded,
            jobs_failed,
            jobs_skipped,
            jobs_released,
            job_retries,
            job_duration,
            jobs_running,
            consumer_lag,
            reconciled,
            reconcile_scans,
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

/// Serves `GET /metrics` and `GET /health` on `listen` until the process
/// ends. Returns the bound address (port 0 picks a free one).
pub async fn serve(listen: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    serve::http(listen, move |request| {
        let metrics = metrics.clone();
        async move {
            match (request.method().as_str(), request.uri().path()) {
                ("GET", "/metrics") => {
                    Reply::text(200, "text/plain; version=0.0.4", metrics.render())
                }
                ("GET", "/health") => {
                    Reply::text(200, "application/json", r#"{"status":"ok"}"#.into())
                }
                (_, "/metrics" | "/health") => Reply::text(405, "text/plain", "use GET\n".into()),
                _ => Reply::text(404, "text/plain", "not found\n".into()),
            }
        }
    })
    .await
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
