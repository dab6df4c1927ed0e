//! `load` and `soak`: start the dev stack on fresh data and the native
//! baseline, seed a catalog, run k6 scenarios (`tests/load/*.js`) against
//! both and write the load report.
//!
//! For each scenario and VU level it runs k6, samples the resident memory
//! of the host (and the worker) while k6 runs, measures the CPU time of the
//! server under test, PostgreSQL and k6, and reads k6's summary. The
//! `health`, `listing` and `search` scenarios also run against the native
//! baseline in the same run, and the report gives the ratio.

use crate::args::Args;
use crate::dev::{self, DevSettings, DevStack};
use crate::s3_catalog::{self, S3Catalog};
use crate::{say, verdict};
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use xtream_tests::report::Machine;
use xtream_tests::{LogFile, Platform, Postgres, workspace_root};

/// Scenarios also run against the native baseline.
const COMPARED: [&str; 3] = ["health", "listing", "search"];
const MIB: f64 = (1u64 << 20) as f64;

/// Scenarios `./x load` runs when none is named; uploads go last: the
/// transcoding they cause would skew the others.
const ALL_SCENARIOS: [&str; 7] = [
    "health",
    "listing",
    "search",
    "original",
    "catalog",
    "streaming",
    "upload",
];
/// Issue #10: the listing on PostgreSQL at least this many times the S3
/// catalog's requests per second, at 100 VUs.
const BEFORE_TARGET: f64 = 5.0;
/// Searches a second in the fixed-rate run: well under what either
/// server answers when saturated (about 1,300 and 1,900 on 2 cores), so
/// its p95 is the time a search takes, not the time it queues.
const DEFAULT_SEARCH_RATE: u32 = 500;
/// The VUs the fixed-rate search may keep in flight: the target's level.
const FIXED_RATE_VUS: u32 = 100;
/// Issue #10's search target: p95 under this many milliseconds at 100 VUs.
const SEARCH_P95_TARGET_MS: f64 = 50.0;
/// Where the native baseline listens.
const BASELINE_LISTEN: &str = "127.0.0.1:3100";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--vus` [100,500,1000]: the VU levels, each a run of its own.
    pub vus: Vec<u32>,
    /// `--duration` [20s]: each run's length, as k6 reads it.
    pub duration: String,
    /// `XTREAM_LOAD_REPORT` [tests/load/REPORT.md]: the report's file.
    pub out: PathBuf,
    /// `--timeline`: report memory over each run (soaks).
    pub timeline: bool,
    /// `--before`: also run the listing against the S3 catalog the
    /// platform had before PostgreSQL ([`crate::s3_catalog`]).
    pub before: bool,
    /// `--search-rate` [500]: searches a second in the fixed-rate search
    /// run, at 100 VUs at most, beside the closed-loop ones (0: none).
    pub search_rate: u32,
    /// The scenarios (tests/load/*.js), in order [all of them].
    pub scenarios: Vec<String>,
    /// `XTREAM_SEED` [12]: sample uploads transcoded before the runs.
    pub seed_uploads: u32,
    /// `XTREAM_SEED_ROWS` [10000]: ready videos added straight into the
    /// database.
    pub seed_rows: u32,
}

impl Options {
    /// `./x load [--vus 100,500,1000] [--duration 20s] [--timeline]
    /// [--before] [--search-rate 500] [SCENARIO...]`.
    pub fn parse(args: &mut Args) -> anyhow::Result<Self> {
        let vus = args
            .value("--vus")?
            .unwrap_or_else(|| "100,500,1000".into());
        let duration = args.value("--duration")?.unwrap_or_else(|| "20s".into());
        let timeline = args.flag("--timeline");
        let before = args.flag("--before");
        let search_rate = match args.value("--search-rate")? {
            Some(rate) => rate
                .parse()
                .with_context(|| format!("--search-rate: `{rate}` is not a number"))?,
            None => DEFAULT_SEARCH_RATE,
        };
        // Last: the options' values are taken by now.
        let mut scenarios = args.positional();
        if scenarios.is_empty() {
            scenarios = ALL_SCENARIOS.map(String::from).to_vec();
        }
        Ok(Self {
            vus: parse_vus(&vus)?,
            duration,
            out: knob("XTREAM_LOAD_REPORT")
                .unwrap_or_else(|| "tests/load/REPORT.md".into())
                .into(),
            timeline,
            before,
            search_rate,
            scenarios,
            seed_uploads: knob_number("XTREAM_SEED", 12)?,
            seed_rows: knob_number("XTREAM_SEED_ROWS", 10_000)?,
        })
    }

    /// `./x soak`: the original mix at `SOAK_VUS` [200] VUs for
    /// `SOAK_DURATION` [5m], memory over time, into `XTREAM_LOAD_REPORT`
    /// [tests/load/SOAK.md].
    pub fn soak() -> anyhow::Result<Self> {
        Ok(Self {
            vus: parse_vus(&knob("SOAK_VUS").unwrap_or_else(|| "200".into()))?,
            duration: knob("SOAK_DURATION").unwrap_or_else(|| "5m".into()),
            out: knob("XTREAM_LOAD_REPORT")
                .unwrap_or_else(|| "tests/load/SOAK.md".into())
                .into(),
            timeline: true,
            before: false,
            search_rate: 0,
            scenarios: vec!["original".into()],
            seed_uploads: knob_number("XTREAM_SEED", 12)?,
            seed_rows: knob_number("XTREAM_SEED_ROWS", 10_000)?,
        })
    }
}

