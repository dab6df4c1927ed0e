//! ffprobe and ffmpeg: what the original is, and the commands that turn it
//! into an HLS ladder and a poster.
//!
//! The decisions (reading ffprobe's JSON, building argument lists) are plain
//! functions with unit tests; [`probe`] and [`run_ffmpeg`] only run them.
//!
//! Segments are MPEG-TS rather than fragmented MP4: every HLS player (hls.js,
//! Safari, smart TVs, ffmpeg itself) reads TS, there is no init segment to
//! keep in step, and our codecs (H.264 + AAC) need nothing fMP4 adds. Moving
//! to fMP4 (for HEVC/AV1 or CMAF sharing with DASH) is `-hls_segment_type
//! fmp4` plus an `init.mp4` per rung.

use serde::Deserialize;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use xtream_core::chunks::{self, ChunkSpan};
use xtream_core::ladder::{AUDIO_KBPS, RenditionLadder, Rung};
use xtream_core::storyboard::Storyboard;

/// Target segment length. Four seconds keeps start-up fast and playlists
/// short.
pub const SEGMENT_SECONDS: u32 = 4;
/// A keyframe every two seconds, at the same instants in every rung, so a
/// player can switch rungs at any segment boundary.
pub const KEYFRAME_SECONDS: u32 = 2;
/// Frame rate assumed when the source does not tell one.
const FALLBACK_FPS: f64 = 30.0;
/// How much of ffmpeg's stderr a failure reason keeps.
const STDERR_TAIL: usize = 600;

/// The demuxers an original may be opened with: the containers cameras,
/// phones, screen recorders and editors write (`mov` covers MP4, MOV, M4V
/// and 3GP; `matroska` covers MKV and WebM). Uploads are untrusted, and
/// other formats ffmpeg would happily guess are the classic attacks: an
/// HLS or DASH playlist or a concat script opens the URLs and local files
/// named inside it (server-side request forgery, local file read), an
/// image sequence reads files by pattern. With this list they are refused
/// before anything they name is opened.
pub const ALLOWED_CONTAINERS: [&str; 8] = [
    "mov", "matroska", "avi", "mpegts", "flv", "mpeg", "asf", "ogg",
];
/// Bytes ffprobe may read to identify the streams: enough for any real
/// container's headers, and a bound on what a crafted one costs.
const PROBE_BYTES: u64 = 32 * 1024 * 1024;
/// Streams a video may have (video, audio, subtitles, data together):
/// real files have a handful; thousands of stream headers are an attack.
pub const MAX_STREAMS: usize = 32;
/// Longest side a picture may have: 8K is 7680 wide. A crafted header
/// claiming more would make the decoder allocate frames of gigabytes.
pub const MAX_SIDE: u32 = 8192;
/// Longest video accepted, in seconds (12 hours).
pub const MAX_DURATION_SECONDS: f64 = 12.0 * 3600.0;

pub use xtream_core::media::MediaInfo;

/// Why a file cannot be transcoded, or why ffmpeg could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The file is not a video we can read: permanent.
    #[error("not a playable video: {0}")]
    NotAVideo(String),
    /// ffmpeg read the file but failed to transcode it: permanent, the same
    /// input fails the same way.
    #[error("transcoding failed: {0}")]
    TranscodeFailed(String),
    /// ffmpeg or ffprobe could not be started, or was killed: may pass.
    #[error("could not run {tool}: {detail}")]
    Tool {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
        /// What happened.
        detail: String,
    },
}

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
}

#[derive(Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    duration: Option<String>,
    #[serde(default)]
    disposition: Disposition,
    #[serde(default)]
    side_data_list: Vec<SideData>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Deserialize)]
struct SideData {
    rotation: Option<f64>,
}

