//! Xtream's dev tasks as Rust. `./x` compiles and runs this crate; the
//! tasks and their options are in [`USAGE`].
//!
//! The servers a task starts are the integration tests' own
//! (`xtream_tests`: Garage, PostgreSQL, tansu, the bridge, the worker, the
//! platform, Prometheus), given other settings for the dev stack (`dev`),
//! so each is defined once. `bench` and `load` write generated reports:
//! every figure and every input in them comes from the values this code
//! used.

mod args;
mod bench;
mod checks;
mod dev;
mod load;
mod s3_catalog;
mod setup;
mod versions;

use anyhow::Context as _;
use args::Args;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use versions::Versions;
use xtream_tests::workspace_root;

const USAGE: &str = "Xtream's dev tasks, one entry point for README, developers and CI.

  ./x up      build everything, start Garage (S3), PostgreSQL, Kafka, the
              worker, the platform on http://127.0.0.1:3000 and Prometheus
              on :9095, upload a sample video and list it; Ctrl-C stops it
              all. --check: stop once the sample is listed (CI)
  ./x test    format check, clippy, unit and integration tests
              (further words go to cargo test: ./x test -p xtream-tests --test compat)
  ./x load    k6 load report (tests/load/REPORT.md): ./x load [--vus 100,500,1000]
              [--duration 20s] [--before] [--search-rate 500]
              [original catalog streaming upload health listing search]
              (--before: the listing also against the S3 catalog of before PostgreSQL;
              --search-rate: searches a second of the fixed-rate search run, 0 for none)
  ./x soak    5 minutes at 200 VUs on the original mix, memory sampled every
              second (tests/load/SOAK.md); SOAK_VUS / SOAK_DURATION override
  ./x setup   install what the above need (idempotent)
  ./x build   build the Spin components and the native binaries (release)
  ./x bench   worker vs raw ffmpeg, one-pass vs per-rung ladder (BENCHMARKS.md),
              and time to playable: ./x bench [--seconds 20] [--size 1920x1080]
              [--runs 2] [--progressive 60,180] [--preset veryfast] [--no-write]
              [--keep-logs DIR] (every option: xtask/src/bench.rs)
  ./x bench-upload  upload throughput (resumable, streamed) vs direct S3 PUT,
              and the host's peak RSS during a 1 GiB streamed upload (BENCHMARKS.md)

