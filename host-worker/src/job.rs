//! One transcoding job: from a `video.uploaded` event to a `ready` (or
//! `failed`) record, renditions in the bucket and an outcome on Kafka.
//! The renditions are published while ffmpeg writes them
//! ([`HlsPublisher`]): the record turns `playable` (still `transcoding`)
//! with the first segment of every rendition, long before it is `ready`.
//!
//! A job is safe to run again for the same video at any point: outputs go
//! to fixed keys (a re-run overwrites them, and stale keys from an earlier
//! run are deleted), and a video already `ready` or `failed` is skipped.
//! That is what lets the consumer commit only after a job and still survive
//! crashes and redeliveries.
//!
//! Every status change is a compare-and-set on the status the job read
//! ([`Metadata::save_transition`]), so the job never moves a video another
//! writer has moved on (another worker finished it: the job is skipped),
//! and delete wins over a transcode in flight: once the row is gone, the
//! job's next write fails, the job is skipped, and it removes every object
//! under the video's prefix, including what it uploaded itself.

use crate::db::{DbError, Metadata, Transition};
use crate::kafka::{self, PublishError};
use crate::media::{self, MediaError, MediaInfo};
use crate::metrics::Metrics;
use crate::publish::HlsPublisher;
use crate::run::stopped;
use crate::storage::{Storage, StorageError};
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use xtream_core::events::{VideoOutcome, VideoUploaded};
use xtream_core::ladder::RenditionLadder;
use xtream_core::record::IllegalTransition;
use xtream_core::storyboard::Storyboard;
use xtream_core::{VideoId, VideoRecord, VideoStatus, keys};

/// Uploads of one job in flight at once: enough to hide request latency,
/// few enough not to starve other traffic.
pub const PARALLEL_UPLOADS: usize = 4;
/// How often a running transcode's new segments and playlists are
/// published: well under a segment's length, so a player waits little for
/// the next one, and only a few reads of small files each time.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Header of dead-letter records that says why the event was given up on.
pub const REASON_HEADER: &str = "xtream-failure-reason";

/// Topics a job publishes to.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `video.ready` / `video.failed`.
    pub results: String,
    /// Upload events given up on.
    pub dead_letter: String,
    /// Chunk jobs of long sources.
    pub chunks: String,
}

/// The event a job handles.
#[derive(Debug, Clone, Copy)]
pub(crate) enum JobEvent<'a> {
    /// A whole video's (cut into chunks if it is long).
    Upload(&'a VideoUploaded),
    /// One chunk's of a long video.
    Chunk(&'a xtream_core::chunks::ChunkJob),
}

impl JobEvent<'_> {
    fn video_id(self) -> VideoId {
        match self {
            Self::Upload(event) => event.video_id,
            Self::Chunk(job) => job.video_id,
        }
    }

    /// The event as it came, for the dead-letter topic.
    fn payload(self) -> serde_json::Value {
        match self {
            Self::Upload(event) => serde_json::to_value(event),
            Self::Chunk(job) => serde_json::to_value(job),
        }
        .expect("events always serialise")
    }
}

/// How a job ended, and so whether its offset may be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// The video is ready and announced.
    Ready,
    /// The video is failed, announced and dead-lettered.
    Failed,
    /// Nothing to do: the video was already done (a redelivery), another
    /// worker moved it on, or it was deleted.
    Skipped,
    /// The job did its part of a chunked video (cut it, or encoded a
    /// chunk); the job that completes the last part makes it ready.
    Progressed,
    /// Stopped at shutdown; the event must be redelivered.
    Released,
    /// The job gave up but could not tell Kafka so; the event must be
    /// redelivered to try again.
    Unannounced,
}

