//! `bench`: the worker benchmark, on one generated clip, in one run:
//!
//! 1. raw ffmpeg, one-pass ladder: the exact command a job runs
//!    (`xtream-worker plan`), timed alone;
//! 2. raw ffmpeg, one pass per rung: the same encodes, each decoding the
//!    source again;
//! 3. the worker end to end: event published through the bridge to the
//!    video's record `ready`, with download, ffprobe, poster, ladder,
//!    upload and record writes, against a real Garage, tansu and
//!    PostgreSQL on this machine (the integration tests' servers).
//!
//! 4. progressive publishing: for longer sources (`--progressive`, 60 s
//!    and 3 minutes by default), one job each, timed from the announcement
//!    to the row `playable` and to `ready` (issue target: playable within
//!    5 s).
//!
//! 5. chunked transcoding (`--chunked`, the 3-minute source by default):
//!    time to ready with 1 and 2 worker processes (`--workers 1,2`) on the
//!    chunked path, and the one-pass path with one worker for comparison,
//!    every worker given one core's worth of encoder threads
//!    (`XTREAM_FFMPEG_THREADS=1`), so adding a process adds a core (issue
//!    targets: 2 workers ready >= 1.8x sooner than 1; 1 chunked worker no
//!    slower than 1.1x the one-pass path).
//!
//! Prints the times and the ratios worker/one-pass (target <= 1.1) and
//! per-rung/one-pass, and writes them into BENCHMARKS.md with the machine.

use crate::args::Args;
use crate::{say, verdict};
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use xtream_core::events::{self, VideoUploaded};
use xtream_tests::report::{Machine, write_section};
use xtream_tests::worker::{self as harness, worker_binary};
use xtream_tests::{Garage, Postgres, Tansu, Worker, clips, stdout_of, workspace_root};

/// The benchmark's inputs. Each defaults to its environment knob
/// (`BENCH_SECONDS`, `BENCH_SIZE`, `BENCH_RUNS`, `XTREAM_X264_PRESET`,
/// `BENCH_NO_WRITE=1`, `BENCH_KEEP_LOGS`, `BENCH_PROGRESSIVE`), then to the
/// value in brackets.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--seconds` [20]: the clip's length.
    pub seconds: u32,
    /// `--size` [1920x1080]: the clip's picture.
    pub size: String,
    /// `--runs` [2]: each measurement's best of.
    pub runs: usize,
    /// `--preset` [veryfast]: x264's preset, for ffmpeg and the worker.
    pub preset: String,
    /// Not `--no-write`: put the section into BENCHMARKS.md.
    pub write: bool,
    /// `--keep-logs DIR`: copy the servers' logs there at the end.
    pub keep_logs: Option<PathBuf>,
    /// `--progressive` [60,180]: lengths in seconds of the sources timed
    /// to playable and to ready (`BENCH_PROGRESSIVE`); `none` skips them.
    pub progressive: Vec<u32>,
    /// `--chunked` [180]: length in seconds of the source timed on the
    /// chunked path (`BENCH_CHUNKED`); `none` skips that section.
    pub chunked: Option<u32>,
    /// `--workers` [1,2]: worker processes the chunked source is timed
    /// with (`BENCH_WORKERS`).
    pub workers: Vec<u32>,
}

impl Options {
    pub fn parse(args: &mut Args) -> anyhow::Result<Self> {
        let knob = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let knob_parsed = |name: &str, default| -> anyhow::Result<_> {
            knob(name).map_or(Ok(default), |text| {
                text.parse().with_context(|| format!("{name}={text:?}"))
            })
        };
        let no_write = args.flag("--no-write") || knob("BENCH_NO_WRITE").as_deref() == Some("1");
        let options = Self {
            seconds: match args.parsed("--seconds")? {
                Some(seconds) => seconds,
                None => knob_parsed("BENCH_SECONDS", 20)?,
            },
            size: args
                .value("--size")?
                .or_else(|| knob("BENCH_SIZE"))
                .unwrap_or_else(|| "1920x1080".into()),
            runs: match args.parsed("--runs")? {
                Some(runs) => runs,
                None => knob_parsed("BENCH_RUNS", 2)? as usize,
            },
            preset: args
                .value("--preset")?
                .or_else(|| knob("XTREAM_X264_PRESET"))
                .unwrap_or_else(|| "veryfast".into()),
            write: !no_write,
            keep_logs: args
                .value("--keep-logs")?
                .or_else(|| knob("BENCH_KEEP_LOGS"))
                .map(PathBuf::from),
            progressive: progressive_lengths(
                &args
                    .value("--progressive")?
                    .or_else(|| knob("BENCH_PROGRESSIVE"))
                    .unwrap_or_else(|| "60,180".into()),
            )?,
            chunked: counts(
                "--chunked",
                &args
                    .value("--chunked")?
                    .or_else(|| knob("BENCH_CHUNKED"))
                    .unwrap_or_else(|| "180".into()),
            )?
            .first()
            .copied(),
            workers: counts(
                "--workers",
                &args
                    .value("--workers")?
                    .or_else(|| knob("BENCH_WORKERS"))
                    .unwrap_or_else(|| "1,2".into()),
            )?,
        };
        if options.runs == 0 {
            bail!("--runs must be at least 1");
        }
        Ok(options)
    }
}

