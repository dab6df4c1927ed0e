//! End to end: upload through the platform, announce through the bridge,
//! transcode in the real worker, and play the result back with ffprobe.

use serde_json::Value;
use std::time::Duration;
use xtream_core::events::UPLOADS_TOPIC;
use xtream_core::hls;
use xtream_tests::worker::{migrate, wait_for_status};
use xtream_tests::{Garage, Platform, Postgres, Tansu, Worker, clips, ffprobe_json};

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

/// Everything an upload travels through, real and running: storage,
/// broker and bridge, database, the components and one worker.
struct Pipeline {
    garage: Garage,
    tansu: Tansu,
    db: Postgres,
    platform: Platform,
    worker: Worker,
    _bridge: Worker,
}

impl Pipeline {
    async fn start() -> Self {
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
        Self {
            garage,
            tansu,
            db,
            platform,
            worker,
            _bridge: bridge,
        }
    }
}

/// Waits for video `id` to end its transcoding, and checks it ended
/// `ready`; the worker's log explains a failure.
async fn ready(db: &Postgres, worker: &Worker, id: &str) -> Value {
    let ended = wait_for_status(db, id, &["ready", "failed"], Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));
    assert_eq!(ended["status"], "ready", "{ended}");
    ended
}

#[tokio::test]
async fn an_upload_becomes_a_playable_hls_ladder() {
    let Pipeline {
        garage,
        tansu,
        db,
        platform,
        worker,
        _bridge,
    } = Pipeline::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clip = clips::mp4(dir.path(), "clip.mp4", 5, 1280, 720).unwrap();

    // The component announces the upload itself, through the bridge.
    let record = upload(&platform, &clip).await;
    let id = record["id"].as_str().unwrap();
    assert_eq!(tansu.the_upload_event().await["video_id"], id);

    let bucket = garage.bucket();
    let ready = ready(&db, &worker, id).await;
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
    assert_eq!(ready["storyboard"], format!("videos/{id}/storyboard.vtt"));

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
    assert!(keys.contains(&format!("videos/{id}/storyboard.vtt")));
    assert!(keys.contains(&format!("videos/{id}/storyboard.jpg")));
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
    let probed = ffprobe_json(
        &["-show_format", "-show_streams"],
        hls.path().join("master.m3u8"),
    )
    .await;
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

/// One cue of a storyboard index, read back from the WebVTT text.
#[derive(Debug)]
struct Cue {
    start_ms: u64,
    end_ms: u64,
    image: String,
    rect: [u32; 4],
}

/// `HH:MM:SS.mmm` (or `MM:SS.mmm`) in milliseconds.
fn vtt_ms(text: &str) -> u64 {
    let (clock, millis) = text.split_once('.').expect("milliseconds");
    let seconds = clock
        .split(':')
        .fold(0, |total, part| total * 60 + part.parse::<u64>().unwrap());
    seconds * 1000 + millis.parse::<u64>().unwrap()
}

/// Reads a storyboard index as any WebVTT reader would: a `WEBVTT` header,
/// then blank-line separated cues of a timing line and a payload.
fn parse_storyboard(vtt: &str) -> Vec<Cue> {
    let mut blocks = vtt.split("\n\n");
    assert_eq!(blocks.next().map(str::trim), Some("WEBVTT"), "{vtt}");
    blocks
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut lines = block.trim().lines();
            let timing = lines.next().unwrap();
            let (start, end) = timing.split_once(" --> ").expect(timing);
            let payload = lines.next().expect("a payload");
            let (image, fragment) = payload.split_once("#xywh=").expect(payload);
            let rect: Vec<u32> = fragment.split(',').map(|n| n.parse().unwrap()).collect();
            Cue {
                start_ms: vtt_ms(start),
                end_ms: vtt_ms(end),
                image: image.to_owned(),
                rect: rect.try_into().expect("x,y,w,h"),
            }
        })
        .collect()
}