/// Reads `ffprobe -print_format json -show_format -show_streams` output,
/// refusing what is beyond [`MAX_STREAMS`], [`MAX_SIDE`] and
/// [`MAX_DURATION_SECONDS`].
pub fn parse_probe(json: &[u8]) -> Result<MediaInfo, MediaError> {
    let probe: ProbeOutput = serde_json::from_slice(json)
        .map_err(|e| MediaError::NotAVideo(format!("ffprobe gave no usable answer ({e})")))?;
    if probe.streams.len() > MAX_STREAMS {
        return Err(MediaError::NotAVideo(format!(
            "the file has {} streams; at most {MAX_STREAMS} are accepted",
            probe.streams.len()
        )));
    }
    // Cover art in audio files is a "video" stream of one picture.
    let video = probe
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video") && s.disposition.attached_pic == 0)
        .ok_or_else(|| MediaError::NotAVideo("the file has no video stream".into()))?;
    let audio = probe
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"));
    let (width, height) = match (video.width, video.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
        _ => {
            return Err(MediaError::NotAVideo(
                "the video stream has no picture size".into(),
            ));
        }
    };
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(MediaError::NotAVideo(format!(
            "the picture is {width}x{height}; at most {MAX_SIDE} pixels a side are accepted"
        )));
    }
    let duration_seconds = probe
        .format
        .as_ref()
        .and_then(|f| parse_seconds(f.duration.as_deref()))
        .or_else(|| parse_seconds(video.duration.as_deref()))
        .ok_or_else(|| MediaError::NotAVideo("the file has no duration (a still image?)".into()))?;
    if duration_seconds > MAX_DURATION_SECONDS {
        return Err(MediaError::NotAVideo(format!(
            "the video lasts {:.0} hours; at most {:.0} are accepted",
            duration_seconds / 3600.0,
            MAX_DURATION_SECONDS / 3600.0
        )));
    }
    // Phones store portrait video as landscape plus a rotation; ffmpeg
    // applies it when decoding, so the ladder must be cut for the rotated
    // picture.
    let rotation = video
        .side_data_list
        .iter()
        .find_map(|d| d.rotation)
        .or_else(|| video.tags.get("rotate").and_then(|r| r.parse().ok()))
        .unwrap_or(0.0);
    let quarter_turns = (rotation / 90.0).round() as i64;
    let (width, height) = if quarter_turns % 2 != 0 {
        (height, width)
    } else {
        (width, height)
    };
    let frame_rate = [&video.avg_frame_rate, &video.r_frame_rate]
        .into_iter()
        .find_map(|rate| parse_rate(rate.as_deref()?));
    Ok(MediaInfo {
        duration_seconds,
        width,
        height,
        video_codec: video.codec_name.clone().unwrap_or_else(|| "unknown".into()),
        audio_codec: audio.map(|a| a.codec_name.clone().unwrap_or_else(|| "unknown".into())),
        frame_rate,
    })
}

fn parse_seconds(text: Option<&str>) -> Option<f64> {
    text?
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
}

/// `30000/1001` → 29.97; `0/0` (unknown) → `None`.
fn parse_rate(text: &str) -> Option<f64> {
    let (num, den) = text.split_once('/').unwrap_or((text, "1"));
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    let rate = num / den;
    // Above 240 fps is a bogus timebase, not a frame rate.
    (rate.is_finite() && rate > 0.0 && rate <= 240.0).then_some(rate)
}

/// The options that open an original, for ffprobe and ffmpeg alike: only
/// local files, only [`ALLOWED_CONTAINERS`], and at most [`PROBE_BYTES`]
/// read to identify its streams.
pub fn input_args(input: &Path) -> Vec<String> {
    vec![
        "-protocol_whitelist".into(),
        "file".into(),
        "-format_whitelist".into(),
        ALLOWED_CONTAINERS.join(","),
        "-probesize".into(),
        PROBE_BYTES.to_string(),
        "-i".into(),
        path(input),
    ]
}

/// The ffprobe arguments for `input`.
pub fn probe_args(input: &Path) -> Vec<String> {
    let mut args = strings(&[
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ]);
    args.extend(input_args(input));
    args
}

/// The one-pass ffmpeg command that writes the whole ladder as HLS into
/// `out_dir`: `master.m3u8`, `{rung}/index.m3u8` and
/// `{rung}/segment_NNN.ts`.
///
/// The source is decoded once and `split` feeds one scaler and one x264
/// encoder per rung. Every rung gets keyframes at the same instants (forced
/// every [`KEYFRAME_SECONDS`], fixed GOP, no scene-cut keyframes), so
/// segment boundaries line up across rungs. Each rung carries its own copy
/// of the audio, so every variant playlist plays on its own.
pub fn ladder_args(
    input: &Path,
    out_dir: &Path,
    ladder: &RenditionLadder,
    media: &MediaInfo,
    preset: &str,
) -> Vec<String> {
    let has_audio = media.audio_codec.is_some();
    let fps = media.frame_rate.unwrap_or(FALLBACK_FPS);
    let gop = ((fps * f64::from(KEYFRAME_SECONDS)).round() as u32).max(1);
    let n = ladder.rungs.len();

    let mut graph = format!("[0:v]split={n}");
    for i in 0..n {
        graph.push_str(&format!("[s{i}]"));
    }
    for (i, rung) in ladder.rungs.iter().enumerate() {
        // Square pixels out, whatever the source's sample aspect ratio.
        graph.push_str(&format!(
            ";[s{i}]scale={}:{},setsar=1[v{i}]",
            rung.width, rung.height
        ));
    }

    let mut args = quiet_ffmpeg();
    args.extend(input_args(input));
    args.extend(["-filter_complex".into(), graph]);
    for i in 0..n {
        args.extend(["-map".into(), format!("[v{i}]")]);
        if has_audio {
            args.extend(["-map".into(), "0:a:0".into()]);
        }
    }
    args.extend(strings(&[
        "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p",
    ]));
    for (i, rung) in ladder.rungs.iter().enumerate() {
        args.extend([
            format!("-b:v:{i}"),
            format!("{}k", rung.video_kbps),
            format!("-maxrate:v:{i}"),
            format!("{}k", rung.max_video_kbps),
            format!("-bufsize:v:{i}"),
            format!("{}k", rung.buffer_kbits()),
        ]);
    }
    args.extend([
        "-g".into(),
        gop.to_string(),
        "-keyint_min".into(),
        gop.to_string(),
        "-sc_threshold".into(),
        "0".into(),
        "-force_key_frames".into(),
        format!("expr:gte(t,n_forced*{KEYFRAME_SECONDS})"),
    ]);
    if has_audio {
        args.extend(strings(&[
            "-c:a",
            "aac",
            "-b:a",
            &format!("{AUDIO_KBPS}k"),
            "-ac",
            "2",
        ]));
    }
    let stream_map: Vec<String> = ladder
        .rungs
        .iter()
        .enumerate()
        .map(|(i, rung)| {
            if has_audio {
                format!("v:{i},a:{i},name:{}", rung.name)
            } else {
                format!("v:{i},name:{}", rung.name)
            }
        })
        .collect();
    args.extend(strings(&[
        "-f",
        "hls",
        "-hls_time",
        &SEGMENT_SECONDS.to_string(),
        // EVENT: ffmpeg rewrites each playlist as every segment completes,
        // so the worker can publish them while it runs, and ends them with
        // ENDLIST; temp_file writes segments and playlists under a
        // temporary name and renames them complete, so what the worker
        // reads is never half-written.
        "-hls_playlist_type",
        "event",
        "-hls_flags",
        "independent_segments+temp_file",
        "-hls_segment_type",
        "mpegts",
        "-hls_segment_filename",
        &path(&out_dir.join("%v").join("segment_%03d.ts")),
        "-master_pl_name",
        "master.m3u8",
        "-var_stream_map",
        &stream_map.join(" "),
    ]));
    args.push(path(&out_dir.join("%v").join("index.m3u8")));
    args
}