/// An environment variable's value, unless unset or empty.
fn knob(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn knob_number(name: &str, default: u32) -> anyhow::Result<u32> {
    knob(name).map_or(Ok(default), |text| {
        text.parse().with_context(|| format!("{name}={text:?}"))
    })
}

fn parse_vus(text: &str) -> anyhow::Result<Vec<u32>> {
    text.split(',')
        .map(|v| v.trim().parse().with_context(|| format!("--vus {text:?}")))
        .collect()
}

/// What the runs go against: the platform and the native baseline, and the
/// processes whose memory and CPU time they measure.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The process serving the platform.
    pub host_pid: u32,
    /// The worker, for its memory.
    pub worker_pid: Option<u32>,
    /// The native baseline, for its CPU time.
    pub baseline_pid: Option<u32>,
    /// PostgreSQL's postmaster, for its (and its backends') CPU time.
    pub pg_pid: Option<u32>,
    /// The S3 server (Garage), for its CPU time.
    pub s3_pid: Option<u32>,
    /// The platform's URL.
    pub base: String,
    /// The native baseline's URL.
    pub baseline: String,
    /// The API key writes send.
    pub api_key: String,
    /// The video the upload scenario sends.
    pub clip: Option<PathBuf>,
    /// What the catalog held, as seeded.
    pub seeded: String,
    /// With `--before`: the S3-catalog platform's URL, host and videos.
    pub s3_catalog: Option<(String, u32, usize)>,
}

/// One k6 run's figures.
#[derive(Debug, Clone, Default)]
struct Run {
    scenario: String,
    vus: u32,
    passed: bool,
    requests: u64,
    rps: f64,
    /// What an answer weighs on average (GET /videos grows with the catalog).
    kib_per_response: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    failed: f64,
    /// Iterations a fixed-rate run could not start (every VU busy): the
    /// rate was not kept.
    dropped: u64,
    /// upload.js: 503s with Retry-After (max_concurrent_uploads reached),
    /// waited out and sent again; expected answers, so not in `failed`.
    busy: u64,
    /// Microseconds of CPU per request.
    cpu_us: CpuPerRequest,
    rss_mib: f64,
    host_growth_mib: f64,
    worker_growth_mib: f64,
    /// (seconds since start, host RSS, worker RSS) once a second: over a
    /// soak this tells a warm-up that levels off from a leak that keeps
    /// climbing.
    timeline: Vec<(f64, u64, u64)>,
    log: String,
}

/// Microseconds of CPU per request, each process's.
#[derive(Debug, Clone, Copy, Default)]
struct CpuPerRequest {
    /// The server under test: the host or the native baseline.
    server: f64,
    /// The postmaster and its backends.
    postgres: f64,
    k6: f64,
    /// With the ffmpeg runs it finished.
    worker: f64,
    s3: f64,
}

/// The processes one run watches.
#[derive(Debug, Clone, Copy, Default)]
struct Watched {
    /// Whose memory is sampled (the host; none for the baseline's runs).
    host: Option<u32>,
    worker: Option<u32>,
    /// Whose CPU time is the server's (the host or the native baseline).
    server: Option<u32>,
    postgres: Option<u32>,
    s3: Option<u32>,
}

/// `./x load` and `./x soak`: starts the dev stack on fresh data (without
/// Prometheus) and the native baseline, seeds the catalog, runs the
/// scenarios and writes the report.
pub async fn load(options: &Options, settings: DevSettings) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let settings = DevSettings {
        data: Some(data.path().to_owned()),
        ..settings
    };
    let stack = DevStack::start(&settings, false).await?;
    let measured = measure(options, &settings, &stack).await;
    stack.stop().await;
    measured
}

async fn measure(
    options: &Options,
    settings: &DevSettings,
    stack: &DevStack,
) -> anyhow::Result<()> {
    dev::wait_ready(&stack.platform).await?;
    let clip = dev::sample_clip()?;
    seed(&stack.platform, &clip, options.seed_uploads).await?;
    seed_rows(&stack.db, options.seed_rows).await?;
    let baseline = Baseline::start(&stack.db).await?;
    let s3_catalog = if options.before {
        Some(S3Catalog::start(&stack.db).await?)
    } else {
        None
    };
    let targets = Targets {
        host_pid: stack.platform.pid(),
        worker_pid: stack.worker.pid(),
        baseline_pid: Some(baseline.child.id()),
        pg_pid: stack.db.server_pid(),
        s3_pid: stack.garage.pid(),
        base: settings.base(),
        baseline: format!("http://{BASELINE_LISTEN}"),
        api_key: settings.api_key.clone(),
        clip: Some(clip),
        seeded: format!(
            "{} transcoded uploads + {} ready rows in PostgreSQL",
            options.seed_uploads, options.seed_rows
        ),
        s3_catalog: s3_catalog
            .as_ref()
            .map(|c| (c.base.clone(), c.pid(), c.videos)),
    };
    tokio::task::block_in_place(|| run(options, &targets))
}

