//! The web app in a real browser against the whole stack: Garage, a Kafka
//! broker (tansu), the bridge, the transcoding worker and the platform. The
//! browser part is `tests/browser/e2e.mjs` (playwright-core driving Debian's
//! Chromium); this test starts the servers, runs it and fails with its output.
//! Besides the short clip it walks through, a 60 s one is played while the
//! worker still transcodes it (progressive publishing), to its real end.

use std::path::Path;
use std::process::Command;
use xtream_core::events::UPLOADS_TOPIC;
use xtream_tests::{Garage, Platform, Postgres, Tansu, Worker, clips, workspace_root};

/// Chromium as Debian installs it (`./x setup`), unless `XTREAM_CHROMIUM`
/// names another.
fn chromium() -> String {
    std::env::var("XTREAM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Installs the browser test's pinned npm packages if `./x setup` has not.
fn install_playwright(dir: &Path) {
    if dir.join("node_modules/playwright-core").is_dir() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--prefix"])
        .arg(dir)
        .args(["--no-audit", "--no-fund"])
        .status()
        .expect("npm runs (./x setup installs Node.js)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

#[tokio::test]
async fn a_clip_uploaded_in_the_browser_plays_in_more_than_one_rendition() {
    assert!(
        Path::new(&chromium()).exists(),
        "{} is missing: run `./x setup` (apt package chromium)",
        chromium()
    );
    let root = workspace_root();
    let browser_tests = root.join("tests/browser");
    install_playwright(&browser_tests);

    let garage = Garage::start().await.unwrap();
    let tansu = Tansu::start().await.unwrap();
    tansu.create_xtream_topics().await.unwrap();
    let bridge = Worker::bridge(&tansu).await.unwrap();
    let db = Postgres::start().await.unwrap();
    xtream_tests::worker::migrate(&db).await.unwrap();
    let platform = Platform::start_with(
        &garage,
        &db,
        &[
            ("kafka_bridge_url", bridge.base.as_str()),
            ("uploads_topic", UPLOADS_TOPIC),
        ],
    )
    .await
    .unwrap();
    let worker = Worker::run(&garage, &tansu, &db, &[]).await.unwrap();

    // 1280x720 gets the 360p and 720p rungs: two renditions to switch between.
    let dir = tempfile::tempdir().unwrap();
    let clip = clips::mp4(dir.path(), "pattern.mp4", 6, 1280, 720).unwrap();
    // Long enough to be still transcoding when the player starts on it.
    let long_clip = clips::mp4(dir.path(), "long.mp4", 60, 1280, 720).unwrap();
    let artifacts = root.join("target/test-artifacts");
    let output = tokio::process::Command::new("node")
        .arg(browser_tests.join("e2e.mjs"))
        .arg(&platform.base)
        .arg(&clip)
        .arg(&artifacts)
        .env("XTREAM_CHROMIUM", chromium())
        .env("XTREAM_LONG_CLIP", &long_clip)
        .env("XTREAM_API_KEY", &platform.api_key)
        .output()
        .await
        .expect("node runs (./x setup installs Node.js)");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}\nworker log:\n{}",
        output.status,
        worker.log()
    );
    assert!(artifacts.join("player.png").is_file());
    println!("{stdout}");
    platform.shutdown().await;
}
