//! `xtream upload FILE`: a resumable upload, parts sent straight to S3
//! through the presigned URLs the server hands out, several at once, with a
//! progress bar; then completion, then (optionally) following the video
//! until it is ready.

use crate::api::{Api, CliError};
use crate::state::{SavedUpload, StateFile};
use bytes::Bytes;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use xtream_core::VideoRecord;
use xtream_core::resumable::PartUrl;

/// Bytes read from the file per chunk of a part's body.
const CHUNK: u64 = 256 * 1024;
/// Tries per part before the run gives up (a rerun resumes).
const PART_ATTEMPTS: u32 = 3;

/// How to upload.
pub struct UploadOptions {
    /// The title; the file name without extension when absent.
    pub title: Option<String>,
    /// Parts in flight at once.
    pub parallel: usize,
    /// Stop (as an interrupted run would) once this many parts were sent;
    /// for tests of resuming.
    pub stop_after_parts: Option<usize>,
    /// Whether to show a progress bar.
    pub progress: bool,
}

/// What an upload run did, for people and for `--json`.
#[derive(Debug, Serialize)]
pub struct UploadSummary {
    /// The upload's id, which is the video's id.
    pub id: String,
    /// Whether this run picked up an upload an earlier run had started.
    pub resumed: bool,
    /// Whether the upload was completed (false when stopped early).
    pub complete: bool,
    /// Size of the file.
    pub size: u64,
    /// Bytes per part.
    pub part_size: u64,
    /// Parts in all.
    pub part_count: usize,
    /// Parts this run sent.
    pub parts_sent: usize,
    /// Parts already stored before this run (not sent again).
    pub parts_skipped: usize,
    /// Bytes this run sent.
    pub bytes_sent: u64,
    /// Seconds this run spent sending parts.
    pub seconds: f64,
    /// The video, once complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoRecord>,
    /// A note for people, e.g. that the video is stored but not yet queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The upload to send parts of.
struct Plan {
    id: String,
    resumed: bool,
    part_size: u64,
    part_count: usize,
    todo: Vec<PartUrl>,
}

/// Uploads `file`, resuming an earlier run's upload of the same file.
pub async fn upload(
    api: &Api,
    file: &Path,
    options: &UploadOptions,
) -> Result<UploadSummary, CliError> {
    let metadata =
        std::fs::metadata(file).map_err(|e| CliError::Local(format!("{}: {e}", file.display())))?;
    if !metadata.is_file() {
        return Err(CliError::Local(format!("{} is not a file", file.display())));
    }
    let size = metadata.len();
    if size == 0 {
        return Err(CliError::Local(format!("{} is empty", file.display())));
    }
    let state = StateFile::for_file(api.base(), file, size)?;
    let plan = match resume(api, &state, size).await? {
        Resumed::Plan(plan) => plan,
        Resumed::AlreadyComplete(record) => {
            state.forget();
            return Ok(UploadSummary {
                id: record.id.to_string(),
                resumed: true,
                complete: true,
                size,
                part_size: 0,
                part_count: 0,
                parts_sent: 0,
                parts_skipped: 0,
                bytes_sent: 0,
                seconds: 0.0,
                video: Some(*record),
                note: Some("an earlier run had already completed this upload".into()),
            });
        }
        Resumed::Nothing => {
            let filename = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "video".into());
            let created = api
                .create_upload(&filename, size, options.title.as_deref())
                .await?;
            let id = created.id.to_string();
            state.save(&SavedUpload {
                server: api.base().to_owned(),
                upload_id: id.clone(),
                path: file.to_path_buf(),
                size,
            })?;
            Plan {
                id,
                resumed: false,
                part_size: created.part_size,
                part_count: created.parts.len(),
                todo: created.parts,
            }
        }
    };

    let skipped = plan.part_count - plan.todo.len();
    let done_bytes = size
        - plan
            .todo
            .iter()
            .map(|p| part_len(p.number, plan.part_size, size))
            .sum::<u64>();
    let bar = progress_bar(size, done_bytes, options.progress);
    let started = Instant::now();
    let sender = PartSender::new(file.to_path_buf(), size, plan.part_size, bar.clone())?;
    let sent = sender
        .send_all(plan.todo, options.parallel, options.stop_after_parts)
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let (parts_sent, bytes_sent) = (sender.parts_sent(), sender.bytes_sent());
    bar.finish_and_clear();
    sent.map_err(|e| resumable_hint(e, file))?;

    let mut summary = UploadSummary {
        id: plan.id.clone(),
        resumed: plan.resumed,
        complete: false,
        size,
        part_size: plan.part_size,
        part_count: plan.part_count,
        parts_sent,
        parts_skipped: skipped,
        bytes_sent,
        seconds,
        video: None,
        note: None,
    };
    if parts_sent + skipped < plan.part_count {
        summary.note = Some(format!(
            "stopped after {parts_sent} parts; run the same command again to resume"
        ));
        return Ok(summary);
    }
    match api.complete_upload(&plan.id).await {
        Ok(record) => summary.video = Some(record),
        // Stored and listed; the worker's outbox relay queues it later.
        Err(CliError::Api {
            status: 503,
            code,
            message,
        }) if code == "queue_unavailable" => {
            summary.note = Some(message);
            summary.video = Some(api.video(&plan.id).await?.1);
        }
        Err(err) => return Err(resumable_hint(err, file)),
    }
    summary.complete = true;
    state.forget();
    Ok(summary)
}

enum Resumed {
    Plan(Plan),
    AlreadyComplete(Box<VideoRecord>),
    Nothing,
}

