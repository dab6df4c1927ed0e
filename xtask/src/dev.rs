//! The dev stack behind `./x up` and `./x load`: the integration tests'
//! servers (`xtream_tests`), given the dev stack's settings: fixed ports,
//! data kept under the cache between runs, development credentials, the
//! release binaries `./x build` makes, logs in `~/.cache/xtream/dev-*.log`.

use crate::say;
use anyhow::{Context as _, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use xtream_tests::bodies::FormPart;
use xtream_tests::garage::GarageSettings;
use xtream_tests::platform::{PlatformProgram, Served};
use xtream_tests::postgres::KeptCluster;
use xtream_tests::prometheus::PrometheusSettings;
use xtream_tests::worker::{self as harness, Launch};
use xtream_tests::{
    DataDir, Garage, LogFile, Platform, Postgres, Prometheus, Tansu, Worker, cache_dir,
    workspace_root,
};

const S3_PORT: u16 = 3900;
const GARAGE_RPC_PORT: u16 = 3901;
const POSTGRES_PORT: u16 = 15432;
const KAFKA_PORT: u16 = 9092;
const BRIDGE_PORT: u16 = 8080;
const WORKER_PORT: u16 = 9090;
const HOST_METRICS: &str = "127.0.0.1:9091";
const PROMETHEUS_PORT: u16 = 9095;
/// Development-only credentials for the local Garage; never used elsewhere.
const ACCESS_KEY: &str = "GK0000000000000000000000de";
const SECRET_KEY: &str = "00000000000000000000000000000000000000000000000000000000000000de";
/// Development-only credentials for the local database.
const POSTGRES_USER: &str = "xtream";
const POSTGRES_PASSWORD: &str = "xtream-dev-password";
const DATABASE: &str = "xtream";
/// The API key writes need unless `XTREAM_API_KEY` names another.
const DEFAULT_API_KEY: &str = "xtream-dev-key-change-me-0000000000";
/// Instances alive at once (Spin's variable; default 1000) unless
/// `SPIN_WASMTIME_INSTANCE_COUNT` says: each lives on a moment after its
/// response, so 1000 clients at once (`./x load`) need room above 1000.
const DEFAULT_INSTANCE_COUNT: &str = "2000";

/// What the environment may change of the dev stack.
#[derive(Debug, Clone)]
pub struct DevSettings {
    /// `XTREAM_LISTEN` [127.0.0.1:3000]: the platform's address.
    pub listen: SocketAddr,
    /// `XTREAM_API_KEY`: the API key the platform accepts.
    pub api_key: String,
    /// `XTREAM_DATA`: where Garage's data goes (and, under it, the
    /// database's and Prometheus'); by default under the cache.
    pub data: Option<PathBuf>,
}

impl DevSettings {
    /// The settings the environment gives.
    pub fn from_env() -> anyhow::Result<Self> {
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let listen = set("XTREAM_LISTEN").unwrap_or_else(|| "127.0.0.1:3000".into());
        Ok(Self {
            listen: listen
                .parse()
                .with_context(|| format!("XTREAM_LISTEN={listen:?} is not an address"))?,
            api_key: set("XTREAM_API_KEY").unwrap_or_else(|| DEFAULT_API_KEY.into()),
            data: set("XTREAM_DATA").map(PathBuf::from),
        })
    }

    /// The platform's URL.
    pub fn base(&self) -> String {
        format!("http://{}", self.listen)
    }

    fn garage_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| cache_dir().join("dev-garage"))
    }

    fn data_root(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(cache_dir)
    }
}

/// `~/.cache/xtream/dev-<name>.log`.
pub fn log_path(name: &str) -> PathBuf {
    cache_dir().join(format!("dev-{name}.log"))
}

/// The release binaries `./x build` makes.
pub fn release_dir() -> PathBuf {
    xtream_tests::target_dir().join("release")
}