/// Uploads `count` copies of the sample clip and waits until all are ready.
async fn seed(platform: &Platform, clip: &Path, count: u32) -> anyhow::Result<()> {
    say(&format!("seeding {count} videos"));
    for n in 1..=count {
        dev::upload(platform, clip, &format!("Seed {n}")).await?;
    }
    for _ in 0..600 {
        let (_, page) = platform.get_json("/api/videos?limit=100").await?;
        let pending = page["videos"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|video| video["status"] != "ready")
            .count();
        eprint!("\r    videos not ready yet: {pending:<4}");
        if pending == 0 {
            eprintln!();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("seeding did not finish")
}

/// Adds `count` ready videos straight into the database, copies of the
/// renditions of a transcoded one, so listing is measured on a realistic
/// catalog without transcoding thousands of clips. Titles draw on a few
/// words so that searches match a known share of them.
async fn seed_rows(db: &Postgres, count: u32) -> anyhow::Result<()> {
    say(&format!("adding {count} ready videos to the database"));
    let sql = format!(
        "INSERT INTO videos (id, title, filename, size, content_type, status, duration_seconds,
                            width, height, video_codec, audio_codec, renditions, hls_master, thumbnail)
        SELECT seeded.id,
               'Catalog ' || (ARRAY['holiday', 'concert', 'lecture', 'match', 'garden'])[1 + n % 5] || ' ' || n,
               'seed.mp4', model.size, model.content_type, 'ready', model.duration_seconds,
               model.width, model.height, model.video_codec, model.audio_codec, model.renditions,
               'videos/' || seeded.id || '/hls/master.m3u8', 'videos/' || seeded.id || '/thumbnail.jpg'
        FROM generate_series(1, {count}) AS n
        CROSS JOIN LATERAL (SELECT gen_random_uuid() AS id, n AS k) AS seeded
        CROSS JOIN (SELECT * FROM videos WHERE status = 'ready' LIMIT 1) AS model;
        ANALYZE videos;"
    );
    db.connect()
        .await?
        .batch_execute(&sql)
        .await
        .context("seeding the catalog")
}

/// The native baseline (`benches/baseline`, built by `./x load` in release
/// mode) on the dev database; killed on drop.
struct Baseline {
    child: std::process::Child,
}

impl Baseline {
    async fn start(db: &Postgres) -> anyhow::Result<Self> {
        let log = LogFile::at(dev::log_path("baseline"))?;
        let child = Command::new(dev::release_dir().join("xtream-baseline"))
            .arg(BASELINE_LISTEN)
            .env("XTREAM_DATABASE_URL", db.url())
            .stdout(log.append()?)
            .stderr(log.append()?)
            .spawn()
            .context("starting xtream-baseline")?;
        let baseline = Self { child };
        if answers_health(
            &format!("http://{BASELINE_LISTEN}"),
            Duration::from_secs(10),
        )
        .await
        {
            return Ok(baseline);
        }
        bail!("the native baseline did not answer: {}", log.read())
    }
}

/// Whether the server at `base` answers `GET /health` with a success
/// within `within`, asking every 100 ms.
pub(crate) async fn answers_health(base: &str, within: Duration) -> bool {
    let health = format!("{base}/health");
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if reqwest::get(&health)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs every scenario at every level and writes the report.
fn run(options: &Options, targets: &Targets) -> anyhow::Result<()> {
    let scripts = workspace_root().join("tests/load");
    let api_key = targets.api_key.as_str();
    let clip = targets
        .clip
        .as_ref()
        .map(|c| c.display().to_string())
        .unwrap_or_default();
    let env = [("XTREAM_CLIP", clip.as_str()), ("XTREAM_API_KEY", api_key)];
    let ours_watch = Watched {
        host: Some(targets.host_pid),
        worker: targets.worker_pid,
        server: Some(targets.host_pid),
        postgres: targets.pg_pid,
        s3: targets.s3_pid,
    };
    let native_watch = Watched {
        server: targets.baseline_pid,
        postgres: targets.pg_pid,
        ..Watched::default()
    };
    let (mut rows, mut ratios, mut befores) = (Vec::new(), Vec::new(), Vec::new());
    let mut fixed_rate = Vec::new();
    for scenario in &options.scenarios {
        let script = scripts.join(format!("{scenario}.js"));
        for &vus in &options.vus {
            say(&format!(
                "{scenario} with {vus} VUs for {}",
                options.duration
            ));
            let ours = run_k6(
                &script,
                scenario,
                &targets.base,
                vus,
                &options.duration,
                &env,
                ours_watch,
            )?;
            if COMPARED.contains(&scenario.as_str()) {
                let native = run_k6(
                    &script,
                    scenario,
                    &targets.baseline,
                    vus,
                    &options.duration,
                    &env,
                    native_watch,
                )?;
                ratios.push((ours.clone(), native));
            }
            if let (Some((base, pid, _)), "listing") = (&targets.s3_catalog, scenario.as_str()) {
                let before_watch = Watched {
                    host: Some(*pid),
                    server: Some(*pid),
                    ..Watched::default()
                };
                let before = run_k6(
                    &script,
                    scenario,
                    base,
                    vus,
                    &options.duration,
                    &env,
                    before_watch,
                )?;
                befores.push((ours.clone(), before));
            }
            rows.push(ours);
        }
        if scenario == "search" && options.search_rate > 0 {
            let rate = options.search_rate.to_string();
            let env: Vec<(&str, &str)> = env
                .iter()
                .copied()
                .chain([("RATE", rate.as_str())])
                .collect();
            let label = format!("search at {rate}/s");
            let (ours, native) = (
                run_k6(
                    &script,
                    &label,
                    &targets.base,
                    FIXED_RATE_VUS,
                    &options.duration,
                    &env,
                    ours_watch,
                )?,
                run_k6(
                    &script,
                    &label,
                    &targets.baseline,
                    FIXED_RATE_VUS,
                    &options.duration,
                    &env,
                    native_watch,
                )?,
            );
            fixed_rate.push((ours, native));
        }
    }
    let report = report(options, targets, &scripts, &rows, &ratios, &Machine::this())?
        + &before_and_after(targets, &befores)
        + &search_latency(&ratios, &fixed_rate);
    std::fs::write(&options.out, &report)
        .with_context(|| format!("writing {}", options.out.display()))?;
    println!("{report}");
    let failures: Vec<&Run> = rows.iter().filter(|r| !r.passed).collect();
    for r in &failures {
        println!(
            "thresholds failed for {} at {} VUs:\n{}",
            r.scenario, r.vus, r.log
        );
    }
    // An error, not an exit: the servers must still be stopped.
    if !failures.is_empty() {
        bail!("{} runs missed their thresholds", failures.len());
    }
    Ok(())
}

/// One k6 run of `script` against `base`.
fn run_k6(
    script: &Path,
    scenario: &str,
    base: &str,
    vus: u32,
    duration: &str,
    env: &[(&str, &str)],
    watched: Watched,
) -> anyhow::Result<Run> {
    let summary = tempfile::NamedTempFile::new()?;
    let rss = |pid: Option<u32>| pid.map_or(0, resident_bytes);
    let cpu = || {
        [
            watched.server.map_or(0.0, |pid| cpu_seconds(pid, false)),
            watched.postgres.map_or(0.0, |pid| cpu_seconds(pid, true)),
            children_cpu_seconds(),
            watched
                .worker
                .map_or(0.0, with_finished_children_cpu_seconds),
            watched.s3.map_or(0.0, |pid| cpu_seconds(pid, false)),
        ]
    };
    let cpu_before = cpu();
    let (host_start, worker_start) = (rss(watched.host), rss(watched.worker));
    let mut peak = host_start;
    let mut timeline = Vec::new();
    let started = Instant::now();
    let mut command = Command::new("k6");
    command
        .args(["run", "--quiet", "--summary-export"])
        .arg(summary.path())
        .arg(script)
        .env("XTREAM_BASE", base)
        .env("VUS", vus.to_string())
        .env("DURATION", duration)
        .envs(env.iter().copied());
    // k6 runs in a thread of its own (its output is read to the end there)
    // while this one samples memory every 0.2 s, and a timeline point
    // every second.
    let k6 = std::thread::spawn(move || command.output());
    let mut ticks = 0u64;
    while !k6.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(rss(watched.host));
        ticks += 1;
        if ticks.is_multiple_of(5) {
            timeline.push((
                started.elapsed().as_secs_f64(),
                rss(watched.host),
                rss(watched.worker),
            ));
        }
    }
    let output = k6
        .join()
        .map_err(|_| anyhow::anyhow!("the k6 thread panicked"))?
        .context("cannot run k6 (./x load installs it)")?;
    let cpu_after = cpu();
    let text = std::fs::read_to_string(summary.path())?;
    let metrics: serde_json::Value = serde_json::from_str::<serde_json::Value>(&text)
        .with_context(|| {
            format!(
                "k6 wrote no summary for {scenario}: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?["metrics"]
        .clone();
    let number = |metric: &str, field: &str| metrics[metric][field].as_f64().unwrap_or(0.0);
    let requests = number("http_reqs", "count") as u64;
    let per_request = requests.max(1) as f64;
    let tail = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let cut = text.len().saturating_sub(2000);
        let cut = (cut..=text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text[cut..].to_owned()
    };
    Ok(Run {
        scenario: scenario.to_owned(),
        vus,
        passed: output.status.success(),
        requests,
        rps: number("http_reqs", "rate"),
        kib_per_response: number("data_received", "count") / per_request / 1024.0,
        p50: number("http_req_duration", "med"),
        p95: number("http_req_duration", "p(95)"),
        p99: number("http_req_duration", "p(99)"),
        failed: rate(&metrics, "http_req_failed").max(rate(&metrics, "upload_failed")),
        busy: number("upload_busy", "count") as u64,
        dropped: number("dropped_iterations", "count") as u64,
        cpu_us: {
            let [server, postgres, k6, worker, s3] =
                std::array::from_fn(|i| (cpu_after[i] - cpu_before[i]) * 1e6 / per_request);
            CpuPerRequest {
                server,
                postgres,
                k6,
                worker,
                s3,
            }
        },
        rss_mib: peak as f64 / MIB,
        host_growth_mib: (rss(watched.host) as f64 - host_start as f64) / MIB,
        worker_growth_mib: (rss(watched.worker) as f64 - worker_start as f64) / MIB,
        timeline,
        log: tail(&output.stdout) + &tail(&output.stderr),
    })
}

/// A k6 Rate from the summary export (0 when the scenario has none).
fn rate(metrics: &serde_json::Value, name: &str) -> f64 {
    let metric = &metrics[name];
    metric["value"]
        .as_f64()
        .or_else(|| metric["rate"].as_f64())
        .unwrap_or(0.0)
}

/// Resident memory of process `pid`, bytes (0 once it is gone).
fn resident_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// CPU time (user + system) process `pid` has used, plus, with
/// `with_children`, that of its live children (PostgreSQL's backends are
/// the postmaster's).
fn cpu_seconds(pid: u32, with_children: bool) -> f64 {
    let own = |stat: &ProcStat| stat.user + stat.system;
    let mut ticks = proc_stat(pid).as_ref().map_or(0, own);
    if with_children && let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let child = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .and_then(proc_stat)
                .filter(|stat| stat.parent == pid);
            ticks += child.as_ref().map_or(0, own);
        }
    }
    clock_ticks_to_seconds(ticks)
}

/// CPU time (user + system) process `pid` has used, plus that of the
/// children it has waited for (the worker's ffmpeg runs once they end).
fn with_finished_children_cpu_seconds(pid: u32) -> f64 {
    let ticks = proc_stat(pid).map_or(0, |stat| {
        stat.user + stat.system + stat.waited_children_user + stat.waited_children_system
    });
    clock_ticks_to_seconds(ticks)
}

/// What `/proc/PID/stat` says of a process: its parent and its CPU time,
/// in clock ticks.
struct ProcStat {
    parent: u32,
    user: u64,
    system: u64,
    waited_children_user: u64,
    waited_children_system: u64,
}

/// `None` once the process is gone.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may hold spaces: the
    // parent is proc(5)'s field 4, utime to cstime its fields 14 to 17.
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(ProcStat {
        parent: u32::try_from(number(1)?).ok()?,
        user: number(11)?,
        system: number(12)?,
        waited_children_user: number(13)?,
        waited_children_system: number(14)?,
    })
}

fn clock_ticks_to_seconds(ticks: u64) -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / per_second as f64
}

