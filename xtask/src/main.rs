//! Xtream's dev tasks as Rust, run through cargo (`./x` calls them):
//!
//! ```text
//! cargo run -q -p xtask -- bench [--seconds 20] [--size 1920x1080] [--runs 2]
//!                                [--preset veryfast] [--no-write] [--keep-logs DIR]
//! cargo run -q -p xtask -- bench-upload [TEST ARGS...]
//! cargo run -q -p xtask -- load --host-pid PID --base URL --baseline URL --out FILE
//!                               [--worker-pid PID] [--baseline-pid PID] [--pg-pid PID]
//!                               [--vus 100,500,1000] [--duration 20s] [--clip FILE]
//!                               [--seeded TEXT] [--timeline] SCENARIO...
//! ```
//!
//! `bench` and `load` write generated reports: every figure and every input
//! in them comes from the values this code used.

mod args;
mod bench;
mod load;

use anyhow::Context as _;
use args::Args;
use std::process::Command;
use xtream_tests::workspace_root;

const USAGE: &str = "usage: cargo run -q -p xtask -- <task> [options]
  bench         the worker end to end vs raw ffmpeg, one-pass vs per-rung ladder
                (writes BENCHMARKS.md's worker section unless --no-write)
  bench-upload  upload throughput vs a direct S3 PUT, and the host's memory
                (tests/tests/bench_upload.rs; writes BENCHMARKS.md's upload section)
  load          k6 scenarios against a running platform and its native baseline,
                and the load report (./x load starts them first)
The options of each task are in xtask/src/main.rs.";

/// A task and its options.
enum Task {
    Bench(bench::Options),
    BenchUpload(Vec<String>),
    Load(load::Options),
}

impl Task {
    fn parse(mut args: Args) -> anyhow::Result<Self> {
        let task = match args.next_word().as_deref() {
            Some("bench") => Self::Bench(bench::Options::parse(&mut args)?),
            Some("bench-upload") => Self::BenchUpload(args.rest()),
            Some("load") => Self::Load(load::Options::parse(&mut args)?),
            Some(other) => anyhow::bail!("unknown task {other:?}\n{USAGE}"),
            None => anyhow::bail!("{USAGE}"),
        };
        args.finish()?;
        Ok(task)
    }
}

fn main() -> anyhow::Result<()> {
    let task = Task::parse(Args::from_env())?;
    match task {
        Task::Bench(options) => runtime()?.block_on(bench::run(options)),
        Task::BenchUpload(test_args) => bench_upload(&test_args),
        Task::Load(options) => load::run(&options),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The upload benchmark is an ignored integration test (it needs the
/// tests' servers and client code); this runs it, telling it the pinned
/// Garage version that its report names.
fn bench_upload(test_args: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    let garage = pinned_version(&root.join("versions.env"), "GARAGE_VERSION")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["test", "-p", "xtream-tests", "--test", "bench_upload"])
        .args(["--", "--ignored", "--nocapture"])
        .args(test_args)
        .env("GARAGE_VERSION", garage)
        .status()
        .context("running cargo test")?;
    anyhow::ensure!(status.success(), "the upload benchmark failed: {status}");
    Ok(())
}

/// The value of `NAME=value` in `versions.env` (a comment may follow it).
fn pinned_version(versions: &std::path::Path, name: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(versions)
        .with_context(|| format!("reading {}", versions.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.split_whitespace().next())
        .map(str::to_owned)
        .with_context(|| format!("{} pins no {name}", versions.display()))
}

/// A step, in bold on stderr, as `./x` says them.
fn say(what: &str) {
    eprintln!("\x1b[1m==> {what}\x1b[0m");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pin_with_a_comment_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("versions.env");
        std::fs::write(&path, "# pins\nGARAGE_VERSION=2.5.0 # S3\nK6_VERSION=1.0\n").unwrap();
        assert_eq!(pinned_version(&path, "GARAGE_VERSION").unwrap(), "2.5.0");
        assert_eq!(pinned_version(&path, "K6_VERSION").unwrap(), "1.0");
        assert!(pinned_version(&path, "TANSU_VERSION").is_err());
    }

    #[test]
    fn tasks_take_their_options_and_refuse_others() {
        let parse = |words: &[&str]| Task::parse(Args::new(words.iter().map(|w| w.to_string())));
        let Ok(Task::Bench(bench)) =
            parse(&["bench", "--seconds", "4", "--runs", "1", "--no-write"])
        else {
            panic!("bench parses");
        };
        assert_eq!((bench.seconds, bench.runs, bench.write), (4, 1, false));
        let Ok(Task::BenchUpload(rest)) = parse(&["bench-upload", "--exact", "x"]) else {
            panic!("bench-upload parses");
        };
        assert_eq!(rest, ["--exact", "x"]);
        assert!(parse(&["bench", "--sconds", "4"]).is_err());
        assert!(parse(&["bench", "--runs", "many"]).is_err());
        assert!(parse(&["lod"]).is_err());
        assert!(parse(&["load", "health"]).is_err(), "load needs --host-pid");
    }
}
