//! The sweeper: resumable uploads that were abandoned do not hold S3 parts
//! forever.
//!
//! A resumable upload keeps its session at `uploads/{id}.json` until it is
//! completed or aborted. Each period the sweeper reads every session and,
//! for those past their expiry or older than `XTREAM_UPLOAD_TTL`, aborts
//! the S3 multipart upload (freeing its parts) and deletes the session. An
//! original that S3 had already assembled but that never got a record (a
//! completion cut short) is deleted too: without a record nothing can reach
//! it.
//!
//! Cost per sweep: one LIST per 1000 open uploads plus one GET each.

use crate::reconcile::stopped;
use crate::storage::{Storage, StorageError};
use jiff::Timestamp;
use std::time::Duration;
use tokio::sync::watch;
use xtream_core::keys;
use xtream_core::resumable::UploadSession;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Open upload sessions seen.
    pub sessions: usize,
    /// Sessions aborted and removed.
    pub aborted: usize,
}

/// Aborts expired and abandoned resumable uploads.
pub struct Sweeper {
    /// The bucket.
    pub storage: Storage,
    /// Age after which a session counts as abandoned, even before its expiry.
    pub ttl: Duration,
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
                Ok(report) if report.aborted > 0 => {
                    tracing::info!(?report, "swept abandoned uploads")
                }
                Ok(report) => tracing::debug!(?report, "upload sweep"),
                Err(err) => {
                    tracing::warn!(error = %err, "upload sweep failed; next period tries again")
                }
            }
        }
    }

    /// One pass over every open upload session.
    pub async fn sweep(&self) -> Result<SweepReport, StorageError> {
        let now = Timestamp::now();
        let mut report = SweepReport::default();
        for key in self.storage.list(keys::UPLOADS_PREFIX).await? {
            let Some(id) = keys::id_of_upload_session(&key) else {
                continue;
            };
            report.sessions += 1;
            let bytes = match self.storage.get_bytes(&key).await {
                Ok(bytes) => bytes,
                // Completed or aborted since the listing.
                Err(StorageError::NotFound(_)) => continue,
                Err(err) => return Err(err),
            };
            let session: UploadSession = match serde_json::from_slice(&bytes) {
                Ok(session) => session,
                Err(err) => {
                    tracing::warn!(%key, error = %err, "skipping an unreadable upload session");
                    continue;
                }
            };
            if !session.is_abandoned(now, self.ttl) {
                continue;
            }
            let original = keys::original(id);
            self.storage
                .abort_multipart(&original, &session.s3_upload_id)
                .await?;
            if self.storage.read_record(id).await?.is_none() {
                self.storage.delete(&original).await?;
            }
            self.storage.delete(&key).await?;
            tracing::info!(upload = %id, created_at = %session.created_at, expires_at = %session.expires_at, "aborted an abandoned upload");
            report.aborted += 1;
        }
        Ok(report)
    }
}