/// `60,180` as lengths in seconds; `none` as none.
fn progressive_lengths(text: &str) -> anyhow::Result<Vec<u32>> {
    counts("--progressive", text)
}

/// `1,2` as positive whole numbers for `flag`; `none` as none.
fn counts(flag: &str, text: &str) -> anyhow::Result<Vec<u32>> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|item| {
            let number: u32 = item
                .trim()
                .parse()
                .with_context(|| format!("{flag}: {item:?} is not a whole number"))?;
            anyhow::ensure!(number > 0, "{flag}: values are at least 1");
            Ok(number)
        })
        .collect()
}

/// How long one job took to make its video playable, then ready, from the
/// announcement.
#[derive(Debug, Clone)]
struct JobTimes {
    /// The video timed.
    id: String,
    playable: Option<Duration>,
    ready: Duration,
}

/// The servers a job crosses, and what it needs to publish one.
struct Bench {
    garage: Garage,
    db: Postgres,
    bridge: Worker,
    worker: Worker,
    client: reqwest::Client,
    // Dropped last: the brokers' clients above go first.
    _tansu: Tansu,
}

impl Bench {
    async fn start(preset: &str) -> anyhow::Result<Self> {
        say("starting Garage, tansu, PostgreSQL, the bridge and the worker");
        let garage = Garage::start().await?;
        let tansu = Tansu::start().await?;
        tansu.create_xtream_topics().await?;
        let db = Postgres::start().await?;
        harness::migrate(&db).await?;
        let bridge = Worker::bridge(&tansu).await?;
        let worker = Worker::run(&garage, &tansu, &db, &[("XTREAM_X264_PRESET", preset)]).await?;
        Ok(Self {
            garage,
            db,
            bridge,
            worker,
            client: reqwest::Client::new(),
            _tansu: tansu,
        })
    }

    /// One job end to end: stores `clip` as a new upload (original, row
    /// and outbox entry, marked sent so the relay leaves it alone),
    /// announces it through the bridge, and waits for the row to be ready.
    /// Returns the times from the announcement to `playable` and `ready`.
    async fn job(&self, clip: &Path) -> anyhow::Result<JobTimes> {
        let original = std::fs::read(clip)?;
        let record =
            harness::store_upload(&self.garage.bucket(), &self.db, original, Duration::ZERO)
                .await?;
        let id = record.id.to_string();
        harness::mark_announced(&self.db, &id).await?;
        let body = events::bridge_produce_body(record.id, &VideoUploaded::of(&record))?;
        let started = Instant::now();
        let topic = format!("{}/topics/{}", self.bridge.base, events::UPLOADS_TOPIC);
        let request = self.client.post(topic).body(body);
        let response = request
            .header("content-type", events::BRIDGE_CONTENT_TYPE)
            .send()
            .await?;
        let status = response.status();
        // The bridge's answer says what went wrong, even in a 200 (an
        // error entry in place of the record's offset).
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() || !answer["offsets"][0]["offset"].is_i64() {
            bail!("the bridge did not deliver the event ({status}): {answer}");
        }
        // A cheap poll, one indexed query, so that the watching does not eat
        // the CPU the worker is timed on.
        let mut playable = None;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let row = harness::record(&self.db, &id).await?;
            let status = row
                .as_ref()
                .map(|row| row["status"].as_str().unwrap_or_default().to_owned());
            if playable.is_none() && row.as_ref().is_some_and(|row| row["playable"] == true) {
                playable = Some(started.elapsed());
            }
            match status.as_deref() {
                Some("ready") => {
                    return Ok(JobTimes {
                        id,
                        playable,
                        ready: started.elapsed(),
                    });
                }
                Some("failed") => bail!(
                    "the worker failed the video; its log:\n{}",
                    self.worker.log()
                ),
                _ => {}
            }
        }
    }
}

