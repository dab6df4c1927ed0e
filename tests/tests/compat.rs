//! The original Xtream routes keep working for existing clients.

use serde_json::Value;
use xtream_tests::Stack;
use xtream_tests::bodies::{self, FormPart};

#[tokio::test]
async fn original_upload_list_and_get_routes_work() {
    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;

    // What `curl -F video=@clip.mp4 /upload` sends.
    let (body, content_type) = bodies::form(&[FormPart {
        name: "video",
        filename: Some("clip.mp4"),
        content_type: Some("application/octet-stream"),
        content: b"old client bytes",
    }]);
    let response = platform
        .client
        .post(platform.url("/upload"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let record: Value = response.json().await.unwrap();
    let id = record["id"].as_str().unwrap();
    assert_eq!(record["content_type"], "video/mp4");

    let (status, list) = platform.get_json("/videos").await.unwrap();
    assert_eq!(status, 200);
    let list = list.as_array().expect("GET /videos answers a JSON array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0], record);

    let (status, fetched) = platform.get_json(&format!("/video/{id}")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(fetched, record);

    // The new API sees the same video.
    let (_, fetched) = platform
        .get_json(&format!("/api/videos/{id}"))
        .await
        .unwrap();
    assert_eq!(fetched, record);

    let (status, body) = platform.get_json("/video/unknown").await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let response = platform
        .client
        .get(platform.url("/upload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}
