//! Listing and getting videos: newest first, paged with opaque cursors.

use serde_json::Value;
use xtream_tests::{Platform, Stack};

async fn upload(platform: &Platform, title: &str) -> String {
    let response = platform
        .client
        .post(platform.url("/api/videos"))
        .query(&[("title", title), ("filename", "clip.mp4")])
        .header("content-type", "video/mp4")
        .body(format!("bytes of {title}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let record: Value = response.json().await.unwrap();
    record["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn pages_through_the_catalog_newest_first() {
    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;
    let mut uploaded = Vec::new();
    // Back to back: the order is the insertion order, even for videos
    // created within the same millisecond.
    for n in 0..7 {
        uploaded.push(upload(platform, &format!("video {n}")).await);
    }
    uploaded.reverse();

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = "/api/videos?limit=3".to_owned();
    loop {
        let (status, page) = platform.get_json(&path).await.unwrap();
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let videos = page["videos"].as_array().unwrap();
        assert!(videos.len() <= 3);
        seen.extend(videos.iter().map(|v| v["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/videos?limit=3&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, uploaded);
    assert_eq!(pages, 3);

    // The default page holds all seven, newest first.
    let (_, page) = platform.get_json("/api/videos").await.unwrap();
    let titles: Vec<&str> = page["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles.first(), Some(&"video 6"));
    assert_eq!(titles.last(), Some(&"video 0"));
    assert!(page["next_cursor"].is_null());
}

#[tokio::test]
async fn an_empty_catalog_is_an_empty_page() {
    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;
    let (status, page) = platform.get_json("/api/videos").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(page, serde_json::json!({"videos": [], "next_cursor": null}));
}

#[tokio::test]
async fn bad_listing_and_lookup_requests_get_json_errors() {
    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;
    let cases = [
        ("/api/videos?limit=0", 400, "bad_request"),
        ("/api/videos?limit=101", 400, "bad_request"),
        ("/api/videos?cursor=not-a-cursor", 400, "bad_request"),
        (
            "/api/videos/6f9619ff-8b86-4011-b42d-00c04fc964ff",
            404,
            "not_found",
        ),
        ("/api/videos/not-an-id", 404, "not_found"),
        ("/api/videos/..%2F..%2Fetc", 404, "not_found"),
        ("/nowhere", 404, "not_found"),
    ];
    for (path, status, code) in cases {
        let (got, body) = platform.get_json(path).await.unwrap();
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    let response = platform
        .client
        .put(platform.url("/api/videos/6f9619ff-8b86-4011-b42d-00c04fc964ff"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

/// Spin keeps PostgreSQL pools per component: one component's requests
/// reuse its own connection and never another component's. Requests one
/// after another to two components leave one connection each.
#[tokio::test]
async fn each_component_keeps_its_own_database_connections() {
    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;
    for _ in 0..3 {
        let (status, _) = platform.get_json("/api/videos").await.unwrap();
        assert_eq!(status, 200);
        let ready = platform
            .client
            .get(platform.url("/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
    }
    let client = stack.db.connect().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        2,
        "one pooled connection for `videos`, one for `health`"
    );
}
