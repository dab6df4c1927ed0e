//! The worker under faults: crashes, shutdowns, corrupt uploads and lost
//! announcements, against a real Garage, a real broker (tansu) and the real
//! `xtream-worker` binary.

use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeSet;
use std::time::Duration;
use xtream_core::VideoRecord;
use xtream_core::events::{DEAD_LETTER_TOPIC, RESULTS_TOPIC, UPLOADS_TOPIC};
use xtream_tests::worker::{GROUP, corrupt_bytes, store_upload, wait_for_status};
use xtream_tests::{Bucket, Garage, Tansu, Worker, clips};

/// A dead worker's partitions move after this (also the harness's
/// default; spelled out because these tests depend on it).
const SESSION: (&str, &str) = ("XTREAM_KAFKA_SESSION_TIMEOUT", "6s");
const PATIENCE: Duration = Duration::from_secs(180);

struct Setup {
    garage: Garage,
    tansu: Tansu,
    clip: Vec<u8>,
    _dir: tempfile::TempDir,
}

async fn setup(seconds: u32) -> Setup {
    let garage = Garage::start().await.unwrap();
    let tansu = Tansu::start().await.unwrap();
    tansu.create_xtream_topics().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip =
        std::fs::read(clips::mp4(dir.path(), "clip.mp4", seconds, 1280, 720).unwrap()).unwrap();
    Setup {
        garage,
        tansu,
        clip,
        _dir: dir,
    }
}

impl Setup {
    /// Stores and announces an upload of `bytes`.
    async fn upload(&self, bytes: Vec<u8>) -> VideoRecord {
        let record = store_upload(&self.garage.bucket(), bytes, Timestamp::now())
            .await
            .unwrap();
        self.tansu.announce(&record).await.unwrap();
        record
    }
}

async fn settled(bucket: &Bucket, record: &VideoRecord, worker: &Worker) -> serde_json::Value {
    wait_for_status(
        bucket,
        &record.id.to_string(),
        &["ready", "failed"],
        PATIENCE,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()))
}

/// A video's keys, with its id taken out, so two videos compare.
async fn key_shape(bucket: &Bucket, record: &VideoRecord) -> BTreeSet<String> {
    let prefix = format!("videos/{}/", record.id);
    bucket
        .keys(&prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.strip_prefix(&prefix).unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_worker_killed_mid_transcode_finishes_the_video_after_restart() {
    let s = setup(10).await;
    let bucket = s.garage.bucket();
    let settings = [SESSION, ("XTREAM_X264_PRESET", "veryfast")];
    let mut worker = Worker::run(&s.garage, &s.tansu, &settings).await.unwrap();

    // A clean run, for the shape of a complete output.
    let clean = s.upload(s.clip.clone()).await;
    assert_eq!(settled(&bucket, &clean, &worker).await["status"], "ready");

    let crashed = s.upload(s.clip.clone()).await;
    wait_for_status(&bucket, &crashed.id.to_string(), &["transcoding"], PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));
    worker.kill();
    // Whatever the killed job left behind (partial segments, no master).
    let after_crash = key_shape(&bucket, &crashed).await;
    assert!(!after_crash.contains("hls/master.m3u8"), "{after_crash:?}");

    worker.start().await.unwrap();
    let record = settled(&bucket, &crashed, &worker).await;
    assert_eq!(record["status"], "ready", "{record}");
    assert_eq!(
        key_shape(&bucket, &crashed).await,
        key_shape(&bucket, &clean).await
    );

    let outcomes = s
        .tansu
        .records(RESULTS_TOPIC, 2, Duration::from_secs(10))
        .await
        .unwrap();
    let ready_for = |id: String| {
        outcomes
            .iter()
            .filter(|r| r.json()["video_id"] == id)
            .count()
    };
    assert!(ready_for(crashed.id.to_string()) >= 1);
    assert_eq!(
        ready_for(clean.id.to_string()),
        1,
        "the clean video is not redone"
    );
}

#[tokio::test]
async fn sigterm_lets_the_running_job_finish_and_commits_it() {
    let s = setup(6).await;
    let bucket = s.garage.bucket();
    let mut worker = Worker::run(
        &s.garage,
        &s.tansu,
        &[SESSION, ("XTREAM_SHUTDOWN_GRACE", "120s")],
    )
    .await
    .unwrap();
    let record = s.upload(s.clip.clone()).await;
    wait_for_status(&bucket, &record.id.to_string(), &["transcoding"], PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));

    let status = worker.terminate(Duration::from_secs(120)).await.unwrap();
    assert!(status.success(), "{status}\n{}", worker.log());
    let stored = wait_for_status(
        &bucket,
        &record.id.to_string(),
        &["ready"],
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(stored["status"], "ready");
    // Committed, so a new worker does not take it again.
    let committed = s.tansu.committed(GROUP, UPLOADS_TOPIC).await.unwrap();
    assert_eq!(committed.iter().flatten().count(), 1, "{committed:?}");
    assert_eq!(committed.iter().flatten().next(), Some(&1));
}

#[tokio::test]
async fn sigterm_past_the_grace_period_releases_the_job_for_the_next_worker() {
    let s = setup(10).await;
    let bucket = s.garage.bucket();
    let settings = [
        SESSION,
        ("XTREAM_SHUTDOWN_GRACE", "0s"),
        ("XTREAM_X264_PRESET", "veryfast"),
    ];
    let mut worker = Worker::run(&s.garage, &s.tansu, &settings).await.unwrap();
    let record = s.upload(s.clip.clone()).await;
    let id = record.id.to_string();
    wait_for_status(&bucket, &id, &["transcoding"], PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));

    let status = worker.terminate(Duration::from_secs(20)).await.unwrap();
    assert!(status.success(), "{status}\n{}", worker.log());
    let released = wait_for_status(&bucket, &id, &["queued"], Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        released["status"], "queued",
        "back in the queue, not stuck in transcoding"
    );
    assert_eq!(
        s.tansu
            .committed(GROUP, UPLOADS_TOPIC)
            .await
            .unwrap()
            .iter()
            .flatten()
            .count(),
        0
    );

    worker.start().await.unwrap();
    assert_eq!(settled(&bucket, &record, &worker).await["status"], "ready");
}