/// CPU time of this process's children that ended (each k6 run).
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// What a scenario asks for, read from its script: its header comment,
/// and each request it makes (method and URL template, page sizes and
/// filters included).
fn scenario_requests(script: &str) -> (String, Vec<String>) {
    let summary = script
        .lines()
        .take_while(|line| line.starts_with("//"))
        .map(|line| line.trim_start_matches(['/', ' ']).trim())
        .collect::<Vec<_>>()
        .join(" ");
    let mut calls = Vec::new();
    let mut rest = script;
    while let Some(at) = rest.find("http.") {
        rest = &rest[at + "http.".len()..];
        let Some((method, after)) = rest.split_once("(`${BASE}") else {
            continue;
        };
        if !matches!(method, "get" | "post" | "put" | "del") {
            continue;
        }
        if let Some((url, _)) = after.split_once('`') {
            calls.push(format!("{} {url}", method.to_uppercase()));
        }
    }
    // Streaming builds its URLs from one base; name them once.
    if script.contains("`${BASE}/api/videos/${id}/hls`") {
        calls.push("GET /api/videos/${id}/hls/...".to_owned());
    }
    (summary, calls)
}

/// The report, Markdown.
fn report(
    options: &Options,
    targets: &Targets,
    scripts: &Path,
    rows: &[Run],
    ratios: &[(Run, Run)],
    machine: &Machine,
) -> anyhow::Result<String> {
    let Machine {
        cores,
        cpu,
        memory_gib,
        kernel,
    } = machine;
    let levels = options
        .vus
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut lines = vec![
        format!(
            "Measured {} on {cores} cores, {cpu}, {memory_gib:.0} GiB, Linux {kernel}.",
            jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC")
        ),
        "Every server ran on this one machine, k6 included: the numbers are for comparing".into(),
        "with each other, not absolute capacity. Each row is one k6 run ".to_owned()
            + &format!(
                "of {} at a constant number of virtual users ({levels}).",
                options.duration
            ),
        format!(
            "Catalog: {}.",
            if targets.seeded.is_empty() {
                "as found"
            } else {
                &targets.seeded
            }
        ),
    ];
    if let Some(clip) = &targets.clip {
        let bytes = std::fs::metadata(clip).map(|m| m.len()).unwrap_or(0);
        let name = clip.file_name().unwrap_or_default().to_string_lossy();
        lines.push(format!(
            "Clip the upload scenario sends: `{name}`, {bytes} bytes."
        ));
    }
    lines.extend([
        String::new(),
        "What each scenario asks for, read from its script in tests/load/:".into(),
        String::new(),
    ]);
    for scenario in &options.scenarios {
        let path = scripts.join(format!("{scenario}.js"));
        let script = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let (summary, calls) = scenario_requests(&script);
        let calls: Vec<String> = calls.iter().map(|c| format!("`{c}`")).collect();
        lines.push(format!("- {scenario}: {summary} ({})", calls.join("; ")));
    }
    lines.extend([
        String::new(),
        "| scenario | VUs | requests | req/s | KiB/answer | p50 ms | p95 ms | p99 ms | failed | host RSS MiB (peak) | RSS growth MiB host / worker | thresholds |".into(),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|".into(),
    ]);
    for r in rows {
        lines.push(format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}% | {:.0} | {:+.0} / {:+.0} | {} |",
            r.scenario,
            r.vus,
            r.requests,
            r.rps,
            r.kib_per_response,
            r.p50,
            r.p95,
            r.p99,
            r.failed * 100.0,
            r.rss_mib,
            r.host_growth_mib,
            r.worker_growth_mib,
            if r.passed { "pass" } else { "FAIL" }
        ));
    }
    let busy: Vec<&Run> = rows.iter().filter(|r| r.busy > 0).collect();
    if !busy.is_empty() {
        lines.extend([
            String::new(),
            "Back-pressure: answers `503 server_busy` with `Retry-After` (max_concurrent_uploads \
             reached), waited out and sent again; in requests and latencies, not in failed:"
                .into(),
        ]);
        lines.extend(
            busy.iter()
                .map(|r| format!("- {} at {} VUs: {}", r.scenario, r.vus, r.busy)),
        );
    }
    if !ratios.is_empty() {
        lines.extend([
            String::new(),
            "Against the native baseline (`benches/baseline`: the same JSON from plain hyper, the"
                .into(),
            "same listing logic with a pooled client), measured in the same run:".into(),
            String::new(),
            "| scenario | VUs | host req/s | native req/s | ratio | host p95 ms | native p95 ms |"
                .into(),
            "|---|---:|---:|---:|---:|---:|---:|".into(),
        ]);
        for (ours, native) in ratios {
            lines.push(format!(
                "| {} | {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} |",
                ours.scenario,
                ours.vus,
                ours.rps,
                native.rps,
                ours.rps / native.rps,
                ours.p95,
                native.p95
            ));
        }
        lines.extend([
            String::new(),
            "Where the time goes: CPU time per request, in microseconds, of the server under".into(),
            "test (the host, or the native baseline), of PostgreSQL (the postmaster and its".into(),
            "backends) and of k6, from /proc and getrusage over the same runs. With every".into(),
            "process on the same cores, the sum bounds the requests per second.".into(),
            String::new(),
            "| scenario | VUs | host | native | PostgreSQL, host's requests | PostgreSQL, native's | k6, host's | k6, native's |".into(),
            "|---|---:|---:|---:|---:|---:|---:|---:|".into(),
        ]);
        for (ours, native) in ratios {
            let (ours_cpu, native_cpu) = (ours.cpu_us, native.cpu_us);
            lines.push(format!(
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                ours.scenario,
                ours.vus,
                ours_cpu.server,
                native_cpu.server,
                ours_cpu.postgres,
                native_cpu.postgres,
                ours_cpu.k6,
                native_cpu.k6
            ));
        }
    }
    let alone: Vec<&Run> = rows
        .iter()
        .filter(|r| !COMPARED.contains(&r.scenario.as_str()))
        .collect();
    if !alone.is_empty() {
        lines.extend([
            String::new(),
            "CPU time per request, in microseconds, in the scenarios without a baseline: the host,"
                .into(),
            "PostgreSQL (the postmaster and its backends), k6, the worker (with the ffmpeg runs"
                .into(),
            "it finished: it transcodes what the upload scenario sends while it runs) and the S3"
                .into(),
            "server (Garage), from /proc and getrusage over each run.".into(),
            String::new(),
            "| scenario | VUs | host | PostgreSQL | k6 | worker | S3 |".into(),
            "|---|---:|---:|---:|---:|---:|---:|".into(),
        ]);
        for r in alone {
            let CpuPerRequest {
                server: host,
                postgres,
                k6,
                worker,
                s3,
            } = r.cpu_us;
            lines.push(format!(
                "| {} | {} | {host:.0} | {postgres:.0} | {k6:.0} | {worker:.0} | {s3:.0} |",
                r.scenario, r.vus
            ));
        }
    }
    if options.timeline {
        for r in rows {
            lines.push(String::new());
            lines.extend(memory_timeline(r, 10));
        }
    }
    Ok(lines.join("\n") + "\n")
}