/// One rung alone, encoded exactly as in [`ladder_args`] but in a pass of
/// its own (decoding the source again): what the one-pass ladder saves is
/// measured against this (`./x bench`, xtask/src/bench.rs).
pub fn rung_args(
    input: &Path,
    out_dir: &Path,
    rung: &Rung,
    media: &MediaInfo,
    preset: &str,
) -> Vec<String> {
    let single = RenditionLadder {
        rungs: vec![rung.clone()],
    };
    ladder_args(input, out_dir, &single, media, preset)
}

/// The ffmpeg command that writes a poster JPEG: one frame from a second in
/// (or the middle of a shorter video), at most 720 pixels high.
pub fn thumbnail_args(input: &Path, output: &Path, media: &MediaInfo) -> Vec<String> {
    let at = (media.duration_seconds / 2.0).min(1.0);
    let mut args = quiet_ffmpeg();
    args.push("-ss".into());
    args.push(format!("{at:.3}"));
    args.extend(input_args(input));
    args.extend(strings(&[
        "-frames:v",
        "1",
        "-vf",
        "scale=-2:'min(720,ih)'",
        "-q:v",
        "3",
        "-update",
        "1",
    ]));
    args.push(path(output));
    args
}

/// The ffmpeg command that writes a storyboard sprite: one frame every
/// `board.interval_ms` from the start (the `fps` filter picks the frame
/// nearest each instant), scaled to a tile and laid out in exactly the grid
/// `board` describes, so the cues of [`Storyboard::vtt`] match it.
///
/// The picture often ends before the file does (audio runs on a little):
/// the cues still reach the end, so the last frame is repeated (`tpad`) to
/// fill the tiles that would otherwise stay black.
pub fn storyboard_args(input: &Path, output: &Path, board: &Storyboard) -> Vec<String> {
    let filter = format!(
        "fps={},scale={}:{},setsar=1,tpad=stop_mode=clone:stop={},tile={}x{}",
        board.frame_rate(),
        board.tile_width,
        board.tile_height,
        board.tiles,
        board.columns,
        board.rows
    );
    let mut args = quiet_ffmpeg();
    args.extend(input_args(input));
    args.extend(["-an".into(), "-vf".into(), filter]);
    args.extend(strings(&["-frames:v", "1", "-q:v", "4", "-update", "1"]));
    args.push(path(output));
    args
}

/// Added to every timestamp of a chunked video's outputs (ffmpeg
/// `-output_ts_offset`), audio and video alike. Chunks keep the source's
/// timeline (`-copyts`), so the first chunk's encoder would write negative
/// decoding times (B-frames, AAC priming) and ffmpeg would then shift that
/// chunk alone, two frames out of step with the next; lifting the whole
/// timeline keeps every timestamp positive and every chunk in step.
pub const CHUNK_TIMELINE_OFFSET_SECONDS: u32 = 10;

/// The ffprobe arguments that list the video's packets of `input` with
/// their flags (`pts_time,flags` lines), without decoding anything.
pub fn keyframe_probe_args(input: &Path) -> Vec<String> {
    let mut args = strings(&[
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time,flags",
        "-of",
        "csv=p=0",
    ]);
    args.extend(input_args(input));
    args
}

