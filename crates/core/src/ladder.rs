//! The rendition ladder: which HLS renditions a source gets, at which sizes
//! and bitrates.
//!
//! A source is never upscaled: it gets the standard rungs (360p, 720p,
//! 1080p) at or below its own size. A source smaller than the smallest rung
//! gets one rung at its own size, so every video is playable.
//!
//! Rungs are named after the short side of the picture, so a portrait phone
//! video (1080×1920) gets the same rungs as its landscape twin, 608×1080
//! becoming "1080p" rather than being refused as "too small for 1080p".

use serde::{Deserialize, Serialize};

/// The standard rungs: short side in pixels, video bitrate and peak bitrate
/// in kbit/s. The bitrates are the usual ones for H.264 at 25–30 fps.
const STANDARD_RUNGS: [(u32, u32, u32); 3] =
    [(360, 800, 856), (720, 2800, 2996), (1080, 5000, 5350)];

/// Audio bitrate of every rung that has audio, kbit/s (stereo AAC).
pub const AUDIO_KBPS: u32 = 128;

/// The smallest rung we make for a tiny source, so the encoder has pixels to
/// work with (x264 needs at least 2×2; anything below 16 is not a video).
const MIN_SHORT_SIDE: u32 = 16;

/// One rendition to encode: its name, picture size and bitrates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// `360p`, `720p`, `1080p`, or `{n}p` for a tiny source; also the
    /// rendition's folder name under `hls/`.
    pub name: String,
    /// Output width in pixels (even, as 4:2:0 video requires).
    pub width: u32,
    /// Output height in pixels (even).
    pub height: u32,
    /// Target video bitrate, kbit/s.
    pub video_kbps: u32,
    /// Peak video bitrate (VBV max rate), kbit/s.
    pub max_video_kbps: u32,
}

impl Rung {
    /// VBV buffer size, kbit: 1.5 × the peak rate keeps segments close to
    /// the target without starving fast scenes.
    pub fn buffer_kbits(&self) -> u32 {
        self.max_video_kbps * 3 / 2
    }

    /// Peak bandwidth in bit/s, as HLS `BANDWIDTH` counts it (video peak plus
    /// audio, when there is audio).
    pub fn bandwidth(&self, with_audio: bool) -> u64 {
        let audio = if with_audio { AUDIO_KBPS } else { 0 };
        u64::from(self.max_video_kbps + audio) * 1000
    }

    /// What the video record keeps of this rung.
    pub fn rendition(&self, with_audio: bool) -> Rendition {
        Rendition {
            name: self.name.clone(),
            width: self.width,
            height: self.height,
            bandwidth: self.bandwidth(with_audio),
        }
    }
}

/// A stored rendition, as the video record lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendition {
    /// `720p` etc.; its playlist is `hls/{name}/index.m3u8`.
    pub name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Peak bandwidth in bit/s.
    pub bandwidth: u64,
}

/// The rungs a source gets, smallest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionLadder {
    /// At least one rung, smallest first.
    pub rungs: Vec<Rung>,
}

impl RenditionLadder {
    /// The ladder for a source of `width`×`height` display pixels (after
    /// rotation). `None` when the picture is too small to be a video.
    pub fn for_source(width: u32, height: u32) -> Option<Self> {
        let short = width.min(height);
        if short < MIN_SHORT_SIDE {
            return None;
        }
        let rungs: Vec<Rung> = STANDARD_RUNGS
            .iter()
            .filter(|(rung_short, _, _)| *rung_short <= short)
            .map(|&(rung_short, kbps, max_kbps)| sized(width, height, rung_short, kbps, max_kbps))
            .collect();
        if !rungs.is_empty() {
            return Some(Self { rungs });
        }
        // Smaller than the smallest rung: one rung at the source's own size,
        // with the bitrate scaled to its pixel count.
        let (smallest, kbps, max_kbps) = STANDARD_RUNGS[0];
        let scale = |rate: u32| -> u32 {
            let scaled = u64::from(rate) * u64::from(short) * u64::from(short)
                / (u64::from(smallest) * u64::from(smallest));
            u32::try_from(scaled).unwrap_or(rate).max(100)
        };
        Some(Self {
            rungs: vec![sized(
                width,
                height,
                even_down(short),
                scale(kbps),
                scale(max_kbps),
            )],
        })
    }

