//! The sweeper: nothing abandoned holds storage forever.
//!
//! Abandoned resumable uploads: a session stays in `upload_sessions` until
//! its upload is completed or aborted. Each period the sweeper takes the
//! sessions past their expiry or older than `XTREAM_UPLOAD_TTL`, aborts
//! their S3 multipart uploads (freeing the parts), deletes an original S3
//! had already assembled but that never got a video row (a completion cut
//! short: nothing can reach it), and closes the session.
//!
//! Abandoned streamed uploads: an instance that died while streaming an
//! original into a multipart upload left its row in `streamed_uploads`;
//! past `XTREAM_UPLOAD_TTL` the sweeper aborts the multipart upload (a
//! no-op for one that was completed after all) and drops the row.
//!
//! Unfinished deletions: deleting a video removes its row and records the
//! deletion in `video_deletions`; whoever deleted it then removes its
//! objects and the record. When that request died half-way, the sweeper
//! finishes it a minute later: every object under the video's prefix, then
//! the deletion record.
//!
//! Abandoned jobs: a job renews its video's lease (`updated_at`) while it
//! runs. A video in `queued` or `transcoding` whose lease ran out lost its
//! job without its event coming back for another worker (a committed
//! offset, a crash between steps): it is queued again, with a new event in
//! the outbox, in one statement that a job renewing meanwhile wins.
//!
//! Cost of an idle sweep: four indexed queries. Several workers may sweep at
//! once; every step is idempotent.

use crate::db::{self, DbError, Metadata};
use crate::run::stopped;
use crate::storage::{Storage, StorageError};
use std::time::Duration;
use tokio::sync::watch;
use xtream_core::metadata;
use xtream_core::resumable::UploadSession;
use xtream_core::{VideoId, keys};

/// Sessions and deletions handled per sweep; the rest wait for the next.
const SWEEP_BATCH: u64 = 100;
/// A deletion this old is unfinished: the request that made it would have
/// removed the objects long before.
const DELETION_GRACE: Duration = Duration::from_secs(60);

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Abandoned sessions aborted and closed.
    pub aborted: usize,
    /// Abandoned streamed uploads whose parts were freed.
    pub streamed_aborted: usize,
    /// Deleted videos whose objects were removed.
    pub deletions_finished: usize,
    /// Videos whose job was gone, queued again.
    pub jobs_requeued: usize,
    /// Sessions or deletions that failed, left for the next sweep.
    pub failed: usize,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The bucket failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Aborts abandoned uploads and finishes deletions.
pub struct Sweeper {
    /// The bucket.
    pub storage: Storage,
    /// The sessions and deletions.
    pub metadata: Metadata,
    /// Age after which a session counts as abandoned, even before its expiry.
    pub ttl: Duration,
    /// A job's lease: past it without renewal, its video is queued again.
    pub job_lease: Duration,
    /// Where queued-again videos are announced (the uploads topic).
    pub uploads_topic: String,
}

