//! Video metadata in PostgreSQL: the acceptance tests of the move from S3
//! JSON records, against a real PostgreSQL, a real Garage, tansu and the
//! real worker.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xtream_core::events::{DEAD_LETTER_TOPIC, RESULTS_TOPIC, UPLOADS_TOPIC};
use xtream_core::metadata;
use xtream_core::{VideoId, VideoRecord, VideoStatus};
use xtream_tests::postgres::run_statement;
use xtream_tests::worker::{GROUP, migrate, wait_for_status};
use xtream_tests::{Postgres, Stack, bodies, clips};

const MIB: u64 = 1024 * 1024;
const PATIENCE: Duration = Duration::from_secs(180);

/// The ids of a listing page.
fn ids(page: &Value) -> Vec<String> {
    page["videos"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `check` every 200 ms until it is true; fails with `what` (and
/// the worker's log, if any) after `timeout`.
async fn eventually<F, Fut>(timeout: Duration, what: impl Fn() -> String, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "after {timeout:?}: {}", what());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_video_while_it_transcodes_leaves_nothing_behind() {
    let stack = Stack::start().await.unwrap();
    // Long enough at 720p that the delete lands while ffmpeg runs.
    let worker = stack
        .worker(&[("XTREAM_X264_PRESET", "veryfast")])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = std::fs::read(clips::mp4(dir.path(), "clip.mp4", 20, 1280, 720).unwrap()).unwrap();
    let response = stack.platform.upload_raw(clip).await;
    assert_eq!(response.status(), 201);
    let video: Value = response.json().await.unwrap();
    let id = video["id"].as_str().unwrap().to_owned();
    wait_for_status(&stack.db, &id, &["transcoding"], PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e}\nworker log:\n{}", worker.log()));

    let response = stack
        .platform
        .client
        .delete(stack.platform.url(&format!("/api/videos/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // Gone for every client at once, whatever the worker still does.
    for path in [
        format!("/api/videos/{id}"),
        format!("/api/videos/{id}/hls/master.m3u8"),
    ] {
        let (status, body) = stack.platform.get_json(&path).await.unwrap();
        assert_eq!(status, 404, "{path}: {body}");
    }

    // The worker finds out at its next write: it ends the job as skipped
    // and removes what it uploaded.
    let bucket = stack.garage.bucket();
    let prefix = format!("videos/{id}/");
    let (w, b, p) = (&worker, &bucket, &prefix);
    eventually(
        PATIENCE,
        || format!("the worker did not clean up; log:\n{}", worker.log()),
        || async move {
            w.metric("xtream_worker_jobs_skipped_total").await >= 1.0
                && b.keys(p).await.unwrap().is_empty()
        },
    )
    .await;
    assert_eq!(worker.metric("xtream_worker_jobs_skipped_total").await, 1.0);
    assert_eq!(worker.metric("xtream_worker_jobs_failed_total").await, 0.0);
    assert_eq!(
        worker.metric("xtream_worker_jobs_succeeded_total").await,
        0.0,
        "the video was deleted mid-transcode, not after: {}",
        worker.log()
    );
    let log = worker.log();
    assert!(log.contains("was deleted"), "{log}");

    // Nothing left: no row, no deletion to finish, no event to send, no
    // object, no unfinished multipart upload.
    let traces = stack.db.traces(&id).await.unwrap();
    assert_eq!(
        (
            traces.videos,
            traces.sessions,
            traces.unsent,
            traces.deletions
        ),
        (0, 0, 0, 0),
        "{traces:?}"
    );
    assert_eq!(stack.db.row_counts().await.unwrap()[0], 0);
    assert_eq!(bucket.keys("").await.unwrap(), Vec::<String>::new());
    assert_eq!(bucket.multipart_uploads("").await.unwrap(), Vec::new());
    for path in [
        format!("/api/videos/{id}"),
        format!("/api/videos/{id}/hls/master.m3u8"),
        format!("/api/videos/{id}/thumbnail.jpg"),
    ] {
        let (status, body) = stack.platform.get_json(&path).await.unwrap();
        assert_eq!(status, 404, "{path}: {body}");
    }

    // Skipped, not failed: no outcome, no dead letter; and the event is
    // committed, so it is not taken again and the video never comes back.
    let dead = stack
        .kafka
        .records(DEAD_LETTER_TOPIC, 0, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    let outcomes = stack
        .kafka
        .records(RESULTS_TOPIC, 0, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(
        outcomes.iter().all(|r| r.json()["video_id"] != id.as_str()),
        "{outcomes:?}"
    );
    let kafka = &stack.kafka;
    eventually(
        Duration::from_secs(30),
        || format!("the skipped job was not committed; log:\n{}", worker.log()),
        || async move {
            kafka
                .committed(GROUP, UPLOADS_TOPIC)
                .await
                .unwrap()
                .iter()
                .flatten()
                .count()
                == 1
        },
    )
    .await;
    let (status, page) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!((status, ids(&page)), (200, Vec::<String>::new()));
    assert_eq!(stack.db.traces(&id).await.unwrap().videos, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_completion_retried_after_a_database_failure_is_listed_and_announced_once() {
    let mut stack = Stack::start_with_private_db(&[]).await.unwrap();
    let size = 8 * MIB + 1000;
    let (status, created) = stack.platform.post_json("/api/uploads",
        json!({"filename": "clip.mp4", "size": size, "content_type": "video/mp4", "title": "Retried"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let content = bodies::patterned_vec(size, 21).await;
    let http = reqwest::Client::new();
    for (number, range) in [
        (1, 0..8 * MIB as usize),
        (2, 8 * MIB as usize..content.len()),
    ] {
        let url = created["parts"][number - 1]["url"].as_str().unwrap();
        let response = http
            .put(url)
            .body(content[range].to_vec())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
    let s3_upload_id = stack.db.session(&id).await.unwrap().unwrap()["s3_upload_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let original = format!("videos/{id}/original");
    let bucket = stack.garage.bucket();
    let complete = format!("/api/uploads/{id}/complete");

    // 1. The database is down when the completion comes.
    stack.db.checkpoint().await.unwrap();
    stack.db.stop().unwrap();
    let (status, body) = stack.platform.post_json(&complete, json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    stack.db.resume().await.unwrap();
    assert!(stack.db.session(&id).await.unwrap().is_some());
    let traces = stack.db.traces(&id).await.unwrap();
    assert_eq!((traces.videos, traces.outbox), (0, 0));
    assert_eq!(
        bucket.parts(&original, &s3_upload_id).await.unwrap(),
        Some(vec![1, 2])
    );

    // 2. The database fails the insert itself, after S3 has assembled the
    // original: a serialization failure, as PostgreSQL reports a lost race.
    let client = stack.db.connect().await.unwrap();
    client
        .batch_execute(
            "CREATE FUNCTION injected_failure() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'injected failure' USING ERRCODE = '40001'; END $$; \
             CREATE TRIGGER injected_failure BEFORE INSERT ON videos \
             FOR EACH ROW EXECUTE FUNCTION injected_failure();",
        )
        .await
        .unwrap();
    let (status, body) = stack.platform.post_json(&complete, json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable")),
        "{body}"
    );
    client
        .batch_execute("DROP TRIGGER injected_failure ON videos; DROP FUNCTION injected_failure();")
        .await
        .unwrap();
    // The insert, the outbox entry and the session's removal are one
    // statement: none happened.
    assert!(stack.db.session(&id).await.unwrap().is_some());
    let traces = stack.db.traces(&id).await.unwrap();
    assert_eq!((traces.videos, traces.outbox), (0, 0));
    assert_eq!(bucket.parts(&original, &s3_upload_id).await.unwrap(), None);
    let (_, page) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!(ids(&page), Vec::<String>::new());

    // 3. The client retries: the video is recorded, listed, announced.
    let (status, video) = stack.platform.post_json(&complete, json!({})).await;
    assert_eq!(status, 201, "{video}");
    assert_eq!(
        (video["id"].as_str(), &video["size"]),
        (Some(id.as_str()), &json!(size))
    );
    // A retry of the retry (its answer lost) is the same video.
    let (status, again) = stack.platform.post_json(&complete, json!({})).await;
    assert_eq!((status, &again["id"]), (201, &video["id"]));

    let (_, page) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!(ids(&page), vec![id.clone()], "listed exactly once");
    let traces = stack.db.traces(&id).await.unwrap();
    assert_eq!(
        (traces.videos, traces.sessions, traces.outbox, traces.unsent),
        (1, 0, 1, 0),
        "{traces:?}"
    );
    let event = stack.kafka.the_upload_event().await;
    assert_eq!(event["video_id"], id);
    assert_eq!(event["size"], size);
    let (digest, length) = bucket.digest(&original).await.unwrap();
    assert_eq!(length, size);
    assert_eq!(digest, bodies::patterned_digest(size, 21).await);
}

/// One writer of a race: what it read, the status it moves to and the tag
/// it leaves in `status_detail` so the row tells who wrote it.
struct Write {
    record: VideoRecord,
    expected: VideoStatus,
}

/// A status change as the worker makes it: from the record as read, moved
/// by the core's lifecycle (`None` when the lifecycle refuses the move,
/// which the worker would never write), tagged with `tag`.
fn write(read: &VideoRecord, to: VideoStatus, tag: String) -> Option<Write> {
    let mut record = read.clone();
    record.move_to(to, jiff::Timestamp::now()).ok()?;
    record.status_detail = Some(tag);
    if to == VideoStatus::Failed {
        record.failure_reason = Some("raced".into());
    }
    Some(Write {
        record,
        expected: read.status,
    })
}

/// Runs `writes` at once, one connection each, released together; returns
/// the records written (one per write whose compare-and-set matched).
async fn race(clients: &[Arc<tokio_postgres::Client>], writes: Vec<Write>) -> Vec<VideoRecord> {
    let barrier = Arc::new(tokio::sync::Barrier::new(writes.len()));
    let tasks: Vec<_> = writes
        .into_iter()
        .zip(clients.iter().cycle())
        .map(|(write, client)| {
            let (client, barrier) = (client.clone(), barrier.clone());
            tokio::spawn(async move {
                let statement = metadata::save_transition(&write.record, write.expected);
                barrier.wait().await;
                let rows = run_statement(&client, &statement).await.unwrap();
                assert!(rows.len() <= 1);
                rows.first()
                    .map(|row| metadata::decode_record(row.get::<_, &str>(0)).unwrap())
            })
        })
        .collect();
    let mut written = Vec::new();
    for task in tasks {
        written.extend(task.await.unwrap());
    }
    written
}

async fn read(client: &tokio_postgres::Client, id: VideoId) -> VideoRecord {
    let rows = run_statement(client, &metadata::select_record(id))
        .await
        .unwrap();
    metadata::decode_record(rows[0].get::<_, &str>(0)).unwrap()
}

/// Every racer read `read` and moves it to `to(racer)`: exactly one wins,
/// and the row is what the winner wrote. Returns the row.
async fn step(
    clients: &[Arc<tokio_postgres::Client>],
    read_now: &VideoRecord,
    name: &str,
    to: impl Fn(usize) -> VideoStatus,
) -> VideoRecord {
    let writes: Vec<Write> = (0..clients.len())
        .filter_map(|racer| write(read_now, to(racer), format!("{name}: racer {racer}")))
        .collect();
    assert!(!writes.is_empty(), "{name}");
    let written = race(clients, writes).await;
    assert_eq!(written.len(), 1, "{name}: one winner, got {written:?}");
    let winner = &written[0];
    let row = read(&clients[0], read_now.id).await;
    assert_eq!(row.status, winner.status, "{name}");
    assert_eq!(row.status_detail, winner.status_detail, "{name}");
    assert_eq!(
        serde_json::to_value(&row).unwrap(),
        serde_json::to_value(winner).unwrap()
    );
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_status_updates_never_move_a_video_backwards() {
    const VIDEOS: usize = 24;
    const RACERS: usize = 9;
    let db = Postgres::start().await.unwrap();
    migrate(&db).await.unwrap();
    let mut clients = Vec::new();
    for _ in 0..RACERS {
        clients.push(Arc::new(db.connect().await.unwrap()));
    }
    use VideoStatus::*;
    let mut ready = 0;
    for n in 0..VIDEOS {
        let uploaded = VideoRecord::uploaded(
            VideoId::random(),
            format!("race {n}"),
            "race.mp4".into(),
            1,
            "video/mp4".into(),
            jiff::Timestamp::now(),
        );
        let insert = metadata::insert_uploaded(&uploaded, UPLOADS_TOPIC, false);
        assert_eq!(run_statement(&clients[0], &insert).await.unwrap().len(), 1);
        let uploaded = read(&clients[0], uploaded.id).await;

        // Redelivered events: every racer read `uploaded` and queues it.
        let mut row = step(&clients, &uploaded, "queue", |_| Queued).await;
        let mut history = vec![uploaded.clone(), row.clone()];
        // Releases put it back in the queue; a few rounds at most.
        for round in 0.. {
            assert!(round < 20, "never settled: {history:?}");
            let queued = row.clone();
            let transcoding = step(&clients, &queued, "start", |_| Transcoding).await;
            // From the same read: finish, release or fail.
            row = step(&clients, &transcoding, "finish", |racer| {
                [Ready, Queued, Failed][racer % 3]
            })
            .await;
            assert!([Ready, Queued, Failed].contains(&row.status), "{row:?}");
            history.extend([transcoding, row.clone()]);
            if row.status != Queued {
                break;
            }
        }
        if row.status != Ready {
            continue;
        }
        ready += 1;
        // Every writer still holding an older read (a redelivery, a slow
        // release) tries its move now: none may take a ready video back.
        let stale: Vec<Write> = history
            .iter()
            .enumerate()
            .flat_map(|(i, earlier)| {
                [Uploaded, Queued, Transcoding, Failed]
                    .into_iter()
                    .filter_map(move |to| write(earlier, to, format!("stale {i} to {to:?}")))
            })
            .filter(|w| w.expected != Ready)
            .collect();
        assert!(!stale.is_empty());
        let written = race(&clients, stale).await;
        assert_eq!(written, Vec::new(), "a stale write went through");
        let after = read(&clients[0], row.id).await;
        assert_eq!(
            serde_json::to_value(&after).unwrap(),
            serde_json::to_value(&row).unwrap()
        );
        assert_eq!(after.status, Ready);
    }
    assert!(
        ready > 0,
        "no video reached ready: the last check never ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_upload_gives_503_and_leaves_no_orphan() {
    let mut stack = Stack::start_with_private_db(&[]).await.unwrap();
    let size = 40 * MIB;
    // Held after 24 MiB: several 8 MiB parts are in S3 by then.
    let (body, hold) = bodies::held(size, 31, 24 * MIB);
    let request = stack.platform.streamed_upload(size, body).send();
    let request = tokio::spawn(request);
    hold.reached.await.unwrap();
    let bucket = stack.garage.bucket();
    let b = &bucket;
    eventually(
        Duration::from_secs(30),
        || "no multipart upload was started".into(),
        || async move { !b.multipart_uploads("videos/").await.unwrap().is_empty() },
    )
    .await;

    stack.db.checkpoint().await.unwrap();
    stack.db.stop().unwrap();
    hold.release.send(()).unwrap();
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    let (status, body) = stack.platform.get_json("/health/ready").await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("database_unavailable"))
    );

    stack.db.resume().await.unwrap();
    assert_eq!(stack.db.row_counts().await.unwrap(), [0; 4]);
    assert_eq!(bucket.keys("").await.unwrap(), Vec::<String>::new());
    assert_eq!(bucket.multipart_uploads("").await.unwrap(), Vec::new());
    let (status, page) = stack.platform.get_json("/api/videos").await.unwrap();
    assert_eq!((status, ids(&page)), (200, Vec::<String>::new()));

    // Service resumes with the database.
    let response = stack
        .platform
        .upload_raw(b"after the outage".to_vec())
        .await;
    assert_eq!(response.status(), 201);
    let video: Value = response.json().await.unwrap();
    let traces = stack
        .db
        .traces(video["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!((traces.videos, traces.unsent), (1, 0));
}

/// Words the generated titles are made of: prefixes of each other, mixed
/// case, accents, another script.
const VOCABULARY: [&str; 12] = [
    "Sunset",
    "sunrise",
    "Sunday",
    "beach",
    "BEACHSIDE",
    "mountain",
    "Été",
    "étang",
    "über",
    "Москва",
    "city",
    "night",
];
const STATUSES: [&str; 5] = ["uploaded", "queued", "transcoding", "ready", "failed"];

/// The title and status of generated video `n`: two or three words.
fn generated(n: usize) -> (String, &'static str) {
    let mut state = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m as u64) as usize
    };
    let words = 2 + next(2);
    let title: Vec<&str> = (0..words)
        .map(|_| VOCABULARY[next(VOCABULARY.len())])
        .collect();
    (title.join(" "), STATUSES[next(STATUSES.len())])
}

/// Whether `title` matches search `words` (each the lowercased start of
/// some word of the title).
fn matches(title: &str, words: &[String]) -> bool {
    let title: Vec<String> = title.split_whitespace().map(str::to_lowercase).collect();
    words
        .iter()
        .all(|w| title.iter().any(|t| t.starts_with(w.as_str())))
}

/// Every page of `query` (with `limit=7`), following `next_cursor`.
async fn every_page(stack: &Stack, query: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for pages in 0.. {
        assert!(pages < 100, "pagination of {query} does not end");
        let mut path = format!("/api/videos?limit=7&{query}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = stack.platform.get_json(&path).await.unwrap();
        assert_eq!(status, 200, "{path}: {page}");
        let ids = ids(&page);
        assert!(ids.len() <= 7, "{path}");
        seen.extend(ids);
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(page["videos"].as_array().unwrap().len(), 7, "{path}");
                cursor = Some(next.to_owned());
            }
            None => return seen,
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_status_filters_return_the_right_videos_across_pages() {
    const VIDEOS: usize = 300;
    let stack = Stack::start().await.unwrap();
    let mut client = stack.db.connect().await.unwrap();
    let transaction = client.transaction().await.unwrap();
    let insert = transaction
        .prepare(
            "INSERT INTO videos (id, title, filename, size, content_type, status) \
             VALUES ($1, $2, 'v.mp4', 1, 'video/mp4', $3)",
        )
        .await
        .unwrap();
    // Oldest first: the listing is newest first.
    let mut videos = Vec::new();
    for n in 0..VIDEOS {
        let (title, status) = generated(n);
        let id = VideoId::random().to_string();
        let uuid: uuid::Uuid = id.parse().unwrap();
        transaction
            .execute(&insert, &[&uuid, &title, &status])
            .await
            .unwrap();
        videos.push((id, title, status));
    }
    transaction.commit().await.unwrap();
    videos.reverse();

    let cases: &[(&str, &[&str], Option<&str>)] = &[
        // Prefixes: "sun" is the start of three words.
        ("q=sun", &["sun"], None),
        ("q=sunset", &["sunset"], None),
        // Every word must match (AND), in any order.
        ("q=night+sun", &["night", "sun"], None),
        ("q=beach%20city%20mount", &["beach", "city", "mount"], None),
        // Case does not matter, either side.
        ("q=BEACH", &["beach"], None),
        ("q=beachSIDE", &["beachside"], None),
        // Unicode: accents and another script, in either case.
        ("q=%C3%A9t", &["ét"], None),
        ("q=%C3%89T%C3%89", &["été"], None),
        ("q=%C3%BCber", &["über"], None),
        ("q=%D0%BC%D0%BE%D1%81%D0%BA", &["моск"], None),
        ("q=%D0%9C%D0%9E%D0%A1%D0%9A%D0%92%D0%90", &["москва"], None),
        // Punctuation separates words and is never query syntax.
        ("q=sun%26%7C!night:*", &["sun", "night"], None),
        // Filters combine.
        ("status=ready", &[], Some("ready")),
        ("status=failed&q=sun", &["sun"], Some("failed")),
        ("q=beach&status=uploaded", &["beach"], Some("uploaded")),
        ("q=zzz", &["zzz"], None),
        ("", &[], None),
    ];
    for (query, words, status) in cases {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let expected: Vec<String> = videos
            .iter()
            .filter(|(_, title, s)| matches(title, &words) && status.is_none_or(|want| want == *s))
            .map(|(id, _, _)| id.clone())
            .collect();
        let seen = every_page(&stack, query).await;
        assert_eq!(
            seen.len(),
            expected.len(),
            "{query}: {} listed, {} expected",
            seen.len(),
            expected.len()
        );
        assert_eq!(
            seen, expected,
            "{query}: newest first, no gap, no duplicate"
        );
    }
    // The vocabulary really exercised the cases above.
    let some = |words: &[&str]| {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        videos.iter().filter(|(_, t, _)| matches(t, &words)).count()
    };
    assert!(some(&["sun"]) > some(&["sunset"]));
    assert!(some(&["été"]) > 0 && some(&["моск"]) > 0 && some(&["night", "sun"]) > 7);

    for (query, what) in [
        ("status=deleted", "status"),
        ("status=READY", "status"),
        ("cursor=not-a-cursor", "cursor"),
        // A cursor of the old S3 catalog is refused, not misread.
        ("cursor=Y2F0YWxvZy8xMjM", "cursor"),
        ("q=%26%26", "q"),
        ("q=!%20:*%20%7C", "q"),
        ("limit=0", "limit"),
    ] {
        let (status, body) = stack
            .platform
            .get_json(&format!("/api/videos?{query}"))
            .await
            .unwrap();
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{query}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(what),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn migrations_rerun_cleanly_and_an_edited_one_is_refused() {
    let db = Postgres::start().await.unwrap();
    let client = &db.connect().await.unwrap();
    let applied = || async move {
        client
            .query(
                "SELECT version, name, checksum, applied_at::text FROM schema_migrations \
                 ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row.get::<_, i64>(0),
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                    row.get::<_, String>(3),
                )
            })
            .collect::<Vec<_>>()
    };
    let tables = || async move {
        client
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>()
    };

    migrate(&db).await.unwrap();
    let first = applied().await;
    assert_eq!(first.len(), metadata::MIGRATIONS.len());
    assert_eq!((first[0].0, first[0].1.as_str()), (1, "metadata"));
    let every_table = [
        "chunked_videos",
        "outbox",
        "schema_migrations",
        "streamed_upload_slots",
        "streamed_uploads",
        "upload_sessions",
        "video_chunks",
        "video_deletions",
        "videos",
        "whole_catalog_cache",
    ];
    assert_eq!(tables().await, every_table);
    // Data survives a rerun.
    client
        .execute(
            "INSERT INTO videos (id, title, filename, size, content_type, status) \
             VALUES (gen_random_uuid(), 'kept', 'k.mp4', 1, 'video/mp4', 'ready')",
            &[],
        )
        .await
        .unwrap();

    migrate(&db).await.unwrap();
    assert_eq!(applied().await, first, "the second run applied nothing");
    assert_eq!(tables().await, every_table);
    assert_eq!(db.row_counts().await.unwrap()[0], 1);

    // A migration whose SQL differs from what was applied is refused, and
    // nothing is changed.
    client
        .execute(
            "UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    let refused = migrate(&db).await.unwrap_err().to_string();
    assert!(refused.contains("migration 1 (metadata)"), "{refused}");
    assert!(refused.contains("never be edited"), "{refused}");
    let after = applied().await;
    assert_eq!(after.len(), first.len());
    assert_eq!(after[0].2, "0".repeat(64));
    assert_eq!(db.row_counts().await.unwrap()[0], 1);
}

/// A streamed upload's multipart upload is noted while it is open and
/// forgotten once it completes; one left behind by an instance that died
/// mid-upload (whose parts no object listing shows) is aborted by the
/// worker's sweeper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parts_of_a_streamed_upload_never_outlive_it() {
    let stack = Stack::start().await.unwrap();
    let client = stack.db.connect().await.unwrap();
    let noted = || async {
        client
            .query_one("SELECT count(*) FROM streamed_uploads", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let size = 20 * MIB;
    // Held after 12 MiB: one 8 MiB part is in S3 by then.
    let (body, hold) = bodies::held(size, 5, 12 * MIB);
    let request = stack.platform.streamed_upload(size, body).send();
    let request = tokio::spawn(request);
    hold.reached.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while noted().await == 0 {
        assert!(
            Instant::now() < deadline,
            "the open multipart upload was not noted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hold.release.send(()).unwrap();
    assert_eq!(request.await.unwrap().unwrap().status(), 201);
    assert_eq!(noted().await, 0, "a completed upload is forgotten");
    let bucket = stack.garage.bucket();
    assert_eq!(bucket.multipart_uploads("").await.unwrap(), Vec::new());

    // What an instance that died mid-upload leaves: a part in S3 and its note,
    // two days old.
    let lost = VideoId::random();
    let upload_id = bucket
        .start_multipart(&xtream_core::keys::original(lost), vec![7; 5 << 20])
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO streamed_uploads (s3_upload_id, video_id, started_at) \
             VALUES ($1, $2::text::uuid, now() - interval '2 days')",
            &[&upload_id, &lost.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(bucket.multipart_uploads("").await.unwrap().len(), 1);
    let maintenance = xtream_tests::Worker::maintain(
        &stack.garage,
        &stack.kafka,
        &stack.db,
        &[("XTREAM_SWEEP_EVERY", "1s")],
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bucket.multipart_uploads("").await.unwrap().is_empty() || noted().await != 0 {
        assert!(
            Instant::now() < deadline,
            "the abandoned upload was not aborted:\n{}",
            maintenance.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
