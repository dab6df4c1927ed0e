//! `xtream`: the command line client of an Xtream server.
//!
//! ```text
//! xtream upload FILE [--title T]   resumable upload with progress; run again to resume
//! xtream list [--limit N] [--all]  videos, newest first
//! xtream show ID                   one video
//! xtream delete ID                 remove a video and everything stored for it
//! xtream watch ID                  print the video's playback (HLS) URL, once playable
//! ```
//!
//! `--server`/`XTREAM_SERVER`, `--api-key`/`XTREAM_API_KEY`, `--json` for
//! scripts. Every API error is printed with its message and code, and the
//! exit status is non-zero.

mod api;
mod state;
mod upload;

use api::{Api, CliError};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use xtream_core::playback::VideoView;
use xtream_core::{VideoRecord, VideoStatus};

/// Exit status of `upload --stop-after-parts` when it stopped early.
const EXIT_STOPPED: i32 = 3;
/// Exit status when a followed video failed to transcode.
const EXIT_VIDEO_FAILED: i32 = 6;

#[derive(Parser)]
#[command(
    name = "xtream",
    version,
    about = "Upload, list and play videos on an Xtream server"
)]
struct Cli {
    /// The server's base URL.
    #[arg(
        long,
        env = "XTREAM_SERVER",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    server: String,
    /// API key for writes (and reads, if the server requires it).
    #[arg(long, env = "XTREAM_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// Print JSON (one document) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upload a video (resumable: run the same command again to continue),
    /// then follow it until it is ready or failed.
    Upload {
        /// The video file.
        file: PathBuf,
        /// A title (default: the file name without extension).
        #[arg(long)]
        title: Option<String>,
        /// Parts sent at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
        parallel: u16,
        /// Do not wait for the video to be transcoded.
        #[arg(long)]
        no_wait: bool,
        /// Give up following the video after this many seconds.
        #[arg(long, default_value_t = 3600)]
        wait_timeout: u64,
        /// Stop after sending this many parts, as an interrupted run would
        /// (for testing resumption).
        #[arg(long, hide = true)]
        stop_after_parts: Option<usize>,
    },
    /// List videos, newest first.
    List {
        /// Videos per page (1-100).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// Show one video.
    Show {
        /// The video's id.
        id: String,
    },
    /// Delete a video and everything stored for it.
    Delete {
        /// The video's id.
        id: String,
    },
    /// Print the video's playback URL (HLS master playlist), as soon as it
    /// is playable (possibly while it still transcodes).
    Watch {
        /// The video's id.
        id: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("an async runtime starts");
    let json = cli.json;
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            if json {
                println!("{}", err.to_json());
            }
            eprintln!("error: {err}");
            err.exit_code()
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> Result<i32, CliError> {
    let api = Api::new(&cli.server, cli.api_key.clone())?;
    let json = cli.json;
    match cli.command {
        Command::Upload {
            file,
            title,
            parallel,
            no_wait,
            wait_timeout,
            stop_after_parts,
        } => {
            let options = upload::UploadOptions {
                title,
                parallel: usize::from(parallel),
                stop_after_parts,
                progress: !json && std::io::stderr().is_terminal(),
            };
            let mut summary = upload::upload(&api, &file, &options).await?;
            if !summary.complete {
                print_upload(&summary, json);
                return Ok(EXIT_STOPPED);
            }
            if !json {
                print_upload(&summary, false);
            }
            let mut code = 0;
            if !no_wait && let Some(video) = summary.video.take() {
                let followed =
                    follow(&api, video, !json, Duration::from_secs(wait_timeout)).await?;
                if followed.status == VideoStatus::Failed {
                    code = EXIT_VIDEO_FAILED;
                }
                if !json {
                    print_outcome(&api, &followed);
                }
                summary.video = Some(followed);
            }
            if json {
                print_upload(&summary, true);
            }
            Ok(code)
        }
        Command::List { limit, all } => {
            let mut videos = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = api.list(limit, cursor.as_deref()).await?;
                videos.extend(page.videos);
                match page.next_cursor {
                    Some(next) if all => cursor = Some(next),
                    next => {
                        cursor = next;
                        break;
                    }
                }
            }
            if json {
                let views: Vec<VideoView> = videos.into_iter().map(VideoView::from).collect();
                let page = serde_json::json!({"videos": views, "next_cursor": cursor});
                println!("{page}");
            } else if videos.is_empty() {
                println!("no videos");
            } else {
                println!(
                    "{:<36}  {:<11}  {:>9}  {:<20}  TITLE",
                    "ID", "STATUS", "SIZE", "CREATED"
                );
                for v in &videos {
                    println!(
                        "{:<36}  {:<11}  {:>9}  {:<20}  {}",
                        v.id,
                        v.status.as_str(),
                        human_bytes(v.size),
                        v.created_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                        v.title
                    );
                }
                if cursor.is_some() {
                    println!("(more: --all lists every page)");
                }
            }
            Ok(0)
        }
        Command::Show { id } => {
            let (raw, record) = api.video(&id).await?;
            if json {
                println!("{raw}");
            } else {
                print_record(&api, &record);
            }
            Ok(0)
        }
        Command::Delete { id } => {
            api.delete(&id).await?;
            if json {
                println!("{}", serde_json::json!({"deleted": id}));
            } else {
                println!("deleted {id}");
            }
            Ok(0)
        }
        Command::Watch { id } => {
            let (_, record) = api.video(&id).await?;
            let view = VideoView::from(record.clone());
            let Some(hls) = view.playback.hls else {
                return Err(CliError::Api {
                    status: 409,
                    code: "not_ready".into(),
                    message: format!(
                        "video {id} is {}; it can be played once it is ready, or sooner, once \
                         its first segments are transcoded",
                        record.status.as_str()
                    ),
                });
            };
            let url = format!("{}{hls}", api.base());
            let ready = record.status == VideoStatus::Ready;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": id, "hls": url, "playable": true, "ready": ready})
                );
            } else {
                println!("{url}");
                if !ready {
                    // On stderr: stdout stays the URL alone, for scripts.
                    eprintln!(
                        "still transcoding: playable from the start, and its playlists grow until it is ready"
                    );
                }
            }
            Ok(0)
        }
    }
}

