//! Parts failing under a running platform: storage going away mid-upload,
//! the Kafka broker restarting while uploads flow. Nothing partial becomes
//! visible, nothing is lost, nothing is done twice, and service resumes.

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use xtream_tests::worker::wait_for_status;
use xtream_tests::{Bucket, Stack, bodies, clips};

const PATIENCE: Duration = Duration::from_secs(180);

/// A video's keys with its id taken out, so two videos compare.
async fn key_shape(bucket: &Bucket, id: &str) -> BTreeSet<String> {
    let prefix = format!("videos/{id}/");
    let keys = bucket.keys(&prefix).await.unwrap();
    keys.into_iter()
        .map(|k| k.strip_prefix(&prefix).unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_lost_mid_upload_leaves_nothing_and_service_recovers() {
    let mut stack = Stack::start().await.unwrap();
    // Big enough for several S3 parts; Garage dies while they are sent.
    let size: u64 = 64 << 20;
    let request = stack
        .platform
        .streamed_upload(size, bodies::patterned(size, 7))
        .send();
    let outage = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stack.garage.stop();
    };
    let (response, ()) = tokio::join!(request, outage);
    // The server answers 503 as soon as a part cannot be stored; a client
    // still sending may see the connection close instead, before the
    // answer or in the middle of its body.
    if let Ok(response) = response {
        assert_eq!(response.status(), 503);
        if let Ok(body) = response.json::<Value>().await {
            assert_eq!(body["error"]["code"], "storage_unavailable");
        }
    }
    // The listing comes from the database, which is up: it answers, and
    // the failed upload is not in it.
    let (status, body) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!(
        (status, &body["videos"]),
        (200, &Value::Array(vec![])),
        "{body}"
    );

    stack.garage.resume().await.unwrap();
    let bucket = stack.garage.bucket();
    assert_eq!(bucket.keys("videos/").await.unwrap(), Vec::<String>::new());
    assert_eq!(stack.db.row_counts().await.unwrap(), [0; 4]);
    let (_, page) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!(page["videos"], Value::Array(vec![]));
    assert_eq!(
        stack
            .platform
            .upload_raw(b"after the outage".to_vec())
            .await
            .status(),
        201
    );
}

/// Uploads `clip`, which must be kept whether or not it could be announced
/// (201 or 503); its status and id.
async fn upload_kept(stack: &Stack, clip: &[u8]) -> (u16, String) {
    let response = stack.platform.upload_raw(clip.to_vec()).await;
    let status = response.status().as_u16();
    assert!([201, 503].contains(&status), "{status}");
    let (_, page) = stack
        .platform
        .get_json("/api/videos?limit=1")
        .await
        .unwrap();
    (status, page["videos"][0]["id"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_while_uploads_flow_loses_no_video_and_duplicates_nothing() {
    let mut stack = Stack::start().await.unwrap();
    let worker = stack
        .worker(&[("XTREAM_RELAY_AFTER", "2s"), ("XTREAM_RELAY_EVERY", "1s")])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = std::fs::read(clips::mp4(dir.path(), "clip.mp4", 2, 640, 360).unwrap()).unwrap();
    let bucket = stack.garage.bucket();

    // One video through before the restart, as the reference shape.
    let before: Value = stack
        .platform
        .upload_raw(clip.clone())
        .await
        .json()
        .await
        .unwrap();
    let before_id = before["id"].as_str().unwrap().to_owned();
    wait_for_status(&stack.db, &before_id, &["ready"], PATIENCE)
        .await
        .unwrap();

    // The broker goes away (its in-memory log with it) while uploads
    // continue: the function answers 201 or, while the bridge cannot
    // deliver, 503 with the video kept.
    stack.kafka.stop();
    let mut uploaded = Vec::new();
    for _ in 0..2 {
        uploaded.push(upload_kept(&stack, &clip).await.1);
    }
    stack.kafka.resume().await.unwrap();
    stack.kafka.create_xtream_topics().await.unwrap();
    // Publishing recovers once the bridge reconnects.
    let mut recovered = false;
    for _ in 0..30 {
        let (status, id) = upload_kept(&stack, &clip).await;
        uploaded.push(id);
        if status == 201 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        recovered,
        "uploads were not announced again after the broker came back; bridge log:\n{}",
        stack.bridge.log()
    );

    let reference = key_shape(&bucket, &before_id).await;
    for id in &uploaded {
        let record = wait_for_status(&stack.db, id, &["ready"], PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));
        assert_eq!(record["status"], "ready");
        assert_eq!(key_shape(&bucket, id).await, reference, "outputs of {id}");
    }
    // Each video was transcoded once: redelivered or re-announced events
    // for a video already done are skipped, not run again.
    let videos = (1 + uploaded.len()) as f64;
    let mut succeeded = 0.0;
    // A job counts as succeeded once its outcome is on Kafka, which comes
    // after the row says ready and may wait for the producer to reconnect.
    for _ in 0..120 {
        succeeded = worker.metric("xtream_worker_jobs_succeeded_total").await;
        if succeeded >= videos {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(succeeded, videos, "worker log:\n{}", worker.log());
    // Every announcement got out: nothing is left unsent in the outbox.
    for id in uploaded.iter().chain([&before_id]) {
        assert_eq!(stack.db.traces(id).await.unwrap().unsent, 0, "{id}");
    }
}