impl Sweeper {
    /// Sweeps every `every` until `stop` turns true.
    pub async fn run(self, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped(&mut stop) => return,
            }
            match self.sweep().await {
                Ok(report) if report != SweepReport::default() => {
                    tracing::info!(?report, "swept abandoned uploads and deletions")
                }
                Ok(report) => tracing::debug!(?report, "sweep"),
                Err(err) => {
                    tracing::warn!(error = %err, "sweep failed; next period tries again")
                }
            }
        }
    }

    /// One pass: abandoned sessions, then unfinished deletions. One that
    /// fails is logged and left for the next sweep, so it cannot hold up
    /// the others.
    pub async fn sweep(&self) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        let abandoned = metadata::select_abandoned_sessions(self.ttl.as_secs(), SWEEP_BATCH);
        for row in self.metadata.query(&abandoned).await? {
            let json: String = db::column(&row, 0)?;
            let session = match metadata::decode_session(&json) {
                Ok(session) => session,
                Err(err) => {
                    tracing::warn!(error = %err.message, "skipping an unreadable upload session");
                    continue;
                }
            };
            match self.abort_upload(&session).await {
                Ok(()) => report.aborted += 1,
                Err(err) => {
                    tracing::warn!(upload = %session.id, error = %err, "cannot abort an abandoned upload; next sweep tries again");
                    report.failed += 1;
                }
            }
        }
        let stale = metadata::select_stale_streamed_uploads(self.ttl.as_secs(), SWEEP_BATCH);
        for row in self.metadata.query(&stale).await? {
            let video: String = db::column(&row, 0)?;
            let upload_id: String = db::column(&row, 1)?;
            let Ok(id) = video.parse::<VideoId>() else {
                tracing::warn!(video = %video, "skipping a streamed upload of something that is not a video id");
                continue;
            };
            match self.abort_streamed(id, &upload_id).await {
                Ok(()) => report.streamed_aborted += 1,
                Err(err) => {
                    tracing::warn!(video = %id, error = %err, "cannot abort an abandoned streamed upload; next sweep tries again");
                    report.failed += 1;
                }
            }
        }
        let unfinished =
            metadata::select_unfinished_deletions(DELETION_GRACE.as_secs(), SWEEP_BATCH);
        for row in self.metadata.query(&unfinished).await? {
            let text: String = db::column(&row, 0)?;
            let Ok(id) = text.parse::<VideoId>() else {
                tracing::warn!(video = %text, "skipping a deletion of something that is not a video id");
                continue;
            };
            match self.finish_deletion(id).await {
                Ok(()) => report.deletions_finished += 1,
                Err(err) => {
                    tracing::warn!(video = %id, error = %err, "cannot finish a deletion; next sweep tries again");
                    report.failed += 1;
                }
            }
        }
        let lease = self.job_lease.as_secs();
        for row in self
            .metadata
            .query(&metadata::select_abandoned_jobs(lease, SWEEP_BATCH))
            .await?
        {
            let record = match db::record_of(&row) {
                Ok(record) => record,
                Err(err) => {
                    tracing::warn!(error = %err, "skipping an unreadable record");
                    continue;
                }
            };
            let requeue = metadata::requeue_abandoned_job(&record, &self.uploads_topic, lease);
            match self.metadata.query(&requeue).await {
                Ok(rows) if !rows.is_empty() => {
                    tracing::warn!(video = %record.id, status = record.status.as_str(), "its job stopped renewing its lease; queued again");
                    report.jobs_requeued += 1;
                }
                Ok(_) => {} // renewed or moved on since it was read
                Err(err) => {
                    tracing::warn!(video = %record.id, error = %err, "cannot queue an abandoned video again; next sweep tries again");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Frees an abandoned upload's parts, deletes its original if S3 had
    /// assembled it but no video came of it, and closes the session.
    async fn abort_upload(&self, session: &UploadSession) -> Result<(), SweepError> {
        let id = session.id;
        let original = keys::original(id);
        self.storage
            .abort_multipart(&original, &session.s3_upload_id)
            .await?;
        if !self.metadata.video_exists(id).await? {
            self.storage.delete(&original).await?;
        }
        self.metadata.execute(&metadata::delete_session(id)).await?;
        tracing::info!(upload = %id, created_at = %session.created_at, expires_at = %session.expires_at, "aborted an abandoned upload");
        Ok(())
    }

    /// Frees the parts of a streamed upload whose instance died, and
    /// forgets it.
    async fn abort_streamed(&self, id: VideoId, upload_id: &str) -> Result<(), SweepError> {
        self.storage
            .abort_multipart(&keys::original(id), upload_id)
            .await?;
        self.metadata
            .execute(&metadata::untrack_streamed_upload(upload_id))
            .await?;
        tracing::info!(video = %id, "aborted an abandoned streamed upload");
        Ok(())
    }

    /// Removes every object of a deleted video, then the deletion record.
    async fn finish_deletion(&self, id: VideoId) -> Result<(), SweepError> {
        let removed = self.storage.delete_prefix(&keys::video_prefix(id)).await?;
        self.metadata
            .execute(&metadata::finish_deletion(id))
            .await?;
        tracing::info!(video = %id, objects = removed, "finished a deletion");
        Ok(())
    }
}
