//! The original Xtream routes keep working for existing clients.

use serde_json::Value;
use xtream_core::metadata::WHOLE_CATALOG_CACHE_MAX_VIDEOS;
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

    // Stored as any upload is: one row, its announcement sent once.
    let traces = stack.db.traces(id).await.unwrap();
    assert_eq!((traces.videos, traces.outbox, traces.unsent), (1, 1, 0));
    assert_eq!(stack.kafka.the_upload_event().await["video_id"], id);
}

/// Uploads `content` through `POST /upload` and returns the answer.
async fn legacy_upload(stack: &Stack, content: &[u8]) -> Value {
    let (body, content_type) = bodies::form(&[FormPart {
        name: "video",
        filename: Some("clip.mp4"),
        content_type: Some("video/mp4"),
        content,
    }]);
    let response = stack
        .platform
        .client
        .post(stack.platform.url("/upload"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
async fn original_listing_pages_with_a_cursor_header_newest_first() {
    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;
    let mut uploaded = Vec::new();
    for n in 0..5 {
        let video = legacy_upload(&stack, format!("clip {n}").as_bytes()).await;
        uploaded.push(video["id"].as_str().unwrap().to_owned());
    }
    uploaded.reverse();

    // Without a limit the original answered everything: one bare array.
    let response = platform
        .client
        .get(platform.url("/videos"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-next-cursor").is_none());
    let all: Vec<Value> = response.json().await.unwrap();
    let ids: Vec<&str> = all.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, uploaded);

    // With one, the next page's cursor rides in X-Next-Cursor.
    let mut seen = Vec::new();
    let mut path = "/videos?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let response = platform
            .client
            .get(platform.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        pages += 1;
        let cursor = response
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<Value> = response.json().await.unwrap();
        assert!(page.len() <= 2, "{page:?}");
        seen.extend(page.iter().map(|v| v["id"].as_str().unwrap().to_owned()));
        match cursor {
            Some(cursor) => path = format!("/videos?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, uploaded);
    assert_eq!(pages, 3);

    // A cursor the server did not make is refused, as on the new API.
    let (status, body) = platform.get_json("/videos?cursor=forged").await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    // Every video is a row, and every row is listed.
    assert_eq!(stack.db.row_counts().await.unwrap()[0], 5);
}

/// Stores `count` videos titled "Stored 1" to "Stored {count}", in that
/// order (so the last is the newest), straight into the database.
async fn store_videos(client: &tokio_postgres::Client, count: i32) {
    client
        .execute(
            "INSERT INTO videos (id, title, filename, size, content_type, status) \
             SELECT gen_random_uuid(), 'Stored ' || n, 'clip.mp4', n, 'video/mp4', 'uploaded' \
             FROM generate_series(1, $1::int) AS n ORDER BY n",
            &[&count],
        )
        .await
        .unwrap();
}

/// The titles `GET /videos` lists, in its order.
async fn listed_titles(stack: &Stack) -> Vec<String> {
    let response = stack
        .platform
        .client
        .get(stack.platform.url("/videos"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-next-cursor").is_none());
    let all: Vec<Value> = response.json().await.unwrap();
    all.iter()
        .map(|v| v["title"].as_str().unwrap().to_owned())
        .collect()
}

/// The original `GET /videos` listed every video. With more stored than
/// the largest array kept cached, the bare array still holds them all,
/// newest first: it is written page by page, not cut, and not cached.
#[tokio::test]
async fn original_listing_without_a_limit_holds_every_video() {
    let stack = Stack::start().await.unwrap();
    let client = stack.db.connect().await.unwrap();
    let stored = WHOLE_CATALOG_CACHE_MAX_VIDEOS as i32 + 150;
    store_videos(&client, stored).await;
    let newest_first: Vec<String> = (1..=stored).rev().map(|n| format!("Stored {n}")).collect();
    assert_eq!(listed_titles(&stack).await, newest_first);
    let cached = client
        .query("SELECT generation FROM whole_catalog_cache", &[])
        .await
        .unwrap();
    assert!(cached.is_empty(), "too big a catalog is not cached");

    // Filters still apply to the whole list, and a bad one is still a 400.
    let (status, none) = stack
        .platform
        .get_json("/videos?status=ready")
        .await
        .unwrap();
    assert_eq!((status, none), (200, Value::Array(vec![])));
    let (status, _) = stack
        .platform
        .get_json("/videos?status=nonsense")
        .await
        .unwrap();
    assert_eq!(status, 400);
}

/// The whole catalog is answered from the array kept in the database (by
/// way of the replica's copy in its key-value store) for as long as no
/// video changes, and every change shows on the next call,
/// including one that was still being written while an array was built.
#[tokio::test]
async fn original_listing_is_cached_until_a_video_changes() {
    // A server of its own: whether an array is kept depends on every
    // transaction in progress on the server, other tests' included.
    let stack = Stack::start_with_private_db(&[]).await.unwrap();
    let client = stack.db.connect().await.unwrap();
    assert!(listed_titles(&stack).await.is_empty());
    store_videos(&client, 30).await;
    let mut expected: Vec<String> = (1..=30).rev().map(|n| format!("Stored {n}")).collect();
    assert_eq!(listed_titles(&stack).await, expected);
    let row = client
        .query_one(
            "SELECT cache.generation = changes.last_value \
             FROM whole_catalog_cache AS cache, catalog_changes AS changes",
            &[],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "the array built is kept at the current generation"
    );

    let row = client
        .query_one(
            "SELECT digest = encode(sha256(convert_to(body, 'UTF8')), 'hex') \
             FROM whole_catalog_cache",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the array is kept with its digest");

    // The next call takes the kept array into this replica's own copy,
    // which is answered from then on while its digest is the database's:
    // another array put in the database's place under the same digest
    // changes nothing...
    assert_eq!(listed_titles(&stack).await, expected);
    client
        .execute(
            "UPDATE whole_catalog_cache SET body = '[{\"title\": \"from the cache\"}]'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(listed_titles(&stack).await, expected);
    // ...until the digest is that array's: the replica then takes it.
    client
        .execute(
            "UPDATE whole_catalog_cache SET digest = encode(sha256(convert_to(body, 'UTF8')), 'hex')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(listed_titles(&stack).await, ["from the cache"]);
    assert_eq!(listed_titles(&stack).await, ["from the cache"]);

    // A change shows at once: renamed, added, deleted.
    client
        .execute(
            "UPDATE videos SET title = 'Renamed' WHERE title = 'Stored 30'",
            &[],
        )
        .await
        .unwrap();
    expected[0] = "Renamed".into();
    assert_eq!(listed_titles(&stack).await, expected);
    let added = legacy_upload(&stack, b"one more").await;
    expected.insert(0, added["title"].as_str().unwrap().to_owned());
    assert_eq!(listed_titles(&stack).await, expected);
    client
        .execute("DELETE FROM videos WHERE title = 'Stored 1'", &[])
        .await
        .unwrap();
    expected.pop();
    assert_eq!(listed_titles(&stack).await, expected);

    // A change still in progress while an array is built is not in it, and
    // that array must not be kept: once the change commits, it shows.
    let mut writer = stack.db.connect().await.unwrap();
    let transaction = writer.transaction().await.unwrap();
    transaction
        .execute(
            "UPDATE videos SET title = 'Committed later' WHERE title = 'Stored 29'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(listed_titles(&stack).await, expected);
    transaction.commit().await.unwrap();
    expected[2] = "Committed later".into();
    assert_eq!(listed_titles(&stack).await, expected);
}
