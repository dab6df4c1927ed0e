//! Playback through the stream component: HLS, poster and original bytes
//! streamed from the private bucket with Range, ETag, type and cache rules.
//!
//! The renditions here are made by ffmpeg in the test and stored directly,
//! so these tests do not depend on the worker; the pipeline tests cover the
//! worker producing them.

use serde_json::Value;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xtream_tests::{Stack, clips};

struct Playable {
    stack: Stack,
    id: String,
    original: Vec<u8>,
    segment: Vec<u8>,
}

/// Uploads a real clip, stores an HLS rendition and poster for it as the
/// worker would, and (if `ready`) marks the record ready.
async fn playable(ready: bool) -> Playable {
    let stack = Stack::start().await.unwrap();
    let (platform, garage) = (&stack.platform, &stack.garage);
    let dir = tempfile::tempdir().unwrap();
    let clip = clips::mp4(dir.path(), "clip.mp4", 3, 320, 240).unwrap();
    let original = std::fs::read(&clip).unwrap();
    let response = platform
        .client
        .post(platform.url("/api/videos?filename=clip.mp4&title=Stream%20me"))
        .header("content-type", "video/mp4")
        .body(original.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let record: Value = response.json().await.unwrap();
    let id = record["id"].as_str().unwrap().to_owned();

    let hls = dir.path().join("hls");
    std::fs::create_dir_all(hls.join("240p")).unwrap();
    clips::ffmpeg(&[
        "-i",
        clip.to_str().unwrap(),
        "-c",
        "copy",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_filename",
        hls.join("240p/segment_%03d.ts").to_str().unwrap(),
        hls.join("240p/index.m3u8").to_str().unwrap(),
    ])
    .unwrap();
    std::fs::write(
        hls.join("master.m3u8"),
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x240\n240p/index.m3u8\n",
    )
    .unwrap();
    clips::ffmpeg(&[
        "-i",
        clip.to_str().unwrap(),
        "-frames:v",
        "1",
        dir.path().join("poster.jpg").to_str().unwrap(),
    ])
    .unwrap();

    let bucket = garage.bucket();
    let put = |path: &Path, key: String, content_type: &'static str| {
        let bucket = bucket.clone();
        let body = std::fs::read(path).unwrap();
        async move { bucket.put(&key, body, content_type).await.unwrap() }
    };
    for entry in std::fs::read_dir(hls.join("240p")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        put(
            &path,
            format!("videos/{id}/hls/240p/{name}"),
            "application/octet-stream",
        )
        .await;
    }
    put(
        &hls.join("master.m3u8"),
        format!("videos/{id}/hls/master.m3u8"),
        "text/plain",
    )
    .await;
    put(
        &dir.path().join("poster.jpg"),
        format!("videos/{id}/thumbnail.jpg"),
        "image/jpeg",
    )
    .await;
    if ready {
        let uuid: uuid::Uuid = id.parse().unwrap();
        let client = stack.db.connect().await.unwrap();
        let updated = client
            .execute(
                "UPDATE videos SET status = 'ready', \
                 hls_master = 'videos/' || id || '/hls/master.m3u8', \
                 thumbnail = 'videos/' || id || '/thumbnail.jpg' WHERE id = $1",
                &[&uuid],
            )
            .await
            .unwrap();
        assert_eq!(updated, 1);
    }
    let segment = std::fs::read(hls.join("240p/segment_001.ts")).unwrap();
    Playable {
        stack,
        id,
        original,
        segment,
    }
}

