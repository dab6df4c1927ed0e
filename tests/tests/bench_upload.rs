//! Upload benchmark (ignored by `cargo test`; run by `./x bench-upload`).
//!
//! Against one Garage, with the release host (`target/release/xtream-host`)
//! as a separate process, uploads the same file
//!
//! - straight to S3 with one presigned `PUT`, one stream: the reference of
//!   the streamed path, which is one stream too;
//! - straight to S3 as a presigned multipart upload, [`PARALLEL_PARTS`]
//!   parts at a time, of the part size the resumable API chooses: the
//!   reference of the resumable path, which sends the same parts the same
//!   way;
//! - with the release `xtream` CLI through the resumable API,
//! - streamed through the host with a raw-body `POST /api/videos`,
//!
//! alternating the four, and reports throughputs and each path's ratio to
//! its like-for-like reference, plus the host's resident memory during the
//! streamed upload
//! (sampled from /proc/PID/status). The results replace the
//! `upload-bench` section of BENCHMARKS.md.
//!
//! Knobs: `XTREAM_BENCH_BYTES` (default 1 GiB), `XTREAM_BENCH_RUNS`
//! (default 3).

use anyhow::{Context, bail};
use bytes::Bytes;
use rusty_s3::{Credentials, S3Action, UrlStyle};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xtream_tests::platform::TEST_API_KEY;
use xtream_tests::report::{Machine, write_section};
use xtream_tests::{Garage, Postgres, Tansu, Worker, bodies, workspace_root};

const MIB: f64 = 1024.0 * 1024.0;

/// Parts in flight at once, for the CLI (`--parallel`) and for the direct
/// multipart upload it is compared with.
const PARALLEL_PARTS: usize = 4;

/// The release host as a child process; killed on drop.
struct Host {
    base: String,
    child: Child,
}