/// Runs the benchmark and reports it.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let Options {
        seconds,
        ref size,
        runs,
        ref preset,
        ..
    } = options;
    say("building xtream-worker");
    let worker_bin = tokio::task::spawn_blocking(worker_binary).await??;
    let work = tempfile::tempdir()?;
    let clip = work.path().join("clip.mp4");
    say(&format!(
        "generating a {seconds}s {size} clip (testsrc2 + sine)"
    ));
    clips::lavfi_mp4(
        &clip,
        &format!("testsrc2=size={size}:rate=25:duration={seconds}"),
        Some(&format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        )),
        &[],
    )?;
    let raw = work.path().join("raw");
    let plan = ffmpeg_plan(&worker_bin, &clip, &raw, preset)?;
    let (ladder, per_rung) = plan.split_first().context("the plan is empty")?;
    let rungs = per_rung.len();

    let mut bench = Bench::start(preset).await?;
    // The group's first assignment (join, rebalance) is start-up, not a
    // job: one small job first, untimed.
    say("warm-up: one short job while the worker joins its consumer group");
    let warmup = work.path().join("warmup.mp4");
    clips::lavfi_mp4(
        &warmup,
        "testsrc2=size=320x240:rate=25:duration=1",
        None,
        &[],
    )?;
    bench.job(&warmup).await?;

    // Interleaved, in the same environment (servers up and idle), so that
    // background load on a shared machine hits all three alike.
    let (mut one_pass, mut separate, mut worker) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        say(&format!(
            "run {run}/{runs}: one-pass ladder ({rungs} rungs)"
        ));
        one_pass.push(timed_shell(std::slice::from_ref(ladder), &raw)?);
        say(&format!("run {run}/{runs}: one pass per rung"));
        separate.push(timed_shell(per_rung, &raw)?);
        say(&format!("run {run}/{runs}: the worker, end to end"));
        worker.push(bench.job(&clip).await?.ready.as_secs_f64());
    }

    // The worker logs a job's timings just after its row turns ready,
    // which is what the poll saw: give the last line a moment to land.
    for _ in 0..50 {
        if bench.worker.log().matches("job timings").count() > runs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Skips the warm-up job, the first in the log.
    let split = JobSplit::from_log(&bench.worker.log())?;
    let figures = Figures {
        one_pass,
        separate,
        worker,
        split,
    };
    let section = figures.section(&options, rungs, &Machine::this(), &load_average());

    // Longer sources, one job each, after the split above was read from
    // the log: how soon they play, and when they are done.
    let mut progressive = Vec::new();
    for &length in &options.progressive {
        let source = work.path().join(format!("progressive-{length}s.mp4"));
        say(&format!("generating a {length}s {size} source"));
        clips::lavfi_mp4(
            &source,
            &format!("testsrc2=size={size}:rate=25:duration={length}"),
            Some(&format!(
                "sine=frequency=440:sample_rate=48000:duration={length}"
            )),
            &[],
        )?;
        say(&format!(
            "the worker on the {length}s source: time to playable, to ready"
        ));
        let times = bench.job(&source).await?;
        progressive.push((length, times));
    }

    // Chunked: the bench's own worker is stopped (it would take the jobs
    // too); each configuration gets fresh workers in a consumer group of
    // its own.
    let chunked_section = match options.chunked {
        Some(length) if !options.workers.is_empty() => {
            bench.worker.kill();
            let runs = chunked_runs(&bench, work.path(), &options, length).await?;
            Some(chunked_section(&options, length, &runs, &Machine::this()))
        }
        _ => None,
    };

    println!("\n{section}\n");
    println!(
        "worker/one-pass: {:.2}x   per-rung/one-pass: {:.2}x   worker's own steps: +{:.2}s ({:.3}x)",
        figures.worker_ratio(),
        figures.per_rung_ratio(),
        figures.split.overhead,
        figures.split.ratio()
    );
    if let Some(dir) = &options.keep_logs {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("worker.log"), bench.worker.log())?;
        std::fs::write(dir.join("bridge.log"), bench.bridge.log())?;
    }
    let playable_section = (!progressive.is_empty())
        .then(|| progressive_section(&options, &progressive, &Machine::this()));
    if let Some(section) = &playable_section {
        println!("\n{section}");
    }
    if let Some(section) = &chunked_section {
        println!("\n{section}");
    }
    if options.write {
        let path = workspace_root().join("BENCHMARKS.md");
        write_section(&path, "worker-bench", "./x bench", &section)?;
        if let Some(section) = &playable_section {
            write_section(&path, "playable-bench", "./x bench", section)?;
        }
        if let Some(section) = &chunked_section {
            write_section(&path, "chunked-bench", "./x bench", section)?;
        }
        say(&format!("wrote the results into {}", path.display()));
    }
    Ok(())
}

/// The target for every source: playable this soon after upload.
const PLAYABLE_TARGET: Duration = Duration::from_secs(5);

