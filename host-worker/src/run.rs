//! `xtream-worker run`: consume upload events, run jobs, commit what is
//! done, relay the outbox, sweep, and stop gracefully. `maintain`: the
//! relay and the sweeper alone.
//!
//! Offsets are committed by hand, only after a job's outputs are in the
//! bucket, its record in the database and its outcome on Kafka
//! ([`JobEnd::is_done`]).
//! Jobs may finish out of order when `XTREAM_CONCURRENCY` > 1; the
//! [`OffsetTracker`] keeps each partition's commit behind its oldest
//! unfinished job.
//!
//! On SIGTERM or SIGINT the worker stops taking events, gives running jobs
//! `XTREAM_SHUTDOWN_GRACE` to finish (and commits them), then stops the
//! rest: their ffmpeg is killed, their records go back to `queued`, and
//! their events, left uncommitted, are redelivered to the next worker.

use crate::config::WorkerConfig;
use crate::db::{DbError, Metadata};
use crate::job::{JobEnd, Topics, Transcoder};
use crate::kafka;
use crate::metrics::{self, Metrics};
use crate::offsets::{OffsetTracker, Partition};
use crate::relay::Relay;
use crate::storage::Storage;
use crate::supervise::supervise;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use xtream_core::VideoId;
use xtream_core::chunks::ChunkJob;
use xtream_core::events::VideoUploaded;
use xtream_native::shutdown_signal;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Kafka client could not be set up.
    #[error("Kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The S3 client could not be set up.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The database pool could not be set up.
    #[error(transparent)]
    Database(#[from] DbError),
    /// `XTREAM_MIGRATE_ON_START` was set and migrating failed.
    #[error("migrating at start: {0}")]
    Migrate(#[from] crate::migrate::MigrateError),
    /// The metrics port could not be bound.
    #[error("cannot serve metrics on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    /// The work directory is unusable.
    #[error("work directory {0}: {1}")]
    WorkDir(String, std::io::Error),
}

/// Hooks librdkafka calls: rebalances (forget revoked partitions' jobs)
/// and statistics (consumer lag).
struct WorkerContext {
    tracker: Arc<Mutex<OffsetTracker>>,
    metrics: Arc<Metrics>,
}

impl ClientContext for WorkerContext {
    fn stats(&self, statistics: Statistics) {
        for (topic_name, topic) in &statistics.topics {
            for (id, partition) in &topic.partitions {
                // -1 is librdkafka's "internal" partition; a lag of -1 means
                // "unknown" (nothing committed or no watermark yet).
                if *id < 0 || partition.consumer_lag < 0 {
                    continue;
                }
                self.metrics
                    .consumer_lag
                    .with_label_values(&[topic_name.as_str(), &id.to_string()])
                    .set(partition.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut tracker = self.tracker.lock().expect("tracker lock");
            for element in partitions.elements() {
                tracker.revoked(&(element.topic().to_owned(), element.partition()));
                self.metrics
                    .consumer_lag
                    .with_label_values(&[element.topic(), &element.partition().to_string()])
                    .set(0);
            }
        }
        tracing::info!(?rebalance, "rebalance");
    }

    /// librdkafka keeps a partition paused across a revoke and a new
    /// assignment, so a partition held while every slot was busy would
    /// never be fetched again if the slot freed up mid-rebalance (when
    /// there is no assignment to resume). Every assigned partition starts
    /// unpaused; a message that comes while the slots are still busy is
    /// held again.
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance
            && let Err(err) = consumer.resume(partitions)
        {
            tracing::warn!(error = %err, "cannot resume the assigned partitions");
        }
    }
}

type WorkerConsumer = StreamConsumer<WorkerContext>;

/// First pause before a job whose end Kafka did not take runs again.
const UNANNOUNCED_PAUSE: Duration = Duration::from_secs(5);

/// What every long-running mode serves: `/metrics` and `/health`, the
/// outbox relay and the sweeper, on shared clients.
struct Maintenance {
    metrics: Arc<Metrics>,
    storage: Storage,
    metadata: Metadata,
    publisher: kafka::Publisher,
    stop: watch::Sender<bool>,
    relaying: tokio::task::JoinHandle<()>,
    sweeping: tokio::task::JoinHandle<()>,
}

impl Maintenance {
    /// Migrates if asked, connects, serves HTTP and starts the relay and
    /// the sweeper. `job_connections` database connections are kept for
    /// jobs on top of those the relay, sweeper and health check use.
    async fn start(config: &WorkerConfig, job_connections: usize) -> Result<Self, StartError> {
        if config.migrate_on_start {
            let report = crate::migrate::migrate(&config.database, config.migrate_wait).await?;
            tracing::info!(applied = ?report.applied, already_applied = report.already_applied, "schema migrated");
        }
        let metrics = Arc::new(Metrics::new());
        let publisher = kafka::Publisher::new(&config.kafka.brokers, Duration::from_secs(10))?;
        let storage = Storage::new(&config.storage)?;
        if let Err(err) = storage.check().await {
            // Not fatal: jobs retry storage errors, and the bucket may come
            // up after the worker.
            tracing::warn!(error = %err, "the bucket does not answer yet");
        }
        let metadata = Metadata::connect(&config.database, job_connections + 3)?;
        match metadata.check().await {
            Ok(()) => tracing::info!(database = %config.database, "the database answers"),
            // Not fatal either: /health says not ready until it answers,
            // and jobs wait for it.
            Err(err) => {
                tracing::warn!(database = %config.database, error = %err, "the database does not answer yet")
            }
        }
        let addr = metrics::serve(config.http_listen, metrics.clone(), metadata.clone())
            .await
            .map_err(|e| StartError::Listen(config.http_listen, e))?;
        tracing::info!(%addr, "serving /metrics and /health");

        let (stop, stop_rx) = watch::channel(false);
        let relay = Relay {
            metadata: metadata.clone(),
            publisher: publisher.clone(),
            after: config.relay_after,
            batch: config.relay_batch,
            metrics: metrics.clone(),
        };
        let relaying = tokio::spawn(relay.run(config.relay_every, stop_rx.clone()));
        let sweeper = crate::sweep::Sweeper {
            storage: storage.clone(),
            metadata: metadata.clone(),
            ttl: config.upload_ttl,
            job_lease: config.job_lease,
            uploads_topic: config.kafka.uploads_topic.clone(),
        };
        let sweeping = tokio::spawn(sweeper.run(config.sweep_every, stop_rx));
        Ok(Self {
            metrics,
            storage,
            metadata,
            publisher,
            stop,
            relaying,
            sweeping,
        })
    }

    /// Stops the relay and the sweeper after their current round.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.relaying.await;
        let _ = self.sweeping.await;
    }
}

/// `xtream-worker maintain`: only the outbox relay and the sweeper, until
/// SIGTERM/SIGINT. Where transcoders scale to zero (KEDA), announcements
/// the functions could not send and abandoned uploads must still be taken
/// care of; this mode does that without taking jobs.
pub async fn maintain(config: WorkerConfig) -> Result<(), StartError> {
    let maintenance = Maintenance::start(&config, 0).await?;
    tracing::info!("relaying the outbox and sweeping; not transcoding");
    shutdown_signal().await;
    maintenance.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Runs the worker until SIGTERM/SIGINT.
pub async fn run(config: WorkerConfig) -> Result<(), StartError> {
    std::fs::create_dir_all(&config.work_dir)
        .map_err(|e| StartError::WorkDir(config.work_dir.display().to_string(), e))?;
    let maintenance = Maintenance::start(&config, config.concurrency).await?;
    let tracker = Arc::new(Mutex::new(OffsetTracker::default()));
    let consumer: Arc<WorkerConsumer> = Arc::new(
        kafka::base_config(&config.kafka.brokers)
            .set("group.id", &config.kafka.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                config.kafka_session_timeout.as_millis().to_string(),
            )
            .set("statistics.interval.ms", "5000")
            // Chunk jobs go to partition `chunk % partitions`; round-robin
            // gives consecutive partitions to different workers, so the
            // chunks of one video spread over every worker. (`range` stays
            // listed for a group that still has older workers.)
            .set("partition.assignment.strategy", "roundrobin,range")
            .create_with_context(WorkerContext {
                tracker: tracker.clone(),
                metrics: maintenance.metrics.clone(),
            })?,
    );
    consumer.subscribe(&[&config.kafka.uploads_topic, &config.kafka.chunks_topic])?;

    let transcoder = Arc::new(Transcoder {
        storage: maintenance.storage.clone(),
        metadata: maintenance.metadata.clone(),
        publisher: maintenance.publisher.clone(),
        topics: Topics {
            results: config.kafka.results_topic.clone(),
            dead_letter: config.kafka.dead_letter_topic.clone(),
            chunks: config.kafka.chunks_topic.clone(),
        },
        metrics: maintenance.metrics.clone(),
        job_lease: config.job_lease,
        x264_preset: config.x264_preset.clone(),
        ffmpeg_threads: config.ffmpeg_threads,
        chunking: config.chunking,
        chunk_partitions: std::sync::OnceLock::new(),
        brokers: config.kafka.brokers.clone(),
        max_attempts: config.max_attempts,
        work_dir: config.work_dir.clone(),
    });

    tracing::info!(
        topic = %config.kafka.uploads_topic,
        chunks_topic = %config.kafka.chunks_topic,
        group = %config.kafka.group,
        concurrency = config.concurrency,
        "consuming upload events"
    );
    let (hard_stop_tx, hard_stop_rx) = watch::channel(false);
    let mut loop_state = ConsumeLoop {
        consumer: consumer.clone(),
        tracker,
        transcoder,
        slots: Arc::new(Semaphore::new(config.concurrency)),
        jobs: JoinSet::new(),
        in_flight: HashSet::new(),
        held: HashMap::new(),
        hard_stop: hard_stop_rx,
    };
    loop_state.consume_until(shutdown_signal()).await;

    let in_flight = loop_state.tracker.lock().expect("tracker lock").in_flight();
    tracing::info!(running = loop_state.jobs.len(), in_flight, grace = ?config.shutdown_grace, "shutting down");
    // The relay and the sweeper end their round while the jobs drain.
    let stopping = tokio::spawn(maintenance.stop());
    let finished = tokio::time::timeout(config.shutdown_grace, loop_state.drain()).await;
    if finished.is_err() {
        tracing::warn!("grace period over; releasing the running jobs");
        let _ = hard_stop_tx.send(true);
        loop_state.drain().await;
    }
    let _ = stopping.await;
    consumer.unsubscribe();
    tracing::info!("stopped");
    Ok(())
}

/// The consumer side of `run`.
struct ConsumeLoop {
    consumer: Arc<WorkerConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    transcoder: Arc<Transcoder>,
    slots: Arc<Semaphore>,
    jobs: JoinSet<(Partition, i64, JobKey, JobEnd)>,
    /// Jobs running: a duplicate event (relay, replay) for one of them is
    /// covered by the running job.
    in_flight: HashSet<JobKey>,
    /// Paused partitions and the offset each was rewound to.
    held: HashMap<Partition, i64>,
    hard_stop: watch::Receiver<bool>,
}

impl ConsumeLoop {
    async fn consume_until(&mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let consumer = self.consumer.clone();
            tokio::select! {
                _ = &mut shutdown => return,
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    self.finish(done).await;
                    self.resume_if_free();
                }
                // Always polling, even with every slot busy: librdkafka
                // serves rebalances (and the group's patience, bounded by
                // max.poll.interval.ms) only while the consumer is polled.
                message = consumer.recv() => match message {
                    Ok(message) => match self.slots.clone().try_acquire_owned() {
                        Ok(slot) => self.start(&message, slot).await,
                        Err(_) => self.hold(&message),
                    },
                    Err(err) => {
                        tracing::warn!(error = %err, "consuming failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
    }

    /// Every slot is busy: pause the message's partition and rewind it to
    /// this message, so it is fetched again once a slot frees up (and, if
    /// the partition moves to another worker meanwhile, read there).
    fn hold(&mut self, message: &BorrowedMessage<'_>) {
        let partition: Partition = (message.topic().to_owned(), message.partition());
        let offset = message.offset();
        // Messages fetched before the pause arrive after the first held
        // one; rewinding to them would skip it. The held message itself
        // arriving again means the partition was fetched anew from its
        // committed offset (a rebalance gave it back, resumed by
        // `post_rebalance`): it is held again, or it and every message
        // after it would be dropped until the next rebalance (chunk jobs
        // of a video that never ends).
        if self.held.get(&partition).is_some_and(|held| *held < offset) {
            return;
        }
        self.held.insert(partition.clone(), offset);
        let mut list = TopicPartitionList::new();
        list.add_partition(&partition.0, partition.1);
        if let Err(err) = self.consumer.pause(&list) {
            tracing::warn!(?partition, error = %err, "cannot pause");
        }
        if let Err(err) = self.consumer.seek(
            &partition.0,
            partition.1,
            Offset::Offset(offset),
            Duration::ZERO,
        ) {
            tracing::warn!(?partition, offset, error = %err, "cannot rewind a held message");
        }
        tracing::debug!(?partition, offset, "all slots busy; partition paused");
    }

    /// A slot is free again: resume every paused partition.
    fn resume_if_free(&mut self) {
        if self.held.is_empty() || self.slots.available_permits() == 0 {
            return;
        }
        self.held.clear();
        match self.consumer.assignment() {
            Ok(assigned) => {
                if let Err(err) = self.consumer.resume(&assigned) {
                    tracing::warn!(error = %err, "cannot resume");
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot read the assignment to resume it"),
        }
    }

    /// Starts a job for `message`, or settles it at once when there is
    /// nothing to run.
    async fn start(
        &mut self,
        message: &BorrowedMessage<'_>,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) {
        let partition: Partition = (message.topic().to_owned(), message.partition());
        let offset = message.offset();
        self.tracker
            .lock()
            .expect("tracker lock")
            .started(&partition, offset);
        let parsed = if message.topic() == self.transcoder.topics.chunks {
            parse_chunk_job(message.payload()).map(Work::Chunk)
        } else {
            parse_event(message.payload()).map(Work::Upload)
        };
        let work = match parsed {
            Ok(work) => work,
            Err(reason) => {
                drop(slot);
                tracing::warn!(?partition, offset, %reason, "dead-lettering a malformed event");
                let done = self.dead_letter_malformed(message, &reason).await;
                if done {
                    self.settle(&partition, offset).await;
                }
                return;
            }
        };
        let key = work.key();
        let id = key.0;
        if !self.in_flight.insert(key) {
            drop(slot);
            tracing::info!(video = %id, chunk = ?key.1, offset, "this job is already running; skipping the duplicate");
            self.settle(&partition, offset).await;
            return;
        }
        tracing::info!(video = %id, chunk = ?key.1, ?partition, offset, "job taken");
        let transcoder = self.transcoder.clone();
        let stop = self.hard_stop.clone();
        self.jobs.spawn(async move {
            let end = match &work {
                Work::Upload(event) => {
                    supervise(
                        || transcoder.process(event, stop.clone()),
                        |message| transcoder.fail_after_panic(event, message),
                        stop.clone(),
                        UNANNOUNCED_PAUSE,
                    )
                    .await
                }
                Work::Chunk(job) => {
                    supervise(
                        || transcoder.process_chunk(job, stop.clone()),
                        |message| transcoder.fail_chunk_after_panic(job, message),
                        stop.clone(),
                        UNANNOUNCED_PAUSE,
                    )
                    .await
                }
            };
            drop(slot);
            (partition, offset, key, end)
        });
    }

    async fn dead_letter_malformed(&self, message: &BorrowedMessage<'_>, reason: &str) -> bool {
        let headers = [(
            crate::job::REASON_HEADER.to_owned(),
            reason.as_bytes().to_vec(),
        )];
        let sent = self
            .transcoder
            .publisher
            .publish(
                &self.transcoder.topics.dead_letter,
                kafka::Record {
                    key: message.key(),
                    value: message.payload(),
                    headers: &headers,
                    ..kafka::Record::default()
                },
            )
            .await;
        match &sent {
            Ok(_) => self.transcoder.metrics.dead_letters.inc(),
            Err(err) => {
                tracing::error!(error = %err, "cannot dead-letter a malformed event; leaving it uncommitted")
            }
        }
        sent.is_ok()
    }

    async fn finish(
        &mut self,
        done: Result<(Partition, i64, JobKey, JobEnd), tokio::task::JoinError>,
    ) {
        let (partition, offset, key, end) = match done {
            Ok(done) => done,
            Err(err) => {
                // `supervise` catches a job's panics; only one while failing
                // the video after a panic gets here. Its offset stays
                // unfinished until a restart redelivers the event.
                tracing::error!(error = %err, "a job panicked while failing its video");
                return;
            }
        };
        self.in_flight.remove(&key);
        let id = key.0;
        if end.is_done() {
            self.settle(&partition, offset).await;
        } else {
            tracing::info!(video = %id, ?partition, offset, ?end, "not committing; the event will be redelivered");
        }
    }

    /// Marks `offset` handled and commits whatever that allows.
    async fn settle(&self, partition: &Partition, offset: i64) {
        let Some(next) = self
            .tracker
            .lock()
            .expect("tracker lock")
            .finished(partition, offset)
        else {
            return;
        };
        let mut list = TopicPartitionList::new();
        if let Err(err) = list.add_partition_offset(&partition.0, partition.1, Offset::Offset(next))
        {
            tracing::error!(error = %err, "cannot build the commit");
            return;
        }
        let consumer = self.consumer.clone();
        // A synchronous commit: the offset is on the broker before the
        // next event is taken. librdkafka blocks, so off the async threads.
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync)).await;
        match committed {
            Ok(Ok(())) => tracing::debug!(?partition, next, "committed"),
            Ok(Err(err)) => {
                tracing::warn!(?partition, next, error = %err, "commit failed; the events may be redelivered")
            }
            Err(err) => tracing::error!(error = %err, "commit task failed"),
        }
    }

    /// Waits for every running job and settles it.
    async fn drain(&mut self) {
        while let Some(done) = self.jobs.join_next().await {
            self.finish(done).await;
        }
    }
}

/// A job: a whole video's, or one chunk's.
enum Work {
    Upload(VideoUploaded),
    Chunk(ChunkJob),
}

/// What tells jobs apart: the video, and the chunk for chunk jobs.
type JobKey = (VideoId, Option<u32>);

impl Work {
    fn key(&self) -> JobKey {
        match self {
            Self::Upload(event) => (event.video_id, None),
            Self::Chunk(job) => (job.video_id, Some(job.span.chunk)),
        }
    }
}

/// Decodes a `video.chunk` event; the reason it is not one otherwise.
pub fn parse_chunk_job(payload: Option<&[u8]>) -> Result<ChunkJob, String> {
    let payload = payload.ok_or("the record has no value")?;
    serde_json::from_slice(payload).map_err(|e| format!("not a video.chunk event: {e}"))
}

/// Decodes a `video.uploaded` event; the reason it is not one otherwise.
pub fn parse_event(payload: Option<&[u8]>) -> Result<VideoUploaded, String> {
    let payload = payload.ok_or("the record has no value")?;
    serde_json::from_slice(payload).map_err(|e| format!("not a video.uploaded event: {e}"))
}

/// Resolves once `stop` is true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upload_events_and_explains_the_rest() {
        let json = br#"{"type":"video.uploaded","video_id":"6f9619ff-8b86-4011-b42d-00c04fc964ff",
            "original_key":"videos/6f9619ff-8b86-4011-b42d-00c04fc964ff/original",
            "content_type":"video/mp4","size":5,"uploaded_at":"2024-01-01T00:00:00Z"}"#;
        assert_eq!(parse_event(Some(json)).unwrap().size, 5);
        assert_eq!(parse_event(None).unwrap_err(), "the record has no value");
        assert!(
            parse_event(Some(b"{}"))
                .unwrap_err()
                .starts_with("not a video.uploaded event")
        );
        assert!(parse_event(Some(br#"{"type":"video.ready"}"#)).is_err());
    }
}
