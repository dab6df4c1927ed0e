//! The worker under faults: crashes, shutdowns, corrupt uploads and lost
//! announcements, against a real Garage, a real broker (tansu) and the real
//! `xtream-worker` binary.

use std::collections::BTreeSet;
use std::time::Duration;
use xtream_core::VideoRecord;
use xtream_core::events::{DEAD_LETTER_TOPIC, RESULTS_TOPIC, UPLOADS_TOPIC};
use xtream_tests::worker::{
    GROUP, corrupt_bytes, mark_announced, migrate, record, store_upload, wait_for_status,
};
use xtream_tests::{Bucket, Garage, Postgres, Tansu, Worker, clips};

/// A dead worker's partitions move after this (also the harness's
/// default; spelled out because these tests depend on it).
const SESSION: (&str, &str) = ("XTREAM_KAFKA_SESSION_TIMEOUT", "6s");
const PATIENCE: Duration = Duration::from_secs(180);

struct Setup {
    garage: Garage,
    tansu: Tansu,
    db: Postgres,
    clip: Vec<u8>,
    _dir: tempfile::TempDir,
}

async fn setup(seconds: u32) -> Setup {
    let garage = Garage::start().await.unwrap();
    let tansu = Tansu::start().await.unwrap();
    tansu.create_xtream_topics().await.unwrap();
    let db = Postgres::start().await.unwrap();
    migrate(&db).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip =
        std::fs::read(clips::mp4(dir.path(), "clip.mp4", seconds, 1280, 720).unwrap()).unwrap();
    Setup {
        garage,
        tansu,
        db,
        clip,
        _dir: dir,
    }
}

impl Setup {
    /// Stores and announces an upload of `bytes`, and marks its outbox
    /// entry sent, as the component does.
    async fn upload(&self, bytes: Vec<u8>) -> VideoRecord {
        let record = store_upload(&self.garage.bucket(), &self.db, bytes, Duration::ZERO)
            .await
            .unwrap();
        self.tansu.announce(&record).await.unwrap();
        let id = record.id.to_string();
        assert_eq!(mark_announced(&self.db, &id).await.unwrap(), 1);
        record
    }

    async fn worker(&self, extra: &[(&str, &str)]) -> Worker {
        Worker::run(&self.garage, &self.tansu, &self.db, extra)
            .await
            .unwrap()
    }
}

async fn settled(db: &Postgres, record: &VideoRecord, worker: &Worker) -> serde_json::Value {
    wait_for_status(db, &record.id.to_string(), &["ready", "failed"], PATIENCE)
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
    let mut worker = s.worker(&settings).await;

    // A clean run, for the shape of a complete output.
    let clean = s.upload(s.clip.clone()).await;
    assert_eq!(settled(&s.db, &clean, &worker).await["status"], "ready");

    let crashed = s.upload(s.clip.clone()).await;
    wait_for_status(&s.db, &crashed.id.to_string(), &["transcoding"], PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));
    worker.kill();
    // Killed before the job ended: whatever it left behind (partial
    // segments, perhaps growing playlists already published) belongs to
    // an unfinished video.
    let after_crash = record(&s.db, &crashed.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after_crash["status"], "transcoding", "{after_crash}");

    worker.start().await.unwrap();
    let record = settled(&s.db, &crashed, &worker).await;
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
    let mut worker = s
        .worker(&[SESSION, ("XTREAM_SHUTDOWN_GRACE", "120s")])
        .await;
    let record = s.upload(s.clip.clone()).await;
    wait_for_status(&s.db, &record.id.to_string(), &["transcoding"], PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));

    let status = worker.terminate(Duration::from_secs(120)).await.unwrap();
    assert!(status.success(), "{status}\n{}", worker.log());
    let stored = wait_for_status(
        &s.db,
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
    let settings = [
        SESSION,
        ("XTREAM_SHUTDOWN_GRACE", "0s"),
        ("XTREAM_X264_PRESET", "veryfast"),
    ];
    let mut worker = s.worker(&settings).await;
    let record = s.upload(s.clip.clone()).await;
    let id = record.id.to_string();
    wait_for_status(&s.db, &id, &["transcoding"], PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));

    let status = worker.terminate(Duration::from_secs(20)).await.unwrap();
    assert!(status.success(), "{status}\n{}", worker.log());
    let released = wait_for_status(&s.db, &id, &["queued"], Duration::from_secs(1))
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
    assert_eq!(settled(&s.db, &record, &worker).await["status"], "ready");
}