/// BENCHMARKS.md's section on progressive publishing, markers aside.
fn progressive_section(options: &Options, jobs: &[(u32, JobTimes)], machine: &Machine) -> String {
    let mut rows = String::new();
    let mut missed = Vec::new();
    for (length, times) in jobs {
        let playable = times
            .playable
            .map_or("never seen (ready first)".to_owned(), |p| {
                format!("{:.2}", p.as_secs_f64())
            });
        let met = times.playable.is_some_and(|p| p <= PLAYABLE_TARGET);
        if !met {
            missed.push(format!("{length} s"));
        }
        let verdict = verdict(met);
        rows.push_str(&format!(
            "| {length} s | {playable} | {ready:.2} | {verdict} |\n",
            ready = times.ready.as_secs_f64()
        ));
    }
    let headline = if missed.is_empty() {
        format!(
            "Every source was playable within {} s of its announcement.",
            PLAYABLE_TARGET.as_secs()
        )
    } else {
        format!(
            "Target missed for the {} source(s): not playable within {} s.",
            missed.join(", "),
            PLAYABLE_TARGET.as_secs()
        )
    };
    format!(
        "## Worker: time to playable and to ready (progressive publishing)

Sources: `testsrc2` + 440 Hz sine, {size}, 25 fps, H.264/AAC; x264 preset
`{preset}`; one worker process, one job per source, timed from the upload
event's announcement (the upload is complete then) to the row `playable`
(the first segment of every rendition and the master published) and to
`ready`, polling the row every 0.1 s.
Machine: {cores} cores (`nproc`), {cpu}; {date}.

| Source | Playable after (s) | Ready after (s) | Playable within {target} s |
|---|---|---|---|
{rows}
{headline} Each source takes the path the worker's defaults choose: one pass,
or chunked if it is longer than `XTREAM_CHUNK_THRESHOLD`; the next section
times the chunked path with one and two worker processes.
Reproduce: `./x bench --progressive 60,180` (knobs in xtask/src/bench.rs).
",
        size = options.size,
        preset = options.preset,
        cores = machine.cores,
        cpu = machine.cpu,
        date = jiff::Timestamp::now().strftime("%Y-%m-%d"),
        target = PLAYABLE_TARGET.as_secs(),
    )
}

/// One configuration of the chunked comparison, and what it measured.
#[derive(Debug, Clone)]
struct ChunkedRun {
    /// Worker processes.
    workers: u32,
    /// Whether the source took the chunked path (else the one-pass one).
    chunked: bool,
    times: JobTimes,
    /// The length of each chunk the worker planned, seconds, in order
    /// (empty on the one-pass path).
    chunks: Vec<f64>,
    /// CPU seconds the worker processes and their ffmpeg runs used
    /// during the timed job.
    cpu: f64,
}

/// CPU seconds `workers` and their ffmpeg runs have used so far.
fn workers_cpu(workers: &[Worker]) -> anyhow::Result<f64> {
    workers
        .iter()
        .map(|worker| worker.cpu_seconds().context("a worker process stopped"))
        .sum()
}