impl JobEnd {
    /// Whether the event is fully handled, so its offset may be committed.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            Self::Ready | Self::Failed | Self::Skipped | Self::Progressed
        )
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The bucket failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// ffprobe/ffmpeg failed or the file is no video.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// Kafka did not take an outcome.
    #[error("cannot publish the outcome: {0}")]
    Publish(#[from] PublishError),
    /// This attempt made the video ready, but Kafka did not take its
    /// outcome; the next attempt finds it ready and only announces it.
    #[error("the video is ready but its outcome is not published: {0}")]
    ReadyUnannounced(PublishError),
    /// The metadata database failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The video has no row: it was deleted, before the job started or
    /// while it ran.
    #[error("video {0} has no record (deleted)")]
    MissingRecord(VideoId),
    /// Another writer moved the video on from the status the job read.
    #[error("video {id} moved from {} to {} meanwhile", expected.as_str(), now.as_str())]
    MovedOn {
        /// The video.
        id: VideoId,
        /// The status the job read and meant to move on from.
        expected: VideoStatus,
        /// The status it has now.
        now: VideoStatus,
    },
    /// The record is in a state the job cannot move on from.
    #[error(transparent)]
    Lifecycle(#[from] IllegalTransition),
    /// The job's scratch directory failed.
    #[error("scratch directory: {0}")]
    Scratch(std::io::Error),
    /// The worker itself failed on this video: a bug, which the same video
    /// would most likely hit again.
    #[error(
        "the worker failed on this video (a bug; the dead letter can be replayed once fixed): {0}"
    )]
    Panicked(String),
}

impl JobError {
    /// Whether trying again may help: outages of the bucket, the broker,
    /// the database or the local disk may pass; a file that is not a video
    /// stays one.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Storage(err) => matches!(
                err,
                StorageError::Unavailable { .. } | StorageError::Local { .. }
            ),
            Self::Media(err) => matches!(err, MediaError::Tool { .. }),
            Self::Database(err) => err.is_transient(),
            Self::Publish(_) | Self::ReadyUnannounced(_) | Self::Scratch(_) => true,
            Self::MissingRecord(_)
            | Self::MovedOn { .. }
            | Self::Lifecycle(_)
            | Self::Panicked(_) => false,
        }
    }

    /// The reason a person reads on the failed record.
    pub fn reason(&self) -> String {
        match self {
            Self::Storage(StorageError::NotFound(key)) if key.ends_with("/original") => {
                "the uploaded file is missing from storage".into()
            }
            other => other.to_string(),
        }
    }
}

/// What a job does after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// The job is over.
    End(JobEnd),
    /// The video was deleted: remove every object under its prefix (some
    /// may be this job's), then end as skipped.
    SkipDeleted,
    /// Try again after this pause.
    Retry(Duration),
    /// Dead-letter the event, announce the failure, mark the video failed.
    GiveUp,
}

/// The decision after attempt number `attempt` ended with `result`.
///
/// A deleted video or one moved on by another writer is not a failure: the
/// job is skipped and nothing is dead-lettered. A database outage is
/// retried for as long as it lasts (capped backoff): giving up would need
/// the database too, to mark the video failed. Other transient errors get
/// `max_attempts` tries.
pub fn next_step(result: &Result<JobEnd, JobError>, attempt: u32, max_attempts: u32) -> NextStep {
    match result {
        Ok(end) => NextStep::End(*end),
        Err(JobError::MissingRecord(_)) => NextStep::SkipDeleted,
        Err(JobError::MovedOn { .. }) => NextStep::End(JobEnd::Skipped),
        Err(JobError::Database(err)) if err.is_transient() => NextStep::Retry(backoff(attempt)),
        Err(err) if err.is_transient() && attempt < max_attempts => {
            NextStep::Retry(backoff(attempt))
        }
        Err(_) => NextStep::GiveUp,
    }
}

/// What to make of a failed job, given the video's record as it is now
/// (`None`: deleted): a video deleted or finished meanwhile is not
/// dead-lettered.
pub fn give_up_decision(current: Option<&VideoRecord>) -> Option<NextStep> {
    match current.map(|record| record.status) {
        None => Some(NextStep::SkipDeleted),
        Some(VideoStatus::Ready | VideoStatus::Failed) => Some(NextStep::End(JobEnd::Skipped)),
        Some(_) => None,
    }
}

/// Wait before attempt `attempt + 1`: 1 s, 2 s, 4 s … up to 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(MAX_BACKOFF)
}

/// ffmpeg's time limit for a source of `duration_seconds`: generous (slow
/// presets on small machines run at a fraction of real time), but finite
/// so a wedged ffmpeg cannot hold a worker forever.
pub fn transcode_timeout(duration_seconds: f64) -> Duration {
    let seconds = if duration_seconds.is_finite() {
        duration_seconds.clamp(0.0, 86_400.0)
    } else {
        0.0
    };
    Duration::from_secs(1800) + Duration::from_secs_f64(seconds * 20.0)
}