#[tokio::test]
async fn a_corrupt_upload_fails_with_a_reason_and_a_dead_letter_while_the_next_succeeds() {
    let s = setup(4).await;
    let bucket = s.garage.bucket();
    let worker = s.worker(&[SESSION]).await;

    let corrupt = s.upload(corrupt_bytes(256 * 1024)).await;
    let good = s.upload(s.clip.clone()).await;

    let failed = settled(&s.db, &corrupt, &worker).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["failure_reason"].as_str().unwrap();
    assert!(reason.starts_with("not a playable video"), "{reason}");
    assert_eq!(settled(&s.db, &good, &worker).await["status"], "ready");

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

/// The reconciler, which re-announced S3 records stuck in `uploaded`,
/// became the outbox relay: an event written with its upload but never
/// sent is published once by the worker, while events the component sent,
/// and events not yet overdue, are not.
#[tokio::test]
async fn the_outbox_relay_announces_uploads_stranded_without_an_event() {
    let s = setup(4).await;
    let bucket = s.garage.bucket();
    // An upload whose announcement was lost an hour ago: stored with its
    // outbox entry, never published.
    let hour = Duration::from_secs(3600);
    let stranded = store_upload(&bucket, &s.db, s.clip.clone(), hour)
        .await
        .unwrap();
    // One as old whose event the component did send: not sent again.
    let sent = store_upload(&bucket, &s.db, s.clip.clone(), hour)
        .await
        .unwrap();
    mark_announced(&s.db, &sent.id.to_string()).await.unwrap();
    // And a fresh one, not overdue yet, that must not be announced now.
    let fresh = store_upload(&bucket, &s.db, s.clip.clone(), Duration::ZERO)
        .await
        .unwrap();

    let worker = s
        .worker(&[
            SESSION,
            ("XTREAM_RELAY_AFTER", "30s"),
            ("XTREAM_RELAY_EVERY", "1s"),
        ])
        .await;
    let record = settled(&s.db, &stranded, &worker).await;
    assert_eq!(record["status"], "ready", "{record}");
    assert_eq!(worker.metric("xtream_worker_relayed_total").await, 1.0);
    let uploads = s
        .tansu
        .records(UPLOADS_TOPIC, 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert_eq!(uploads[0].json()["video_id"], stranded.id.to_string());
    assert_eq!(uploads[0].json()["type"], "video.uploaded");
    let stranded_traces = s.db.traces(&stranded.id.to_string()).await.unwrap();
    assert_eq!((stranded_traces.outbox, stranded_traces.unsent), (1, 0));
    for (record, unsent) in [(&sent, 0), (&fresh, 1)] {
        let id = record.id.to_string();
        let untouched = wait_for_status(&s.db, &id, &["uploaded"], Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(
            untouched["status"], "uploaded",
            "sent already, or younger than XTREAM_RELAY_AFTER"
        );
        assert_eq!(s.db.traces(&id).await.unwrap().unsent, unsent, "{id}");
    }
}

/// Uploads are untrusted. A playlist or concat script disguised as a video
/// would make ffmpeg open what it names: an HTTP URL inside the cluster
/// (request forgery) or a local file. Each is refused as a container we do
/// not accept, and nothing it names is opened: the HTTP server sees no
/// connection, and the local files, real video a followed reference would
/// have transcoded, are not transcoded.
#[tokio::test]
async fn playlists_and_concat_scripts_are_refused_without_opening_what_they_name() {
    let s = setup(2).await;
    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("segment.ts");
    let clip = dir.path().join("clip.mp4");
    std::fs::write(&clip, &s.clip).unwrap();
    clips::ffmpeg(&[
        "-i",
        clip.to_str().unwrap(),
        "-c",
        "copy",
        "-f",
        "mpegts",
        segment.to_str().unwrap(),
    ])
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let playlist = |entry: String| {
        format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{entry}\n#EXT-X-ENDLIST\n")
    };
    let hostile = [
        playlist(format!("http://127.0.0.1:{port}/segment.ts")),
        playlist(format!("file://{}", segment.display())),
        format!("ffconcat version 1.0\nfile '{}'\n", clip.display()),
    ];
    let worker = s.worker(&[SESSION]).await;
    let mut uploads = Vec::new();
    for bytes in hostile {
        uploads.push(s.upload(bytes.into_bytes()).await);
    }
    for upload in &uploads {
        let settled = settled(&s.db, upload, &worker).await;
        assert_eq!(settled["status"], "failed", "{settled}");
        let reason = settled["failure_reason"].as_str().unwrap();
        assert!(
            reason.contains("not a video container we accept"),
            "{reason}"
        );
    }
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "ffmpeg fetched a URL named in an upload"
    );
    assert_eq!(worker.metric("xtream_worker_jobs_failed_total").await, 3.0);
}

/// A video whose job died without its event coming back (committed, or
/// lost with a broker) would stay `transcoding` forever. Jobs renew a lease
/// while they run; the sweeper queues a video whose lease ran out again,
/// and it is transcoded. One whose job still renews is left alone.
#[tokio::test]
async fn a_video_whose_job_stopped_renewing_its_lease_is_queued_again() {
    let s = setup(2).await;
    let bucket = s.garage.bucket();
    let abandoned = store_upload(&bucket, &s.db, s.clip.clone(), Duration::ZERO)
        .await
        .unwrap();
    let running = store_upload(&bucket, &s.db, s.clip.clone(), Duration::ZERO)
        .await
        .unwrap();
    let client = s.db.connect().await.unwrap();
    for (record, last_renewed) in [(&abandoned, "1 hour"), (&running, "1 second")] {
        let id = record.id.to_string();
        // Its event was handled (sent and committed) and its job is gone.
        mark_announced(&s.db, &id).await.unwrap();
        client
            .execute(
                "UPDATE videos SET status = 'transcoding', \
                 updated_at = now() - $2::text::interval WHERE id = $1::text::uuid",
                &[&id, &last_renewed],
            )
            .await
            .unwrap();
    }

    let worker = s
        .worker(&[
            SESSION,
            ("XTREAM_JOB_LEASE", "10m"),
            ("XTREAM_SWEEP_EVERY", "1s"),
            ("XTREAM_RELAY_AFTER", "0s"),
            ("XTREAM_RELAY_EVERY", "1s"),
        ])
        .await;
    let ready = settled(&s.db, &abandoned, &worker).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let uploads = s
        .tansu
        .records(UPLOADS_TOPIC, 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(uploads.len(), 1, "announced again once: {uploads:?}");
    assert_eq!(uploads[0].json()["video_id"], abandoned.id.to_string());
    let untouched = record(&s.db, &running.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched["status"], "transcoding", "{untouched}");
    assert_eq!(
        s.db.traces(&running.id.to_string()).await.unwrap().outbox,
        1
    );
}