/// The presentation times of the keyframes in ffprobe's packet list.
pub fn parse_keyframes(csv: &str) -> Vec<f64> {
    csv.lines()
        .filter_map(|line| {
            let (time, flags) = line.trim().split_once(',')?;
            flags.contains('K').then(|| time.parse().ok()).flatten()
        })
        .collect()
}

/// The ffmpeg command that cuts the video of `input` into chunk sources
/// `out_dir/NNNN.nut` at `cut_times` (keyframes, a hair early), by stream
/// copy. Timestamps stay the source's (`-copyts`, and no shift of negative
/// ones, in the segment muxer or in each NUT file), so a chunk's frames
/// keep the times they have in the source and in the audio.
pub fn split_args(
    input: &Path,
    out_dir: &Path,
    cut_times: &[f64],
    read_seconds: Option<f64>,
) -> Vec<String> {
    let mut args = quiet_ffmpeg();
    args.push("-copyts".into());
    if let Some(seconds) = read_seconds {
        args.extend(["-t".into(), format!("{seconds:.6}")]);
    }
    args.extend(input_args(input));
    args.extend(strings(&[
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-avoid_negative_ts",
        "disabled",
        "-f",
        "segment",
        "-segment_format",
        "nut",
        "-segment_format_options",
        "avoid_negative_ts=disabled",
    ]));
    if cut_times.is_empty() {
        // One chunk: never cut (the muxer's default is every 2 s).
        args.extend(strings(&["-segment_time", "86400000"]));
    } else {
        let times: Vec<String> = cut_times.iter().map(|t| format!("{t:.6}")).collect();
        args.extend(["-segment_times".into(), times.join(",")]);
    }
    args.push(path(&out_dir.join("%04d.nut")));
    args
}

/// The ffmpeg command that encodes the sound of the whole `input` once,
/// as the audio rendition of a chunked video (`out_dir/index.m3u8` and its
/// segments), on the chunks' timeline. The playlist is `EVENT`, rewritten
/// as each segment completes, so the rendition is published as it grows:
/// the audio encoder is slower than the first chunk's picture needs.
pub fn audio_rendition_args(input: &Path, out_dir: &Path) -> Vec<String> {
    let mut args = quiet_ffmpeg();
    args.push("-copyts".into());
    args.extend(input_args(input));
    args.extend(strings(&[
        "-map",
        "0:a:0",
        "-vn",
        "-c:a",
        "aac",
        "-b:a",
        &format!("{AUDIO_KBPS}k"),
        "-ac",
        "2",
        "-output_ts_offset",
        &CHUNK_TIMELINE_OFFSET_SECONDS.to_string(),
        "-f",
        "hls",
        "-hls_time",
        &SEGMENT_SECONDS.to_string(),
        "-hls_playlist_type",
        "event",
        "-hls_flags",
        "independent_segments+temp_file",
        "-hls_segment_type",
        "mpegts",
        "-hls_segment_filename",
        &path(&out_dir.join("segment_%03d.ts")),
    ]));
    args.push(path(&out_dir.join("index.m3u8")));
    args
}

/// The ffmpeg command that encodes one chunk source (its video only) into
/// the ladder, as [`ladder_args`] does for a whole source, except: the
/// chunk keeps the source's timeline, lifted by
/// [`CHUNK_TIMELINE_OFFSET_SECONDS`]; frames keep their own times
/// (`-fps_mode passthrough`: no frame is added or dropped to fill the
/// timeline before the chunk); keyframes are forced every
/// [`KEYFRAME_SECONDS`] from the chunk's start, where its first segment
/// begins; segments are named after the chunk; the playlists are written
/// once, complete, unless `growing` (`EVENT` playlists rewritten with each
/// segment, for the first chunk, published as it is encoded; its segments
/// are one keyframe interval long, so that the first is done, and the
/// video playable, after half the usual picture).
pub fn chunk_ladder_args(
    source: &Path,
    out_dir: &Path,
    ladder: &RenditionLadder,
    media: &MediaInfo,
    preset: &str,
    span: &ChunkSpan,
    growing: bool,
) -> Vec<String> {
    let video_only = MediaInfo {
        audio_codec: None,
        ..media.clone()
    };
    let mut args = ladder_args(source, out_dir, ladder, &video_only, preset);
    let input = args
        .iter()
        .position(|a| a == "-protocol_whitelist")
        .expect("an input");
    let chunk_input = strings(&[
        "-copyts",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        "nut",
        "-i",
    ]);
    args.splice(
        input..input + 8,
        chunk_input.into_iter().chain([path(source)]),
    );
    set_value(
        &mut args,
        "-force_key_frames",
        format!(
            "expr:gte(t,{:.6}+n_forced*{KEYFRAME_SECONDS})",
            span.start_seconds
        ),
    );
    if growing {
        set_value(&mut args, "-hls_time", KEYFRAME_SECONDS.to_string());
    } else {
        set_value(&mut args, "-hls_playlist_type", "vod".into());
    }
    set_value(
        &mut args,
        "-hls_segment_filename",
        path(&out_dir.join("%v").join(chunks::segment_pattern(span.chunk))),
    );
    let format = args
        .iter()
        .position(|a| a == "-f")
        .expect("an output format");
    args.splice(
        format..format,
        strings(&[
            "-fps_mode",
            "passthrough",
            "-output_ts_offset",
            &CHUNK_TIMELINE_OFFSET_SECONDS.to_string(),
        ]),
    );
    args
}

