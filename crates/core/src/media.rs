//! What ffprobe says about a video: the worker probes it once, and a
//! chunked video's chunk jobs carry it to whichever worker takes them.

use serde::{Deserialize, Serialize};

/// The facts of a source the ladder and the record are made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Length in seconds.
    pub duration_seconds: f64,
    /// Display width (after rotation).
    pub width: u32,
    /// Display height (after rotation).
    pub height: u32,
    /// e.g. `h264`.
    pub video_codec: String,
    /// e.g. `aac`; `None` for silent videos.
    pub audio_codec: Option<String>,
    /// Frames per second, when the container tells it.
    pub frame_rate: Option<f64>,
}
