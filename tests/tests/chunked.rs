//! Chunked transcoding end to end: a source longer than the worker's
//! threshold is cut into chunks that two real worker processes encode,
//! stitched into playlists that play continuously through the platform;
//! a worker killed mid-chunk loses nothing; short sources stay one pass;
//! chunk claims share a video's chunks out among the jobs.

use serde_json::Value;
use std::time::{Duration, Instant};
use xtream_core::events::UPLOADS_TOPIC;
use xtream_core::{VideoId, VideoRecord, chunks, hls, metadata};
use xtream_tests::postgres::run_statement;
use xtream_tests::worker::{migrate, wait_for_status};
use xtream_tests::{Postgres, Stack, Worker, clips, ffprobe_json};

/// Chunk anything over 20 s, in chunks of about 10 s (the first 8 s): a
/// 36 s source makes four chunks.
const CHUNKED: [(&str, &str); 2] = [
    ("XTREAM_CHUNK_THRESHOLD", "20s"),
    ("XTREAM_CHUNK_LENGTH", "10s"),
];
/// The clips' frame rate (`clips::mp4`).
const FRAME: f64 = 1.0 / 25.0;

async fn upload(stack: &Stack, clip: &std::path::Path) -> String {
    let response = stack
        .platform
        .upload_raw(std::fs::read(clip).unwrap())
        .await;
    assert_eq!(response.status(), 201);
    let video: Value = response.json().await.unwrap();
    video["id"].as_str().unwrap().to_owned()
}

async fn ready(stack: &Stack, workers: &[&Worker], id: &str) -> Value {
    let ended = wait_for_status(
        &stack.db,
        id,
        &["ready", "failed"],
        Duration::from_secs(240),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(workers)));
    assert_eq!(ended["status"], "ready", "{ended}\n{}", logs(workers));
    ended
}

