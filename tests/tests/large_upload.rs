//! A 200 MiB upload streams through: the bytes arrive intact and the
//! process serving it does not grow with the body.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use xtream_tests::{Stack, bodies, resident_bytes};

const SIZE: u64 = 200 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_upload_streams_with_flat_memory() {
    let stack = Stack::start().await.unwrap();
    let (platform, garage) = (&stack.platform, &stack.garage);

    // Warm up: the first request sizes the instance pool and allocator.
    let response = platform
        .client
        .post(platform.url("/api/videos?filename=warm.mp4"))
        .header("content-type", "video/mp4")
        .body(bodies::patterned_vec(9 << 20, 9).await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let baseline = resident_bytes();
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // The host (in this process) receives the body as the client streams it.
    let response = platform
        .client
        .post(platform.url("/api/videos?filename=big.mp4"))
        .header("content-type", "video/mp4")
        .header("content-length", SIZE.to_string())
        .body(reqwest::Body::wrap_stream(bodies::patterned(SIZE, 42)))
        .send()
        .await
        .unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    assert_eq!(response.status(), 201);
    let record: serde_json::Value = response.json().await.unwrap();
    assert_eq!(record["size"], SIZE);

    let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    eprintln!(
        "resident memory grew by {} MiB during a {} MiB upload",
        growth >> 20,
        SIZE >> 20
    );
    assert!(
        growth < 64 << 20,
        "resident memory grew by {} MiB: the body is being buffered",
        growth >> 20
    );

    let id = record["id"].as_str().unwrap();
    let (digest, length) = garage
        .bucket()
        .digest(&format!("videos/{id}/original"))
        .await
        .unwrap();
    assert_eq!(length, SIZE);
    assert_eq!(digest, bodies::patterned_digest(SIZE, 42).await);
}
