//! The reconciler: no upload stays stranded.
//!
//! The functions publish `video.uploaded` after writing the record; if that
//! publish is lost (bridge down, function killed in between), the record
//! sits in `uploaded` with no event to move it. Each period the reconciler
//! scans the whole catalog and publishes the event again for every record
//! still `uploaded` after `XTREAM_RECONCILE_AFTER`. Redundant events are
//! harmless: jobs skip videos that are already done.
//!
//! Cost per scan: one LIST per 1000 catalog entries, plus one GET per entry
//! old enough to matter. Entries younger than the threshold are skipped on
//! their key alone (the key encodes the creation time), which is every
//! entry in a quiet catalog's head. The scan never stops early: an old
//! stranded upload is found however deep in the catalog it is.

use crate::kafka;
use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError};
use futures::StreamExt;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use xtream_core::events::VideoUploaded;
use xtream_core::{VideoId, VideoRecord, VideoStatus, keys};

/// Records read at once during a scan.
const PARALLEL_READS: usize = 8;

/// What one scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    /// Catalog entries seen.
    pub entries: usize,
    /// Records read (old enough to check).
    pub checked: usize,
    /// Events published again.
    pub republished: usize,
}

/// Whether `record` looks stranded at `now`: still `uploaded` after `after`.
pub fn is_stranded(record: &VideoRecord, now: Timestamp, after: Duration) -> bool {
    record.status == VideoStatus::Uploaded && age(record.created_at, now) >= after
}

fn age(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
}

/// Resolves once `stop` is true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Scans the catalog and re-announces stranded uploads.
pub struct Reconciler {
    /// The bucket.
    pub storage: Storage,
    /// Publishes to the uploads topic.
    pub publisher: kafka::Publisher,
    /// The uploads topic.
    pub uploads_topic: String,
    /// Age after which an `uploaded` record counts as stranded.
    pub after: Duration,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// When each video was last re-announced: a worker with a backlog may
    /// take longer than `after` to get to an event, and announcing it again
    /// every scan would only pile up duplicates.
    recent: HashMap<VideoId, Timestamp>,
}

impl Reconciler {
    /// A reconciler with no history.
    pub fn new(
        storage: Storage,
        publisher: kafka::Publisher,
        uploads_topic: String,
        after: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            storage,
            publisher,
            uploads_topic,
            after,
            metrics,
            recent: HashMap::new(),
        }
    }

    /// Scans every `every` until `stop` turns true.
    pub async fn run(mut self, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped(&mut stop) => return,
            }
            match self.scan().await {
                Ok(report) => {
                    self.metrics
                        .reconcile_scans
                        .with_label_values(&["ok"])
                        .inc();
                    if report.republished > 0 {
                        tracing::info!(?report, "reconciler re-announced stranded uploads");
                    } else {
                        tracing::debug!(?report, "reconciler scan");
                    }
                }
                Err(err) => {
                    self.metrics
                        .reconcile_scans
                        .with_label_values(&["error"])
                        .inc();
                    tracing::warn!(error = %err, "reconciler scan failed; next period tries again");
                }
            }
        }
    }

    /// One pass over the whole catalog.
    pub async fn scan(&mut self) -> Result<ScanReport, StorageError> {
        let now = Timestamp::now();
        let after = self.after;
        self.recent.retain(|_, at| age(*at, now) < after);
        let mut report = ScanReport::default();
        let mut stranded = Vec::new();
        let mut pages = self.storage.pages(keys::CATALOG_PREFIX).await?;
        while let Some(entries) = pages.next().await {
            let entries = entries?;
            report.entries += entries.len();
            let old_enough: Vec<VideoId> = entries
                .iter()
                .filter(|key| {
                    keys::created_at_of_catalog_entry(key).is_some_and(|at| age(at, now) >= after)
                })
                .filter_map(|key| keys::id_of_catalog_entry(key))
                .filter(|id| !self.recent.contains_key(id))
                .collect();
            report.checked += old_enough.len();
            let mut reads = futures::stream::iter(old_enough)
                .map(|id| {
                    let storage = self.storage.clone();
                    async move { storage.read_record(id).await }
                })
                .buffer_unordered(PARALLEL_READS);
            while let Some(read) = reads.next().await {
                match read {
                    Ok(Some(record)) if is_stranded(&record, now, after) => stranded.push(record),
                    Ok(_) => {}
                    // One unreadable record must not hide the others.
                    Err(StorageError::CorruptRecord { key, detail }) => {
                        tracing::warn!(%key, %detail, "skipping an unreadable record");
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        for record in stranded {
            let event = VideoUploaded::of(&record);
            match self
                .publisher
                .publish_event(&self.uploads_topic, record.id, &event, &[])
                .await
            {
                Ok(_) => {
                    tracing::info!(video = %record.id, created_at = %record.created_at, "re-announced a stranded upload");
                    self.recent.insert(record.id, now);
                    self.metrics.reconciled.inc();
                    report.republished += 1;
                }
                Err(err) => {
                    tracing::warn!(video = %record.id, error = %err, "cannot re-announce; next scan tries again")
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_at(seconds: i64, status: VideoStatus) -> VideoRecord {
        let mut record = VideoRecord::uploaded(
            VideoId::random(),
            "t".into(),
            "f.mp4".into(),
            1,
            "video/mp4".into(),
            Timestamp::from_second(seconds).unwrap(),
        );
        record.status = status;
        record
    }

    #[test]
    fn only_old_uploaded_records_are_stranded() {
        let now = Timestamp::from_second(10_000).unwrap();
        let after = Duration::from_secs(600);
        assert!(is_stranded(
            &record_at(9_000, VideoStatus::Uploaded),
            now,
            after
        ));
        assert!(is_stranded(
            &record_at(9_400, VideoStatus::Uploaded),
            now,
            after
        ));
        assert!(!is_stranded(
            &record_at(9_500, VideoStatus::Uploaded),
            now,
            after
        ));
        for status in [
            VideoStatus::Queued,
            VideoStatus::Transcoding,
            VideoStatus::Ready,
            VideoStatus::Failed,
        ] {
            assert!(
                !is_stranded(&record_at(0, status), now, after),
                "{status:?}"
            );
        }
        // A clock that runs behind the record's does not count as old.
        assert!(!is_stranded(
            &record_at(20_000, VideoStatus::Uploaded),
            now,
            after
        ));
    }
}
