//! Liveness and readiness, including while storage is down.

use serde_json::Value;
use xtream_tests::Stack;

#[tokio::test]
async fn liveness_answers_without_storage() {
    let mut stack = Stack::start().await.unwrap();
    stack.garage.stop();
    let (status, body) = stack.platform.get_json("/health").await.unwrap();
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
}

#[tokio::test]
async fn readiness_follows_storage_down_and_back() {
    let mut stack = Stack::start().await.unwrap();
    let (status, body) = stack.platform.get_json("/health/ready").await.unwrap();
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"status": "ready"}))
    );

    stack.garage.stop();
    let (status, body) = stack.platform.get_json("/health/ready").await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "storage_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{body}"
    );

    // The API says the same instead of failing obscurely.
    let (status, body) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("storage_unavailable"))
    );
    let response = stack
        .platform
        .client
        .post(stack.platform.url("/api/videos"))
        .header("content-type", "video/mp4")
        .body("during the outage")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);

    stack.garage.resume().await.unwrap();
    let (status, _) = stack.platform.get_json("/health/ready").await.unwrap();
    assert_eq!(status, 200);
    let (_, page) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!(
        page["videos"],
        Value::Array(vec![]),
        "the failed upload left a record"
    );
}

#[tokio::test]
async fn readiness_fails_with_wrong_credentials() {
    let wrong_secret = "0".repeat(64);
    let stack = Stack::start_with(&[("s3_secret_key", &wrong_secret)])
        .await
        .unwrap();
    let (status, body) = stack.platform.get_json("/health/ready").await.unwrap();
    assert_eq!(status, 503);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("403"),
        "{body}"
    );
}
