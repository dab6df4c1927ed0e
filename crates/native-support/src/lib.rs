//! What Xtream's native programs share: `xtream-worker` and the local
//! stand-in for Strimzi's Kafka Bridge (`xtream-kafka-bridge`) publish with
//! the same producer and keys, serve HTTP the same way and read their
//! settings by the same rules, so the bridge can live in a crate of its own
//! without either copying from the other.

pub mod kafka;
pub mod serve;
pub mod settings;

/// Logs as both programs do: text lines on stderr, filtered by `RUST_LOG`
/// (by default `info`, librdkafka's own chatter from `warn`). Fluent Bit
/// parses these lines on Kubernetes (`k8s/base/monitoring/`).
pub fn log_to_stderr() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}