/// The MIME type of an output file, by extension.
pub fn content_type_of(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("m4s" | "mp4") => "video/mp4",
        Some("jpg") => "image/jpeg",
        Some("vtt") => "text/vtt; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Runs jobs: everything a job needs, shared by all of them.
pub struct Transcoder {
    /// The bucket.
    pub storage: Storage,
    /// The videos' records.
    pub metadata: Metadata,
    /// Publishes outcomes and dead letters.
    pub publisher: kafka::Publisher,
    /// Where to publish.
    pub topics: Topics,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// How long the job may go without renewing its video's lease.
    pub job_lease: Duration,
    /// x264 preset.
    pub x264_preset: String,
    /// Threads of each encoding ffmpeg (0: ffmpeg's choice).
    pub ffmpeg_threads: u32,
    /// Which sources are cut into chunks, and how.
    pub chunking: crate::config::Chunking,
    /// Partitions of the chunks topic, once known.
    pub chunk_partitions: std::sync::OnceLock<i32>,
    /// Bootstrap servers, to learn the chunks topic's partitions.
    pub brokers: String,
    /// Tries per job.
    pub max_attempts: u32,
    /// Parent of the scratch directories.
    pub work_dir: PathBuf,
}

impl Transcoder {
    /// Handles one event, retrying transient errors, until the video is
    /// ready or failed, or `stop` turns true (then the job is released).
    pub async fn process(&self, event: &VideoUploaded, mut stop: watch::Receiver<bool>) -> JobEnd {
        let started = Instant::now();
        self.metrics.jobs_started.inc();
        // Counted down on drop: a job that panics is no longer running.
        let _running = RunningJob::count(&self.metrics.jobs_running);
        // The lease is renewed for as long as the job runs, retries and
        // waits included, and no longer: the renewal ends with the job.
        let end = tokio::select! {
            end = self.process_until_stopped(event, &mut stop) => end,
            never = self.keep_lease(event.video_id) => match never {},
        };
        match end {
            JobEnd::Ready => self.metrics.jobs_succeeded.inc(),
            JobEnd::Failed => self.metrics.jobs_failed.inc(),
            JobEnd::Skipped => self.metrics.jobs_skipped.inc(),
            JobEnd::Released | JobEnd::Unannounced => self.metrics.jobs_released.inc(),
            JobEnd::Progressed => {}
        }
        if matches!(end, JobEnd::Ready | JobEnd::Failed) {
            self.metrics
                .job_duration
                .observe(started.elapsed().as_secs_f64());
        }
        tracing::info!(video = %event.video_id, ?end, elapsed = ?started.elapsed(), "job ended");
        end
    }

    async fn process_until_stopped(
        &self,
        event: &VideoUploaded,
        stop: &mut watch::Receiver<bool>,
    ) -> JobEnd {
        self.attempt_until_stopped(JobEvent::Upload(event), stop)
            .await
    }

    /// Tries the job of `event` until it ends (retrying what may pass) or
    /// `stop` turns true. A stopped upload job puts its video back to
    /// `queued`; a stopped chunk job leaves the video to the others.
    pub(crate) async fn attempt_until_stopped(
        &self,
        event: JobEvent<'_>,
        stop: &mut watch::Receiver<bool>,
    ) -> JobEnd {
        let id = event.video_id();
        let requeue = matches!(event, JobEvent::Upload(_));
        let mut attempt = 1;
        // Set once an attempt of this job made the video ready: a later
        // attempt that only announces it still ends the job `Ready`.
        let mut made_ready = false;
        loop {
            let result = tokio::select! {
                result = self.attempt_of(event) => result,
                _ = stopped(stop) => return self.release(id, requeue).await,
            };
            made_ready |= matches!(result, Err(JobError::ReadyUnannounced(_)));
            match next_step(&result, attempt, self.max_attempts) {
                NextStep::End(end) => {
                    if let Err(err) = &result {
                        tracing::info!(video = %id, reason = %err, "skipping: another writer moved the video on");
                    }
                    return match end {
                        JobEnd::Skipped if made_ready => JobEnd::Ready,
                        end => end,
                    };
                }
                NextStep::SkipDeleted => {
                    tracing::info!(video = %id, "the video was deleted; removing its objects");
                    self.remove_objects(id).await;
                    return JobEnd::Skipped;
                }
                NextStep::Retry(wait) => {
                    if let Err(err) = &result {
                        tracing::warn!(video = %id, attempt, error = %err, ?wait, "attempt failed; retrying");
                    }
                    self.metrics.job_retries.inc();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stopped(stop) => return self.release(id, requeue).await,
                    }
                    attempt += 1;
                }
                NextStep::GiveUp => {
                    let error = result.expect_err("only errors are given up on");
                    tracing::warn!(video = %id, attempts = attempt, error = %error, "giving up");
                    return self.give_up(event, &error, attempt).await;
                }
            }
        }
    }

    /// Moves `record` to `next`, compare-and-set on the status it has.
    /// Returns the record as stored.
    pub(crate) async fn advance(
        &self,
        mut record: VideoRecord,
        next: VideoStatus,
    ) -> Result<VideoRecord, JobError> {
        let expected = record.status;
        record.move_to(next, Timestamp::now())?;
        match self.metadata.save_transition(&record, expected).await? {
            Transition::Saved(saved) => Ok(saved),
            Transition::Gone => Err(JobError::MissingRecord(record.id)),
            Transition::Moved(current) => Err(JobError::MovedOn {
                id: record.id,
                expected,
                now: current.status,
            }),
        }
    }

    /// Deletes every object of a deleted video, whoever wrote it: the
    /// deleting request may have cleared the prefix before this job
    /// uploaded into it. Retried a few times; what still fails stays
    /// behind (logged).
    pub(crate) async fn remove_objects(&self, id: VideoId) {
        let prefix = keys::video_prefix(id);
        let mut attempt = 1;
        loop {
            match self.storage.delete_prefix(&prefix).await {
                Ok(removed) => {
                    tracing::info!(video = %id, removed, "removed the objects of a deleted video");
                    return;
                }
                Err(err) if attempt < self.max_attempts => {
                    tracing::warn!(video = %id, attempt, error = %err, "cannot remove a deleted video's objects; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(err) => {
                    tracing::error!(video = %id, %prefix, error = %err, "cannot remove a deleted video's objects; they stay behind");
                    return;
                }
            }
        }
    }

    /// The record of video `id` while a job still has work on it; `None`
    /// once it is finished. A ready one is announced again: a redelivery
    /// after a crash between the record and the outcome (consumers see
    /// outcomes at least once). A failed one was announced before its
    /// record was written.
    pub(crate) async fn record_to_work_on(
        &self,
        id: VideoId,
    ) -> Result<Option<VideoRecord>, JobError> {
        let record = self
            .metadata
            .record(id)
            .await?
            .ok_or(JobError::MissingRecord(id))?;
        match record.status {
            VideoStatus::Ready => {
                self.announce(&ready_outcome(&record)).await?;
                Ok(None)
            }
            VideoStatus::Failed => Ok(None),
            VideoStatus::Uploaded | VideoStatus::Queued | VideoStatus::Transcoding => {
                Ok(Some(record))
            }
        }
    }

    /// One try, start to finish.
    async fn attempt(&self, id: VideoId) -> Result<JobEnd, JobError> {
        let Some(record) = self.record_to_work_on(id).await? else {
            return Ok(JobEnd::Skipped);
        };
        let record = self.advance(record, VideoStatus::Queued).await?;

        let scratch = tempfile::Builder::new()
            .prefix(&format!("xtream-job-{id}-"))
            .tempdir_in(&self.work_dir)
            .map_err(JobError::Scratch)?;
        // The original's key comes from the id, never from the event, so an
        // event cannot point a job at another video's files.
        let original = scratch.path().join("original");
        let clock = Instant::now();
        self.storage
            .download(&keys::original(id), &original)
            .await?;
        let downloaded = clock.elapsed();
        let media = media::probe(&original).await?;
        let ladder = RenditionLadder::for_source(media.width, media.height).ok_or_else(|| {
            MediaError::NotAVideo(format!(
                "{}×{} is too small to be a video",
                media.width, media.height
            ))
        })?;

        let record = self.advance(record, VideoStatus::Transcoding).await?;
        if self.chunking.applies_to(media.duration_seconds) {
            return self
                .transcode_in_chunks(record, &original, scratch.path(), &media)
                .await;
        }
        let hls = scratch.path().join("hls");
        for rung in &ladder.rungs {
            tokio::fs::create_dir_all(hls.join(&rung.name))
                .await
                .map_err(JobError::Scratch)?;
        }
        let timeout = transcode_timeout(media.duration_seconds);
        let poster = scratch.path().join("thumbnail.jpg");
        // The poster (one seek, one frame) alongside the ladder, so its
        // start-up cost hides behind the long encode.
        let encode_started = clock.elapsed();
        let thumbnail_args = media::thumbnail_args(&original, &poster, &media);
        let ladder_args = media::with_threads(
            media::ladder_args(&original, &hls, &ladder, &media, &self.x264_preset),
            self.ffmpeg_threads,
        );
        // The storyboard too, but only once the video plays (or the ladder
        // has ended): its decode of the whole source took CPU from the first
        // segments and delayed `playable`; after that it is cheap beside the
        // ladder's encoders and done by the time they are.
        let storyboard = Storyboard::plan(media.duration_seconds, media.width, media.height);
        let sprite = scratch.path().join(xtream_core::storyboard::SPRITE_NAME);
        let playable_or_encoded = tokio::sync::Notify::new();
        let make_storyboard = async {
            playable_or_encoded.notified().await;
            match &storyboard {
                Some(board) => {
                    let args = media::storyboard_args(&original, &sprite, board);
                    media::run_ffmpeg(&args, timeout).await
                }
                None => Ok(()),
            }
        };
        // The ladder, published while ffmpeg writes it: the video becomes
        // playable with the first segment of every rendition.
        let encode_and_publish = async {
            let mut publisher = HlsPublisher::new(&self.storage, id, &hls, &ladder);
            let mut encoding = publisher.while_encoding(media::run_ffmpeg(&ladder_args, timeout));
            let mut record = record;
            if encoding.until_playable().await? && !record.playable {
                record_media(&mut record, &media, &ladder);
                record.playable = true;
                // Compare-and-set like every move: a video deleted
                // meanwhile ends the job here.
                record = self.advance(record, VideoStatus::Transcoding).await?;
                self.metrics
                    .time_to_playable
                    .observe(clock.elapsed().as_secs_f64());
                tracing::info!(video = %id, after = ?clock.elapsed(), "playable");
                playable_or_encoded.notify_one();
            }
            encoding.until_ended().await?;
            // A short video may be encoded before a tick saw it playable.
            playable_or_encoded.notify_one();
            publisher.finish().await?;
            Ok::<_, JobError>(record)
        };
        let (_, mut record, ()) = tokio::try_join!(
            async { Ok(media::run_ffmpeg(&thumbnail_args, timeout).await?) },
            encode_and_publish,
            async { Ok(make_storyboard.await?) },
        )?;

        let encoded = clock.elapsed();
        let poster_key = keys::thumbnail(id);
        let store_poster = async {
            let stored = self.storage.upload_file(&poster, &poster_key, "image/jpeg");
            stored.await.map_err(JobError::from)
        };
        let store_storyboard = async {
            match &storyboard {
                Some(board) => {
                    self.store_storyboard(id, board, &sprite, scratch.path())
                        .await
                }
                None => Ok(()),
            }
        };
        tokio::try_join!(store_poster, store_storyboard)?;

        record_media(&mut record, &media, &ladder);
        record.thumbnail = Some(poster_key);
        record.storyboard = storyboard.map(|_| keys::storyboard_index(id));
        let record = self.advance(record, VideoStatus::Ready).await?;
        self.announce(&ready_outcome(&record))
            .await
            .map_err(JobError::ReadyUnannounced)?;
        // Where the time went, to compare with a bare ffmpeg run.
        tracing::info!(
            video = %id,
            download = ?downloaded,
            probe_and_queue = ?(encode_started - downloaded),
            ffmpeg = ?(encoded - encode_started),
            store_and_announce = ?(clock.elapsed() - encoded),
            "job timings"
        );
        Ok(JobEnd::Ready)
    }

    /// Uploads the storyboard: the sprite first, then the index that
    /// points into it, so a visible index never names a missing sprite.
    pub(crate) async fn store_storyboard(
        &self,
        id: VideoId,
        board: &Storyboard,
        sprite: &Path,
        scratch: &Path,
    ) -> Result<(), JobError> {
        let index = scratch.join("storyboard.vtt");
        tokio::fs::write(&index, board.vtt())
            .await
            .map_err(JobError::Scratch)?;
        self.storage
            .upload_file(
                sprite,
                &keys::storyboard_sprite(id),
                content_type_of(sprite),
            )
            .await?;
        self.storage
            .upload_file(&index, &keys::storyboard_index(id), content_type_of(&index))
            .await?;
        Ok(())
    }

    pub(crate) async fn announce(&self, outcome: &VideoOutcome) -> Result<(), PublishError> {
        self.publisher
            .publish_event(&self.topics.results, outcome.video_id(), outcome, &[])
            .await?;
        Ok(())
    }

    /// Renews video `id`'s job lease every fifth of the lease, forever.
    pub(crate) async fn keep_lease(&self, id: VideoId) -> std::convert::Infallible {
        let renew = xtream_core::metadata::renew_job_lease(id);
        self.keep_renewing(self.job_lease / 5, &renew, id, "the job's lease")
            .await
    }

    /// Runs `renew` every `every`, forever; a failed renewal of `what`
    /// (of video `id`) is only logged: the next one may pass, and a lease
    /// that runs out costs work done twice, not a lost video.
    pub(crate) async fn keep_renewing(
        &self,
        every: Duration,
        renew: &xtream_core::metadata::Statement,
        id: VideoId,
        what: &str,
    ) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(every).await;
            if let Err(err) = self.metadata.execute(renew).await {
                tracing::warn!(video = %id, error = %err, "cannot renew {what}");
            }
        }
    }

    /// The job for `event` panicked: fail the video with the panic's
    /// message, as a permanent error would (dead letter, outcome, record).
    pub async fn fail_after_panic(&self, event: &VideoUploaded, message: String) -> JobEnd {
        self.metrics.jobs_failed.inc();
        self.give_up(JobEvent::Upload(event), &JobError::Panicked(message), 1)
            .await
    }

    /// One try at the job of `event`.
    async fn attempt_of(&self, event: JobEvent<'_>) -> Result<JobEnd, JobError> {
        match event {
            JobEvent::Upload(event) => self.attempt(event.video_id).await,
            JobEvent::Chunk(job) => self.attempt_chunk(job).await,
        }
    }

    /// Gives up on the job of `event` (an upload or a chunk event).
    /// Dead-letters the event and announces the failure, then marks the
    /// record failed. Announcing first means a crash in between leads to
    /// a redelivery that fails and announces again, never to a failed
    /// record nobody heard of. A video deleted or finished meanwhile (its
    /// original gone, say) is skipped instead.
    pub(crate) async fn give_up(
        &self,
        event: JobEvent<'_>,
        error: &JobError,
        attempts: u32,
    ) -> JobEnd {
        let id = event.video_id();
        match self.metadata.record(id).await {
            Ok(current) => match give_up_decision(current.as_ref()) {
                Some(NextStep::SkipDeleted) => {
                    tracing::info!(video = %id, "the failed video was deleted; removing its objects");
                    self.remove_objects(id).await;
                    return JobEnd::Skipped;
                }
                Some(NextStep::End(end)) => return end,
                _ => {}
            },
            // Cannot tell: fail it as before; the record write will tell.
            Err(err) => {
                tracing::warn!(video = %id, error = %err, "cannot re-read the record before giving up")
            }
        }
        let reason = error.reason();
        // The dead letter is the original event, untouched, so it can be
        // replayed to the uploads topic as is; why it failed is in headers.
        let headers = [
            (REASON_HEADER.to_owned(), reason.clone().into_bytes()),
            (
                "xtream-attempts".to_owned(),
                attempts.to_string().into_bytes(),
            ),
            (
                "xtream-failed-at".to_owned(),
                Timestamp::now().to_string().into_bytes(),
            ),
        ];
        let failed = VideoOutcome::Failed {
            video_id: id,
            reason: reason.clone(),
        };
        let dead_letter = event.payload();
        let published = async {
            self.publisher
                .publish_event(&self.topics.dead_letter, id, &dead_letter, &headers)
                .await?;
            self.publisher
                .publish_event(&self.topics.results, id, &failed, &[])
                .await
        };
        if let Err(err) = published.await {
            tracing::error!(video = %id, error = %err, "cannot dead-letter the event; leaving it for redelivery");
            return JobEnd::Unannounced;
        }
        self.metrics.dead_letters.inc();
        match self.mark_failed(id, &reason).await {
            Ok(()) => {}
            // Dead-lettered and announced: the event is handled even though
            // the record could not say so; replaying the dead letter fixes it.
            Err(err) => tracing::error!(video = %id, error = %err, "cannot mark the record failed"),
        }
        JobEnd::Failed
    }

    /// Marks the video failed, compare-and-set on the status read: a video
    /// another writer finished stays as it is, a deleted one stays deleted
    /// (its objects are removed), and one moved between two unfinished
    /// statuses meanwhile is read again.
    async fn mark_failed(&self, id: VideoId, reason: &str) -> Result<(), JobError> {
        for _ in 0..3 {
            let Some(mut record) = self.metadata.record(id).await? else {
                self.remove_objects(id).await;
                return Ok(());
            };
            let expected = record.status;
            if matches!(expected, VideoStatus::Ready | VideoStatus::Failed) {
                return Ok(());
            }
            record.fail(reason, Timestamp::now())?;
            match self.metadata.save_transition(&record, expected).await? {
                Transition::Saved(_) => return Ok(()),
                Transition::Gone => {
                    self.remove_objects(id).await;
                    return Ok(());
                }
                Transition::Moved(_) => continue,
            }
        }
        tracing::warn!(video = %id, "the video kept moving; not marked failed");
        Ok(())
    }

    /// Puts a stopped job's video back to `queued` (best effort, bounded),
    /// only if it is still `transcoding`: its event is not committed and
    /// another worker will take it.
    async fn release(&self, id: VideoId, requeue_video: bool) -> JobEnd {
        if !requeue_video {
            tracing::info!(video = %id, "chunk job released for redelivery");
            return JobEnd::Released;
        }
        let requeue = async {
            if let Some(mut record) = self.metadata.record(id).await?
                && record.status == VideoStatus::Transcoding
            {
                record.move_to(VideoStatus::Queued, Timestamp::now())?;
                let transition = self
                    .metadata
                    .save_transition(&record, VideoStatus::Transcoding)
                    .await?;
                tracing::debug!(video = %id, ?transition, "requeued");
            }
            Ok::<_, JobError>(())
        };
        match tokio::time::timeout(Duration::from_secs(5), requeue).await {
            Ok(Ok(())) => tracing::info!(video = %id, "job released for redelivery"),
            Ok(Err(err)) => {
                tracing::warn!(video = %id, error = %err, "job released; record not requeued")
            }
            Err(_) => tracing::warn!(video = %id, "job released; requeueing the record timed out"),
        }
        JobEnd::Released
    }
}

