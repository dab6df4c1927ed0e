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
    // Its outbox entry was marked sent, so the relay will not send it again.
    let traces = stack
        .db
        .traces(record["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!((traces.videos, traces.outbox, traces.unsent), (1, 1, 0));
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
    let message = upload_not_queued(&stack).await;

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

    // Its event waits in the outbox, unsent, with why.
    let traces = stack.db.traces(id).await.unwrap();
    assert_eq!((traces.videos, traces.outbox, traces.unsent), (1, 1, 1));
    let client = stack.db.connect().await.unwrap();
    let row = client
        .query_one(
            "SELECT attempts, last_error FROM outbox WHERE key = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert!(row.get::<_, Option<String>>(1).is_some());

    // The worker's outbox relay publishes what the function could not
    // (it replaced the reconciler that re-announced S3 records), once.
    announced_later_exactly_once(&stack, id).await;
}

/// Where transcoders scale to zero, `xtream-worker maintain` alone sends
/// what the functions could not, and takes no job.
#[tokio::test]
async fn the_maintenance_worker_relays_without_transcoding() {
    let mut stack = Stack::start().await.unwrap();
    stack.bridge.kill();
    let response = stack.platform.upload_raw(b"not yet a video".to_vec()).await;
    assert_eq!(response.status(), 503);
    let (_, page) = stack.platform.get_json("/api/videos").await.unwrap();
    let id = page["videos"][0]["id"].as_str().unwrap().to_owned();

    let maintenance = Worker::maintain(
        &stack.garage,
        &stack.kafka,
        &stack.db,
        &[("XTREAM_RELAY_AFTER", "1s"), ("XTREAM_RELAY_EVERY", "1s")],
    )
    .await
    .unwrap();
    let event = stack.kafka.the_upload_event().await;
    assert_eq!(event["video_id"], id.as_str());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stack.db.traces(&id).await.unwrap().unsent != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            maintenance.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(maintenance.metric("xtream_worker_relayed_total").await, 1.0);
    // Nobody consumed the event: the video waits for a transcoder.
    let (_, video) = stack
        .platform
        .get_json(&format!("/api/videos/{id}"))
        .await
        .unwrap();
    assert_eq!(video["status"], "uploaded", "{video}");
    assert_eq!(
        maintenance.metric("xtream_worker_jobs_started_total").await,
        0.0
    );
}

/// Strimzi's bridge answers 200 even when the broker did not take a record,
/// with an error in that record's place: the upload must count as not
/// announced, say why, and be announced later, once.
#[tokio::test]
async fn an_upload_whose_event_the_broker_refuses_is_kept_and_queued_later() {
    let mut stack = Stack::start().await.unwrap();
    stack.kafka.stop();
    let message = upload_not_queued(&stack).await;
    // "video {id} was stored but could not be queued ..."
    let id = message.split_whitespace().nth(1).unwrap().to_owned();
    let (status, video) = stack
        .platform
        .get_json(&format!("/api/videos/{id}"))
        .await
        .unwrap();
    assert_eq!((status, video["status"].as_str()), (200, Some("uploaded")));
    let detail = video["status_detail"].as_str().unwrap();
    assert!(
        detail.contains("could not deliver the event") && detail.contains("queued automatically"),
        "{detail}"
    );
    assert_eq!(stack.db.traces(&id).await.unwrap().unsent, 1);

    stack.kafka.resume().await.unwrap();
    stack.kafka.create_xtream_topics().await.unwrap();
    announced_later_exactly_once(&stack, &id).await;
    assert_eq!(stack.bridge.contract_violations(), Vec::<String>::new());
}

/// Uploads a short clip that the platform stores but cannot announce: a 503
/// `queue_unavailable`, whose message it returns.
async fn upload_not_queued(stack: &Stack) -> String {
    let dir = tempfile::tempdir().unwrap();
    let clip = clips::mp4(dir.path(), "clip.mp4", 2, 320, 240).unwrap();
    let response = stack
        .platform
        .upload_raw(std::fs::read(&clip).unwrap())
        .await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "queue_unavailable");
    error["error"]["message"].as_str().unwrap().to_owned()
}

/// The worker's outbox relay sends the waiting event once, and the video is
/// transcoded.
async fn announced_later_exactly_once(stack: &Stack, id: &str) {
    let worker = stack
        .worker(&[("XTREAM_RELAY_AFTER", "1s"), ("XTREAM_RELAY_EVERY", "1s")])
        .await
        .unwrap();
    let ready = wait_for_status(&stack.db, id, &["ready"], Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));
    assert!(ready.get("status_detail").is_none(), "{ready}");
    let event = stack.kafka.the_upload_event().await;
    assert_eq!(event["video_id"], id);
    assert_eq!(stack.db.traces(id).await.unwrap().unsent, 0);
    assert_eq!(worker.metric("xtream_worker_relayed_total").await, 1.0);
}
