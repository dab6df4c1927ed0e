//! Uploading through `POST /api/videos`: raw and multipart bodies, streamed
//! into a real Garage by the real component.

use serde_json::Value;
use xtream_tests::Stack;
use xtream_tests::bodies::{self, FormPart};

/// Everything an upload may have left: objects, unfinished multipart
/// uploads, and rows in each table (as `table: count` where not empty).
async fn stored_keys(stack: &Stack) -> Vec<String> {
    let bucket = stack.garage.bucket();
    let mut keys = bucket.keys("").await.unwrap();
    keys.extend(
        bucket
            .multipart_uploads("")
            .await
            .unwrap()
            .into_iter()
            .map(|(key, _)| format!("unfinished multipart upload of {key}")),
    );
    let tables = ["videos", "upload_sessions", "outbox", "video_deletions"];
    for (table, rows) in tables.iter().zip(stack.db.row_counts().await.unwrap()) {
        if rows != 0 {
            keys.push(format!("{table}: {rows}"));
        }
    }
    keys
}

#[tokio::test]
async fn raw_upload_stores_the_original_and_a_record() {
    let stack = Stack::start().await.unwrap();
    let (platform, garage) = (&stack.platform, &stack.garage);
    let content = bodies::patterned_vec(300_000, 1).await;

    let response = platform
        .client
        .post(platform.url("/api/videos?filename=holiday.mp4&title=Holiday%20%F0%9F%8C%B4"))
        .header("content-type", "video/mp4")
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let record: Value = response.json().await.unwrap();
    let id = record["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/videos/{id}"));
    assert_eq!(record["title"], "Holiday 🌴");
    assert_eq!(record["filename"], "holiday.mp4");
    assert_eq!(record["size"], 300_000);
    assert_eq!(record["content_type"], "video/mp4");
    assert_eq!(record["status"], "uploaded");
    assert!(record["created_at"].as_str().unwrap().ends_with('Z'));

    let bucket = garage.bucket();
    let original = bucket.get(&format!("videos/{id}/original")).await.unwrap();
    assert_eq!(original.as_deref(), Some(content.as_slice()));
    assert_eq!(
        bucket
            .content_type(&format!("videos/{id}/original"))
            .await
            .unwrap()
            .as_deref(),
        Some("video/mp4")
    );
    let stored = xtream_tests::worker::record(&stack.db, id)
        .await
        .unwrap()
        .expect("the video has a row");
    // The API shows the stored record plus its playback links.
    let mut shown = record.clone();
    shown.as_object_mut().unwrap().remove("playback");
    assert_eq!(stored, shown);
    assert_eq!(
        record["playback"]["original"],
        format!("{location}/original")
    );
    assert!(record["playback"].get("hls").is_none());

    let (status, fetched) = platform.get_json(&location).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(fetched, record);
}

