//! The outbox relay: every event the platform stores gets to Kafka.
//!
//! A change that must be announced (an upload) writes its event to the
//! `outbox` table in the same statement, and the function that made it
//! publishes it through the Kafka Bridge and marks it sent: the fast path.
//! When that publish is lost (bridge down, function killed in between), the
//! row stays unsent. Every `XTREAM_RELAY_EVERY` the relay claims, in one
//! transaction, the rows still unsent `XTREAM_RELAY_AFTER` after they were
//! written (`FOR UPDATE SKIP LOCKED`, so replicas never send the same row at
//! once), publishes each to its topic with its key, marks those Kafka took
//! as sent, and commits. A row that fails keeps its attempt count and last
//! error and is tried again next run. Delivery is at least once: a function
//! slower than `XTREAM_RELAY_AFTER` and the relay may both send an event,
//! and jobs are idempotent.

use crate::db::{self, DbError, Metadata};
use crate::kafka::{self, PublishError};
use crate::metrics::Metrics;
use crate::run::stopped;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use xtream_core::metadata;

/// One claimed outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The row's id.
    pub id: i64,
    /// The Kafka topic.
    pub topic: String,
    /// The Kafka key, as text (the video id).
    pub key: String,
    /// The event, JSON.
    pub payload: String,
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows published and marked sent.
    pub relayed: usize,
    /// Rows Kafka did not take, left unsent.
    pub failed: usize,
}

/// Publishes outbox events the functions did not.
pub struct Relay {
    /// The outbox.
    pub metadata: Metadata,
    /// Publishes the events.
    pub publisher: kafka::Publisher,
    /// Age after which an unsent event is the relay's to send.
    pub after: Duration,
    /// Rows per transaction.
    pub batch: u64,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl Relay {
    /// Runs every `every` until `stop` turns true; a full batch is followed
    /// by another run at once, so a backlog drains without waiting.
    pub async fn run(self, every: Duration, mut stop: watch::Receiver<bool>) {
        let mut pause = every;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopped(&mut stop) => return,
            }
            pause = every;
            match self.relay_once().await {
                Ok(report) => {
                    self.metrics.relay_runs.with_label_values(&["ok"]).inc();
                    if report.claimed > 0 {
                        tracing::info!(?report, "relayed outbox events");
                    }
                    if report.claimed as u64 == self.batch && report.failed == 0 {
                        pause = Duration::ZERO;
                    }
                }
                Err(err) => {
                    self.metrics.relay_runs.with_label_values(&["error"]).inc();
                    tracing::warn!(error = %err, "relay run failed; next period tries again");
                }
            }
        }
    }

    /// One transaction: claim, publish, mark, commit.
    pub async fn relay_once(&self) -> Result<RelayReport, DbError> {
        let mut client = self.metadata.client().await?;
        let transaction = client.transaction().await?;
        let claim = metadata::claim_unsent(self.after.as_secs(), self.batch);
        let events = db::query_on(&transaction, &claim)
            .await?
            .iter()
            .map(|row| {
                Ok(OutboxEvent {
                    id: db::column(row, 0)?,
                    topic: db::column(row, 1)?,
                    key: db::column(row, 2)?,
                    payload: db::column(row, 3)?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        let mut report = RelayReport {
            claimed: events.len(),
            ..RelayReport::default()
        };
        if events.is_empty() {
            return Ok(report);
        }
        // All at once: the producer batches them, and sends to the same
        // partition keep their order (they are queued in this order).
        let sends = events.iter().map(|event| self.publish(event));
        let results = futures::future::join_all(sends).await;
        for (event, result) in events.iter().zip(results) {
            match result {
                Ok(()) => {
                    db::execute_on(&transaction, &metadata::mark_sent(event.id)).await?;
                    report.relayed += 1;
                }
                Err(err) => {
                    tracing::warn!(outbox = event.id, topic = %event.topic, key = %event.key, error = %err, "cannot relay an event; next run tries again");
                    let why = err.to_string();
                    let note = metadata::note_relay_failed(event.id, &why);
                    db::execute_on(&transaction, &note).await?;
                    report.failed += 1;
                }
            }
        }
        // A failed commit leaves the published rows unsent: they go out
        // again next run, which at-least-once delivery allows.
        transaction.commit().await?;
        self.metrics.relayed.inc_by(report.relayed as u64);
        self.metrics.relay_failures.inc_by(report.failed as u64);
        Ok(report)
    }

    async fn publish(&self, event: &OutboxEvent) -> Result<(), PublishError> {
        let key = kafka::text_key(&event.key);
        self.publisher
            .publish(
                &event.topic,
                kafka::Record::keyed(&key, event.payload.as_bytes()),
            )
            .await?;
        Ok(())
    }
}
