//! End to end: upload through the platform, announce through the bridge,
//! transcode in the real worker, and play the result back with ffprobe.

use serde_json::Value;
use std::time::Duration;
use xtream_core::events::UPLOADS_TOPIC;
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