    /// The renditions the record lists for this ladder.
    pub fn renditions(&self, with_audio: bool) -> Vec<Rendition> {
        self.rungs
            .iter()
            .map(|rung| rung.rendition(with_audio))
            .collect()
    }
}

/// A rung whose short side is `short`, keeping the source's aspect ratio.
fn sized(width: u32, height: u32, short: u32, video_kbps: u32, max_video_kbps: u32) -> Rung {
    let (source_short, source_long) = (width.min(height), width.max(height));
    let short = even_down(short);
    // The long side rounded to the nearest even number: 4:2:0 chroma needs
    // even dimensions, and rounding (not truncating) keeps 16:9 exact.
    let (long, source_short) = (
        u64::from(source_long) * u64::from(short),
        u64::from(source_short),
    );
    let long = u32::try_from((long + source_short) / (2 * source_short) * 2)
        .unwrap_or(u32::MAX - 1)
        .max(2);
    let (out_width, out_height) = if width >= height {
        (long, short)
    } else {
        (short, long)
    };
    Rung {
        name: format!("{}p", short),
        width: out_width,
        height: out_height,
        video_kbps,
        max_video_kbps,
    }
}

fn even_down(n: u32) -> u32 {
    (n / 2 * 2).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ladder: &RenditionLadder) -> Vec<&str> {
        ladder.rungs.iter().map(|r| r.name.as_str()).collect()
    }

    fn sizes(ladder: &RenditionLadder) -> Vec<(u32, u32)> {
        ladder.rungs.iter().map(|r| (r.width, r.height)).collect()
    }

    #[test]
    fn never_upscales() {
        let hd = RenditionLadder::for_source(1280, 720).unwrap();
        assert_eq!(names(&hd), ["360p", "720p"]);
        assert_eq!(sizes(&hd), [(640, 360), (1280, 720)]);
        let full_hd = RenditionLadder::for_source(1920, 1080).unwrap();
        assert_eq!(names(&full_hd), ["360p", "720p", "1080p"]);
        let uhd = RenditionLadder::for_source(3840, 2160).unwrap();
        assert_eq!(names(&uhd), ["360p", "720p", "1080p"]);
        assert_eq!(sizes(&uhd)[2], (1920, 1080));
        let sd = RenditionLadder::for_source(854, 480).unwrap();
        assert_eq!(names(&sd), ["360p"]);
    }

    #[test]
    fn tiny_sources_get_one_rung_at_their_own_size() {
        let tiny = RenditionLadder::for_source(320, 240).unwrap();
        assert_eq!(names(&tiny), ["240p"]);
        assert_eq!(sizes(&tiny), [(320, 240)]);
        assert!(tiny.rungs[0].video_kbps < 800);
        let odd = RenditionLadder::for_source(175, 143).unwrap();
        assert_eq!(sizes(&odd), [(174, 142)]);
        assert!(RenditionLadder::for_source(8, 8).is_none());
        assert!(RenditionLadder::for_source(0, 720).is_none());
    }

    #[test]
    fn portrait_video_is_laddered_by_its_short_side() {
        let phone = RenditionLadder::for_source(1080, 1920).unwrap();
        assert_eq!(names(&phone), ["360p", "720p", "1080p"]);
        assert_eq!(sizes(&phone), [(360, 640), (720, 1280), (1080, 1920)]);
    }

    #[test]
    fn dimensions_stay_even_and_keep_the_aspect_ratio() {
        for (w, h) in [(1998, 1080), (1440, 1080), (1281, 721), (2560, 1097)] {
            for rung in RenditionLadder::for_source(w, h).unwrap().rungs {
                assert_eq!(rung.width % 2, 0, "{w}x{h} {rung:?}");
                assert_eq!(rung.height % 2, 0, "{w}x{h} {rung:?}");
                let source = f64::from(w) / f64::from(h);
                let out = f64::from(rung.width) / f64::from(rung.height);
                assert!((source - out).abs() / source < 0.02, "{w}x{h} {rung:?}");
            }
        }
    }

    #[test]
    fn bandwidth_counts_audio_only_when_present() {
        let rung = &RenditionLadder::for_source(1280, 720).unwrap().rungs[1];
        assert_eq!(rung.bandwidth(false), 2_996_000);
        assert_eq!(rung.bandwidth(true), 3_124_000);
        assert_eq!(
            rung.rendition(true),
            Rendition {
                name: "720p".into(),
                width: 1280,
                height: 720,
                bandwidth: 3_124_000
            }
        );
    }
}
