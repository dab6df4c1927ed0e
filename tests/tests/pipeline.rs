//! End to end: upload through the platform, announce through the bridge,
//! transcode in the real worker, and play the result back with ffprobe.

use serde_json::Value;
use std::time::Duration;
use xtream_core::events::{BRIDGE_CONTENT_TYPE, UPLOADS_TOPIC};
use xtream_tests::worker::{migrate, wait_for_status};
use xtream_tests::{Garage, Platform, Postgres, Tansu, Worker, clips};

/// Uploads are keyed (`api_keys`, `Authorization: Bearer`).
const API_KEY: &str = "pipeline-test-key-0123456789";

async fn upload(platform: &Platform, path: &std::path::Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    let response = platform
        .client
        .post(platform.url("/api/videos?filename=clip.mp4&title=Pattern"))
        .header("content-type", "video/mp4")
        .header("authorization", format!("Bearer {API_KEY}"))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
async fn an_upload_becomes_a_playable_hls_ladder() {
    let garage = Garage::start().await.unwrap();
    let tansu = Tansu::start().await.unwrap();
    tansu.create_xtream_topics().await.unwrap();
    let bridge = Worker::bridge(&tansu).await.unwrap();
    let bridge_url = bridge.base.clone();
    let db = Postgres::start().await.unwrap();
    migrate(&db).await.unwrap();
    let platform = Platform::start_with(
        &garage,
        &db,
        &[
            ("kafka_bridge_url", bridge_url.as_str()),
            ("uploads_topic", UPLOADS_TOPIC),
            ("api_keys", API_KEY),
        ],
    )
    .await
    .unwrap();
    let worker = Worker::run(&garage, &tansu, &db, &[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = clips::mp4(dir.path(), "clip.mp4", 5, 1280, 720).unwrap();

    // The component announces the upload itself, through the bridge.
    let record = upload(&platform, &clip).await;
    let id = record["id"].as_str().unwrap();
    assert_eq!(tansu.the_upload_event().await["video_id"], id);

    let bucket = garage.bucket();
    let ready = wait_for_status(&db, id, &["ready", "failed"], Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));
    assert_eq!(ready["status"], "ready", "{ready}");
    let duration = ready["duration_seconds"].as_f64().unwrap();
    assert!((duration - 5.0).abs() < 0.2, "{duration}");
    assert_eq!(
        (ready["width"].as_u64(), ready["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(ready["video_codec"], "h264");
    assert_eq!(ready["audio_codec"], "aac");
    let renditions: Vec<&str> = ready["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(renditions, ["360p", "720p"]);
    assert_eq!(ready["hls_master"], format!("videos/{id}/hls/master.m3u8"));

    // Everything the master playlist promises is in the bucket.
    let mut keys = bucket.keys(&format!("videos/{id}/")).await.unwrap();
    keys.sort();
    let prefix = format!("videos/{id}/hls/");
    for rung in ["360p", "720p"] {
        assert!(
            keys.contains(&format!("{prefix}{rung}/index.m3u8")),
            "{keys:?}"
        );
        assert!(
            keys.contains(&format!("{prefix}{rung}/segment_000.ts")),
            "{keys:?}"
        );
    }
    assert!(keys.contains(&format!("videos/{id}/thumbnail.jpg")));
    let poster = bucket
        .get(&format!("videos/{id}/thumbnail.jpg"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&poster[..3], &[0xff, 0xd8, 0xff], "a JPEG");

    // Download the HLS tree and let ffprobe play it through the master
    // playlist, as a player would.
    let hls = tempfile::tempdir().unwrap();
    for key in keys.iter().filter(|k| k.starts_with(&prefix)) {
        let local = hls.path().join(key.strip_prefix(&prefix).unwrap());
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, bucket.get(key).await.unwrap().unwrap()).unwrap();
    }
    let master = std::fs::read_to_string(hls.path().join("master.m3u8")).unwrap();
    assert!(
        master.contains("RESOLUTION=640x360") && master.contains("RESOLUTION=1280x720"),
        "{master}"
    );
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(hls.path().join("master.m3u8"))
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let probed: Value = serde_json::from_slice(&probe.stdout).unwrap();
    let heights: Vec<u64> = probed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .filter_map(|s| s["height"].as_u64())
        .collect();
    assert!(heights.contains(&360) && heights.contains(&720), "{probed}");
    let played = probed["format"]["duration"]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap();
    assert!((played - 5.0).abs() < 0.5, "{played}");

    // The outcome went to the results topic, keyed like every event.
    let outcomes = tansu
        .records("xtream.results", 1, Duration::from_secs(10))
        .await
        .unwrap();
    let ready_event = outcomes
        .iter()
        .find(|r| r.json()["type"] == "video.ready")
        .expect("a video.ready");
    assert_eq!(ready_event.json()["video_id"], id);
    assert_eq!(
        ready_event.key.as_deref(),
        Some(format!("\"{id}\"").as_bytes())
    );
    assert_eq!(
        worker.metric("xtream_worker_jobs_succeeded_total").await,
        1.0
    );
    let metrics = worker.metrics().await.unwrap();
    assert!(
        metrics.contains("xtream_worker_job_duration_seconds_count 1"),
        "{metrics}"
    );
    // Consumer lag comes from librdkafka's statistics, every 5 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !worker
        .metrics()
        .await
        .unwrap()
        .contains("xtream_worker_consumer_lag{")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no consumer lag in /metrics"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The API shows the same record.
    let (status, fetched) = platform
        .get_json(&format!("/api/videos/{id}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(fetched["status"], "ready");
    platform.shutdown().await;
}

#[tokio::test]
async fn the_bridge_speaks_the_strimzi_produce_api() {
    let tansu = Tansu::start().await.unwrap();
    tansu.create_topics(&["bridge.test"]).await.unwrap();
    let bridge = Worker::bridge(&tansu).await.unwrap();
    let client = reqwest::Client::new();
    let post = |topic: &str, content_type: &str, body: &str| {
        client
            .post(format!("{}/topics/{topic}", bridge.base))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
    };

    let response = post(
        "bridge.test",
        BRIDGE_CONTENT_TYPE,
        r#"{"records":[{"key":"k1","value":{"n":1}},{"value":{"n":2},"partition":2}]}"#,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let offsets = body["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 2);
    assert_eq!(offsets[1]["partition"], 2);
    let records = tansu
        .records("bridge.test", 2, Duration::from_secs(10))
        .await
        .unwrap();
    let first = records.iter().find(|r| r.json()["n"] == 1).unwrap();
    assert_eq!(first.key.as_deref(), Some(&b"\"k1\""[..]));
    assert_eq!(
        first.partition,
        offsets[0]["partition"].as_i64().unwrap() as i32
    );

    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(post("bridge.test", "application/json", "{}").await.unwrap()),
        415
    );
    assert_eq!(
        status(
            post("bridge.test", BRIDGE_CONTENT_TYPE, "{nope")
                .await
                .unwrap()
        ),
        422
    );
    let missing = post(
        "no.such.topic",
        BRIDGE_CONTENT_TYPE,
        r#"{"records":[{"value":1}]}"#,
    )
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error_code"], 404);
    assert_eq!(
        client
            .get(format!("{}/healthy", bridge.base))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        client
            .get(format!("{}/ready", bridge.base))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );

    // Broker gone: an answer within the delivery timeout, not minutes.
    let mut tansu = tansu;
    tansu.stop();
    let started = std::time::Instant::now();
    let down = post(
        "bridge.test",
        BRIDGE_CONTENT_TYPE,
        r#"{"records":[{"value":3}]}"#,
    )
    .await
    .unwrap();
    assert!(down.status().is_server_error(), "{}", down.status());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        client
            .get(format!("{}/ready", bridge.base))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
}