/// `args` with every encoder limited to `threads` threads (`0`: ffmpeg's
/// choice, unchanged): the option goes right before the output, where it
/// applies to the encoders.
pub fn with_threads(mut args: Vec<String>, threads: u32) -> Vec<String> {
    if threads > 0 {
        let output = args.len() - 1;
        args.splice(
            output..output,
            [
                "-threads".to_owned(),
                threads.to_string(),
                "-filter_complex_threads".to_owned(),
                threads.to_string(),
            ],
        );
    }
    args
}

fn set_value(args: &mut [String], flag: &str, value: String) {
    let at = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} is always set"));
    args[at + 1] = value;
}

/// Runs ffprobe's packet list on `input` and returns its keyframes'
/// presentation times.
pub async fn keyframes(input: &Path) -> Result<Vec<f64>, MediaError> {
    let output = run_ffprobe(&keyframe_probe_args(input)).await?;
    if !output.status.success() {
        return Err(MediaError::NotAVideo(format!(
            "cannot list its keyframes: {}",
            tail(&output.stderr)
        )));
    }
    Ok(parse_keyframes(&String::from_utf8_lossy(&output.stdout)))
}

/// Runs ffprobe with `args` and returns what it wrote; only failing to
/// start it is an error here (its exit status is the caller's to read).
async fn run_ffprobe(args: &[String]) -> Result<std::process::Output, MediaError> {
    command("ffprobe", args)
        .stdout(Stdio::piped())
        .output()
        .await
        .map_err(|e| MediaError::Tool {
            tool: "ffprobe",
            detail: e.to_string(),
        })
}