/// Every server of the dev stack. Dropped (or [`DevStack::stop`]ped) in
/// the order of its fields: the database last.
pub struct DevStack {
    /// Under `./x up` only.
    pub prometheus: Option<Prometheus>,
    pub platform: Platform,
    pub worker: Worker,
    pub bridge: Worker,
    pub kafka: Tansu,
    pub garage: Garage,
    pub db: Postgres,
}

impl DevStack {
    /// Starts every server, and Prometheus with `with_prometheus`. The
    /// database starts first, so that it stops last even when the start
    /// is cut short.
    pub async fn start(settings: &DevSettings, with_prometheus: bool) -> anyhow::Result<Self> {
        let release = Launch {
            binaries: Some(release_dir()),
            as_deployed: true,
            ..Launch::default()
        };
        let db_dir = settings.data_root().join("dev-postgres");
        say(&format!(
            "starting PostgreSQL on 127.0.0.1:{POSTGRES_PORT} (data in {})",
            db_dir.display()
        ));
        let db = Postgres::start_kept(KeptCluster {
            data: db_dir,
            port: POSTGRES_PORT,
            user: POSTGRES_USER.into(),
            password: POSTGRES_PASSWORD.into(),
            database: DATABASE.into(),
            log: log_path("postgres"),
        })
        .await
        .with_context(|| format!("PostgreSQL did not start (is port {POSTGRES_PORT} taken?)"))?;
        say("applying the schema migrations: xtream-worker migrate");
        harness::migrate_launched(&db, &release).await?;

        let garage_dir = settings.garage_dir();
        say(&format!(
            "starting Garage on 127.0.0.1:{S3_PORT} (data in {})",
            garage_dir.display()
        ));
        let garage = Garage::start_with(GarageSettings {
            s3_port: S3_PORT,
            rpc_port: GARAGE_RPC_PORT,
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            dir: DataDir::kept(garage_dir)?,
        })
        .await?;

        say(&format!(
            "starting Kafka (tansu, in memory) on 127.0.0.1:{KAFKA_PORT}"
        ));
        let kafka = Tansu::start_on(KAFKA_PORT, LogFile::at(log_path("tansu"))?).await?;
        kafka.create_xtream_topics().await?;

        say(&format!(
            "starting the Kafka bridge on 127.0.0.1:{BRIDGE_PORT} and the worker (metrics on :{WORKER_PORT})"
        ));
        let bridge = Worker::bridge_launched(
            &kafka,
            &Launch {
                port: Some(BRIDGE_PORT),
                log: Some(log_path("bridge")),
                ..release.clone()
            },
        )
        .await?;
        let worker = Worker::run_launched(
            &garage,
            &kafka,
            &db,
            &[],
            &Launch {
                port: Some(WORKER_PORT),
                log: Some(log_path("worker")),
                ..release.clone()
            },
        )
        .await?;

        let platform = start_platform(settings, &garage, &db, &bridge).await?;
        let prometheus = if with_prometheus {
            Some(start_prometheus(settings, &platform).await?)
        } else {
            None
        };
        Ok(Self {
            prometheus,
            platform,
            worker,
            bridge,
            kafka,
            garage,
            db,
        })
    }

    /// Stops every server, each given the time to end cleanly, in the
    /// order of the fields.
    pub async fn stop(self) {
        let Self {
            prometheus,
            platform,
            mut worker,
            mut bridge,
            kafka,
            garage,
            db,
        } = self;
        drop(prometheus);
        platform.shutdown().await;
        // SIGTERM, as on a rollout: the worker ends its jobs' writes.
        let _ = worker.terminate(Duration::from_secs(30)).await;
        let _ = bridge.terminate(Duration::from_secs(10)).await;
        drop(kafka);
        drop(garage);
        drop(db);
    }
}

