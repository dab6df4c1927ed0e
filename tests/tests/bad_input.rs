//! Hostile and odd clients: huge headers, slowloris heads and bodies,
//! unicode everywhere. Each gets a clear answer (or is cut off), and the
//! platform keeps serving everyone else.

use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xtream_host::HEADER_READ_TIMEOUT;
use xtream_tests::Stack;

async fn still_serving(stack: &Stack) {
    let (status, body) = stack.platform.get_json("/health").await.unwrap();
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

async fn connect(stack: &Stack) -> TcpStream {
    TcpStream::connect(stack.platform.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `limit` passes).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> String {
    let mut response = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let stack = Stack::start().await.unwrap();
    let huge = "a".repeat(512 * 1024);
    let response = stack
        .platform
        .client
        .get(stack.platform.url("/api/videos"))
        .header("x-junk", huge)
        .send()
        .await;
    // The server answers 431 and closes; some clients only see the close.
    if let Ok(response) = response {
        assert_eq!(response.status(), 431);
    }
    still_serving(&stack).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_cut_off() {
    let stack = Stack::start().await.unwrap();
    let mut slow = connect(&stack).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    // Others are served meanwhile.
    still_serving(&stack).await;
    let answer = read_until_closed(&mut slow, HEADER_READ_TIMEOUT * 2).await;
    let waited = started.elapsed();
    assert!(
        waited < HEADER_READ_TIMEOUT + Duration::from_secs(15),
        "held open for {waited:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    still_serving(&stack).await;
}

#[tokio::test]
async fn an_upload_body_that_stalls_is_ended_with_a_4xx_and_leaves_nothing() {
    let stack = Stack::start().await.unwrap();
    let mut slow = connect(&stack).await;
    let head = format!(
        "POST /api/videos?filename=slow.mp4 HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Type: video/mp4\r\nContent-Length: 100000\r\n\r\n",
        stack.platform.api_key
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&[0u8; 1000]).await.unwrap();
    // ...and then nothing more.
    let answer = read_until_closed(&mut slow, Duration::from_secs(30)).await;
    let status_line = answer.lines().next().unwrap_or_default();
    assert!(status_line.contains(" 400 "), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("{}"))
        .unwrap_or(Value::Null);
    assert_eq!(body["error"]["code"], "bad_request", "{answer}");
    assert_eq!(
        stack.garage.bucket().keys("videos/").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        stack.garage.bucket().multipart_uploads("").await.unwrap(),
        Vec::new()
    );
    assert_eq!(stack.db.row_counts().await.unwrap(), [0; 4]);
    still_serving(&stack).await;
}

#[tokio::test]
async fn unicode_titles_and_file_names_survive_the_round_trip() {
    let stack = Stack::start().await.unwrap();
    for (title, filename) in [
        ("视频 🎬 Ünïcödé", "видео.mp4"),
        ("שלום עולם", "ملف.webm"),
        ("e\u{301}te\u{301} — «quotes» & <tags>", "été.MOV"),
    ] {
        let response = stack
            .platform
            .client
            .post(stack.platform.url("/api/videos"))
            .query(&[("title", title), ("filename", filename)])
            .header("content-type", "video/mp4")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{title}");
        let record: Value = response.json().await.unwrap();
        assert_eq!(record["title"], title);
        assert_eq!(record["filename"], filename);
        let id = record["id"].as_str().unwrap();
        let (_, fetched) = stack
            .platform
            .get_json(&format!("/api/videos/{id}"))
            .await
            .unwrap();
        assert_eq!(fetched["title"], title);
    }
    still_serving(&stack).await;
}

#[tokio::test]
async fn nonsense_requests_get_json_4xx() {
    let stack = Stack::start().await.unwrap();
    let mut stream = connect(&stack).await;
    stream
        .write_all(b"GET /api/videos?limit=%ff%fe&cursor=%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");

    let mut stream = connect(&stack).await;
    stream
        .write_all(b"BREW /api/videos HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");

    let mut stream = connect(&stack).await;
    stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(!answer.contains("200"), "{answer}");
    still_serving(&stack).await;
}