impl Host {
    async fn start(garage: &Garage, db: &Postgres, bridge: &Worker) -> anyhow::Result<Self> {
        let root = workspace_root();
        let binary = root.join("target/release/xtream-host");
        if !binary.exists() {
            bail!("{} is missing: run `./x build` first", binary.display());
        }
        let port = xtream_tests::free_port();
        let child = Command::new(binary)
            .current_dir(&root)
            .args([
                "--manifest",
                "spin.toml",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("SPIN_VARIABLE_S3_ENDPOINT", &garage.endpoint)
            .env("SPIN_VARIABLE_S3_BUCKET", &garage.bucket)
            .env("SPIN_VARIABLE_S3_ACCESS_KEY", &garage.access_key)
            .env("SPIN_VARIABLE_S3_SECRET_KEY", &garage.secret_key)
            .env("SPIN_VARIABLE_KAFKA_BRIDGE_URL", &bridge.base)
            .env("SPIN_VARIABLE_DB_HOST", &db.host)
            .env("SPIN_VARIABLE_DB_PORT", db.port.to_string())
            .env("SPIN_VARIABLE_DB_NAME", &db.database)
            .env("SPIN_VARIABLE_DB_USER", &db.user)
            .env("SPIN_VARIABLE_DB_PASSWORD", &db.password)
            .env("SPIN_VARIABLE_DB_SSLMODE", "disable")
            .env("SPIN_VARIABLE_API_KEYS", TEST_API_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting xtream-host")?;
        let host = Self {
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/health/ready", host.base)).await
                && r.status().is_success()
            {
                return Ok(host);
            }
            if Instant::now() > deadline {
                bail!("the host did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// (VmRSS, VmHWM) in bytes.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file's bytes as a request body, read in 256 KiB chunks.
async fn file_body(path: &Path) -> anyhow::Result<reqwest::Body> {
    let len = tokio::fs::metadata(path).await?.len();
    file_range_body(path, 0, len).await
}

/// `len` bytes of a file from `offset`, as a request body read in 256 KiB
/// chunks (as the CLI reads a part).
async fn file_range_body(path: &Path, offset: u64, len: u64) -> anyhow::Result<reqwest::Body> {
    use tokio::io::AsyncSeekExt;
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let chunks = futures::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(256 * 1024);
        let mut chunk = vec![0; n as usize];
        match file.read_exact(&mut chunk).await {
            Ok(_) => Some((
                Ok::<_, std::io::Error>(Bytes::from(chunk)),
                (file, left - n),
            )),
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(reqwest::Body::wrap_stream(chunks))
}

fn bench_bucket(garage: &Garage) -> anyhow::Result<(rusty_s3::Bucket, Credentials)> {
    let bucket = rusty_s3::Bucket::new(
        garage.endpoint.parse()?,
        UrlStyle::Path,
        garage.bucket.clone(),
        "us-east-1",
    )?;
    Ok((
        bucket,
        Credentials::new(&garage.access_key, &garage.secret_key),
    ))
}

/// Sends the file as a presigned multipart upload, [`PARALLEL_PARTS`] parts
/// at a time, each of the size the resumable API would choose.
async fn direct_multipart(
    garage: &Garage,
    file: &Path,
    size: u64,
    key: &str,
) -> anyhow::Result<f64> {
    use futures::{StreamExt, TryStreamExt};
    let (bucket, credentials) = bench_bucket(garage)?;
    let part_size = xtream_core::resumable::part_size_for(size);
    let parts = size.div_ceil(part_size);
    let client = reqwest::Client::new();
    let sign = Duration::from_secs(3600);
    let started = Instant::now();

    let create = bucket.create_multipart_upload(Some(&credentials), key);
    let answer = client.post(create.sign(sign)).send().await?;
    if !answer.status().is_success() {
        bail!("CreateMultipartUpload: {}", answer.status());
    }
    let created = rusty_s3::actions::CreateMultipartUpload::parse_response(&answer.text().await?)?;
    let upload_id = created.upload_id().to_owned();

    let etags: Vec<String> = futures::stream::iter(1..=parts)
        .map(|number| {
            let (client, bucket, credentials, upload_id) =
                (&client, &bucket, &credentials, &upload_id);
            async move {
                let offset = (number - 1) * part_size;
                let len = (size - offset).min(part_size);
                let number = u16::try_from(number).context("at most 10,000 parts")?;
                let url = bucket
                    .upload_part(Some(credentials), key, number, upload_id)
                    .sign(sign);
                let answer = client
                    .put(url)
                    .header("content-length", len)
                    .body(file_range_body(file, offset, len).await?)
                    .send()
                    .await?;
                if !answer.status().is_success() {
                    bail!("UploadPart {number}: {}", answer.status());
                }
                let etag = answer
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .context("an ETag")?;
                Ok(etag.to_owned())
            }
        })
        .buffered(PARALLEL_PARTS)
        .try_collect()
        .await?;

    let complete = bucket.complete_multipart_upload(
        Some(&credentials),
        key,
        &upload_id,
        etags.iter().map(String::as_str),
    );
    let answer = client
        .post(complete.sign(sign))
        .body(complete.body())
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!("CompleteMultipartUpload: {}", answer.status());
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn direct_put(garage: &Garage, file: &Path, size: u64, key: &str) -> anyhow::Result<f64> {
    let (bucket, credentials) = bench_bucket(garage)?;
    let url = bucket
        .put_object(Some(&credentials), key)
        .sign(Duration::from_secs(3600));
    let started = Instant::now();
    let response = reqwest::Client::new()
        .put(url)
        .header("content-length", size)
        .body(file_body(file).await?)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("direct PUT: {}", response.status());
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn resumable(
    host: &Host,
    cli: &Path,
    file: &Path,
    state: &Path,
) -> anyhow::Result<(f64, String)> {
    let started = Instant::now();
    let output = tokio::process::Command::new(cli)
        .args([
            "--json",
            "upload",
            file.to_str().context("UTF-8 path")?,
            "--no-wait",
            "--parallel",
            &PARALLEL_PARTS.to_string(),
        ])
        .env("XTREAM_SERVER", &host.base)
        .env("XTREAM_API_KEY", TEST_API_KEY)
        .env("XTREAM_STATE_DIR", state)
        .output()
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("xtream upload: {}", String::from_utf8_lossy(&output.stderr));
    }
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok((seconds, summary["id"].as_str().context("an id")?.to_owned()))
}

/// Streams the file through `POST /api/videos`, sampling the host's RSS;
/// returns (seconds, video id, peak RSS seen).
async fn streamed(host: &Host, file: &Path, size: u64) -> anyhow::Result<(f64, String, u64)> {
    let peak = Arc::new(AtomicU64::new(host.memory().0));
    let done = Arc::new(AtomicBool::new(false));
    let pid = host.child.id();
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kib) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kib * 1024, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/api/videos?filename=bench.mp4", host.base))
        .bearer_auth(TEST_API_KEY)
        .header("content-type", "video/mp4")
        .header("content-length", size)
        .body(file_body(file).await?)
        .send()
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    if response.status() != 201 {
        bail!(
            "POST /api/videos: {} {}",
            response.status(),
            response.text().await?
        );
    }
    let video: serde_json::Value = response.json().await?;
    Ok((
        seconds,
        video["id"].as_str().context("an id")?.to_owned(),
        peak.load(Ordering::Relaxed),
    ))
}

async fn delete_video(host: &Host, id: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .delete(format!("{}/api/videos/{id}", host.base))
        .bearer_auth(TEST_API_KEY)
        .send()
        .await?;
    if response.status() != 204 {
        bail!("DELETE: {}", response.status());
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with ./x bench-upload"]
async fn upload_throughput_and_host_memory() {
    let size: u64 = std::env::var("XTREAM_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let runs: usize = std::env::var("XTREAM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let cli = workspace_root().join("target/release/xtream");
    assert!(
        cli.exists(),
        "{} is missing: run `./x build` first",
        cli.display()
    );

    let garage = Garage::start().await.unwrap();
    let kafka = Tansu::start().await.unwrap();
    kafka.create_xtream_topics().await.unwrap();
    let bridge = Worker::bridge(&kafka).await.unwrap();
    let db = Postgres::start().await.unwrap();
    xtream_tests::worker::migrate(&db).await.unwrap();
    let host = Host::start(&garage, &db, &bridge).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bench.mp4");
    {
        let mut out = tokio::fs::File::create(&file).await.unwrap();
        let mut chunks = std::pin::pin!(bodies::patterned(size, 99));
        use futures::StreamExt;
        while let Some(chunk) = chunks.next().await {
            out.write_all(&chunk.unwrap()).await.unwrap();
        }
        out.flush().await.unwrap();
    }
    // Warm up: the first requests instantiate the components.
    let (_, id, _) = streamed(&host, &file, size).await.unwrap();
    delete_video(&host, &id).await.unwrap();
    let idle_rss = host.memory().0;

    let (mut direct, mut multipart, mut resumed, mut stream) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut peak_rss = 0;
    for run in 0..runs {
        let key = format!("bench/direct-{run}");
        direct.push(direct_put(&garage, &file, size, &key).await.unwrap());
        let key = format!("bench/multipart-{run}");
        multipart.push(direct_multipart(&garage, &file, size, &key).await.unwrap());
        let (seconds, id) = resumable(&host, &cli, &file, &dir.path().join("state"))
            .await
            .unwrap();
        resumed.push(seconds);
        delete_video(&host, &id).await.unwrap();
        let (seconds, id, peak) = streamed(&host, &file, size).await.unwrap();
        stream.push(seconds);
        peak_rss = peak_rss.max(peak);
        delete_video(&host, &id).await.unwrap();
        eprintln!(
            "run {}: direct {:.2} s, direct multipart {:.2} s, resumable {:.2} s, streamed {:.2} s, \
             host RSS peak {:.0} MiB",
            run + 1,
            direct[run],
            multipart[run],
            resumed[run],
            stream[run],
            peak as f64 / MIB
        );
    }
    let all = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let all_runs = format!(
        "All runs (s): direct PUT {}; direct multipart {}; resumable {}; streamed {}.",
        all(&direct),
        all(&multipart),
        all(&resumed),
        all(&stream)
    );
    let (d, m, r, s) = (
        median(&mut direct),
        median(&mut multipart),
        median(&mut resumed),
        median(&mut stream),
    );
    let rate = |seconds: f64| size as f64 / MIB / seconds;
    let (_, hwm) = host.memory();
    let today = jiff::Zoned::now().strftime("%Y-%m-%d").to_string();
    let markdown = format!(
        "## Uploads: each path against the same transfer straight to S3\n\n\
         File: {size_mib:.0} MiB of patterned bytes on local disk; Garage {garage} on loopback; \
         the release host (`target/release/xtream-host`) as its own process; median of {runs} \
         runs, the four paths alternating.\n\
         Machine: {machine}; {today}.\n\n\
         | Path | Seconds | MiB/s | vs its reference |\n|---|---|---|---|\n\
         | direct S3 multipart upload ({parallel} presigned parts of {part_mib} MiB at once) | {m:.2} | {mr:.0} | reference |\n\
         | resumable: `xtream upload --parallel {parallel}` (the same parts, straight to S3) | {r:.2} | {rr:.0} | **{rx:.2}×** |\n\
         | direct S3 `PUT` (one presigned request, one stream) | {d:.2} | {dr:.0} | reference |\n\
         | streamed: `POST /api/videos` through the host (one stream, 8 MiB parts to S3) | {s:.2} | {sr:.0} | **{sx:.2}×** |\n\n\
         Host memory during the {size_mib:.0} MiB streamed uploads: resident **{peak:.0} MiB** at peak \
         (idle after warm-up: {idle:.0} MiB; the process's high-water mark since it started, \
         `VmHWM`: {hwm:.0} MiB).\n\n\
         - Resumable against direct multipart: what the API, the session row and the CLI cost on\n\
         \x20 top of the same S3 transfer; the parts' bytes never pass through the host.\n\
         - Streamed against a direct `PUT`: what the second hop (client → host → S3) and the copy\n\
         \x20 through the component cost, holding at most one 8 MiB part per upload.\n\n\
         {all_runs}\n\
         Reproduce: `./x bench-upload` (knobs: `XTREAM_BENCH_BYTES`, `XTREAM_BENCH_RUNS`).\n",
        parallel = PARALLEL_PARTS,
        part_mib = xtream_core::resumable::part_size_for(size) as f64 / MIB,
        mr = rate(m),
        rx = rate(r) / rate(m),
        size_mib = size as f64 / MIB,
        garage = std::env::var("GARAGE_VERSION").unwrap_or_else(|_| "(versions.env)".into()),
        machine = {
            let machine = Machine::this();
            format!("{} cores (`nproc`), {}", machine.cores, machine.cpu)
        },
        dr = rate(d),
        rr = rate(r),
        sr = rate(s),
        sx = rate(s) / rate(d),
        peak = peak_rss as f64 / MIB,
        idle = idle_rss as f64 / MIB,
        hwm = hwm as f64 / MIB,
    );
    println!("{markdown}");
    let path = workspace_root().join("BENCHMARKS.md");
    write_section(&path, "upload-bench", "./x bench-upload", &markdown).unwrap();
    eprintln!("wrote {}", path.display());
}