fn logs(workers: &[&Worker]) -> String {
    workers
        .iter()
        .enumerate()
        .map(|(i, worker)| format!("worker {i} log:\n{}", worker.log()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each chunk of video `id`: (attempts, done).
async fn chunk_rows(stack: &Stack, id: &str) -> Vec<(i32, bool)> {
    let uuid: uuid::Uuid = id.parse().unwrap();
    let client = stack.db.connect().await.unwrap();
    client
        .query(
            "SELECT attempts, done_at IS NOT NULL FROM video_chunks \
             WHERE video_id = $1 ORDER BY chunk",
            &[&uuid],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn fetch_text(stack: &Stack, path: &str) -> String {
    let response = stack
        .platform
        .client
        .get(stack.platform.url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

/// Plays the whole master playlist of `id` with ffprobe through the
/// platform and checks it is continuous: video frames follow each other
/// one frame apart across chunk boundaries (no gap, no frame twice), and
/// the sound starts and ends with the picture (within one frame); returns
/// the picture's duration.
async fn assert_plays_continuously(stack: &Stack, id: &str) -> f64 {
    let master = stack
        .platform
        .url(&format!("/api/videos/{id}/hls/master.m3u8"));
    let show = "stream=index,codec_type:packet=stream_index,pts_time,duration_time";
    let probed = ffprobe_json(&["-show_entries", show], &master).await;
    let stream_of = |kind: &str| {
        probed["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["codec_type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} stream: {}", probed["streams"]))["index"]
            .as_i64()
            .unwrap()
    };
    let (video, audio) = (stream_of("video"), stream_of("audio"));
    // (start, end) of a stream, and its packets' times in order.
    let span = |index: i64| {
        let mut packets: Vec<(f64, f64)> = probed["packets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["stream_index"].as_i64() == Some(index))
            .map(|p| {
                let number = |field: &str| p[field].as_str().unwrap().parse::<f64>().unwrap();
                (number("pts_time"), number("duration_time"))
            })
            .collect();
        packets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let first = packets.first().unwrap().0;
        let last = packets.last().unwrap();
        (first, last.0 + last.1, packets)
    };
    let (video_start, video_end, frames) = span(video);
    for pair in frames.windows(2) {
        let step = pair[1].0 - pair[0].0;
        assert!(
            step > FRAME / 2.0 && step < FRAME * 1.5,
            "frames at {} and {} s: a gap or a frame twice",
            pair[0].0,
            pair[1].0
        );
    }
    let (audio_start, audio_end, _) = span(audio);
    assert!(
        (audio_start - video_start).abs() <= FRAME,
        "sound starts at {audio_start} s, picture at {video_start} s"
    );
    assert!(
        (audio_end - video_end).abs() <= FRAME,
        "sound ends at {audio_end} s, picture at {video_end} s"
    );
    assert!(
        ((audio_end - audio_start) - (video_end - video_start)).abs() <= FRAME,
        "sound lasts {} s, picture {} s",
        audio_end - audio_start,
        video_end - video_start
    );
    video_end - video_start
}

#[tokio::test]
async fn a_long_video_is_encoded_in_chunks_by_two_workers_and_plays_continuously() {
    let stack = Stack::start().await.unwrap();
    let settings = [CHUNKED[0], CHUNKED[1], ("XTREAM_X264_PRESET", "veryfast")];
    let first = stack.worker(&settings).await.unwrap();
    let second = stack.worker(&settings).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // B-frames in the source and in the outputs (x264 `veryfast`): their
    // reordering delay is what would shift one chunk against the next.
    let clip = dir.path().join("long.mp4");
    clips::lavfi_mp4(
        &clip,
        "testsrc2=size=320x240:rate=25:duration=36",
        Some("sine=frequency=440:sample_rate=48000:duration=36"),
        &["-g", "25", "-preset", "veryfast"],
    )
    .unwrap();
    let id = upload(&stack, &clip).await;
    let video = ready(&stack, &[&first, &second], &id).await;
    assert_eq!(video["playable"], true);
    assert_eq!(video["thumbnail"], format!("videos/{id}/thumbnail.jpg"));
    assert_eq!(video["storyboard"], format!("videos/{id}/storyboard.vtt"));

    // Four chunks, each counted done once, by whichever worker took it.
    let chunks = chunk_rows(&stack, &id).await;
    assert_eq!(chunks.len(), 4, "{chunks:?}");
    assert!(
        chunks
            .iter()
            .all(|(attempts, done)| *done && *attempts >= 1)
    );
    let counted = first.metric("xtream_worker_chunks_done_total").await
        + second.metric("xtream_worker_chunks_done_total").await;
    assert_eq!(counted, 4.0, "{}", logs(&[&first, &second]));

    // The stitched playlist: final, every segment once, in chunk order.
    let master = fetch_text(&stack, &format!("/api/videos/{id}/hls/master.m3u8")).await;
    assert!(master.contains("TYPE=AUDIO"), "{master}");
    let variant = fetch_text(&stack, &format!("/api/videos/{id}/hls/240p/index.m3u8")).await;
    assert!(variant.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{variant}");
    assert!(variant.trim_end().ends_with("#EXT-X-ENDLIST"), "{variant}");
    let segments = hls::segment_uris(&variant);
    let mut sorted = segments.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, segments, "named once each, in chunk order");
    assert!(segments.first().unwrap().starts_with("chunk0000_"));
    assert!(segments.last().unwrap().starts_with("chunk0003_"));

    let played = assert_plays_continuously(&stack, &id).await;
    let source = video["duration_seconds"].as_f64().unwrap();
    assert!(
        (played - source).abs() <= FRAME,
        "played {played} s of {source} s"
    );
    // The chunk sources are gone once the video is ready.
    let left = stack
        .garage
        .bucket()
        .keys(&format!("videos/{id}/chunks/"))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");

    // A short source keeps the one-pass path: no plan, ffmpeg's own names.
    let short = clips::mp4(dir.path(), "short.mp4", 6, 320, 240).unwrap();
    let short_id = upload(&stack, &short).await;
    ready(&stack, &[&first, &second], &short_id).await;
    assert!(chunk_rows(&stack, &short_id).await.is_empty());
    let variant = fetch_text(
        &stack,
        &format!("/api/videos/{short_id}/hls/240p/index.m3u8"),
    )
    .await;
    assert!(
        hls::segment_uris(&variant)[0].starts_with("segment_"),
        "{variant}"
    );
    let master = fetch_text(&stack, &format!("/api/videos/{short_id}/hls/master.m3u8")).await;
    assert!(!master.contains("TYPE=AUDIO"), "{master}");
    stack.platform.shutdown().await;
}

#[tokio::test]
async fn a_worker_killed_mid_chunk_loses_nothing() {
    let stack = Stack::start().await.unwrap();
    // One encoder thread each and a bigger picture: a chunk takes long
    // enough to be caught in flight.
    let settings = [CHUNKED[0], CHUNKED[1], ("XTREAM_FFMPEG_THREADS", "1")];
    let mut first = stack.worker(&settings).await.unwrap();
    let mut second = stack.worker(&settings).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = clips::mp4(dir.path(), "long.mp4", 36, 1280, 720).unwrap();
    let id = upload(&stack, &clip).await;

    // Kill whichever worker is first seen encoding a chunk.
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed = loop {
        if first.metric("xtream_worker_chunks_in_flight").await >= 1.0 {
            first.kill();
            break 0;
        }
        if second.metric("xtream_worker_chunks_in_flight").await >= 1.0 {
            second.kill();
            break 1;
        }
        assert!(
            Instant::now() < deadline,
            "no chunk seen in flight\n{}",
            logs(&[&first, &second])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let survivor = if killed == 0 { &second } else { &first };
    let video = ready(&stack, &[survivor], &id).await;
    assert_eq!(video["status"], "ready");

    let chunks = chunk_rows(&stack, &id).await;
    assert!(chunks.iter().all(|(_, done)| *done), "{chunks:?}");
    assert!(
        chunks.iter().any(|(attempts, _)| *attempts >= 2),
        "the chunk in flight was taken again: {chunks:?}"
    );
    let variant = fetch_text(&stack, &format!("/api/videos/{id}/hls/720p/index.m3u8")).await;
    let segments = hls::segment_uris(&variant);
    let mut once = segments.clone();
    once.dedup();
    assert_eq!(once, segments, "no segment twice");
    let played = assert_plays_continuously(&stack, &id).await;
    let source = video["duration_seconds"].as_f64().unwrap();
    assert!(
        (played - source).abs() <= FRAME,
        "played {played} s of {source} s"
    );
    stack.platform.shutdown().await;
}

#[tokio::test]
async fn deleting_a_video_while_its_chunks_run_removes_everything() {
    let stack = Stack::start().await.unwrap();
    let settings = [CHUNKED[0], CHUNKED[1], ("XTREAM_FFMPEG_THREADS", "1")];
    let first = stack.worker(&settings).await.unwrap();
    let second = stack.worker(&settings).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = clips::mp4(dir.path(), "long.mp4", 36, 1280, 720).unwrap();
    let id = upload(&stack, &clip).await;

    // Playable before ready: the first chunk is published as it is
    // encoded, while the others still run.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, video) = stack
            .platform
            .get_json(&format!("/api/videos/{id}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{video}");
        if video["playable"] == true {
            assert_eq!(video["status"], "transcoding", "{video}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never playable: {video}\n{}",
            logs(&[&first, &second])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = stack
        .platform
        .client
        .delete(stack.platform.url(&format!("/api/videos/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    // The chunk jobs find out when they complete: the plan went with the
    // row, so they end and remove what is under the video's prefix, their
    // own late uploads included.
    let bucket = stack.garage.bucket();
    let prefix = format!("videos/{id}/");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let in_flight = first.metric("xtream_worker_chunks_in_flight").await
            + second.metric("xtream_worker_chunks_in_flight").await;
        let left = bucket.keys(&prefix).await.unwrap();
        if in_flight == 0.0 && left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: {left:?}\n{}",
            logs(&[&first, &second])
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(chunk_rows(&stack, &id).await.is_empty());
    assert!(
        xtream_tests::worker::record(&stack.db, &id)
            .await
            .unwrap()
            .is_none()
    );
    // Nothing comes back once every job has ended.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(bucket.keys(&prefix).await.unwrap().is_empty());
    stack.platform.shutdown().await;
}

/// Claims the chunks of `id` the way chunk jobs do, on their own
/// connections all at once, each until nothing is left; returns every
/// chunk claimed, in order.
async fn claim_all_at_once(
    clients: &[std::sync::Arc<tokio_postgres::Client>],
    id: VideoId,
) -> Vec<u32> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
    let claimers: Vec<_> = clients
        .iter()
        .map(|client| {
            let (client, barrier) = (client.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut claimed = Vec::new();
                loop {
                    let rows = run_statement(&client, &chunks::claim_chunk(id))
                        .await
                        .unwrap();
                    let Some(row) = rows.first() else {
                        return claimed;
                    };
                    claimed.push(row.get::<_, i64>(0) as u32);
                }
            })
        })
        .collect();
    let mut every = Vec::new();
    for claimer in claimers {
        every.extend(claimer.await.unwrap());
    }
    every.sort_unstable();
    every
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_give_each_chunk_to_one_job_and_take_back_a_dead_jobs() {
    let db = Postgres::start().await.unwrap();
    migrate(&db).await.unwrap();
    let client = db.connect().await.unwrap();
    let uploaded = VideoRecord::uploaded(
        VideoId::random(),
        "claimed".into(),
        "claimed.mp4".into(),
        1,
        "video/mp4".into(),
        jiff::Timestamp::now(),
    );
    let id = uploaded.id;
    let insert = metadata::insert_uploaded(&uploaded, UPLOADS_TOPIC, false);
    run_statement(&client, &insert).await.unwrap();
    let keyframes: Vec<f64> = (0..200).map(f64::from).collect();
    let spans = chunks::plan(&keyframes, 200.0, 10.0);
    assert_eq!(spans.len(), 20);
    run_statement(&client, &chunks::insert_plan(id, &spans))
        .await
        .unwrap();
    let claim = || {
        let client = &client;
        async move {
            run_statement(client, &chunks::claim_chunk(id))
                .await
                .unwrap()
                .first()
                .map(|row| row.get::<_, i64>(0) as u32)
        }
    };

    // The first chunk nobody holds, in playing order; never the first
    // chunk (the cutter's).
    assert_eq!(claim().await, Some(1));
    assert_eq!(claim().await, Some(2));

    // Eight jobs at once share out the rest, each chunk to one of them.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(std::sync::Arc::new(db.connect().await.unwrap()));
    }
    let shared = claim_all_at_once(&clients, id).await;
    assert_eq!(shared, (3..20).collect::<Vec<u32>>());
    assert_eq!(claim().await, None, "every chunk is held");

    // A done chunk stays done; a held one whose claim ran out (its job
    // stopped renewing it) is taken back, and the attempt counted.
    let mut output = chunks::ChunkOutput::new();
    output.insert("360p".into(), Vec::new());
    run_statement(&client, &chunks::finish_chunk(id, 7, &output))
        .await
        .unwrap();
    let uuid: uuid::Uuid = id.to_string().parse().unwrap();
    client
        .execute(
            "UPDATE video_chunks SET claimed_until = now() - interval '1 second' \
             WHERE video_id = $1 AND chunk IN (7, 9)",
            &[&uuid],
        )
        .await
        .unwrap();
    run_statement(&client, &chunks::renew_claim(id, 12))
        .await
        .unwrap();
    assert_eq!(claim().await, Some(9));
    assert_eq!(claim().await, None);
    let attempts: i32 = client
        .query_one(
            "SELECT attempts FROM video_chunks WHERE video_id = $1 AND chunk = 9",
            &[&uuid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 2);
    let done = |chunk: u32| {
        let client = &client;
        async move {
            run_statement(client, &chunks::chunk_done(id, chunk))
                .await
                .unwrap()
                .first()
                .map(|row| row.get::<_, bool>(0))
        }
    };
    assert_eq!(done(7).await, Some(true));
    assert_eq!(done(9).await, Some(false));

    // Deleted: no plan, nothing to claim or wait for.
    run_statement(&client, &metadata::delete_video(id))
        .await
        .unwrap();
    assert_eq!(claim().await, None);
    assert_eq!(done(9).await, None);
}
