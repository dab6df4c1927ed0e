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

    // Listing reads the database only, so it keeps answering; writes say
    // what is wrong instead of failing obscurely.
    let (status, body) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!((status, &body["videos"]), (200, &Value::Array(vec![])));
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
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_unavailable");

    stack.garage.resume().await.unwrap();
    let (status, _) = stack.platform.get_json("/health/ready").await.unwrap();
    assert_eq!(status, 200);
    let (_, page) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!(
        page["videos"],
        Value::Array(vec![]),
        "the failed upload left a record"
    );
    assert_eq!(stack.db.row_counts().await.unwrap(), [0; 4]);
    assert_eq!(
        stack.garage.bucket().keys("").await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn readiness_follows_the_database_down_and_back() {
    let mut stack = Stack::start_with_private_db(&[]).await.unwrap();
    stack.db.checkpoint().await.unwrap();
    stack.db.stop().unwrap();
    let (status, body) = stack.platform.get_json("/health").await.unwrap();
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
    let (status, body) = stack.platform.get_json("/health/ready").await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    for path in [
        "/api/videos",
        "/api/videos/6f9619ff-8b86-4011-b42d-00c04fc964ff",
    ] {
        let (status, body) = stack.platform.get_json(path).await.unwrap();
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("database_unavailable")),
            "{path}: {body}"
        );
    }

    stack.db.resume().await.unwrap();
    let (status, body) = stack.platform.get_json("/health/ready").await.unwrap();
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"status": "ready"}))
    );
    let (status, page) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!((status, &page["videos"]), (200, &Value::Array(vec![])));
}

#[tokio::test]
async fn readiness_fails_without_the_schema() {
    let stack = Stack::start().await.unwrap();
    let client = stack.db.connect().await.unwrap();
    client
        .batch_execute("DROP TABLE videos CASCADE")
        .await
        .unwrap();
    let (status, body) = stack.platform.get_json("/health/ready").await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("migrate"),
        "{body}"
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

/// A malformed setting makes the platform not ready, and readiness names it
/// and says what to fix, where an operator looks first.
#[tokio::test]
async fn readiness_names_a_malformed_setting() {
    for (name, value, says) in [
        // A path makes the templated allowed_outbound_hosts entry invalid:
        // the host still starts, as Spin does, and readiness says why.
        ("s3_endpoint", "http://127.0.0.1:9/xtream", "s3_endpoint"),
        ("max_upload_bytes", "ten gigabytes", "max_upload_bytes"),
        ("max_concurrent_uploads", "0", "max_concurrent_uploads"),
        ("read_requires_key", "maybe", "read_requires_key"),
        ("s3_public_endpoint", "s3.example.com", "s3_public_endpoint"),
    ] {
        let stack = Stack::start_with(&[(name, value)]).await.unwrap();
        let (status, body) = stack.platform.get_json("/health/ready").await.unwrap();
        assert_eq!(status, 503, "{name}: {body}");
        assert_eq!(body["error"]["code"], "misconfigured", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{name}: {message}");
        // Liveness stays up: restarting does not fix a setting.
        let (status, _) = stack.platform.get_json("/health").await.unwrap();
        assert_eq!(status, 200);
    }
}