/// The length of each chunk of video `id` (`length` seconds long) as the
/// worker planned it, in order.
async fn chunk_lengths(db: &Postgres, id: &str, length: u32) -> anyhow::Result<Vec<f64>> {
    let rows = db
        .connect()
        .await?
        .query(
            "SELECT coalesce(end_seconds, $2) - start_seconds FROM video_chunks \
             WHERE video_id = $1::text::uuid ORDER BY chunk",
            &[&id, &f64::from(length)],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Times the `length`-second source with one worker on the one-pass path,
/// then on the chunked path with each count of `options.workers`. Every
/// worker gets one encoder thread; each configuration its own consumer
/// group, joined (a warm-up job) before it is timed.
async fn chunked_runs(
    bench: &Bench,
    work: &Path,
    options: &Options,
    length: u32,
) -> anyhow::Result<Vec<ChunkedRun>> {
    let source = work.join(format!("chunked-{length}s.mp4"));
    say(&format!("generating a {length}s {} source", options.size));
    clips::lavfi_mp4(
        &source,
        &format!("testsrc2=size={}:rate=25:duration={length}", options.size),
        Some(&format!(
            "sine=frequency=440:sample_rate=48000:duration={length}"
        )),
        &[],
    )?;
    let warmup = work.join("chunked-warmup.mp4");
    clips::lavfi_mp4(
        &warmup,
        "testsrc2=size=320x240:rate=25:duration=1",
        None,
        &[],
    )?;
    let mut configurations = vec![(1, false)];
    configurations.extend(options.workers.iter().map(|&workers| (workers, true)));
    let mut runs = Vec::new();
    for (index, (workers, chunked)) in configurations.into_iter().enumerate() {
        let group = format!("xtream-bench-{index}");
        // Below the source's length, or off.
        let threshold = if chunked { "60s" } else { "0" };
        let settings = [
            ("XTREAM_X264_PRESET", options.preset.as_str()),
            ("XTREAM_FFMPEG_THREADS", "1"),
            ("XTREAM_KAFKA_GROUP", group.as_str()),
            ("XTREAM_CHUNK_THRESHOLD", threshold),
        ];
        let mut started = Vec::new();
        for _ in 0..workers {
            started.push(Worker::run(&bench.garage, &bench._tansu, &bench.db, &settings).await?);
        }
        // A new group reads the topics from the start: earlier videos are
        // ready, so their events are skipped at once. The warm-up job waits
        // for that and for every worker to have joined (tansu's join takes
        // about half the 6 s session timeout).
        tokio::time::sleep(Duration::from_secs(8)).await;
        say(&format!(
            "warm-up: {workers} worker(s), {}",
            if chunked { "chunked" } else { "one pass" }
        ));
        bench.job(&warmup).await?;
        say(&format!(
            "the {length}s source with {workers} worker process(es), {}",
            if chunked { "chunked" } else { "one pass" }
        ));
        let cpu_before = workers_cpu(&started)?;
        let times = bench.job(&source).await?;
        let cpu = workers_cpu(&started)? - cpu_before;
        say(&format!(
            "ready after {:.1} s, {cpu:.1} s of CPU",
            times.ready.as_secs_f64()
        ));
        let chunks = chunk_lengths(&bench.db, &times.id, length).await?;
        if let Some(dir) = &options.keep_logs {
            std::fs::create_dir_all(dir)?;
            for (n, worker) in started.iter().enumerate() {
                std::fs::write(dir.join(format!("worker-{group}-{n}.log")), worker.log())?;
            }
        }
        drop(started);
        runs.push(ChunkedRun {
            workers,
            chunked,
            times,
            chunks,
            cpu,
        });
    }
    Ok(runs)
}

/// The target: two workers make a long video ready this many times
/// sooner than one.
const TWO_WORKER_SPEEDUP: f64 = 1.8;
/// The target: one worker on the chunked path is at most this much
/// slower than on the one-pass path.
const CHUNKED_OVERHEAD: f64 = 1.1;
/// The target of the worker, end to end, against its own ffmpeg command.
const WORKER_OVERHEAD: f64 = 1.1;

/// BENCHMARKS.md's section on chunked transcoding, markers aside.
fn chunked_section(
    options: &Options,
    length: u32,
    runs: &[ChunkedRun],
    machine: &Machine,
) -> String {
    let ready_of = |workers: u32, chunked: bool| {
        runs.iter()
            .find(|run| run.workers == workers && run.chunked == chunked)
            .map(|run| run.times.ready.as_secs_f64())
    };
    let mut rows = String::new();
    for run in runs {
        let playable = run.times.playable.map_or("never seen".to_owned(), |p| {
            format!("{:.2}", p.as_secs_f64())
        });
        let chunks = match run.chunks.split_first() {
            None => "—".to_owned(),
            Some((first, [])) => format!("1 ({first:.0} s)"),
            Some((first, rest)) => {
                let shortest = rest.iter().copied().fold(f64::INFINITY, f64::min);
                let longest = rest.iter().copied().fold(0.0, f64::max);
                format!(
                    "{} (first {first:.0} s, then {shortest:.0}–{longest:.0} s)",
                    run.chunks.len()
                )
            }
        };
        let ready = run.times.ready.as_secs_f64();
        rows.push_str(&format!(
            "| {} | {} | {chunks} | {playable} | {ready:.2} | {:.1} | {:.2} |\n",
            if run.chunked { "chunked" } else { "one pass" },
            run.workers,
            run.cpu,
            run.cpu / ready
        ));
    }
    let mut verdicts = Vec::new();
    if let (Some(one), Some(two)) = (ready_of(1, true), ready_of(2, true)) {
        let speedup = one / two;
        verdicts.push(format!(
            "2 workers / 1 worker (chunked): ready **{speedup:.2}×** sooner (target ≥ {TWO_WORKER_SPEEDUP}×: {}).",
            verdict(speedup >= TWO_WORKER_SPEEDUP)
        ));
        let cpu_of = |workers: u32| {
            runs.iter()
                .find(|run| run.workers == workers && run.chunked)
                .map_or(0.0, |run| run.cpu)
        };
        let (busy_one, busy_two) = (cpu_of(1) / one, cpu_of(2) / two);
        verdicts.push(format!(
            "CPU for the same video: {:.0} s with 2 workers, {:.0} s with 1 ({:.2}×). \
             Cores busy on average: {busy_one:.2} with 1 worker (the job's sound and \
             storyboard run beside its encoder), {busy_two:.2} with 2; on {} cores the \
             ratio cannot pass {:.2}× without less CPU per video.",
            cpu_of(2),
            cpu_of(1),
            cpu_of(2) / cpu_of(1),
            machine.cores,
            machine.cores as f64 / busy_one
        ));
    }
    if let (Some(chunked), Some(one_pass)) = (ready_of(1, true), ready_of(1, false)) {
        let ratio = chunked / one_pass;
        verdicts.push(format!(
            "1 worker, chunked / one pass: **{ratio:.2}×** (target ≤ {CHUNKED_OVERHEAD}×: {}).",
            verdict(ratio <= CHUNKED_OVERHEAD)
        ));
    }
    format!(
        "## Worker: chunked transcoding with 1 and 2 worker processes

Source: {length} s of `testsrc2` + 440 Hz sine, {size}, 25 fps, H.264/AAC;
x264 preset `{preset}`. Each worker process encodes with one thread
(`XTREAM_FFMPEG_THREADS=1`: one core's worth), so a second process adds a
core. Chunked: threshold 60 s, chunk length as the worker plans it
(`XTREAM_CHUNK_LENGTH` 30 s, shorter for a source too short to make 12;
cut at keyframes; the chunks column reads the plan stored); in a consumer
group of their own; timed from the upload event's announcement to the row
`playable` and `ready`, polling every 0.1 s.
Machine: {cores} cores (`nproc`), {cpu}; {date}.

| Path | Worker processes | Chunks | Playable after (s) | Ready after (s) | Worker CPU (s) | Cores busy |
|---|---|---|---|---|---|---|
{rows}
{verdicts}
Reproduce: `./x bench --chunked {length} --workers {workers}` (knobs in
xtask/src/bench.rs).
",
        size = options.size,
        preset = options.preset,
        cores = machine.cores,
        cpu = machine.cpu,
        date = jiff::Timestamp::now().strftime("%Y-%m-%d"),
        verdicts = verdicts.join("\n"),
        workers = options
            .workers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The ffmpeg commands a job would run on `clip` (`xtream-worker plan`):
/// the one-pass ladder, then one command per rung, each shell-quoted.
fn ffmpeg_plan(
    worker: &Path,
    clip: &Path,
    out: &Path,
    preset: &str,
) -> anyhow::Result<Vec<String>> {
    let plan = stdout_of(
        Command::new(worker)
            .arg("plan")
            .args([clip, out])
            .env("XTREAM_X264_PRESET", preset),
    )?;
    Ok(String::from_utf8(plan)?
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Seconds the shell `commands` (as `plan` quotes them) take one after the
/// other, starting with `out` emptied.
fn timed_shell(commands: &[String], out: &Path) -> anyhow::Result<f64> {
    let _ = std::fs::remove_dir_all(out);
    let started = Instant::now();
    for command in commands {
        let status = Command::new("sh").args(["-c", command]).status()?;
        if !status.success() {
            bail!("{command} failed: {status}");
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// `/proc/loadavg`'s three averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the worker's jobs spent their time, from its "job timings" log
/// lines: on a shared machine this split is steadier than wall-clock ratios
/// (background load slows ffmpeg, not the worker's own steps).
#[derive(Debug, Clone, Copy, PartialEq)]
struct JobSplit {
    /// The most any timed job spent on its own steps (download, probe and
    /// queue, store and announce), seconds.
    overhead: f64,
    /// The least any timed job spent in ffmpeg, seconds.
    inside: f64,
}

impl JobSplit {
    /// The split over every job in `log` but the first (the warm-up).
    fn from_log(log: &str) -> anyhow::Result<Self> {
        let mut jobs = Vec::new();
        for line in log.lines().map(strip_ansi) {
            if !line.contains("job timings") {
                continue;
            }
            let field = |name: &str| -> anyhow::Result<f64> {
                line.split_whitespace()
                    .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
                    .and_then(seconds_of)
                    .with_context(|| format!("no {name} in {line:?}"))
            };
            let own = field("download")? + field("probe_and_queue")? + field("store_and_announce")?;
            jobs.push((own, field("ffmpeg")?));
        }
        let timed = jobs.get(1..).filter(|jobs| !jobs.is_empty());
        let timed = timed.context("the worker logged no job timings past the warm-up")?;
        Ok(Self {
            overhead: timed.iter().map(|j| j.0).fold(0.0, f64::max),
            inside: timed.iter().map(|j| j.1).fold(f64::INFINITY, f64::min),
        })
    }

    /// The job's time over ffmpeg's alone, of the figures as the report
    /// rounds them.
    fn ratio(&self) -> f64 {
        (round2(self.inside) + round2(self.overhead)) / round2(self.inside)
    }
}

/// `line` without terminal colour codes (the worker's log has them).
fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ parameters, ended by a letter.
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
}

/// A `Duration`'s debug text (`850µs`, `1.5ms`, `18.48s`) in seconds.
fn seconds_of(text: &str) -> Option<f64> {
    let unit_at = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (value, unit) = text.split_at(unit_at);
    let scale = match unit {
        "ns" => 1e-9,
        "µs" | "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return None,
    };
    Some(value.parse::<f64>().ok()? * scale)
}

/// Every run's seconds, and the worker's own split.
struct Figures {
    one_pass: Vec<f64>,
    separate: Vec<f64>,
    worker: Vec<f64>,
    split: JobSplit,
}

fn best(runs: &[f64]) -> f64 {
    runs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn listed(runs: &[f64]) -> String {
    runs.iter()
        .map(|s| format!("{s:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Figures {
    fn worker_ratio(&self) -> f64 {
        // Ratios of the rounded figures, as the table shows them.
        round2(best(&self.worker)) / round2(best(&self.one_pass))
    }

    fn per_rung_ratio(&self) -> f64 {
        round2(best(&self.separate)) / round2(best(&self.one_pass))
    }

    /// BENCHMARKS.md's worker section, markers aside.
    fn section(&self, options: &Options, rungs: usize, machine: &Machine, load: &str) -> String {
        let Options {
            seconds,
            size,
            runs,
            preset,
            ..
        } = options;
        let split = &self.split;
        format!(
            "## Worker: end to end vs raw ffmpeg, one-pass vs per-rung ladder

Clip: {seconds} s of `testsrc2` + 440 Hz sine, {size}, 25 fps, H.264/AAC;
ladder of {rungs} rungs, x264 preset `{preset}`; best of {runs} runs.
Machine: {cores} cores (`nproc`), {cpu}; {date}.

| What | Seconds |
|---|---|
| raw ffmpeg, one-pass ladder (the worker's exact command) | {one:.2} |
| raw ffmpeg, one pass per rung | {rung:.2} |
| worker end to end (event → record `ready`: download, ffprobe, poster, ladder, upload, record) | {worker:.2} |

- worker / one-pass ffmpeg: **{worker_ratio:.2}×** (target ≤ {WORKER_OVERHEAD}×: {worker_verdict})
- per-rung passes / one-pass: **{rung_ratio:.2}×**
- the worker's own steps around ffmpeg (download, ffprobe, record writes,
  upload, outcome; from its \"job timings\" log) took at most **{overhead:.2} s**
  per job, against {inside:.2} s of ffmpeg inside the job: **{own_ratio:.3}×**.
  The rest of the wall-clock gap is delivery (bridge, broker, fetch) and
  the benchmark's 0.1 s polling, plus load from whatever else runs here
  (load average at the end: {load}).

All runs: one-pass {all_one}; per-rung {all_rung}; worker {all_worker}.
Reproduce: `./x bench` (knobs in xtask/src/bench.rs).
",
            cores = machine.cores,
            cpu = machine.cpu,
            date = jiff::Timestamp::now().strftime("%Y-%m-%d"),
            one = best(&self.one_pass),
            rung = best(&self.separate),
            worker = best(&self.worker),
            worker_ratio = self.worker_ratio(),
            worker_verdict = verdict(self.worker_ratio() <= WORKER_OVERHEAD),
            rung_ratio = self.per_rung_ratio(),
            overhead = split.overhead,
            inside = split.inside,
            own_ratio = split.ratio(),
            all_one = listed(&self.one_pass),
            all_rung = listed(&self.separate),
            all_worker = listed(&self.worker),
        )
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-11-30T10:00:00Z  INFO job: \x1b[3mdownload\x1b[0m\x1b[2m=\x1b[0m2ms probe_and_queue=40ms ffmpeg=900ms store_and_announce=10ms job timings
2026-11-30T10:00:05Z  INFO job: download=120.5ms probe_and_queue=80ms ffmpeg=17.25s store_and_announce=300ms job timings
2026-11-30T10:00:30Z  INFO job: other line download=9s
2026-11-30T10:01:00Z  INFO job: download=100ms probe_and_queue=50µs ffmpeg=18s store_and_announce=250ms job timings
";

    /// The machine every section below is written for.
    fn machine() -> Machine {
        Machine {
            cores: 2,
            cpu: "AMD EPYC".into(),
            memory_gib: 24.0,
            kernel: "6.1".into(),
        }
    }

    #[test]
    fn the_split_skips_the_warm_up_and_takes_the_worst_overhead_and_best_ffmpeg() {
        let split = JobSplit::from_log(LOG).unwrap();
        assert!((split.overhead - 0.5005).abs() < 1e-9, "{split:?}");
        assert!((split.inside - 17.25).abs() < 1e-9, "{split:?}");
    }

    #[test]
    fn a_log_with_only_the_warm_up_is_an_error() {
        let first = LOG.lines().next().unwrap();
        assert!(JobSplit::from_log(first).is_err());
    }

    #[test]
    fn durations_read_as_debug_prints_them() {
        assert_eq!(seconds_of("2s"), Some(2.0));
        assert_eq!(seconds_of("1.5ms"), Some(0.0015));
        assert_eq!(seconds_of("850µs"), Some(0.00085));
        assert_eq!(seconds_of("500ns"), Some(500.0 * 1e-9));
        assert_eq!(seconds_of("3m"), None);
        assert_eq!(seconds_of("ms"), None);
    }

    #[test]
    fn progressive_lengths_read_as_seconds_or_none() {
        assert_eq!(progressive_lengths("60,180").unwrap(), [60, 180]);
        assert_eq!(progressive_lengths(" 30 ").unwrap(), [30]);
        assert!(progressive_lengths("none").unwrap().is_empty());
        assert!(progressive_lengths("60,soon").is_err());
        assert!(progressive_lengths("0").is_err());
    }

    #[test]
    fn the_progressive_section_says_which_sources_missed_the_target() {
        let options = Options {
            seconds: 4,
            size: "1920x1080".into(),
            runs: 1,
            preset: "veryfast".into(),
            write: false,
            keep_logs: None,
            progressive: vec![60, 180],
            chunked: Some(180),
            workers: vec![1, 2],
        };
        let machine = machine();
        let times = |playable: Option<f64>, ready: f64| JobTimes {
            id: String::new(),
            playable: playable.map(Duration::from_secs_f64),
            ready: Duration::from_secs_f64(ready),
        };
        let section = progressive_section(
            &options,
            &[(60, times(Some(3.2), 70.0)), (180, times(Some(6.5), 200.0))],
            &machine,
        );
        assert!(
            section.contains("| 60 s | 3.20 | 70.00 | met |"),
            "{section}"
        );
        assert!(
            section.contains("| 180 s | 6.50 | 200.00 | **missed** |"),
            "{section}"
        );
        assert!(
            section.contains("Target missed for the 180 s source(s)"),
            "{section}"
        );
        let all_met = progressive_section(&options, &[(60, times(Some(1.0), 9.0))], &machine);
        assert!(
            all_met.contains("Every source was playable within 5 s"),
            "{all_met}"
        );
        let never = progressive_section(&options, &[(60, times(None, 9.0))], &machine);
        assert!(
            never.contains("never seen (ready first) | 9.00 | **missed**"),
            "{never}"
        );
    }

    #[test]
    fn the_chunked_section_compares_worker_counts_and_paths() {
        let options = Options {
            seconds: 4,
            size: "1920x1080".into(),
            runs: 1,
            preset: "veryfast".into(),
            write: false,
            keep_logs: None,
            progressive: vec![],
            chunked: Some(180),
            workers: vec![1, 2],
        };
        let machine = machine();
        let run = |workers, chunked, ready: f64| ChunkedRun {
            workers,
            chunked,
            times: JobTimes {
                id: String::new(),
                playable: Some(Duration::from_secs(4)),
                ready: Duration::from_secs_f64(ready),
            },
            chunks: if chunked {
                vec![10.0, 20.0, 20.0, 10.0]
            } else {
                Vec::new()
            },
            cpu: ready * f64::from(workers) * 0.9,
        };
        let section = chunked_section(
            &options,
            180,
            &[
                run(1, false, 400.0),
                run(1, true, 420.0),
                run(2, true, 220.0),
            ],
            &machine,
        );
        for expected in [
            "| one pass | 1 | — | 4.00 | 400.00 | 360.0 | 0.90 |",
            "| chunked | 2 | 4 (first 10 s, then 10–20 s) | 4.00 | 220.00 | 396.0 | 1.80 |",
            "ready **1.91×** sooner (target ≥ 1.8×: met)",
            "CPU for the same video: 396 s with 2 workers, 378 s with 1 (1.05×)",
            "0.90 with 1 worker",
            "on 2 cores the ratio cannot pass 2.22×",
            "1 worker, chunked / one pass: **1.05×** (target ≤ 1.1×: met)",
            "`./x bench --chunked 180 --workers 1,2`",
        ] {
            assert!(
                section.contains(expected),
                "{expected:?} not in:\n{section}"
            );
        }
        assert_eq!(counts("--workers", "1, 2").unwrap(), [1, 2]);
        assert!(counts("--workers", "0").is_err());
        assert!(counts("--chunked", "none").unwrap().is_empty());
    }

    #[test]
    fn the_section_records_its_inputs() {
        let figures = Figures {
            one_pass: vec![17.04, 18.0],
            separate: vec![19.9, 20.0],
            worker: vec![19.07, 19.5],
            split: JobSplit {
                overhead: 0.54,
                inside: 18.48,
            },
        };
        let options = Options {
            seconds: 4,
            size: "640x360".into(),
            runs: 2,
            preset: "ultrafast".into(),
            write: false,
            keep_logs: None,
            progressive: vec![60],
            chunked: None,
            workers: vec![1, 2],
        };
        let machine = machine();
        let section = figures.section(&options, 3, &machine, "1.00 0.50 0.25");
        for expected in [
            "Clip: 4 s of `testsrc2` + 440 Hz sine, 640x360, 25 fps",
            "ladder of 3 rungs, x264 preset `ultrafast`; best of 2 runs.",
            "Machine: 2 cores (`nproc`), AMD EPYC;",
            "| raw ffmpeg, one-pass ladder (the worker's exact command) | 17.04 |",
            "| raw ffmpeg, one pass per rung | 19.90 |",
            "**1.12×** (target ≤ 1.1×: **missed**)",
            "per-rung passes / one-pass: **1.17×**",
            "took at most **0.54 s**",
            "18.48 s of ffmpeg inside the job: **1.029×**",
            "(load average at the end: 1.00 0.50 0.25)",
            "All runs: one-pass 17.04 18.00; per-rung 19.90 20.00; worker 19.07 19.50.",
        ] {
            assert!(
                section.contains(expected),
                "{expected:?} not in:\n{section}"
            );
        }
    }
}