/// How every ffmpeg command here starts: no banner, no reading stdin,
/// overwrite outputs, errors only.
fn quiet_ffmpeg() -> Vec<String> {
    strings(&["-hide_banner", "-nostdin", "-y", "-loglevel", "error"])
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs ffprobe on `input`.
pub async fn probe(input: &Path) -> Result<MediaInfo, MediaError> {
    let output = run_ffprobe(&probe_args(input)).await?;
    if !output.status.success() {
        let stderr = tail(&output.stderr);
        // Killed by a signal: nothing to say about the file.
        if output.status.code().is_none() {
            return Err(MediaError::Tool {
                tool: "ffprobe",
                detail: format!("{} {stderr}", output.status),
            });
        }
        return Err(MediaError::NotAVideo(
            if stderr.contains("not on whitelist") {
                format!(
                    "not a video container we accept (playlists, concat scripts and image \
                 sequences are refused; accepted: MP4/MOV, MKV/WebM, AVI, MPEG-TS, FLV, \
                 MPEG-PS, ASF/WMV, Ogg): {stderr}"
                )
            } else if stderr.is_empty() {
                "ffprobe cannot read it".into()
            } else {
                stderr
            },
        ));
    }
    parse_probe(&output.stdout)
}

/// Runs ffmpeg with `args`. Dropping the future kills ffmpeg.
pub async fn run_ffmpeg(args: &[String], timeout: Duration) -> Result<(), MediaError> {
    let run = command("ffmpeg", args).output();
    let output = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| MediaError::TranscodeFailed(format!("ffmpeg took longer than {timeout:?}")))?
        .map_err(|e| MediaError::Tool {
            tool: "ffmpeg",
            detail: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = tail(&output.stderr);
    if output.status.code().is_none() {
        return Err(MediaError::Tool {
            tool: "ffmpeg",
            detail: format!("{} {stderr}", output.status),
        });
    }
    Err(MediaError::TranscodeFailed(if stderr.is_empty() {
        output.status.to_string()
    } else {
        stderr
    }))
}

fn command(program: &str, args: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // A job cancelled at shutdown must not leave ffmpeg running.
        .kill_on_drop(true);
    // And neither must a worker that is killed outright: the kernel sends
    // SIGKILL to the child when the thread that spawned it dies.
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// The last few hundred characters of a tool's stderr, on one line.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = text.len().saturating_sub(STDERR_TAIL);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    text[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const PROBE_720P: &str = r#"{
      "streams": [
        {"index": 0, "codec_name": "h264", "codec_type": "video", "width": 1280, "height": 720,
         "r_frame_rate": "25/1", "avg_frame_rate": "25/1", "duration": "5.000000",
         "disposition": {"default": 1, "attached_pic": 0}},
        {"index": 1, "codec_name": "aac", "codec_type": "audio", "r_frame_rate": "0/0",
         "avg_frame_rate": "0/0", "sample_rate": "48000", "channels": 1}
      ],
      "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "5.021000"}
    }"#;

    fn media_720p() -> MediaInfo {
        parse_probe(PROBE_720P.as_bytes()).unwrap()
    }

    #[test]
    fn reads_size_codecs_duration_and_rate() {
        assert_eq!(
            media_720p(),
            MediaInfo {
                duration_seconds: 5.021,
                width: 1280,
                height: 720,
                video_codec: "h264".into(),
                audio_codec: Some("aac".into()),
                frame_rate: Some(25.0),
            }
        );
    }

    #[test]
    fn applies_rotation_to_the_display_size() {
        let rotated = r#"{"streams": [{"codec_type": "video", "codec_name": "hevc", "width": 1920,
            "height": 1080, "avg_frame_rate": "30000/1001",
            "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}],
            "format": {"duration": "3.2"}}"#;
        let media = parse_probe(rotated.as_bytes()).unwrap();
        assert_eq!((media.width, media.height), (1080, 1920));
        assert!((media.frame_rate.unwrap() - 29.97).abs() < 0.01);
        assert_eq!(media.audio_codec, None);
        let tagged = r#"{"streams": [{"codec_type": "video", "width": 640, "height": 480,
            "tags": {"rotate": "270"}}], "format": {"duration": "1"}}"#;
        let media = parse_probe(tagged.as_bytes()).unwrap();
        assert_eq!((media.width, media.height), (480, 640));
    }

    #[test]
    fn refuses_what_is_beyond_the_caps() {
        let refusal = |json: String| match parse_probe(json.as_bytes()) {
            Err(MediaError::NotAVideo(why)) => why,
            other => panic!("accepted {json}: {other:?}"),
        };
        let huge = r#"{"streams": [{"codec_type": "video", "width": 100000, "height": 100000}],
            "format": {"duration": "1"}}"#;
        assert!(refusal(huge.into()).contains("100000x100000"));
        let endless = r#"{"streams": [{"codec_type": "video", "width": 640, "height": 360}],
            "format": {"duration": "86400"}}"#;
        assert!(refusal(endless.into()).contains("24 hours"));
        let stream = r#"{"codec_type": "data"}"#;
        let crowded = format!(
            r#"{{"streams": [{{"codec_type": "video", "width": 640, "height": 360}}, {}],
            "format": {{"duration": "1"}}}}"#,
            vec![stream; MAX_STREAMS].join(",")
        );
        assert!(refusal(crowded).contains("streams"));
        // At the caps themselves: accepted.
        let widest = format!(
            r#"{{"streams": [{{"codec_type": "video", "width": {MAX_SIDE}, "height": 4320}}],
            "format": {{"duration": "{MAX_DURATION_SECONDS}"}}}}"#
        );
        assert!(parse_probe(widest.as_bytes()).is_ok());
    }

    #[test]
    fn every_command_opens_the_original_through_the_allow_lists() {
        let input = Path::new("/work/job/original");
        let media = media_720p();
        let ladder = RenditionLadder::for_source(1280, 720).unwrap();
        for args in [
            probe_args(input),
            ladder_args(input, Path::new("/out"), &ladder, &media, "veryfast"),
            thumbnail_args(input, Path::new("/out/poster.jpg"), &media),
            storyboard_args(
                input,
                Path::new("/out/storyboard.jpg"),
                &Storyboard::plan(5.0, 1280, 720).unwrap(),
            ),
        ] {
            let at = args.iter().position(|a| a == "-i").expect("an input");
            assert_eq!(args[at + 1], "/work/job/original");
            assert_eq!(args.iter().filter(|a| *a == "-i").count(), 1, "{args:?}");
            let before = &args[..at];
            let value_of = |option: &str| {
                let i = before.iter().position(|a| a == option)?;
                before.get(i + 1).cloned()
            };
            assert_eq!(value_of("-protocol_whitelist").as_deref(), Some("file"));
            let formats = value_of("-format_whitelist").expect("a format allow-list");
            for refused in ["hls", "dash", "concat", "image2", "lavfi"] {
                assert!(!formats.split(',').any(|f| f == refused), "{formats}");
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_video() {
        let not_a_video =
            |json: &str| matches!(parse_probe(json.as_bytes()), Err(MediaError::NotAVideo(_)));
        assert!(not_a_video("{}"));
        assert!(not_a_video("not json"));
        assert!(not_a_video(
            r#"{"streams": [{"codec_type": "audio", "codec_name": "mp3"}], "format": {"duration": "3"}}"#
        ));
        // An MP3 with cover art: the picture is no video.
        assert!(not_a_video(
            r#"{"streams": [{"codec_type": "audio"}, {"codec_type": "video", "width": 500,
            "height": 500, "disposition": {"attached_pic": 1}}], "format": {"duration": "3"}}"#
        ));
        // A still image: no duration.
        assert!(not_a_video(
            r#"{"streams": [{"codec_type": "video", "width": 500, "height": 500}],
            "format": {"format_name": "png_pipe"}}"#
        ));
    }

    #[test]
    fn frame_rates_parse_or_are_unknown() {
        assert_eq!(parse_rate("25/1"), Some(25.0));
        assert_eq!(parse_rate("24"), Some(24.0));
        assert_eq!(parse_rate("0/0"), None);
        assert_eq!(parse_rate("90000/1"), None);
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> &'a str {
        let at = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("no {flag}"));
        &args[at + 1]
    }

    #[test]
    fn ladder_is_one_pass_with_aligned_keyframes() {
        let media = media_720p();
        let ladder = RenditionLadder::for_source(media.width, media.height).unwrap();
        let args = ladder_args(
            Path::new("/job/original"),
            Path::new("/job/hls"),
            &ladder,
            &media,
            "veryfast",
        );
        assert_eq!(
            args.iter().filter(|a| *a == "-i").count(),
            1,
            "one input, decoded once"
        );
        assert_eq!(
            value_after(&args, "-filter_complex"),
            "[0:v]split=2[s0][s1];[s0]scale=640:360,setsar=1[v0];[s1]scale=1280:720,setsar=1[v1]"
        );
        assert_eq!(
            value_after(&args, "-var_stream_map"),
            "v:0,a:0,name:360p v:1,a:1,name:720p"
        );
        assert_eq!(value_after(&args, "-g"), "50");
        assert_eq!(value_after(&args, "-keyint_min"), "50");
        assert_eq!(value_after(&args, "-sc_threshold"), "0");
        assert_eq!(
            value_after(&args, "-force_key_frames"),
            "expr:gte(t,n_forced*2)"
        );
        assert_eq!(value_after(&args, "-preset"), "veryfast");
        assert_eq!(value_after(&args, "-b:v:1"), "2800k");
        assert_eq!(value_after(&args, "-maxrate:v:0"), "856k");
        assert_eq!(
            value_after(&args, "-hls_segment_filename"),
            "/job/hls/%v/segment_%03d.ts"
        );
        assert_eq!(value_after(&args, "-master_pl_name"), "master.m3u8");
        assert_eq!(args.last().unwrap(), "/job/hls/%v/index.m3u8");
        assert_eq!(
            args.iter().filter(|a| *a == "0:a:0").count(),
            2,
            "audio in every rung"
        );
    }

    #[test]
    fn silent_sources_get_no_audio_streams() {
        let media = MediaInfo {
            audio_codec: None,
            frame_rate: None,
            ..media_720p()
        };
        let ladder = RenditionLadder::for_source(320, 240).unwrap();
        let args = ladder_args(
            &PathBuf::from("in"),
            &PathBuf::from("out"),
            &ladder,
            &media,
            "ultrafast",
        );
        assert_eq!(value_after(&args, "-var_stream_map"), "v:0,name:240p");
        assert!(!args.iter().any(|a| a == "0:a:0" || a == "-c:a"));
        assert_eq!(value_after(&args, "-g"), "60", "30 fps assumed");
    }

    #[test]
    fn a_rung_alone_is_encoded_like_in_the_ladder() {
        let media = media_720p();
        let ladder = RenditionLadder::for_source(1280, 720).unwrap();
        let args = rung_args(
            Path::new("in"),
            Path::new("out"),
            &ladder.rungs[1],
            &media,
            "veryfast",
        );
        assert_eq!(
            value_after(&args, "-filter_complex"),
            "[0:v]split=1[s0];[s0]scale=1280:720,setsar=1[v0]"
        );
        assert_eq!(value_after(&args, "-b:v:0"), "2800k");
        assert_eq!(value_after(&args, "-var_stream_map"), "v:0,a:0,name:720p");
        assert_eq!(
            value_after(&args, "-force_key_frames"),
            "expr:gte(t,n_forced*2)"
        );
    }

    #[test]
    fn poster_comes_from_early_in_the_video() {
        let media = media_720p();
        let args = thumbnail_args(Path::new("in"), Path::new("poster.jpg"), &media);
        assert_eq!(value_after(&args, "-ss"), "1.000");
        assert_eq!(value_after(&args, "-frames:v"), "1");
        let short = MediaInfo {
            duration_seconds: 0.5,
            ..media
        };
        assert_eq!(
            value_after(
                &thumbnail_args(Path::new("in"), Path::new("p.jpg"), &short),
                "-ss"
            ),
            "0.250"
        );
    }

    #[test]
    fn the_storyboard_sprite_is_the_planned_grid() {
        let board = Storyboard::plan(95.0, 1280, 720).unwrap();
        let args = storyboard_args(Path::new("in"), Path::new("sprite.jpg"), &board);
        assert_eq!(
            value_after(&args, "-vf"),
            "fps=1000/1000,scale=160:90,setsar=1,tpad=stop_mode=clone:stop=95,tile=10x10"
        );
        // One picture: the whole grid.
        assert_eq!(value_after(&args, "-frames:v"), "1");
        assert!(args.contains(&"-an".to_owned()));
        assert_eq!(args.last().unwrap(), "sprite.jpg");
    }

    #[test]
    fn keyframes_come_from_the_packet_flags() {
        let csv = "0.000000,K__\n0.040000,___\n2.000000,K_\nN/A,K_\n\n4.000000,KD_\n";
        assert_eq!(parse_keyframes(csv), [0.0, 2.0, 4.0]);
    }

    #[test]
    fn chunks_are_cut_by_stream_copy_on_the_source_timeline() {
        let args = split_args(Path::new("in"), Path::new("chunks"), &[7.999, 15.999], None);
        assert!(!args.contains(&"-t".to_owned()), "the whole source");
        assert_eq!(value_after(&args, "-c"), "copy");
        assert_eq!(value_after(&args, "-segment_times"), "7.999000,15.999000");
        assert_eq!(value_after(&args, "-segment_format"), "nut");
        assert!(args.contains(&"-copyts".to_owned()));
        assert_eq!(args.last().unwrap(), "chunks/%04d.nut");
        let one = split_args(Path::new("in"), Path::new("chunks"), &[], None);
        assert!(!one.contains(&"-segment_times".to_owned()));
        // The first chunk alone: the original read a second past its cut.
        let first = split_args(Path::new("in"), Path::new("first"), &[7.999], Some(9.0));
        let t = first.iter().position(|a| a == "-t").expect("a read limit");
        let i = first.iter().position(|a| a == "-i").unwrap();
        assert!(t < i, "an input option: {first:?}");
        assert_eq!(first[t + 1], "9.000000");
    }

    #[test]
    fn a_chunk_is_encoded_like_the_ladder_on_the_shared_timeline() {
        let media = media_720p();
        let ladder = RenditionLadder::for_source(1280, 720).unwrap();
        let span = ChunkSpan {
            chunk: 2,
            start_seconds: 38.0,
            end_seconds: Some(68.0),
        };
        let args = chunk_ladder_args(
            Path::new("/job/0002.nut"),
            Path::new("/job/hls"),
            &ladder,
            &media,
            "veryfast",
            &span,
            false,
        );
        assert_eq!(value_after(&args, "-format_whitelist"), "nut");
        assert_eq!(value_after(&args, "-hls_playlist_type"), "vod");
        assert_eq!(value_after(&args, "-hls_time"), SEGMENT_SECONDS.to_string());
        let first = ChunkSpan {
            chunk: 0,
            start_seconds: 0.0,
            end_seconds: Some(8.0),
        };
        let growing = chunk_ladder_args(
            Path::new("/job/0000.nut"),
            Path::new("/job/hls"),
            &ladder,
            &media,
            "veryfast",
            &first,
            true,
        );
        assert_eq!(value_after(&growing, "-hls_playlist_type"), "event");
        assert_eq!(
            value_after(&growing, "-hls_time"),
            "2",
            "short first segments"
        );
        assert_eq!(value_after(&args, "-i"), "/job/0002.nut");
        assert_eq!(args.iter().filter(|a| *a == "-i").count(), 1);
        assert!(args.contains(&"-copyts".to_owned()));
        assert_eq!(
            value_after(&args, "-force_key_frames"),
            "expr:gte(t,38.000000+n_forced*2)"
        );
        assert_eq!(value_after(&args, "-output_ts_offset"), "10");
        assert_eq!(value_after(&args, "-fps_mode"), "passthrough");
        assert_eq!(
            value_after(&args, "-hls_segment_filename"),
            "/job/hls/%v/chunk0002_%03d.ts"
        );
        assert_eq!(
            value_after(&args, "-var_stream_map"),
            "v:0,name:360p v:1,name:720p"
        );
        assert!(
            !args.iter().any(|a| a == "0:a:0"),
            "audio is encoded once, apart"
        );
        let audio = audio_rendition_args(Path::new("in"), Path::new("/job/hls/audio"));
        assert_eq!(value_after(&audio, "-output_ts_offset"), "10");
        assert_eq!(value_after(&audio, "-map"), "0:a:0");
        assert_eq!(
            value_after(&audio, "-hls_playlist_type"),
            "event",
            "published as it grows"
        );
        assert_eq!(audio.last().unwrap(), "/job/hls/audio/index.m3u8");
    }

    #[test]
    fn encoder_threads_go_before_the_output() {
        let args = strings(&["-i", "in", "out"]);
        assert_eq!(with_threads(args.clone(), 0), args);
        assert_eq!(
            with_threads(args, 1),
            strings(&[
                "-i",
                "in",
                "-threads",
                "1",
                "-filter_complex_threads",
                "1",
                "out"
            ])
        );
    }

    #[test]
    fn failure_reasons_keep_the_end_of_stderr() {
        let long = "x".repeat(2000) + "\nInvalid data found when processing input\n";
        let reason = tail(long.as_bytes());
        assert!(reason.len() <= STDERR_TAIL);
        assert!(reason.ends_with("Invalid data found when processing input"));
    }
}