/// One running job on the `jobs_running` gauge, for as long as it lives.
pub(crate) struct RunningJob<'a>(&'a prometheus::IntGauge);

impl<'a> RunningJob<'a> {
    pub(crate) fn count(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for RunningJob<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Copies what the probe and the ladder tell into the record (the poster
/// and the storyboard are added once they are stored).
pub fn record_media(record: &mut VideoRecord, media: &MediaInfo, ladder: &RenditionLadder) {
    record.duration_seconds = Some(media.duration_seconds);
    record.width = Some(media.width);
    record.height = Some(media.height);
    record.video_codec = Some(media.video_codec.clone());
    record.audio_codec = media.audio_codec.clone();
    record.renditions = ladder.renditions(media.audio_codec.is_some());
    record.hls_master = Some(keys::hls_master(record.id));
}

/// The `video.ready` outcome of a ready record.
pub fn ready_outcome(record: &VideoRecord) -> VideoOutcome {
    VideoOutcome::Ready {
        video_id: record.id,
        duration_seconds: record.duration_seconds.unwrap_or(0.0),
        renditions: record.renditions.iter().map(|r| r.name.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let waits: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn only_outages_are_retried() {
        let outage = JobError::Storage(StorageError::Unavailable {
            key: "k".into(),
            detail: "connection refused".into(),
        });
        assert!(outage.is_transient());
        assert!(JobError::Publish(PublishError::Unavailable("down".into())).is_transient());
        assert!(!JobError::Media(MediaError::NotAVideo("no video stream".into())).is_transient());
        assert!(!JobError::Media(MediaError::TranscodeFailed("bad frame".into())).is_transient());
        assert!(
            !JobError::Storage(StorageError::NotFound("videos/x/original".into())).is_transient()
        );
        assert!(!JobError::MissingRecord(VideoId::random()).is_transient());
        assert!(JobError::Database(DbError::Unavailable("refused".into())).is_transient());
        assert!(!JobError::Database(DbError::Refused("no such table".into())).is_transient());
    }

    fn unavailable_storage() -> JobError {
        JobError::Storage(StorageError::Unavailable {
            key: "k".into(),
            detail: "connection refused".into(),
        })
    }

    #[test]
    fn a_deleted_video_is_skipped_and_cleaned_up_never_failed() {
        let gone = Err(JobError::MissingRecord(VideoId::random()));
        assert_eq!(next_step(&gone, 1, 3), NextStep::SkipDeleted);
        assert_eq!(next_step(&gone, 3, 3), NextStep::SkipDeleted);
    }

    #[test]
    fn a_video_moved_on_by_another_writer_is_skipped() {
        let moved = Err(JobError::MovedOn {
            id: VideoId::random(),
            expected: VideoStatus::Transcoding,
            now: VideoStatus::Ready,
        });
        assert_eq!(next_step(&moved, 1, 3), NextStep::End(JobEnd::Skipped));
    }

    #[test]
    fn outages_are_retried_then_given_up_but_database_outages_wait() {
        assert_eq!(
            next_step(&Err(unavailable_storage()), 1, 3),
            NextStep::Retry(Duration::from_secs(1))
        );
        assert_eq!(
            next_step(&Err(unavailable_storage()), 3, 3),
            NextStep::GiveUp
        );
        let database_down = Err(JobError::Database(DbError::Unavailable("refused".into())));
        assert_eq!(
            next_step(&database_down, 10, 3),
            NextStep::Retry(Duration::from_secs(30))
        );
        let refused = Err(JobError::Database(DbError::Refused("bad".into())));
        assert_eq!(next_step(&refused, 1, 3), NextStep::GiveUp);
        let junk = Err(JobError::Media(MediaError::NotAVideo("no".into())));
        assert_eq!(next_step(&junk, 1, 3), NextStep::GiveUp);
        assert_eq!(
            next_step(&Ok(JobEnd::Ready), 1, 3),
            NextStep::End(JobEnd::Ready)
        );
    }

    #[test]
    fn giving_up_skips_videos_deleted_or_finished_meanwhile() {
        let mut record = VideoRecord::uploaded(
            VideoId::random(),
            "t".into(),
            "f.mp4".into(),
            1,
            "video/mp4".into(),
            Timestamp::now(),
        );
        assert_eq!(give_up_decision(None), Some(NextStep::SkipDeleted));
        for (status, decision) in [
            (VideoStatus::Ready, Some(NextStep::End(JobEnd::Skipped))),
            (VideoStatus::Failed, Some(NextStep::End(JobEnd::Skipped))),
            (VideoStatus::Transcoding, None),
            (VideoStatus::Queued, None),
            (VideoStatus::Uploaded, None),
        ] {
            record.status = status;
            assert_eq!(give_up_decision(Some(&record)), decision, "{status:?}");
        }
    }

    #[test]
    fn reasons_read_well() {
        let missing = JobError::Storage(StorageError::NotFound("videos/x/original".into()));
        assert_eq!(
            missing.reason(),
            "the uploaded file is missing from storage"
        );
        let junk = JobError::Media(MediaError::NotAVideo(
            "Invalid data found when processing input".into(),
        ));
        assert_eq!(
            junk.reason(),
            "not a playable video: Invalid data found when processing input"
        );
    }

    #[test]
    fn outputs_get_their_mime_types() {
        assert_eq!(
            content_type_of(Path::new("a/index.m3u8")),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(content_type_of(Path::new("a/segment_000.ts")), "video/mp2t");
        assert_eq!(content_type_of(Path::new("thumbnail.jpg")), "image/jpeg");
        assert_eq!(
            content_type_of(Path::new("storyboard.vtt")),
            "text/vtt; charset=utf-8"
        );
    }

    #[test]
    fn records_keep_the_probe_and_the_ladder() {
        let mut record = VideoRecord::uploaded(
            VideoId::random(),
            "t".into(),
            "f.mp4".into(),
            1,
            "video/mp4".into(),
            Timestamp::now(),
        );
        let media = MediaInfo {
            duration_seconds: 5.0,
            width: 1280,
            height: 720,
            video_codec: "h264".into(),
            audio_codec: Some("aac".into()),
            frame_rate: Some(25.0),
        };
        let ladder = RenditionLadder::for_source(1280, 720).unwrap();
        record_media(&mut record, &media, &ladder);
        assert_eq!(record.renditions.len(), 2);
        assert_eq!(record.hls_master, Some(keys::hls_master(record.id)));
        assert_eq!(
            ready_outcome(&record),
            VideoOutcome::Ready {
                video_id: record.id,
                duration_seconds: 5.0,
                renditions: vec!["360p".into(), "720p".into()],
            }
        );
    }

    #[test]
    fn timeouts_grow_with_the_video() {
        assert_eq!(transcode_timeout(0.0), Duration::from_secs(1800));
        assert_eq!(transcode_timeout(60.0), Duration::from_secs(3000));
        assert!(transcode_timeout(f64::NAN) >= Duration::from_secs(1800));
    }
}