#[tokio::test]
async fn serves_hls_with_the_right_types_and_caching() {
    let p = playable(true).await;
    let get = |path: String| {
        p.stack
            .platform
            .client
            .get(p.stack.platform.url(&path))
            .send()
    };

    let master = get(format!("/api/videos/{}/hls/master.m3u8", p.id))
        .await
        .unwrap();
    assert_eq!(master.status(), 200);
    assert_eq!(
        master.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(master.headers()["cache-control"], "public, max-age=10");
    assert!(master.text().await.unwrap().contains("240p/index.m3u8"));

    let segment = get(format!("/api/videos/{}/hls/240p/segment_001.ts", p.id))
        .await
        .unwrap();
    assert_eq!(segment.status(), 200);
    assert_eq!(segment.headers()["content-type"], "video/mp2t");
    assert!(
        segment.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(segment.bytes().await.unwrap(), p.segment);

    let missing = get(format!("/api/videos/{}/hls/240p/segment_999.ts", p.id))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let poster = get(format!("/api/videos/{}/thumbnail.jpg", p.id))
        .await
        .unwrap();
    assert_eq!(poster.status(), 200);
    assert_eq!(poster.headers()["content-type"], "image/jpeg");
    assert_eq!(&poster.bytes().await.unwrap()[..2], b"\xff\xd8");

    let original = get(format!("/api/videos/{}/original", p.id)).await.unwrap();
    assert_eq!(original.status(), 200);
    assert_eq!(original.headers()["content-type"], "video/mp4");
    assert!(
        original.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("clip.mp4")
    );
    assert_eq!(original.bytes().await.unwrap(), p.original);

    // The record now links to its playback.
    let (_, video) = p
        .stack
        .platform
        .get_json(&format!("/api/videos/{}", p.id))
        .await
        .unwrap();
    assert_eq!(
        video["playback"]["hls"],
        format!("/api/videos/{}/hls/master.m3u8", p.id)
    );
    // Storage stays private: no S3 address leaks into what clients get.
    assert!(!video.to_string().contains(&p.stack.garage.endpoint));
}

#[tokio::test]
async fn answers_ranges_like_a_file_server() {
    let p = playable(true).await;
    let url = p
        .stack
        .platform
        .url(&format!("/api/videos/{}/original", p.id));
    let len = p.original.len();
    let range = |header: String| {
        p.stack
            .platform
            .client
            .get(&url)
            .header("range", header)
            .send()
    };

    for (header, first, last) in [
        ("bytes=0-99".to_owned(), 0, 99),
        (
            format!("bytes={}-{}", len / 2, len / 2 + 999),
            len / 2,
            len / 2 + 999,
        ),
        (format!("bytes={}-", len - 100), len - 100, len - 1),
        ("bytes=-50".to_owned(), len - 50, len - 1),
    ] {
        let response = range(header.clone()).await.unwrap();
        assert_eq!(response.status(), 206, "{header}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {first}-{last}/{len}").as_str(),
            "{header}"
        );
        assert_eq!(
            response.bytes().await.unwrap(),
            p.original[first..=last],
            "{header}"
        );
    }

    let response = range(format!("bytes={}-", len + 10)).await.unwrap();
    assert_eq!(response.status(), 416);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "range_not_satisfiable");

    // A range we do not honour (several ranges) gets the whole file.
    let response = range("bytes=0-1,5-6".to_owned()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), len);
}

#[tokio::test]
async fn revalidates_with_etags() {
    let p = playable(true).await;
    let url = p
        .stack
        .platform
        .url(&format!("/api/videos/{}/hls/240p/segment_000.ts", p.id));
    let first = p.stack.platform.client.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].clone();
    let again = p
        .stack
        .platform
        .client
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    assert!(again.bytes().await.unwrap().is_empty());
    let stale = p
        .stack
        .platform
        .client
        .get(&url)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn refuses_unready_unknown_and_escaping_requests() {
    let p = playable(false).await;
    let (status, body) = p
        .stack
        .platform
        .get_json(&format!("/api/videos/{}/hls/master.m3u8", p.id))
        .await
        .unwrap();
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "not_ready");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("uploaded"),
        "{body}"
    );
    for media in [
        "thumbnail.jpg",
        "hls/240p/segment_000.ts",
        "hls/240p/segment_999.ts",
    ] {
        let (status, _) = p
            .stack
            .platform
            .get_json(&format!("/api/videos/{}/{media}", p.id))
            .await
            .unwrap();
        assert_eq!(status, 409, "{media}");
    }
    // The original is downloadable as soon as it is uploaded.
    let original = p.stack.platform.client.get(
        p.stack
            .platform
            .url(&format!("/api/videos/{}/original", p.id)),
    );
    assert_eq!(original.send().await.unwrap().status(), 200);

    let unknown = "6f9619ff-8b86-4011-b42d-00c04fc964ff";
    for path in [
        format!("/api/videos/{unknown}/hls/master.m3u8"),
        format!("/api/videos/{unknown}/original"),
        format!("/api/videos/{}/hls/%2e%2e/video.json", p.id),
    ] {
        let (status, body) = p.stack.platform.get_json(&path).await.unwrap();
        assert_eq!(status, 404, "{path}: {body}");
    }
    // Traversal sent raw, as a client that does not normalise paths would.
    for path in [
        format!("/api/videos/{}/hls/../thumbnail.jpg", p.id),
        format!("/api/videos/{}/hls/240p/../../original", p.id),
        format!("/api/videos/{}/hls/..%2f..%2f{unknown}/original", p.id),
    ] {
        assert_eq!(
            raw_get_status(&p.stack.platform.base, &path).await,
            404,
            "{path}"
        );
    }
    let post = p.stack.platform.client.post(
        p.stack
            .platform
            .url(&format!("/api/videos/{}/original", p.id)),
    );
    assert_eq!(post.send().await.unwrap().status(), 405);
}

#[tokio::test]
async fn ffmpeg_plays_the_master_playlist_over_http() {
    let p = playable(true).await;
    let url = p
        .stack
        .platform
        .url(&format!("/api/videos/{}/hls/master.m3u8", p.id));
    // The host runs in this process: ffmpeg must not block its runtime.
    let played =
        tokio::task::spawn_blocking(move || clips::ffmpeg(&["-i", &url, "-f", "null", "-"]));
    played.await.unwrap().unwrap();
}

/// The status of a GET sent byte for byte, path untouched.
async fn raw_get_status(base: &str, path: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
