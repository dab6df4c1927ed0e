//! Uploads are announced on Kafka through the HTTP bridge, and an upload
//! made while the bridge is down is neither lost nor left stranded.

use serde_json::Value;
use std::time::Duration;
use xtream_tests::worker::wait_for_status;
use xtream_tests::{Stack, Worker, clips};

#[tokio::test]
async fn an_upload_is_announced_once_with_its_id_as_key() {
    let stack = Stack::start().await.unwrap();
    let response = stack.platform.upload_raw(b"bytes".to_vec()).await;
    assert_eq!(response.status(), 201);
    let record: Value = response.json().await.unwrap();

    let event = stack.kafka.the_upload_event().await;
    assert_eq!(event["video_id"], record["id"]);
    assert_eq!(event["size"], 5);
    assert_eq!(
        event["original_key"],
        format!("videos/{}/original", record["id"].as_str().unwrap())
    );
}

#[tokio::test]
async fn an_upload_during_a_bridge_outage_is_kept_and_queued_later() {
    let mut stack = Stack::start().await.unwrap();
    stack.bridge.kill();
    let dir = tempfile::tempdir().unwrap();
    let clip = clips::mp4(dir.path(), "clip.mp4", 2, 320, 240).unwrap();

    let response = stack
        .platform
        .upload_raw(std::fs::read(&clip).unwrap())
        .await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "queue_unavailable");
    let message = error["error"]["message"].as_str().unwrap();

    // The video is stored and listed, and its record says what happened.
    let (_, page) = stack.platform.get_json("/api/videos").await.unwrap();
    let video = &page["videos"][0];
    let id = video["id"].as_str().unwrap();
    assert!(message.contains(id), "{message}");
    assert_eq!(video["status"], "uploaded");
    assert!(
        video["status_detail"]
            .as_str()
            .unwrap()
            .contains("queued automatically")
    );

    // The worker's reconciler publishes what the function could not.
    let _worker = Worker::run(
        &stack.garage,
        &stack.kafka,
        &[
            ("XTREAM_RECONCILE_AFTER", "1s"),
            ("XTREAM_RECONCILE_EVERY", "1s"),
        ],
    )
    .await
    .unwrap();
    let ready = wait_for_status(
        &stack.garage.bucket(),
        id,
        &["ready"],
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    assert!(ready.get("status_detail").is_none(), "{ready}");
}