/// The platform, served by `spin up` when a Spin CLI is on the PATH, else
/// by the embedded host's release binary (which also serves Spin's request
/// counter for Prometheus).
async fn start_platform(
    settings: &DevSettings,
    garage: &Garage,
    db: &Postgres,
    bridge: &Worker,
) -> anyhow::Result<Platform> {
    let program = match crate::find_command("spin") {
        Some(spin) => {
            say(&format!(
                "starting the platform with spin up on {}",
                settings.listen
            ));
            PlatformProgram::SpinUp(spin)
        }
        None => {
            say(&format!(
                "starting the platform in the embedded host on {} (spin is not installed)",
                settings.listen
            ));
            PlatformProgram::Host {
                binary: release_dir().join("xtream-host"),
                metrics: HOST_METRICS.parse().expect("a literal address"),
            }
        }
    };
    let instances = std::env::var("SPIN_WASMTIME_INSTANCE_COUNT")
        .unwrap_or_else(|_| DEFAULT_INSTANCE_COUNT.into());
    let served = Served {
        program,
        listen: settings.listen,
        env: vec![("SPIN_WASMTIME_INSTANCE_COUNT".into(), instances)],
        log: None,
    };
    let variables = [
        ("kafka_bridge_url", bridge.base.as_str()),
        ("api_keys", settings.api_key.as_str()),
    ];
    Platform::start_served(garage, db, &variables, served).await
}

/// Prometheus with the local configuration and the cluster's alerting
/// rules, scraping the worker and the embedded host (`spin up` pushes its
/// metrics over OTLP instead, so under it only the worker is scraped).
async fn start_prometheus(
    settings: &DevSettings,
    platform: &Platform,
) -> anyhow::Result<Prometheus> {
    say(&format!(
        "starting Prometheus on 127.0.0.1:{PROMETHEUS_PORT} (alerts: http://127.0.0.1:{PROMETHEUS_PORT}/alerts)"
    ));
    let mut targets = vec![("xtream-worker", format!("127.0.0.1:{WORKER_PORT}"))];
    if let Some(metrics) = platform.metrics_addr() {
        targets.push(("xtream-functions", metrics.to_string()));
    }
    let settings = PrometheusSettings {
        port: PROMETHEUS_PORT,
        dir: DataDir::kept(settings.data_root().join("dev-prometheus"))?,
        log: LogFile::at(log_path("prometheus"))?,
        retention: Some("2d".into()),
    };
    Prometheus::start_with(&targets, settings).await
}