/// Polls the video until it is ready or failed (or `timeout` passes), with
/// a spinner showing its status.
async fn follow(
    api: &Api,
    mut video: VideoRecord,
    spinner: bool,
    timeout: Duration,
) -> Result<VideoRecord, CliError> {
    let bar = if spinner && std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let deadline = Instant::now() + timeout;
    while !matches!(video.status, VideoStatus::Ready | VideoStatus::Failed) {
        let playable = if video.is_playable() {
            " (playable now)"
        } else {
            ""
        };
        bar.set_message(format!(
            "video {}: {}{playable}",
            video.id,
            video.status.as_str()
        ));
        if Instant::now() > deadline {
            bar.finish_and_clear();
            return Err(CliError::Transport(format!(
                "video {} is still {} after {}s; check later with `xtream show {}`",
                video.id,
                video.status.as_str(),
                timeout.as_secs(),
                video.id
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        video = api.video(&video.id.to_string()).await?.1;
    }
    bar.finish_and_clear();
    Ok(video)
}

fn print_upload(summary: &upload::UploadSummary, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(summary).expect("a summary serialises")
        );
        return;
    }
    let rate = if summary.seconds > 0.0 {
        format!(
            ", {}/s",
            human_bytes((summary.bytes_sent as f64 / summary.seconds) as u64)
        )
    } else {
        String::new()
    };
    let resumed = if summary.resumed {
        format!(
            "; resumed: {} of {} parts were already stored",
            summary.parts_skipped, summary.part_count
        )
    } else {
        String::new()
    };
    let verb = if summary.complete {
        "uploaded"
    } else {
        "partly uploaded"
    };
    println!(
        "{verb} {} ({} in {} parts, {:.1} s{rate}{resumed})",
        summary.id,
        human_bytes(summary.bytes_sent),
        summary.parts_sent,
        summary.seconds,
    );
    if let Some(note) = &summary.note {
        println!("note: {note}");
    }
}

fn print_outcome(api: &Api, video: &VideoRecord) {
    match video.status {
        VideoStatus::Ready => {
            let view = VideoView::from(video.clone());
            let hls = view.playback.hls.unwrap_or_default();
            println!("ready: {}{hls}", api.base());
        }
        VideoStatus::Failed => println!(
            "failed: {}",
            video.failure_reason.as_deref().unwrap_or("no reason given")
        ),
        other => println!("{}", other.as_str()),
    }
}

fn print_record(api: &Api, v: &VideoRecord) {
    println!("id:           {}", v.id);
    println!("title:        {}", v.title);
    println!(
        "file:         {} ({}, {})",
        v.filename,
        v.content_type,
        human_bytes(v.size)
    );
    println!("status:       {}", v.status.as_str());
    if let Some(detail) = &v.status_detail {
        println!("detail:       {detail}");
    }
    if let Some(reason) = &v.failure_reason {
        println!("failure:      {reason}");
    }
    println!("created:      {}", v.created_at);
    if let (Some(w), Some(h)) = (v.width, v.height) {
        println!("picture:      {w}x{h}");
    }
    if let Some(seconds) = v.duration_seconds {
        println!("duration:     {seconds:.1} s");
    }
    let view = VideoView::from(v.clone());
    if let Some(hls) = view.playback.hls {
        println!("play:         {}{hls}", api.base());
    }
    println!("original:     {}{}", api.base(), view.playback.original);
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