/// The remembered upload of this file, if it can still be resumed.
async fn resume(api: &Api, state: &StateFile, size: u64) -> Result<Resumed, CliError> {
    let Some(saved) = state.load() else {
        return Ok(Resumed::Nothing);
    };
    if saved.server != api.base() || saved.size != size {
        state.forget();
        return Ok(Resumed::Nothing);
    }
    match api.upload_status(&saved.upload_id).await {
        Ok(status) => Ok(Resumed::Plan(Plan {
            id: saved.upload_id,
            resumed: true,
            part_size: status.part_size,
            part_count: usize::from(status.part_count),
            todo: status.parts,
        })),
        Err(err) if err.is_not_found() => {
            // Completed by an earlier run whose end we never saw, or gone.
            state.forget();
            match api.video(&saved.upload_id).await {
                Ok((_, record)) => Ok(Resumed::AlreadyComplete(Box::new(record))),
                Err(err) if err.is_not_found() => Ok(Resumed::Nothing),
                Err(err) => Err(err),
            }
        }
        Err(CliError::Api { status: 410, .. }) => {
            let _ = api.abort_upload(&saved.upload_id).await;
            state.forget();
            Ok(Resumed::Nothing)
        }
        Err(err) => Err(err),
    }
}

fn resumable_hint(err: CliError, file: &Path) -> CliError {
    match err {
        CliError::Transport(message) => CliError::Transport(format!(
            "{message}\nthe parts sent so far are kept: run `xtream upload {}` again to resume",
            file.display()
        )),
        other => other,
    }
}

/// The length of part `number` of a `size`-byte file cut in `part_size`.
fn part_len(number: u16, part_size: u64, size: u64) -> u64 {
    let start = u64::from(number.saturating_sub(1)) * part_size;
    size.saturating_sub(start).min(part_size)
}

fn progress_bar(size: u64, done: u64, visible: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(size),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_position(done);
    bar.reset_eta();
    bar
}

/// Sends parts of one file, counting what went through.
struct PartSender {
    http: reqwest::Client,
    file: PathBuf,
    size: u64,
    part_size: u64,
    bar: ProgressBar,
    parts_sent: Arc<AtomicUsize>,
    bytes_sent: Arc<AtomicU64>,
}

impl PartSender {
    fn new(file: PathBuf, size: u64, part_size: u64, bar: ProgressBar) -> Result<Self, CliError> {
        Ok(Self {
            // Part URLs point at S3, which needs no API key.
            http: reqwest::Client::builder().build()?,
            file,
            size,
            part_size,
            bar,
            parts_sent: Arc::default(),
            bytes_sent: Arc::default(),
        })
    }

    fn parts_sent(&self) -> usize {
        self.parts_sent.load(Ordering::SeqCst)
    }

    fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::SeqCst)
    }

    /// Sends `parts`, `parallel` at a time, stopping at the first part that
    /// fails every try, or (if asked) once `stop_after` parts went through.
    async fn send_all(
        &self,
        parts: Vec<PartUrl>,
        parallel: usize,
        stop_after: Option<usize>,
    ) -> Result<(), CliError> {
        let mut sends = futures::stream::iter(parts)
            .map(|part| async move {
                // Decided when the part would start, so in-flight parts
                // finish but no new one begins.
                if stop_after.is_some_and(|n| self.parts_sent() >= n) {
                    return Ok(());
                }
                self.send(&part).await
            })
            .buffer_unordered(parallel.max(1));
        while let Some(sent) = sends.next().await {
            sent?;
        }
        Ok(())
    }

    async fn send(&self, part: &PartUrl) -> Result<(), CliError> {
        let len = part_len(part.number, self.part_size, self.size);
        let mut last_error = None;
        for attempt in 1..=PART_ATTEMPTS {
            let counted = Arc::new(AtomicU64::new(0));
            match self.try_send(part, len, counted.clone()).await {
                Ok(()) => {
                    self.parts_sent.fetch_add(1, Ordering::SeqCst);
                    self.bytes_sent.fetch_add(len, Ordering::SeqCst);
                    return Ok(());
                }
                Err(err) => {
                    // Take back what the bar showed of the failed try.
                    let shown = counted.load(Ordering::SeqCst);
                    self.bar
                        .set_position(self.bar.position().saturating_sub(shown));
                    last_error = Some(err);
                    if attempt < PART_ATTEMPTS {
                        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    }
                }
            }
        }
        Err(last_error.expect("at least one try"))
    }

    async fn try_send(
        &self,
        part: &PartUrl,
        len: u64,
        counted: Arc<AtomicU64>,
    ) -> Result<(), CliError> {
        let offset = u64::from(part.number - 1) * self.part_size;
        let local = |e: std::io::Error| CliError::Local(format!("{}: {e}", self.file.display()));
        let mut file = tokio::fs::File::open(&self.file).await.map_err(local)?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(local)?;
        let bar = self.bar.clone();
        let body = futures::stream::unfold((file, len), move |(mut file, left)| {
            let (bar, counted) = (bar.clone(), counted.clone());
            async move {
                if left == 0 {
                    return None;
                }
                let n = left.min(CHUNK) as usize;
                let mut chunk = vec![0; n];
                if let Err(e) = file.read_exact(&mut chunk).await {
                    return Some((Err(e), (file, 0)));
                }
                bar.inc(n as u64);
                counted.fetch_add(n as u64, Ordering::SeqCst);
                Some((
                    Ok::<_, std::io::Error>(Bytes::from(chunk)),
                    (file, left - n as u64),
                ))
            }
        });
        let response = self
            .http
            .put(&part.url)
            .header("content-length", len)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = response.text().await.unwrap_or_default();
        Err(CliError::Transport(format!(
            "storage refused part {} ({status}): {}",
            part.number,
            detail.chars().take(300).collect::<String>()
        )))
    }
}