Environment: XTREAM_LISTEN (127.0.0.1:3000), XTREAM_API_KEY, XTREAM_DATA (the
dev stack's data; default ~/.cache/xtream), SPIN_WASMTIME_INSTANCE_COUNT (2000);
for load: XTREAM_SEED (12), XTREAM_SEED_ROWS (10000), XTREAM_LOAD_REPORT.";

/// A task and its options.
enum Task {
    Setup,
    Build,
    Up { check: bool },
    Test(Vec<String>),
    Load(load::Options),
    Bench(bench::Options),
    BenchUpload(Vec<String>),
}

impl Task {
    fn parse(mut args: Args) -> anyhow::Result<Self> {
        let task = match args.next_word().as_deref() {
            Some("setup") => Self::Setup,
            Some("build") => Self::Build,
            Some("up") => Self::Up {
                check: args.flag("--check"),
            },
            Some("test") => Self::Test(args.rest()),
            Some("load") => Self::Load(load::Options::parse(&mut args)?),
            // Options of its own come from the environment, as they did.
            Some("soak") => Self::Load(load::Options::soak()?),
            Some("bench") => Self::Bench(bench::Options::parse(&mut args)?),
            Some("bench-upload") => Self::BenchUpload(args.rest()),
            Some(other) => anyhow::bail!("unknown task {other:?}\n\n{USAGE}"),
            None => anyhow::bail!("{USAGE}"),
        };
        args.finish()?;
        Ok(task)
    }
}

/// Why a task ended early: a signal, which is no failure to report.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

fn main() -> ExitCode {
    let task = match Task::parse(Args::from_env()) {
        Ok(task) => task,
        Err(err) => {
            eprintln!("{err:#}");
            return ExitCode::from(2);
        }
    };
    put_tools_on_path();
    match runtime().and_then(|runtime| runtime.block_on(perform(task))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<Interrupted>() => ExitCode::from(130),
        Err(err) => {
            eprintln!("\x1b[1m==> failed:\x1b[0m {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn perform(task: Task) -> anyhow::Result<()> {
    let versions = Versions::of_workspace()?;
    match task {
        Task::Setup => setup::setup(&versions),
        Task::Build => {
            setup::setup(&versions)?;
            dev::build()
        }
        Task::Up { check } => {
            setup::setup(&versions)?;
            dev::build()?;
            up(check).await
        }
        Task::Test(test_args) => {
            setup::setup(&versions)?;
            checks::run_checks(versions.get("WASM_TARGET")?, &test_args)
        }
        Task::Load(options) => {
            setup::setup(&versions)?;
            dev::build()?;
            run(Command::new(cargo()).current_dir(workspace_root()).args([
                "build",
                "--release",
                "-p",
                "xtream-baseline",
            ]))?;
            setup::k6(versions.get("K6_VERSION")?)?;
            let settings = dev::DevSettings::from_env()?;
            xtream_tests::detach_servers_from_terminal();
            until_interrupted(load::load(&options, settings)).await
        }
        Task::Bench(options) => {
            setup::setup(&versions)?;
            bench::run(options).await
        }
        Task::BenchUpload(test_args) => {
            setup::setup(&versions)?;
            dev::build()?;
            bench_upload(versions.get("GARAGE_VERSION")?, &test_args)
        }
    }
}

/// `./x up`: the dev stack, its demonstration, then (unless `check`)
/// serving until Ctrl-C. Every server stops on the way out, the database
/// last.
async fn up(check: bool) -> anyhow::Result<()> {
    let settings = dev::DevSettings::from_env()?;
    // The servers leave the terminal's process group: Ctrl-C reaches this
    // process alone, which stops them in order.
    xtream_tests::detach_servers_from_terminal();
    let stack = until_interrupted(dev::DevStack::start(&settings, true)).await?;
    let shown = until_interrupted(async {
        dev::wait_ready(&stack.platform).await?;
        dev::demo(&stack, &settings).await
    })
    .await;
    let served = match shown {
        Ok(()) if check => {
            say("--check: the platform answered; stopping");
            Ok(())
        }
        Ok(()) => until_interrupted(std::future::pending()).await,
        Err(err) => Err(err),
    };
    stack.stop().await;
    served
}

/// `work`, unless Ctrl-C or SIGTERM comes first; then `work` is dropped
/// (the servers it started stop) and the result is [`Interrupted`].
async fn until_interrupted<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err(Interrupted.into()),
        _ = terminate.recv() => Err(Interrupted.into()),
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
fn bench_upload(garage_version: &str, test_args: &[String]) -> anyhow::Result<()> {
    run(Command::new(cargo())
        .current_dir(workspace_root())
        .args(["test", "-p", "xtream-tests", "--test", "bench_upload"])
        .args(["--", "--ignored", "--nocapture"])
        .args(test_args)
        .env("GARAGE_VERSION", garage_version))
    .context("the upload benchmark failed")
}

/// Puts the tools `./x setup` installs, then cargo's, first on the PATH of
/// every program the tasks run.
fn put_tools_on_path() {
    let mut paths = vec![xtream_tests::tools_dir().join("bin")];
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(PathBuf::from(home).join(".cargo/bin"));
    }
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    if let Ok(path) = std::env::join_paths(paths) {
        // SAFETY: called before the runtime starts, while this process has
        // one thread: nothing reads the environment concurrently.
        unsafe { std::env::set_var("PATH", path) };
    }
}

/// The cargo that runs this task, else the PATH's.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `command` to its end, its output on the terminal; fails unless it
/// succeeds.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let status = command
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    anyhow::ensure!(status.success(), "{program} failed ({status})");
    Ok(())
}

/// What `command` prints on stdout, empty if it cannot run or fails.
fn output_of(command: &mut Command) -> String {
    command
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

/// Where the PATH finds the program `name`.
fn find_command(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// Whether the PATH has the program `name`.
fn has_command(name: &str) -> bool {
    find_command(name).is_some()
}

/// A step, in bold on stderr.
fn say(what: &str) {
    eprintln!("\x1b[1m==> {what}\x1b[0m");
}

/// How a report says whether a target was reached: a missed one stands
/// out.
fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let Ok(Task::Test(rest)) = parse(&["test", "-p", "xtream-tests", "--test", "compat"])
        else {
            panic!("test parses");
        };
        assert_eq!(rest, ["-p", "xtream-tests", "--test", "compat"]);
        assert!(matches!(
            parse(&["up", "--check"]),
            Ok(Task::Up { check: true })
        ));
        assert!(matches!(parse(&["up"]), Ok(Task::Up { check: false })));
        let Ok(Task::Load(load)) = parse(&["load", "--vus", "10,20", "health", "listing"]) else {
            panic!("load parses");
        };
        assert_eq!(load.vus, [10, 20]);
        assert_eq!(load.scenarios, ["health", "listing"]);
        let Ok(Task::Load(all)) = parse(&["load"]) else {
            panic!("load parses");
        };
        assert_eq!(all.scenarios.len(), 7, "every scenario by default");
        assert!(parse(&["bench", "--sconds", "4"]).is_err());
        assert!(parse(&["bench", "--runs", "many"]).is_err());
        assert!(parse(&["up", "--chek"]).is_err());
        assert!(parse(&["load", "--vus", "many"]).is_err());
        assert!(parse(&["lod"]).is_err());
        assert!(parse(&[]).is_err());
    }
}
