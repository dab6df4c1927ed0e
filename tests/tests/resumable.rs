//! Resumable uploads (`/api/uploads`) and deleting videos, through the real
//! `uploads` and `videos` components, the real `xtream` CLI, a real Garage,
//! Kafka and (for the sweep) the real worker.

use futures::StreamExt;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use xtream_tests::{Stack, bodies, cli};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Writes `len` patterned bytes to `path`, streamed (never whole in memory).
async fn write_patterned(path: &Path, len: u64, seed: u64) {
    let mut file = tokio::fs::File::create(path).await.unwrap();
    let mut chunks = std::pin::pin!(bodies::patterned(len, seed));
    while let Some(chunk) = chunks.next().await {
        file.write_all(&chunk.unwrap()).await.unwrap();
    }
    file.flush().await.unwrap();
}

/// SHA-256 (hex) of a file, read as a stream.
async fn file_digest(path: &Path) -> String {
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await.unwrap();
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf).await.unwrap();
        if n == 0 {
            return xtream_tests::s3::hex(&hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

/// Opens an upload of `size` bytes named `clip.mp4`.
async fn open_upload(stack: &Stack, size: u64) -> Value {
    let (status, created) = stack.platform.post_json("/api/uploads",
        json!({"filename": "clip.mp4", "size": size, "content_type": "video/mp4", "title": "Clip"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}

/// Sends part `number` of an upload created by [`open_upload`].
async fn put_part(created: &Value, number: u16, body: Vec<u8>) {
    let url = created["parts"][usize::from(number) - 1]["url"]
        .as_str()
        .unwrap();
    let response = reqwest::Client::new()
        .put(url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// The open session of upload `id`, from `upload_sessions`.
async fn session(stack: &Stack, id: &str) -> Option<Value> {
    stack.db.session(id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_upload_interrupted_by_the_cli_resumes_with_only_the_missing_parts() {
    let stack = Stack::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let file = dir.path().join("big holiday.mp4");
    write_patterned(&file, GIB, 7).await;
    let key = stack.platform.api_key.clone();
    let upload = [
        "upload",
        file.to_str().unwrap(),
        "--title",
        "Big holiday",
        "--no-wait",
    ];

    // First run: interrupted after 40 parts.
    let mut args = upload.to_vec();
    args.extend(["--stop-after-parts", "40"]);
    let first = cli::run(&stack.platform, Some(&key), &state_dir, &args)
        .await
        .unwrap();
    assert_eq!(first.code, 3, "{first:?}");
    let summary = &first.json;
    assert_eq!(summary["complete"], false, "{summary}");
    assert_eq!(summary["resumed"], false);
    let id = summary["id"].as_str().unwrap().to_owned();
    let part_count = summary["part_count"].as_u64().unwrap();
    assert_eq!(part_count, GIB / (8 * MIB));
    let sent_first = summary["parts_sent"].as_u64().unwrap();
    assert!((40..part_count).contains(&sent_first), "{summary}");
    assert_eq!(
        std::fs::read_dir(&state_dir).unwrap().count(),
        1,
        "the CLI remembers the upload"
    );

    // The server (from S3's listing) agrees on what is there.
    let (status, progress) = stack
        .platform
        .get_json(&format!("/api/uploads/{id}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{progress}");
    assert_eq!(
        progress["parts_done"].as_array().unwrap().len() as u64,
        sent_first
    );
    assert_eq!(progress["bytes_done"], sent_first * 8 * MIB);
    assert_eq!(
        progress["parts"].as_array().unwrap().len() as u64,
        part_count - sent_first
    );
    let s3_upload_id = session(&stack, &id).await.unwrap()["s3_upload_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let original = format!("videos/{id}/original");
    let stored = stack
        .garage
        .bucket()
        .parts(&original, &s3_upload_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.len() as u64, sent_first);
    // Not listed until complete.
    let (_, page) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!(page["videos"], json!([]));

    // Second run: resumes, sends only what is missing, completes.
    let second = cli::run(&stack.platform, Some(&key), &state_dir, &upload)
        .await
        .unwrap();
    assert_eq!(second.code, 0, "{second:?}");
    let summary = &second.json;
    assert_eq!(summary["id"], id);
    assert_eq!(summary["resumed"], true);
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["parts_skipped"].as_u64().unwrap(), sent_first);
    assert_eq!(
        summary["parts_sent"].as_u64().unwrap(),
        part_count - sent_first,
        "only the missing parts are sent again"
    );
    assert_eq!(
        summary["bytes_sent"].as_u64().unwrap(),
        GIB - sent_first * 8 * MIB
    );
    let video = &summary["video"];
    assert_eq!(video["size"], GIB);
    assert_eq!(video["title"], "Big holiday");
    assert_eq!(video["filename"], "big holiday.mp4");
    assert_eq!(video["status"], "uploaded");
    assert_eq!(
        std::fs::read_dir(&state_dir).unwrap().count(),
        0,
        "a finished upload is forgotten"
    );

    // S3 assembled every part, byte for byte; the session is gone.
    let (digest, length) = stack.garage.bucket().digest(&original).await.unwrap();
    assert_eq!(length, GIB);
    assert_eq!(digest, file_digest(&file).await);
    assert!(session(&stack, &id).await.is_none());
    let (status, _) = stack
        .platform
        .get_json(&format!("/api/uploads/{id}"))
        .await
        .unwrap();
    assert_eq!(status, 404);

    // Listed, and announced for transcoding exactly once.
    let (status, fetched) = stack
        .platform
        .get_json(&format!("/api/videos/{id}"))
        .await
        .unwrap();
    assert_eq!((status, &fetched["id"]), (200, &json!(id)));
    let event = stack.kafka.the_upload_event().await;
    assert_eq!(event["video_id"], id);
    assert_eq!(event["size"], GIB);
    assert_eq!(event["original_key"], original);
    let traces = stack.db.traces(&id).await.unwrap();
    assert_eq!(
        (traces.videos, traces.sessions, traces.outbox, traces.unsent),
        (1, 0, 1, 0)
    );
}

#[tokio::test]
async fn completing_checks_the_parts_s3_holds_and_is_idempotent() {
    let stack = Stack::start().await.unwrap();
    let size = 8 * MIB + 1000;
    let created = open_upload(&stack, size).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["part_size"], 8 * MIB);
    assert_eq!(created["size"], size);
    assert_eq!(created["parts"].as_array().unwrap().len(), 2);
    let complete = format!("/api/uploads/{id}/complete");

    // Part 2 only: part 1 is missing.
    let content = bodies::patterned_vec(size, 11).await;
    put_part(&created, 2, content[8 * MIB as usize..].to_vec()).await;
    let (status, body) = stack.platform.post_json(&complete, json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("upload_incomplete"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing 1 of 2")
    );

    // Part 1 cut short counts as missing, with a fresh URL to send it again.
    put_part(&created, 1, content[..1000].to_vec()).await;
    let (_, progress) = stack
        .platform
        .get_json(&format!("/api/uploads/{id}"))
        .await
        .unwrap();
    assert_eq!(progress["parts_done"], json!([2]));
    assert_eq!(progress["parts"][0]["number"], 1);
    let (status, _) = stack.platform.post_json(&complete, json!({})).await;
    assert_eq!(status, 409);

    put_part(&created, 1, content[..8 * MIB as usize].to_vec()).await;
    let (status, video) = stack.platform.post_json(&complete, json!({})).await;
    assert_eq!(status, 201, "{video}");
    assert_eq!(video["id"], id);
    assert_eq!(video["size"], size);
    assert_eq!(
        video["playback"]["original"],
        format!("/api/videos/{id}/original")
    );
    let stored = stack
        .garage
        .bucket()
        .get(&format!("videos/{id}/original"))
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(content.as_slice()));

    // A retried completion (its answer lost) gets the same video.
    let (status, again) = stack.platform.post_json(&complete, json!({})).await;
    assert_eq!(status, 201);
    assert_eq!(again["id"], video["id"]);
    stack.kafka.the_upload_event().await;
    let traces = stack.db.traces(id).await.unwrap();
    assert_eq!((traces.videos, traces.sessions, traces.outbox), (1, 0, 1));
}

#[tokio::test]
async fn refuses_bad_declarations_before_storing_anything() {
    let stack = Stack::start_with(&[("max_upload_bytes", "1GiB")])
        .await
        .unwrap();
    let valid =
        json!({"filename": "a.mp4", "size": 1000, "content_type": "video/mp4", "title": "A"});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let cases = [
        (with("size", json!(GIB + 1)), 413, "payload_too_large"),
        (with("size", json!(0)), 400, "bad_request"),
        (with("size", json!(-5)), 400, "bad_request"),
        (with("size", Value::Null), 400, "bad_request"),
        (
            with("filename", json!("notes.txt")),
            415,
            "unsupported_media_type",
        ),
        (
            with("content_type", json!("image/png")),
            415,
            "unsupported_media_type",
        ),
        (
            with("content_type", json!("video/x-unheard-of")),
            415,
            "unsupported_media_type",
        ),
        (with("title", json!("bell\u{7}")), 400, "bad_request"),
        (with("title", json!("x".repeat(201))), 400, "bad_request"),
        (json!("not an object"), 400, "bad_request"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = stack.platform.post_json("/api/uploads", body.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body} → {answer}"
        );
    }
    // Not JSON at all, and a body too large to be a description.
    for body in ["{nope".to_owned(), "x".repeat(20_000)] {
        let response = stack
            .platform
            .client
            .post(stack.platform.url("/api/uploads"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
    // Unknown ids and methods.
    let unknown = "6f9619ff-8b86-4011-b42d-00c04fc964ff";
    for (method, path, status) in [
        ("GET", format!("/api/uploads/{unknown}"), 404),
        ("POST", format!("/api/uploads/{unknown}/complete"), 404),
        ("DELETE", format!("/api/uploads/{unknown}"), 404),
        ("GET", "/api/uploads/not-an-id".to_owned(), 404),
        ("GET", "/api/uploads".to_owned(), 405),
        ("PUT", format!("/api/uploads/{unknown}"), 405),
    ] {
        let response = stack
            .platform
            .client
            .request(method.parse().unwrap(), stack.platform.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
    }
    let bucket = stack.garage.bucket();
    assert_eq!(bucket.keys("").await.unwrap(), Vec::<String>::new());
    assert_eq!(bucket.multipart_uploads("").await.unwrap(), Vec::new());
    assert_eq!(stack.db.row_counts().await.unwrap(), [0; 4]);
}

#[tokio::test]
async fn an_aborted_upload_frees_its_parts_and_is_gone() {
    let stack = Stack::start().await.unwrap();
    let created = open_upload(&stack, 9 * MIB).await;
    let id = created["id"].as_str().unwrap();
    put_part(&created, 1, bodies::patterned_vec(8 * MIB, 3).await).await;
    let s3_upload_id = session(&stack, id).await.unwrap()["s3_upload_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let original = format!("videos/{id}/original");
    let bucket = stack.garage.bucket();
    assert_eq!(
        bucket.parts(&original, &s3_upload_id).await.unwrap(),
        Some(vec![1])
    );

    let response = stack
        .platform
        .client
        .delete(stack.platform.url(&format!("/api/uploads/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(bucket.parts(&original, &s3_upload_id).await.unwrap(), None);
    assert!(session(&stack, id).await.is_none());
    for (method, path) in [
        ("GET", format!("/api/uploads/{id}")),
        ("POST", format!("/api/uploads/{id}/complete")),
        ("DELETE", format!("/api/uploads/{id}")),
    ] {
        let response = stack
            .platform
            .client
            .request(method.parse().unwrap(), stack.platform.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    assert_eq!(bucket.keys("").await.unwrap(), Vec::<String>::new());
    assert_eq!(bucket.multipart_uploads("").await.unwrap(), Vec::new());
    assert_eq!(stack.db.row_counts().await.unwrap(), [0; 4]);
}

#[tokio::test]
async fn expired_uploads_are_refused_and_swept_by_the_worker() {
    let stack = Stack::start().await.unwrap();
    let bucket = stack.garage.bucket();
    let expired = open_upload(&stack, 9 * MIB).await;
    let live = open_upload(&stack, 9 * MIB).await;
    let part = bodies::patterned_vec(8 * MIB, 5).await;
    put_part(&expired, 1, part.clone()).await;
    put_part(&live, 1, part).await;
    let (expired_id, live_id) = (
        expired["id"].as_str().unwrap(),
        live["id"].as_str().unwrap(),
    );

    // Age one session past its expiry, as a day without the client would.
    let expired_s3 = session(&stack, expired_id).await.unwrap()["s3_upload_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let aged = stack
        .db
        .connect()
        .await
        .unwrap()
        .execute(
            "UPDATE upload_sessions SET created_at = '2020-01-01T00:00:00Z', \
             expires_at = '2020-01-02T00:00:00Z' WHERE id = $1",
            &[&expired_id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(aged, 1);
    let (status, body) = stack
        .platform
        .get_json(&format!("/api/uploads/{expired_id}"))
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("upload_expired"))
    );
    let (status, _) = stack
        .platform
        .post_json(&format!("/api/uploads/{expired_id}/complete"), json!({}))
        .await;
    assert_eq!(status, 410);

    let worker = stack
        .worker(&[("XTREAM_SWEEP_EVERY", "1s"), ("XTREAM_UPLOAD_TTL", "1h")])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while session(&stack, expired_id).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the sweeper did not remove the expired session: {}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expired_original = format!("videos/{expired_id}/original");
    assert_eq!(
        bucket.parts(&expired_original, &expired_s3).await.unwrap(),
        None
    );
    assert!(worker.log().contains("aborted an abandoned upload"));
    assert_eq!(
        bucket.multipart_uploads(&expired_original).await.unwrap(),
        Vec::new()
    );

    // The live upload is untouched and still completes.
    let live_s3 = session(&stack, live_id).await.unwrap()["s3_upload_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let live_original = format!("videos/{live_id}/original");
    assert_eq!(
        bucket.parts(&live_original, &live_s3).await.unwrap(),
        Some(vec![1])
    );
    put_part(&live, 2, bodies::patterned_vec(MIB, 6).await).await;
    let (status, _) = stack
        .platform
        .post_json(&format!("/api/uploads/{live_id}/complete"), json!({}))
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn deleting_a_video_removes_every_object_it_had() {
    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;
    let bucket = stack.garage.bucket();
    let upload = |title: &'static str| async move {
        let response = platform
            .client
            .post(platform.url(&format!("/api/videos?filename=clip.mp4&title={title}")))
            .header("content-type", "video/mp4")
            .body(bodies::patterned_vec(1000, 1).await)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let video: Value = response.json().await.unwrap();
        video["id"].as_str().unwrap().to_owned()
    };
    let doomed = upload("doomed").await;
    let kept = upload("kept").await;

    // What the worker would have added: renditions (more than one
    // DeleteObjects batch of them) and a poster.
    let mut extra = vec![format!("videos/{doomed}/thumbnail.jpg")];
    extra.extend((0..1005).map(|n| format!("videos/{doomed}/hls/360p/segment_{n:04}.ts")));
    futures::stream::iter(extra)
        .map(|key| {
            let bucket = bucket.clone();
            async move { bucket.put(&key, b"x".to_vec(), "video/mp2t").await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let prefix = format!("videos/{doomed}/");
    // The original, the poster and the segments (the record is a row now).
    assert_eq!(bucket.keys(&prefix).await.unwrap().len(), 1007);

    let delete = || {
        platform
            .client
            .delete(platform.url(&format!("/api/videos/{doomed}")))
    };
    let response = delete().send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(bucket.keys(&prefix).await.unwrap(), Vec::<String>::new());
    let (status, _) = platform
        .get_json(&format!("/api/videos/{doomed}"))
        .await
        .unwrap();
    assert_eq!(status, 404);
    let (_, page) = platform.get_json("/api/videos").await.unwrap();
    let ids: Vec<&str> = page["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![kept.as_str()]);
    // No row, no deletion left to finish, no announcement left to send; the
    // kept video untouched.
    let traces = stack.db.traces(&doomed).await.unwrap();
    assert_eq!((traces.videos, traces.deletions, traces.unsent), (0, 0, 0));
    assert_eq!(stack.db.traces(&kept).await.unwrap().videos, 1);
    assert_eq!(stack.db.row_counts().await.unwrap()[0], 1);
    assert_eq!(
        bucket.keys(&format!("videos/{kept}/")).await.unwrap().len(),
        1
    );

    let response = delete().send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_cli_lists_shows_watches_and_deletes_and_explains_errors() {
    let stack = Stack::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let key = stack.platform.api_key.clone();
    let clip = dir.path().join("clip.mp4");
    write_patterned(&clip, 3 * MIB, 2).await;
    let run = |key: Option<&str>, args: &[&str]| {
        let (platform, state) = (&stack.platform, state.clone());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let key = key.map(str::to_owned);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli::run(platform, key.as_deref(), &state, &args)
                .await
                .unwrap()
        }
    };

    let uploaded = run(Some(&key), &["upload", clip.to_str().unwrap(), "--no-wait"]).await;
    assert_eq!(uploaded.code, 0, "{uploaded:?}");
    let id = uploaded.json["id"].as_str().unwrap().to_owned();
    assert_eq!(uploaded.json["parts_sent"], 1);

    let listed = run(None, &["list"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    assert_eq!(listed.json["videos"][0]["id"], id);
    let shown = run(None, &["show", &id]).await;
    assert_eq!(shown.json["title"], "clip");
    assert_eq!(shown.json["status"], "uploaded");

    // Not transcoded (no worker here): watching says why, non-zero.
    let watch = run(None, &["watch", &id]).await;
    assert_eq!(watch.code, 1);
    assert_eq!(watch.json["error"]["code"], "not_ready");
    assert!(
        watch.stderr.contains("once it is ready"),
        "{}",
        watch.stderr
    );

    // API errors come with their message and code.
    let anonymous = run(None, &["delete", &id]).await;
    assert_eq!(anonymous.code, 1);
    assert_eq!(anonymous.json["error"]["code"], "unauthorized");
    assert!(
        anonymous.stderr.contains("HTTP 401"),
        "{}",
        anonymous.stderr
    );
    let wrong = run(Some("wrong-key-0123456789abcdef"), &["delete", &id]).await;
    assert_eq!(wrong.json["error"]["code"], "forbidden");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a video").unwrap();
    let refused = run(Some(&key), &["upload", notes.to_str().unwrap()]).await;
    assert_eq!(refused.code, 1);
    assert_eq!(refused.json["error"]["code"], "unsupported_media_type");
    assert!(refused.stderr.contains("notes.txt"), "{}", refused.stderr);
    let missing = run(Some(&key), &["upload", "/no/such/file.mp4"]).await;
    assert_ne!(missing.code, 0);

    let deleted = run(Some(&key), &["delete", &id]).await;
    assert_eq!(deleted.code, 0, "{deleted:?}");
    let gone = run(None, &["show", &id]).await;
    assert_eq!(gone.code, 1);
    assert_eq!(gone.json["error"]["code"], "not_found");
}

/// Clients outside a cluster reach storage at another address than the
/// components do (on Kubernetes, MinIO's S3 API behind the Ingress):
/// presigned part URLs name `s3_public_endpoint`, and a proxy that passes
/// the request through untouched, Host header included (as nginx does), is
/// all the signatures need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_go_to_the_public_s3_endpoint_through_a_host_preserving_proxy() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let stack = Stack::start_with(&[("s3_public_endpoint", &public)])
        .await
        .unwrap();
    let upstream = stack
        .garage
        .endpoint
        .trim_start_matches("http://")
        .to_owned();
    let proxied = Arc::new(AtomicUsize::new(0));
    let counted = proxied.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });

    let body = b"a short clip".to_vec();
    let created = open_upload(&stack, body.len() as u64).await;
    let url = created["parts"][0]["url"].as_str().unwrap();
    assert!(url.starts_with(&public), "{url}");
    put_part(&created, 1, body.clone()).await;
    assert!(
        proxied.load(Ordering::SeqCst) > 0,
        "the part bypassed the proxy"
    );
    let id = created["id"].as_str().unwrap();
    let (status, video) = stack
        .platform
        .post_json(&format!("/api/uploads/{id}/complete"), json!({}))
        .await;
    assert_eq!(status, 201, "{video}");
    assert_eq!(video["size"], body.len());
    let stored = stack
        .garage
        .bucket()
        .get(&format!("videos/{id}/original"))
        .await
        .unwrap();
    assert_eq!(stored, Some(body));
}