#[tokio::test]
async fn multipart_upload_takes_the_video_field_and_title() {
    let stack = Stack::start().await.unwrap();
    let (platform, garage) = (&stack.platform, &stack.garage);
    // Larger than one 8 MiB part, so the S3 multipart path is taken.
    let content = bodies::patterned_vec(9 * 1024 * 1024 + 123, 2).await;
    let (body, content_type) = bodies::form(&[
        FormPart {
            name: "note",
            filename: None,
            content_type: None,
            content: b"ignored",
        },
        FormPart {
            name: "video",
            filename: Some("C:\\clips\\cat.MOV"),
            // What curl sends for files it has no type for.
            content_type: Some("application/octet-stream"),
            content: &content,
        },
        FormPart {
            name: "title",
            filename: None,
            content_type: None,
            content: "Le chat".as_bytes(),
        },
    ]);

    let response = platform
        .client
        .post(platform.url("/api/videos"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let record: Value = response.json().await.unwrap();
    assert_eq!(record["title"], "Le chat");
    assert_eq!(record["filename"], "cat.MOV");
    assert_eq!(record["content_type"], "video/quicktime");
    assert_eq!(record["size"], content.len());

    let id = record["id"].as_str().unwrap();
    let (digest, length) = garage
        .bucket()
        .digest(&format!("videos/{id}/original"))
        .await
        .unwrap();
    assert_eq!(length, content.len() as u64);
    assert_eq!(
        digest,
        bodies::patterned_digest(content.len() as u64, 2).await
    );
}

#[tokio::test]
async fn title_defaults_to_the_file_name() {
    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;
    let (body, content_type) = bodies::form(&[FormPart {
        name: "video",
        filename: Some("sunset over the sea.webm"),
        content_type: Some("video/webm"),
        content: b"not checked until the worker",
    }]);
    let response = platform
        .client
        .post(platform.url("/api/videos"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let record: Value = response.json().await.unwrap();
    assert_eq!(record["title"], "sunset over the sea");
}

/// Asserts a JSON error response and that nothing of an upload was stored.
async fn assert_refused(
    stack: &Stack,
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(!message.is_empty());
    assert_eq!(
        stored_keys(stack).await,
        Vec::<String>::new(),
        "a refused upload left objects"
    );
    message
}

#[tokio::test]
async fn refuses_bad_uploads_with_json_errors_and_stores_nothing() {
    let stack = Stack::start_with(&[("max_upload_bytes", "10MiB")])
        .await
        .unwrap();
    let platform = &stack.platform;
    let post = || platform.client.post(platform.url("/api/videos"));

    // 415: not a video.
    let response = post()
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_refused(&stack, response, 415, "unsupported_media_type").await;
    let (body, content_type) = bodies::form(&[FormPart {
        name: "video",
        filename: Some("notes.txt"),
        content_type: Some("text/plain"),
        content: b"hello",
    }]);
    let response = post()
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_refused(&stack, response, 415, "unsupported_media_type").await;

    // 411: a streamed body without a declared length.
    let stream = bodies::patterned(1000, 3);
    let response = post()
        .header("content-type", "video/mp4")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_refused(&stack, response, 411, "length_required").await;

    // 413: declared too large, refused before the body is read.
    let response = post()
        .header("content-type", "video/mp4")
        .header("content-length", (11u64 << 20).to_string())
        .body(reqwest::Body::wrap_stream(bodies::patterned(11 << 20, 4)))
        .send()
        .await;
    // The server may answer and close before the client has sent it all.
    if let Ok(response) = response {
        assert_refused(&stack, response, 413, "payload_too_large").await;
    }

    // 413: a multipart file that grows past the limit while streaming, after
    // some parts already went to S3 (they must be aborted).
    let big = bodies::patterned_vec((10 << 20) + 1, 5).await;
    let (body, content_type) = bodies::form(&[FormPart {
        name: "video",
        filename: Some("big.mp4"),
        content_type: Some("video/mp4"),
        content: &big,
    }]);
    let response = post()
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_refused(&stack, response, 413, "payload_too_large").await;

    // 400: a form without a video, an empty video, a truncated form.
    let (body, content_type) = bodies::form(&[FormPart {
        name: "title",
        filename: None,
        content_type: None,
        content: b"x",
    }]);
    let response = post()
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_refused(&stack, response, 400, "bad_request").await;
    let (body, content_type) = bodies::form(&[FormPart {
        name: "video",
        filename: Some("empty.mp4"),
        content_type: Some("video/mp4"),
        content: b"",
    }]);
    let response = post()
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_refused(&stack, response, 400, "bad_request").await;
    let (mut body, content_type) = bodies::form(&[FormPart {
        name: "video",
        filename: Some("cut.mp4"),
        content_type: Some("video/mp4"),
        content: &big[..1 << 20],
    }]);
    body.truncate(body.len() - 10);
    let response = post()
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_refused(&stack, response, 400, "bad_request").await;

    // 400: a title with control characters.
    let response = post()
        .header("content-type", "video/mp4")
        .query(&[("title", "bad\u{7}title")])
        .body("x")
        .send()
        .await
        .unwrap();
    assert_refused(&stack, response, 400, "bad_request").await;

    // 400: multipart without a boundary.
    let response = post()
        .header("content-type", "multipart/form-data")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_refused(&stack, response, 400, "bad_request").await;

    // 405 on the collection.
    let response = platform
        .client
        .delete(platform.url("/api/videos"))
        .send()
        .await
        .unwrap();
    assert_refused(&stack, response, 405, "method_not_allowed").await;

    // And the service still works afterwards.
    let response = post()
        .header("content-type", "video/mp4")
        .body("ok")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}