/// Waits until the platform is ready (`/health/ready`: its database and
/// S3 answer), for up to 5 minutes.
pub async fn wait_ready(platform: &Platform) -> anyhow::Result<()> {
    let url = platform.url("/health/ready");
    let mut last = String::new();
    for _ in 0..600 {
        match platform.anonymous.get(&url).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => last = response.text().await.unwrap_or_default(),
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("the platform did not become ready: {last}")
}

/// The sample video (a 4 s 640x360 test pattern with a tone), made once.
pub fn sample_clip() -> anyhow::Result<PathBuf> {
    let dir = cache_dir();
    let clip = dir.join("sample.mp4");
    if std::fs::metadata(&clip).map_or(true, |meta| meta.len() == 0) {
        std::fs::create_dir_all(&dir)?;
        xtream_tests::clips::mp4(&dir, "sample.mp4", 4, 640, 360)?;
    }
    Ok(clip)
}

/// Uploads `clip` titled `title` as a browser form would, and returns the
/// platform's answer.
pub async fn upload(
    platform: &Platform,
    clip: &Path,
    title: &str,
) -> anyhow::Result<serde_json::Value> {
    let video = std::fs::read(clip).with_context(|| format!("reading {}", clip.display()))?;
    let response = platform
        .post_form(
            "/api/videos",
            &[
                FormPart {
                    name: "title",
                    filename: None,
                    content_type: None,
                    content: title.as_bytes(),
                },
                FormPart {
                    name: "video",
                    filename: Some("sample.mp4"),
                    content_type: Some("video/mp4"),
                    content: &video,
                },
            ],
        )
        .await?;
    let status = response.status();
    let answer = response.text().await?;
    if !status.is_success() {
        bail!("the upload failed ({status}): {answer}");
    }
    Ok(serde_json::from_str(&answer)?)
}

/// `./x up`'s demonstration: uploads the sample, waits until the worker
/// made it ready, lists the newest videos, checks that Prometheus scrapes
/// every target, and says how to use the stack.
pub async fn demo(stack: &DevStack, settings: &DevSettings) -> anyhow::Result<()> {
    let base = settings.base();
    let platform = &stack.platform;
    let clip = sample_clip()?;
    say(&format!(
        "uploading a sample video: curl -H 'Authorization: Bearer $KEY' -F video=@sample.mp4 -F title='Test pattern' {base}/api/videos"
    ));
    let created = upload(platform, &clip, "Test pattern").await?;
    println!("{created}");
    let id = created["id"]
        .as_str()
        .context("the upload's answer names no id")?
        .to_owned();
    say(&format!("waiting for the worker to transcode {id}"));
    let mut status = String::from("uploaded");
    for _ in 0..300 {
        let (_, record) = platform.get_json(&format!("/api/videos/{id}")).await?;
        status = record["status"].as_str().unwrap_or_default().to_owned();
        eprint!("\r    status: {status:<12}");
        if status == "ready" || status == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!();
    if status != "ready" {
        bail!(
            "the sample did not become ready (status: {status}); see {}",
            log_path("worker").display()
        );
    }
    say(&format!("listing: curl {base}/api/videos?limit=3"));
    let (_, listing) = platform.get_json("/api/videos?limit=3").await?;
    println!("{listing}");
    if let Some(prometheus) = &stack.prometheus {
        prometheus_scraping(prometheus).await?;
    }
    let key = &settings.api_key;
    let logs = cache_dir().join("dev-*.log");
    eprintln!(
        "
Xtream is up at {base}
  API key: {key}   (writes send Authorization: Bearer <key>)
  upload:  curl -H 'Authorization: Bearer {key}' -F video=@my.mp4 -F title='My video' {base}/api/videos
  big one: XTREAM_API_KEY={key} target/release/xtream upload my.mp4   (resumable, with progress)
  delete:  curl -X DELETE -H 'Authorization: Bearer {key}' {base}/api/videos/ID
  list:    curl {base}/api/videos
  one:     curl {base}/api/videos/ID
  play:    ffplay {base}/api/videos/{id}/hls/master.m3u8   (or open {base}/ in a browser)
  health:  curl {base}/health/ready
  metrics: http://127.0.0.1:{PROMETHEUS_PORT} (Prometheus: the cluster's alerts on this stack)
  logs:    {}
Press Ctrl-C to stop.",
        logs.display()
    );
    Ok(())
}

/// Waits until Prometheus has scraped every target it was given.
async fn prometheus_scraping(prometheus: &Prometheus) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for _ in 0..60 {
        targets = prometheus.target_health().await.unwrap_or_default();
        if !targets.is_empty() && targets.iter().all(|(_, health)| health == "up") {
            let mut jobs: Vec<&str> = targets.iter().map(|(job, _)| job.as_str()).collect();
            jobs.sort_unstable();
            jobs.dedup();
            say(&format!("Prometheus scrapes: {}", jobs.join(" ")));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!(
        "Prometheus is not scraping every target: {targets:?} (see {})",
        log_path("prometheus").display()
    )
}

/// Builds the Spin components with spin.toml's build commands (the same
/// commands `spin build` runs), and the native binaries in release mode.
pub fn build() -> anyhow::Result<()> {
    say("building the Spin components with spin.toml's build commands, and the embedded host");
    xtream_tests::platform::build_components().map_err(anyhow::Error::msg)?;
    crate::run(
        Command::new(crate::cargo())
            .current_dir(workspace_root())
            .args([
                "build",
                "--release",
                "-p",
                "xtream-host",
                "-p",
                "xtream-worker",
                "-p",
                "xtream-kafka-bridge",
                "-p",
                "xtream-cli",
            ]),
    )
}
