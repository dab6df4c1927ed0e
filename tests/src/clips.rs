//! Test videos, generated with ffmpeg (`testsrc2` picture, `sine` tone).

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs ffmpeg quietly with `args`, failing with its output.
pub fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    crate::stdout_of(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args),
    )?;
    Ok(())
}

/// An H.264/AAC MP4 of `seconds` at `width`x`height`, 25 fps with a
/// keyframe every second (so it cuts into 1 s HLS segments), in `dir`.
pub fn mp4(
    dir: &Path,
    name: &str,
    seconds: u32,
    width: u32,
    height: u32,
) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    let video = format!("testsrc2=size={width}x{height}:rate=25:duration={seconds}");
    let audio = format!("sine=frequency=440:duration={seconds}");
    lavfi_mp4(&path, &video, Some(&audio), &["-g", "25"])?;
    Ok(path)
}

/// An MP4 at `path` from ffmpeg's generated sources: the picture of the
/// lavfi graph `video` in H.264 (x264 `ultrafast`, `yuv420p`), and the
/// sound of `audio`, if any, in AAC, cut to the shorter of the two.
/// `encoding` adds options for the video's encoder (`-g 25`).
pub fn lavfi_mp4(
    path: &Path,
    video: &str,
    audio: Option<&str>,
    encoding: &[&str],
) -> anyhow::Result<()> {
    let mut args = vec!["-f", "lavfi", "-i", video];
    if let Some(audio) = audio {
        args.extend(["-f", "lavfi", "-i", audio]);
    }
    args.extend([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ]);
    args.extend(encoding);
    if audio.is_some() {
        args.extend(["-c:a", "aac", "-shortest"]);
    }
    args.push(path.to_str().context("temp paths are UTF-8")?);
    ffmpeg(&args)
}
