//! Test videos, generated with ffmpeg (`testsrc2` picture, `sine` tone).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs ffmpeg quietly with `args`, failing with its output.
pub fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .context("cannot run ffmpeg; run `./x setup`")?;
    if !output.status.success() {
        bail!(
            "ffmpeg {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
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
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-shortest",
        path.to_str().context("temp paths are UTF-8")?,
    ])?;
    Ok(path)
}
