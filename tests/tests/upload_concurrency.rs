//! Streamed uploads received at once are bounded across every instance:
//! each holds up to one S3 part in memory while it streams, so past
//! `max_concurrent_uploads` the platform answers 503 with `Retry-After`
//! instead of taking one more.

use serde_json::Value;
use std::time::{Duration, Instant};
use xtream_core::VideoId;
use xtream_core::metadata;
use xtream_tests::bodies::{self, FormPart};
use xtream_tests::{Postgres, Stack};

const MIB: u64 = 1024 * 1024;

/// Upload slots currently leased.
async fn slots_taken(db: &Postgres) -> i64 {
    db.connect()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM streamed_upload_slots WHERE leased_until > now()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// A refusal for being busy: 503, a positive `Retry-After`, and the usual
/// JSON error saying so.
async fn assert_busy(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    let retry_after = response
        .headers()
        .get("retry-after")
        .expect("a busy answer says when to come back")
        .to_str()
        .unwrap()
        .parse::<u32>()
        .expect("Retry-After in seconds");
    assert!(retry_after > 0);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "server_busy", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("busy"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_uploads_past_the_limit_are_told_to_retry_later() {
    let stack = Stack::start_with(&[("max_concurrent_uploads", "2")])
        .await
        .unwrap();
    let platform = &stack.platform;

    // Two slow uploads, stalled mid-body (a client on a slow link).
    let size = 4 * MIB;
    let mut slow = Vec::new();
    for seed in 0..2 {
        let (body, hold) = bodies::held(size, seed, 256 * 1024);
        let request = tokio::spawn(platform.streamed_upload(size, body).send());
        slow.push((request, hold));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while slots_taken(&stack.db).await < 2 {
        assert!(
            Instant::now() < deadline,
            "the two uploads never took their slots"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A third, on either upload route, is refused before its body is read.
    assert_busy(platform.upload_raw(b"one too many".to_vec()).await).await;
    let (form, content_type) = bodies::form(&[FormPart {
        name: "video",
        filename: Some("legacy.mp4"),
        content_type: Some("video/mp4"),
        content: b"one too many, the old way",
    }]);
    let legacy = platform
        .client
        .post(platform.url("/upload"))
        .header("content-type", content_type)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_busy(legacy).await;
    assert_eq!(stack.db.row_counts().await.unwrap(), [0; 4]);

    // The slow ones finish, and give their slots back.
    for (request, hold) in slow {
        hold.release.send(()).unwrap();
        let response = request.await.unwrap().unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }
    assert_eq!(slots_taken(&stack.db).await, 0);
    let response = platform.upload_raw(b"room again".to_vec()).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    assert_eq!(slots_taken(&stack.db).await, 0);
}

/// Upload `id` asks for one of `limit` slots: (free slots it saw, the slot
/// it got).
async fn take_slot(db: &Postgres, id: VideoId, limit: u32) -> (i64, Option<i64>) {
    let row = db
        .run(&metadata::take_upload_slot(id, limit, 60))
        .await
        .unwrap()
        .pop()
        .unwrap();
    (row.get(0), row.get(1))
}

/// The slot statement on its own: many uploads asking at once never get
/// more slots than the limit (whatever PostgreSQL's isolation level), and a
/// slot whose lease ran out (its instance died) is taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_asking_at_once_never_take_more_slots_than_the_limit() {
    let db = Postgres::start().await.unwrap();
    xtream_tests::worker::migrate(&db).await.unwrap();
    const LIMIT: u32 = 5;
    let asks = (0..40).map(|_| {
        let db = &db;
        async move {
            let id = VideoId::random();
            take_slot(db, id, LIMIT).await.1.map(|slot| (id, slot))
        }
    });
    let mut holders: Vec<(VideoId, i64)> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    let taken: Vec<i64> = holders.iter().map(|(_, slot)| *slot).collect();
    assert!(
        !taken.is_empty() && taken.len() <= LIMIT as usize,
        "{taken:?}"
    );
    let mut distinct = taken.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), taken.len(), "one upload a slot: {taken:?}");
    assert!(taken.iter().all(|slot| (1..=LIMIT as i64).contains(slot)));

    // Fill what is left, then the next is refused, seeing no free slot.
    loop {
        let id = VideoId::random();
        match take_slot(&db, id, LIMIT).await {
            (_, Some(slot)) => holders.push((id, slot)),
            (free, None) => {
                assert_eq!(free, 0, "refused while slots were free");
                break;
            }
        }
    }
    assert_eq!(slots_taken(&db).await, i64::from(LIMIT));

    // A holder gives its slot back; another takes it.
    let (id, slot) = holders.pop().unwrap();
    db.run(&metadata::release_upload_slot(id, slot))
        .await
        .unwrap();
    assert_eq!(take_slot(&db, VideoId::random(), LIMIT).await.1, Some(slot));

    // An instance that died leaves its lease to run out: the slot is free
    // again then, and renewing it does nothing for the dead upload.
    db.connect()
        .await
        .unwrap()
        .execute(
            "UPDATE streamed_upload_slots SET leased_until = now() - interval '1 second' \
             WHERE slot = $1",
            &[&(holders[0].1 as i32)],
        )
        .await
        .unwrap();
    assert_eq!(
        take_slot(&db, VideoId::random(), LIMIT).await.1,
        Some(holders[0].1)
    );
    let client = db.connect().await.unwrap();
    let renewed = xtream_tests::postgres::run_statement(
        &client,
        &metadata::renew_upload_slot(holders[0].0, holders[0].1, 60),
    )
    .await
    .unwrap();
    assert!(renewed.is_empty());
    assert_eq!(slots_taken(&db).await, i64::from(LIMIT));
}
