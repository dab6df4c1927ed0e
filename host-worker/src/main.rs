//! `xtream-worker`: Xtream's transcoding worker.
//!
//! ```text
//! xtream-worker [run]   consume upload events, transcode, report (default)
//! xtream-worker maintain relay the outbox and sweep, without transcoding
//! xtream-worker migrate apply the database schema migrations, then exit
//! xtream-worker plan INPUT OUT_DIR
//!                       print the ffmpeg commands a job would run (benchmarks)
//! ```
//!
//! Settings come from the environment; see [`config`] for the list.

mod chunked;
mod config;
mod db;
mod job;
mod media;
mod metrics;
mod migrate;
mod offsets;
mod publish;
mod relay;
mod run;
mod storage;
mod supervise;
mod sweep;

use anyhow::Context as _;
// Shared with the local Kafka bridge (`xtream-kafka-bridge`); imported at the
// root so the modules name them `crate::kafka` and `crate::serve`.
use xtream_native::{kafka, serve};

const USAGE: &str = "usage: xtream-worker [run|maintain|migrate|plan]
  run     consume video.uploaded events, transcode to HLS, report outcomes (default);
          also relays the outbox and sweeps abandoned uploads
  maintain
          only relay the outbox and sweep (for when transcoders scale to zero)
  migrate apply the schema migrations to XTREAM_DATABASE_URL (waiting up to
          XTREAM_MIGRATE_WAIT for it to come up), print what it applied, exit
  plan INPUT OUT_DIR
          print the ffmpeg commands the worker would run for INPUT (one-pass
          ladder first, then each rung as a pass of its own), shell-quoted
Settings are environment variables (XTREAM_*); see the README.";

fn main() -> anyhow::Result<()> {
    xtream_native::log_to_stderr();
    let mode = std::env::args().nth(1).unwrap_or_else(|| "run".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match mode.as_str() {
        "run" => {
            let config = config::WorkerConfig::from_env()?;
            runtime
                .block_on(run::run(config))
                .context("the worker failed")
        }
        "maintain" => {
            let config = config::WorkerConfig::from_env()?;
            runtime
                .block_on(run::maintain(config))
                .context("the maintenance worker failed")
        }
        "migrate" => {
            let config = config::MigrateConfig::from_env()?;
            runtime.block_on(migrate(config))
        }
        "plan" => runtime.block_on(plan()),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("unknown mode {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    }
}

/// `migrate`: brings the schema up to date and says what it did.
async fn migrate(config: config::MigrateConfig) -> anyhow::Result<()> {
    let report = migrate::migrate(&config.database, config.wait)
        .await
        .with_context(|| format!("migrating {}", config.database))?;
    for (version, name) in &report.applied {
        println!("applied migration {version:04} {name}");
    }
    if report.applied.is_empty() {
        println!(
            "the schema is up to date: nothing to apply ({} of {} applied already)",
            report.already_applied,
            xtream_core::metadata::MIGRATIONS.len()
        );
    }
    Ok(())
}

/// `plan INPUT OUT_DIR`: what a job would run, for benchmarks and for
/// operators wondering what the worker does to a file. Per-rung commands
/// write to `OUT_DIR/separate` so they do not overwrite the ladder's files.
async fn plan() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let [input, out_dir] = args.as_slice() else {
        anyhow::bail!("usage: xtream-worker plan INPUT OUT_DIR");
    };
    let (input, out_dir) = (std::path::Path::new(input), std::path::Path::new(out_dir));
    let preset = std::env::var("XTREAM_X264_PRESET").unwrap_or_else(|_| "veryfast".into());
    let media = media::probe(input).await?;
    let ladder = xtream_core::ladder::RenditionLadder::for_source(media.width, media.height)
        .context("the picture is too small to be a video")?;
    let quote = |args: Vec<String>| {
        let quoted: Vec<String> = args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        format!("ffmpeg {}", quoted.join(" "))
    };
    println!(
        "{}",
        quote(media::ladder_args(input, out_dir, &ladder, &media, &preset))
    );
    for rung in &ladder.rungs {
        let separate = out_dir.join("separate");
        println!(
            "{}",
            quote(media::rung_args(input, &separate, rung, &media, &preset))
        );
    }
    Ok(())
}