#[tokio::test]
async fn a_corrupt_upload_fails_with_a_reason_and_a_dead_letter_while_the_next_succeeds() {
    let s = setup(4).await;
    let bucket = s.garage.bucket();
    let worker = Worker::run(&s.garage, &s.tansu, &[SESSION]).await.unwrap();

    let corrupt = s.upload(corrupt_bytes(256 * 1024)).await;
    let good = s.upload(s.clip.clone()).await;

    let failed = settled(&bucket, &corrupt, &worker).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["failure_reason"].as_str().unwrap();
    assert!(reason.starts_with("not a playable video"), "{reason}");
    assert_eq!(settled(&bucket, &good, &worker).await["status"], "ready");

    let dead = s
        .tansu
        .records(DEAD_LETTER_TOPIC, 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].json()["video_id"], corrupt.id.to_string());
    assert_eq!(
        dead[0].json()["type"],
        "video.uploaded",
        "the event as it came, replayable"
    );
    assert_eq!(
        dead[0].header("xtream-failure-reason").as_deref(),
        Some(reason)
    );
    let outcomes = s
        .tansu
        .records(RESULTS_TOPIC, 2, Duration::from_secs(10))
        .await
        .unwrap();
    let failed_event = outcomes
        .iter()
        .find(|r| r.json()["type"] == "video.failed")
        .unwrap();
    assert_eq!(failed_event.json()["reason"], reason);

    assert_eq!(worker.metric("xtream_worker_jobs_failed_total").await, 1.0);
    assert_eq!(
        worker.metric("xtream_worker_jobs_succeeded_total").await,
        1.0
    );
    assert_eq!(
        worker.metric("xtream_worker_job_retries_total").await,
        0.0,
        "permanent errors are not retried"
    );
    // The failed video has no renditions.
    assert!(
        !bucket
            .keys(&format!("videos/{}/hls/", corrupt.id))
            .await
            .unwrap()
            .iter()
            .any(|_| true)
    );
}

#[tokio::test]
async fn the_reconciler_announces_uploads_stranded_without_an_event() {
    let s = setup(4).await;
    let bucket = s.garage.bucket();
    // An upload whose announcement was lost an hour ago: stored, never
    // published.
    let an_hour_ago = Timestamp::now() - SignedDuration::from_hours(1);
    let stranded = store_upload(&bucket, s.clip.clone(), an_hour_ago)
        .await
        .unwrap();
    // And a fresh one, announced normally, that must not be re-announced.
    let fresh = store_upload(&bucket, s.clip.clone(), Timestamp::now())
        .await
        .unwrap();

    let worker = Worker::run(
        &s.garage,
        &s.tansu,
        &[
            SESSION,
            ("XTREAM_RECONCILE_AFTER", "30s"),
            ("XTREAM_RECONCILE_EVERY", "1s"),
        ],
    )
    .await
    .unwrap();
    let record = settled(&bucket, &stranded, &worker).await;
    assert_eq!(record["status"], "ready", "{record}");
    assert_eq!(worker.metric("xtream_worker_reconciled_total").await, 1.0);
    let uploads = s
        .tansu
        .records(UPLOADS_TOPIC, 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].json()["video_id"], stranded.id.to_string());
    let untouched = wait_for_status(
        &bucket,
        &fresh.id.to_string(),
        &["uploaded"],
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(
        untouched["status"], "uploaded",
        "younger than XTREAM_RECONCILE_AFTER"
    );
}