/// The mean brightness (0-255) of one rectangle of a JPEG, by ffmpeg.
fn mean_luma(jpeg: &std::path::Path, [x, y, w, h]: [u32; 4]) -> f64 {
    let output = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(jpeg)
        .args([
            "-vf",
            &format!("crop={w}:{h}:{x}:{y},format=gray"),
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout.len(), (w * h) as usize);
    output.stdout.iter().map(|&b| f64::from(b)).sum::<f64>() / output.stdout.len() as f64
}

#[tokio::test]
async fn storyboard_cues_cover_the_whole_video_inside_the_sprite() {
    let pipeline = Pipeline::start().await;
    let platform = &pipeline.platform;
    let dir = tempfile::tempdir().unwrap();
    // Portrait and longer than one row of ten tiles: two rows, the last
    // one part-filled, tiles taller than wide. The sound runs 0.6 s past
    // the picture, as phones' often does: the cues must reach the end of
    // the file, and the last one must still show a picture.
    let clip = dir.path().join("clip.mp4");
    clips::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=360x640:rate=25:duration=12",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=12.6",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        clip.to_str().unwrap(),
    ])
    .unwrap();
    let id = upload(platform, &clip).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ready = ready(&pipeline.db, &pipeline.worker, &id).await;
    let duration_ms = (ready["duration_seconds"].as_f64().unwrap() * 1000.0).round() as u64;

    // The API names the index; the stream component serves it.
    let (status, video) = platform
        .get_json(&format!("/api/videos/{id}"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let index_path = video["playback"]["storyboard"]
        .as_str()
        .expect("a storyboard link");
    assert_eq!(index_path, format!("/api/videos/{id}/storyboard.vtt"));
    let response = platform
        .client
        .get(platform.url(index_path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/vtt"),
        "{:?}",
        response.headers()
    );
    let index_url = response.url().clone();
    let vtt = response.text().await.unwrap();
    let cues = parse_storyboard(&vtt);

    // Back to back from the first instant to the last, no gap, no overlap.
    assert!(cues.len() > 10, "{vtt}");
    assert_eq!(cues[0].start_ms, 0, "{vtt}");
    for pair in cues.windows(2) {
        assert_eq!(pair[0].end_ms, pair[1].start_ms, "{vtt}");
    }
    assert!(cues.iter().all(|cue| cue.start_ms < cue.end_ms), "{vtt}");
    assert_eq!(cues.last().unwrap().end_ms, duration_ms, "{vtt}");
    assert!(
        duration_ms > 12_500,
        "the file lasts as long as its sound: {ready}"
    );

    // Every cue names one sprite, which the stream component serves
    // beside the index, and a rectangle inside it.
    let sprite_name = &cues[0].image;
    assert!(cues.iter().all(|cue| &cue.image == sprite_name), "{vtt}");
    let sprite_url = index_url.join(sprite_name).unwrap();
    assert_eq!(
        sprite_url.path(),
        format!("/api/videos/{id}/storyboard.jpg")
    );
    let response = platform.client.get(sprite_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let sprite = dir.path().join("sprite.jpg");
    std::fs::write(&sprite, response.bytes().await.unwrap()).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&sprite)
        .output()
        .unwrap();
    let size = String::from_utf8(probe.stdout).unwrap();
    let (width, height) = size.trim().split_once(',').expect(&size);
    let (width, height): (u32, u32) = (width.parse().unwrap(), height.parse().unwrap());
    for cue in &cues {
        let [x, y, w, h] = cue.rect;
        assert!(w > 0 && h > 0, "{cue:?}");
        assert!(
            x + w <= width && y + h <= height,
            "{cue:?} outside {width}x{height}"
        );
        // Portrait tiles, as the video.
        assert!(h > w, "{cue:?}");
    }
    // The tiles named hold pictures, not the grid's black padding: the
    // last cue's tile shows the end of the video.
    let last = cues.last().unwrap().rect;
    assert!(
        mean_luma(&sprite, last) > 40.0,
        "the last tile is blank: {last:?}"
    );
    pipeline.platform.shutdown().await;
}

/// `GET path` on the platform: status, Cache-Control and body.
async fn fetch_text(platform: &Platform, path: &str) -> (u16, String, String) {
    let response = platform
        .client
        .get(platform.url(path))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache, response.text().await.unwrap())
}

/// The segment names of a media playlist, in order.
/// The segments a playlist names, owned: kept as the playlist grows.
fn segments_of(playlist: &str) -> Vec<String> {
    hls::segment_uris(playlist)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_video_plays_while_it_transcodes_and_its_playlists_grow_then_close() {
    let pipeline = Pipeline::start().await;
    let platform = &pipeline.platform;
    let dir = tempfile::tempdir().unwrap();
    // Long enough that the ladder takes several seconds on any machine, so
    // the video is seen playable well before it is ready.
    let clip = clips::mp4(dir.path(), "clip.mp4", 40, 1280, 720).unwrap();
    let uploaded = std::time::Instant::now();
    let id = upload(platform, &clip).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Playable while still transcoding: the API says so and links the HLS.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let video = loop {
        let (status, video) = platform
            .get_json(&format!("/api/videos/{id}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{video}");
        if video["playable"] == true {
            break video;
        }
        assert!(
            !["ready", "failed"].contains(&video["status"].as_str().unwrap()),
            "{video}\n{}",
            pipeline.worker.log()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never playable: {video}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let playable_after = uploaded.elapsed();
    assert_eq!(
        video["status"], "transcoding",
        "playable before ready: {video}"
    );
    let master_path = video["playback"]["hls"]
        .as_str()
        .expect("an HLS link")
        .to_owned();
    assert!(video["playback"].get("thumbnail").is_none(), "{video}");
    let (status, _, master) = fetch_text(platform, &master_path).await;
    assert_eq!(status, 200);
    assert!(
        master.contains("720p/index.m3u8") && master.contains("360p/index.m3u8"),
        "{master}"
    );

    // The variant playlists grow, uncached, segment by segment, each named
    // segment already served, until they end.
    let variant = format!("/api/videos/{id}/hls/720p/index.m3u8");
    let mut seen: Vec<Vec<String>> = Vec::new();
    let last = loop {
        let (status, cache, playlist) = fetch_text(platform, &variant).await;
        assert_eq!(status, 200, "{playlist}");
        let segments = segments_of(&playlist);
        if let Some(before) = seen.last() {
            assert!(
                segments.starts_with(before),
                "segments only appended: {before:?} then {segments:?}"
            );
        }
        if playlist.contains("#EXT-X-ENDLIST") {
            break playlist;
        }
        assert!(
            !segments.is_empty(),
            "a playable rung has a segment: {playlist}"
        );
        assert!(
            playlist.contains("#EXT-X-PLAYLIST-TYPE:EVENT"),
            "{playlist}"
        );
        assert_eq!(cache, "no-cache", "a growing playlist is never cached");
        let newest = segments.last().unwrap();
        let response = platform
            .client
            .get(platform.url(&format!("/api/videos/{id}/hls/720p/{newest}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{newest} is named, so it is served");
        if seen.last() != Some(&segments) {
            seen.push(segments);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ended: {playlist}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        seen.len() >= 2,
        "the playlist was seen growing only {} time(s): {seen:?}",
        seen.len()
    );
    let final_segments = segments_of(&last);
    assert!(final_segments.len() > seen.last().unwrap().len(), "{last}");

    // Ready: the playlists are final, VOD, cacheable.
    let ready = ready(&pipeline.db, &pipeline.worker, &id).await;
    let ready_after = uploaded.elapsed();
    for rung in ["360p", "720p"] {
        let (status, cache, playlist) =
            fetch_text(platform, &format!("/api/videos/{id}/hls/{rung}/index.m3u8")).await;
        assert_eq!(status, 200);
        assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{playlist}");
        assert!(
            playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
            "{playlist}"
        );
        assert_eq!(cache, "public, max-age=10");
    }

    // The final playlists play in full: ffprobe through the platform's
    // master playlist lasts as long as the source, within one frame, and
    // every frame is there.
    let source = ready["duration_seconds"].as_f64().unwrap();
    let show = [
        "-select_streams",
        "v:0",
        "-count_packets",
        "-show_entries",
        "format=duration:stream=nb_read_packets",
    ];
    let probed = ffprobe_json(&show, platform.url(&master_path)).await;
    let played: f64 = probed["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let frame = 1.0 / 25.0;
    assert!(
        (played - source).abs() <= frame,
        "played {played} s of {source} s"
    );
    let frames: f64 = probed["streams"][0]["nb_read_packets"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (frames * frame - source).abs() <= frame,
        "{frames} frames for {source} s"
    );
    eprintln!(
        "playable {:.1} s after the upload, ready after {:.1} s ({} growth steps seen)",
        playable_after.as_secs_f64(),
        ready_after.as_secs_f64(),
        seen.len()
    );
    pipeline.platform.shutdown().await;
}