/// The listing against the S3 catalog of before PostgreSQL, measured in
/// the same run (`--before`), and the target: at least
/// [`BEFORE_TARGET`] times its requests per second at 100 VUs. Empty
/// without `--before`.
fn before_and_after(targets: &Targets, befores: &[(Run, Run)]) -> String {
    let Some((_, _, videos)) = &targets.s3_catalog else {
        return String::new();
    };
    let mut lines = vec![
        String::new(),
        format!(
            "Against the S3 catalog of before PostgreSQL (the platform at commit {}, its own",
            s3_catalog::COMMIT
        ),
        format!(
            "host and a Garage of its own holding the same {videos} videos in its layout: a page"
        ),
        "is one LIST of `catalog/` and one GET of `videos/{id}/video.json` per video), the".into(),
        "same listing script, measured in the same run:".into(),
        String::new(),
        "| VUs | PostgreSQL req/s | S3 catalog req/s | ratio | PostgreSQL p95 ms | S3 catalog p95 ms | S3 catalog failed | S3-catalog host CPU µs/request |".into(),
        "|---:|---:|---:|---:|---:|---:|---:|---:|".into(),
    ];
    for (after, before) in befores {
        lines.push(format!(
            "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2}% | {:.0} |",
            after.vus,
            after.rps,
            before.rps,
            after.rps / before.rps,
            after.p95,
            before.p95,
            before.failed * 100.0,
            before.cpu_us.server
        ));
    }
    if let Some((after, before)) = befores.iter().find(|(after, _)| after.vus == 100) {
        let ratio = after.rps / before.rps;
        lines.extend([
            String::new(),
            format!(
                "Target: at least {BEFORE_TARGET}x the S3 catalog's req/s at 100 VUs: {:.1}x, {}.",
                ratio,
                verdict(ratio >= BEFORE_TARGET)
            ),
        ]);
    }
    lines.join("\n") + "\n"
}

/// Issue #10's search target, p95 under [`SEARCH_P95_TARGET_MS`] at 100
/// VUs: the closed-loop runs (100 clients back to back, so a saturated
/// server's queue is in every latency) and the fixed-rate one beside them.
/// Empty when search did not run.
fn search_latency(ratios: &[(Run, Run)], fixed_rate: &[(Run, Run)]) -> String {
    let closed = ratios
        .iter()
        .find(|(ours, _)| ours.scenario == "search" && ours.vus == FIXED_RATE_VUS);
    let mut lines = Vec::new();
    if let Some((ours, _)) = closed {
        lines.extend([
            String::new(),
            format!(
                "Search target, p95 under {SEARCH_P95_TARGET_MS:.0} ms at {FIXED_RATE_VUS} VUs, closed loop (each VU sends its next search as soon as"
            ),
            format!(
                "the last is answered): {:.1} ms at {:.0} req/s, {}.",
                ours.p95,
                ours.rps,
                verdict(ours.p95 < SEARCH_P95_TARGET_MS)
            ),
        ]);
    }
    if !fixed_rate.is_empty() {
        lines.extend([
            String::new(),
            "Search at a fixed arrival rate (k6 `constant-arrival-rate`, at most 100 VUs in flight),"
                .into(),
            "below what either server answers saturated: the time a search takes, without the"
                .into(),
            "queue. Beside the closed-loop runs above, not instead of them:".into(),
            String::new(),
            "| rate | host p50 ms | host p95 ms | native p50 ms | native p95 ms | requests not started (host / native) | failed (host / native) |".into(),
            "|---|---:|---:|---:|---:|---:|---:|".into(),
        ]);
        for (ours, native) in fixed_rate {
            lines.push(format!(
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {} / {} | {:.2}% / {:.2}% |",
                ours.scenario,
                ours.p50,
                ours.p95,
                native.p50,
                native.p95,
                ours.dropped,
                native.dropped,
                ours.failed * 100.0,
                native.failed * 100.0
            ));
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    lines.join("\n") + "\n"
}

/// Resident memory at each tenth of a run, and the growth after its first
/// fifth (warm-up: instance slots, connection pools, allocator arenas
/// filling up) to its end.
fn memory_timeline(run: &Run, points: usize) -> Vec<String> {
    let samples = &run.timeline;
    let (Some(&last), false) = (samples.last(), samples.is_empty()) else {
        return Vec::new();
    };
    let mut lines = vec![
        format!(
            "Memory over the {} run at {} VUs (sampled every second):",
            run.scenario, run.vus
        ),
        String::new(),
        "| elapsed s | host RSS MiB | worker RSS MiB |".into(),
        "|---:|---:|---:|".into(),
    ];
    for i in 1..=points {
        let (at, host, worker) = samples[(samples.len() * i / points).min(samples.len() - 1)];
        lines.push(format!(
            "| {at:.0} | {:.0} | {:.0} |",
            host as f64 / MIB,
            worker as f64 / MIB
        ));
    }
    let warm = samples[samples.len() / 5];
    lines.extend([
        String::new(),
        format!(
            "Growth from {:.0} s to the end: host {:+.1} MiB, worker {:+.1} MiB.",
            warm.0,
            (last.1 as f64 - warm.1 as f64) / MIB,
            (last.2 as f64 - warm.2 as f64) / MIB
        ),
    ]);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_is_described_by_its_header_and_requests() {
        let script = "// Browsing the catalog:\n//\n// pages by cursor.\nimport http from 'k6/http';\n\
                      http.get(`${BASE}/api/videos?limit=5`);\n\
                      http.post(`${BASE}/api/videos?filename=a.mp4`, body);\n\
                      http.batch([]); const base = `${BASE}/api/videos/${id}/hls`;\n";
        let (summary, calls) = scenario_requests(script);
        assert_eq!(summary, "Browsing the catalog:  pages by cursor.");
        assert_eq!(
            calls,
            [
                "GET /api/videos?limit=5",
                "POST /api/videos?filename=a.mp4",
                "GET /api/videos/${id}/hls/..."
            ]
        );
    }

    #[test]
    fn the_committed_scripts_all_name_their_requests() {
        let scripts = workspace_root().join("tests/load");
        for scenario in [
            "health",
            "listing",
            "search",
            "original",
            "catalog",
            "streaming",
            "upload",
        ] {
            let script = std::fs::read_to_string(scripts.join(format!("{scenario}.js"))).unwrap();
            let (summary, calls) = scenario_requests(&script);
            assert!(!summary.is_empty(), "{scenario} has no header comment");
            assert!(!calls.is_empty(), "{scenario}: no request found");
        }
    }

    #[test]
    fn the_timeline_reports_growth_after_the_warm_up() {
        let run = Run {
            scenario: "original".into(),
            vus: 200,
            timeline: (1..=10)
                .map(|s| (s as f64, (100 + s) * (1 << 20), 50 << 20))
                .collect(),
            ..Run::default()
        };
        let lines = memory_timeline(&run, 10);
        assert_eq!(
            lines[0],
            "Memory over the original run at 200 VUs (sampled every second):"
        );
        assert_eq!(lines[4], "| 2 | 102 | 50 |");
        assert_eq!(
            lines.last().unwrap(),
            "Growth from 3 s to the end: host +7.0 MiB, worker +0.0 MiB."
        );
        assert!(memory_timeline(&Run::default(), 10).is_empty());
    }

    fn listing(vus: u32, rps: f64, p95: f64) -> Run {
        Run {
            scenario: "listing".into(),
            vus,
            rps,
            p95,
            ..Run::default()
        }
    }

    #[test]
    fn the_s3_catalog_comparison_says_whether_5x_was_reached_at_100_vus() {
        let mut targets = Targets {
            host_pid: 1,
            worker_pid: None,
            baseline_pid: None,
            pg_pid: None,
            s3_pid: None,
            base: String::new(),
            baseline: String::new(),
            api_key: String::new(),
            clip: None,
            seeded: String::new(),
            s3_catalog: None,
        };
        let befores = [
            (listing(100, 2000.0, 60.0), listing(100, 500.0, 300.0)),
            (listing(1000, 1800.0, 700.0), listing(1000, 200.0, 5000.0)),
        ];
        assert_eq!(before_and_after(&targets, &befores), "");
        targets.s3_catalog = Some((String::new(), 2, 10_012));
        let report = before_and_after(&targets, &befores);
        assert!(report.contains("holding the same 10012 videos"), "{report}");
        assert!(
            report.contains("| 100 | 2000 | 500 | 4.0 | 60.0 | 300.0 |"),
            "{report}"
        );
        assert!(report.contains("| 1000 | 1800 | 200 | 9.0 |"), "{report}");
        assert!(report.contains("at 100 VUs: 4.0x, **missed**."), "{report}");
        let faster = [(listing(100, 2600.0, 50.0), listing(100, 500.0, 300.0))];
        assert!(before_and_after(&targets, &faster).contains("5.2x, met."));
    }

    #[test]
    fn the_search_target_is_judged_on_the_closed_loop_and_the_fixed_rate_shown_beside() {
        let search = |vus, p95, p50| Run {
            scenario: "search".into(),
            vus,
            p95,
            p50,
            rps: 1200.0,
            ..Run::default()
        };
        let ratios = [(search(100, 138.0, 70.0), search(100, 100.0, 50.0))];
        let report = search_latency(&ratios, &[]);
        assert!(
            report.contains("138.0 ms at 1200 req/s, **missed**."),
            "{report}"
        );
        let mut fixed = (search(100, 9.5, 4.0), search(100, 6.0, 3.0));
        fixed.0.scenario = "search at 500/s".into();
        fixed.1.dropped = 3;
        let report = search_latency(&ratios, &[fixed]);
        assert!(
            report.contains("| search at 500/s | 4.0 | 9.5 | 3.0 | 6.0 | 0 / 3 |"),
            "{report}"
        );
        assert_eq!(search_latency(&[], &[]), "");
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = std::process::id();
        assert!(resident_bytes(me) > 0);
        // Burn a little CPU so that the count cannot be zero by rounding.
        let spent = Instant::now();
        let mut x = 0u64;
        while spent.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert!(x != 1 && cpu_seconds(me, false) > 0.0);
        assert_eq!(resident_bytes(u32::MAX), 0);
    }

    #[test]
    fn a_finished_child_counts_with_its_parent() {
        let me = std::process::id();
        let before = with_finished_children_cpu_seconds(me);
        let busy_child = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(busy_child.success());
        // The child ran for a good part of a second; a tick is 10 ms.
        assert!(with_finished_children_cpu_seconds(me) >= before + 0.05);
        assert_eq!(with_finished_children_cpu_seconds(u32::MAX), 0.0);
    }
}
