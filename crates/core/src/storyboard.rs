//! Storyboards: the seek previews of a video.
//!
//! A storyboard is one JPEG sprite — small frames of the video laid out in
//! a grid, left to right then top to bottom — and a WebVTT index whose cues
//! name, for each stretch of time, the rectangle of the sprite that shows it
//! (`storyboard.jpg#xywh=x,y,w,h`, a W3C media fragment). Players (hls.js
//! based players, Video.js, Plyr, JW Player and our own web app) read that
//! format for previews above the seek bar.
//!
//! Everything here is arithmetic on the probed duration and picture size:
//! the worker asks ffmpeg for exactly the grid [`Storyboard::plan`] chose,
//! and writes the cues [`Storyboard::vtt`] derives from the same plan, so the
//! index can never point outside the sprite.

/// The longest side of one tile, in pixels: large enough to recognise a
/// scene, small enough that a whole sprite stays a few hundred kilobytes.
pub const TILE_LONG_SIDE: u32 = 160;
/// Most tiles in one sprite. One sprite keeps the index simple and the
/// preview one request away; a hundred previews are finer than a seek bar
/// is wide on most screens.
pub const MAX_TILES: u32 = 100;
/// Tiles per row of the sprite; 10 × 160 px keeps it under 1,600 px wide,
/// within every browser's and decoder's comfort.
pub const MAX_COLUMNS: u32 = 10;
/// Time between two previews, shortest first: round numbers, so a preview
/// lands on a time a person would guess (0:05, 0:10 …). The longest
/// video accepted (12 h) fits in [`MAX_TILES`] at the last one.
const INTERVALS_MS: [u64; 11] = [
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
];

/// The sprite's file name, beside the index: cues name it relative to the
/// index's own URL, so the index works wherever both are served together.
pub const SPRITE_NAME: &str = "storyboard.jpg";

/// The layout of one video's storyboard: how often a frame is taken, how
/// large each tile is and how the tiles are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storyboard {
    /// The video's length, in milliseconds (at least 1).
    pub duration_ms: u64,
    /// Time between two tiles, in milliseconds.
    pub interval_ms: u64,
    /// Width of one tile in pixels (even, for the JPEG encoder's chroma).
    pub tile_width: u32,
    /// Height of one tile in pixels (even).
    pub tile_height: u32,
    /// Tiles per row.
    pub columns: u32,
    /// Rows of tiles.
    pub rows: u32,
    /// Tiles used: one per interval, the last one possibly shorter.
    pub tiles: u32,
}

/// One cue of the index: a stretch of time and the rectangle showing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cue {
    /// Start, in milliseconds from the beginning.
    pub start_ms: u64,
    /// End (exclusive), in milliseconds; the next cue starts here.
    pub end_ms: u64,
    /// Left edge of the tile in the sprite.
    pub x: u32,
    /// Top edge of the tile in the sprite.
    pub y: u32,
    /// Tile width.
    pub width: u32,
    /// Tile height.
    pub height: u32,
}

impl Storyboard {
    /// The storyboard of a video lasting `duration_seconds` with a picture
    /// of `width` × `height` (as displayed, after rotation). `None` when
    /// there is nothing to preview: no positive, finite duration or no
    /// picture.
    pub fn plan(duration_seconds: f64, width: u32, height: u32) -> Option<Self> {
        if !duration_seconds.is_finite() || duration_seconds <= 0.0 || width == 0 || height == 0 {
            return None;
        }
        let duration_ms = ((duration_seconds * 1000.0).round() as u64).max(1);
        let interval_ms = INTERVALS_MS
            .into_iter()
            .find(|interval| duration_ms.div_ceil(*interval) <= u64::from(MAX_TILES))
            // Beyond the longest accepted video: spread the tiles evenly.
            .unwrap_or_else(|| duration_ms.div_ceil(u64::from(MAX_TILES)));
        let tiles = u32::try_from(duration_ms.div_ceil(interval_ms)).unwrap_or(MAX_TILES);
        let (tile_width, tile_height) = tile_size(width, height);
        let columns = tiles.min(MAX_COLUMNS);
        Some(Self {
            duration_ms,
            interval_ms,
            tile_width,
            tile_height,
            columns,
            rows: tiles.div_ceil(columns),
            tiles,
        })
    }

    /// The sprite's size in pixels: the full grid, so the last row may end
    /// with blank tiles no cue names.
    pub fn sprite_size(&self) -> (u32, u32) {
        (self.columns * self.tile_width, self.rows * self.tile_height)
    }

    /// Frames ffmpeg takes per second (its `fps` filter's rate, as a
    /// fraction): one per interval, the first at the very start.
    pub fn frame_rate(&self) -> String {
        format!("1000/{}", self.interval_ms)
    }

    /// The cues, in order: back to back from 0 to the end of the video,
    /// tile `n` showing the frame at the start of cue `n`.
    pub fn cues(&self) -> Vec<Cue> {
        (0..self.tiles)
            .map(|n| {
                let start_ms = u64::from(n) * self.interval_ms;
                Cue {
                    start_ms,
                    end_ms: (start_ms + self.interval_ms).min(self.duration_ms),
                    x: (n % self.columns) * self.tile_width,
                    y: (n / self.columns) * self.tile_height,
                    width: self.tile_width,
                    height: self.tile_height,
                }
            })
            .collect()
    }

    /// The WebVTT index, naming the sprite as [`SPRITE_NAME`] beside it.
    pub fn vtt(&self) -> String {
        let mut text = String::from("WEBVTT\n");
        for cue in self.cues() {
            text.push_str(&format!(
                "\n{} --> {}\n{SPRITE_NAME}#xywh={},{},{},{}\n",
                vtt_time(cue.start_ms),
                vtt_time(cue.end_ms),
                cue.x,
                cue.y,
                cue.width,
                cue.height
            ));
        }
        text
    }
}

/// A tile of at most [`TILE_LONG_SIDE`] on its long side with the
/// picture's shape, both sides even and at least 2 pixels.
fn tile_size(width: u32, height: u32) -> (u32, u32) {
    let even = |side: f64| ((side / 2.0).round() as u32).max(1) * 2;
    let long = f64::from(TILE_LONG_SIDE);
    if width >= height {
        (
            TILE_LONG_SIDE,
            even(long * f64::from(height) / f64::from(width)),
        )
    } else {
        (
            even(long * f64::from(width) / f64::from(height)),
            TILE_LONG_SIDE,
        )
    }
}

/// `HH:MM:SS.mmm`, the WebVTT timestamp with hours always written.
fn vtt_time(ms: u64) -> String {
    let (hours, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1000, rest % 1000);
    format!("{hours:02}:{minutes:02}:{seconds:02}.{millis:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the properties a player relies on, for any plan.
    fn assert_cues_cover_and_fit(board: &Storyboard) {
        let cues = board.cues();
        assert_eq!(cues.len() as u32, board.tiles);
        assert_eq!(cues[0].start_ms, 0, "{board:?}");
        for pair in cues.windows(2) {
            assert_eq!(
                pair[0].end_ms, pair[1].start_ms,
                "a gap or overlap: {board:?}"
            );
        }
        assert_eq!(cues.last().unwrap().end_ms, board.duration_ms, "{board:?}");
        let (sprite_width, sprite_height) = board.sprite_size();
        for cue in &cues {
            assert!(cue.start_ms < cue.end_ms, "{cue:?}");
            assert!(cue.x + cue.width <= sprite_width, "{cue:?} {board:?}");
            assert!(cue.y + cue.height <= sprite_height, "{cue:?} {board:?}");
        }
        assert!(board.tiles <= MAX_TILES);
        assert!(board.columns <= MAX_COLUMNS);
        // No blank row at the bottom.
        assert!((board.rows - 1) * board.columns < board.tiles, "{board:?}");
    }

    #[test]
    fn cues_cover_the_whole_video_back_to_back_inside_the_sprite() {
        for seconds in [
            0.04, 0.5, 1.0, 4.96, 5.0, 5.021, 59.9, 61.0, 100.0, 100.001, 599.0, 3600.0, 43_200.0,
        ] {
            for (width, height) in [(1920, 1080), (1080, 1920), (640, 480), (2, 2), (8192, 16)] {
                let board = Storyboard::plan(seconds, width, height).unwrap();
                assert_cues_cover_and_fit(&board);
            }
        }
    }

    #[test]
    fn picks_the_shortest_round_interval_that_fits() {
        let interval = |seconds| Storyboard::plan(seconds, 1280, 720).unwrap().interval_ms;
        assert_eq!(interval(5.0), 1_000);
        assert_eq!(interval(100.0), 1_000);
        assert_eq!(interval(100.5), 2_000);
        assert_eq!(interval(180.0), 2_000);
        assert_eq!(interval(600.0), 10_000);
        assert_eq!(interval(3600.0), 60_000);
        assert_eq!(interval(43_200.0), 600_000);
        // Past the longest accepted video the tiles are spread evenly.
        let board = Storyboard::plan(200_000.0, 1280, 720).unwrap();
        assert_eq!(board.interval_ms, 2_000_000);
        assert_eq!(board.tiles, MAX_TILES);
    }

    #[test]
    fn tiles_keep_the_picture_shape_within_the_long_side() {
        let board = |w, h| {
            let b = Storyboard::plan(5.0, w, h).unwrap();
            (b.tile_width, b.tile_height)
        };
        assert_eq!(board(1280, 720), (160, 90));
        assert_eq!(board(720, 1280), (90, 160));
        assert_eq!(board(640, 480), (160, 120));
        assert_eq!(board(500, 500), (160, 160));
        // A sliver still gets an encodable tile.
        assert_eq!(board(8192, 16), (160, 2));
    }

    #[test]
    fn the_grid_is_ten_wide_and_only_as_tall_as_needed() {
        let short = Storyboard::plan(5.0, 1280, 720).unwrap();
        assert_eq!((short.columns, short.rows, short.tiles), (5, 1, 5));
        assert_eq!(short.sprite_size(), (800, 90));
        let long = Storyboard::plan(95.0, 1280, 720).unwrap();
        assert_eq!((long.columns, long.rows, long.tiles), (10, 10, 95));
        assert_eq!(long.sprite_size(), (1600, 900));
        assert_eq!(long.frame_rate(), "1000/1000");
    }

    #[test]
    fn nothing_to_preview_without_a_duration_or_a_picture() {
        assert_eq!(Storyboard::plan(0.0, 1280, 720), None);
        assert_eq!(Storyboard::plan(-1.0, 1280, 720), None);
        assert_eq!(Storyboard::plan(f64::NAN, 1280, 720), None);
        assert_eq!(Storyboard::plan(f64::INFINITY, 1280, 720), None);
        assert_eq!(Storyboard::plan(5.0, 0, 720), None);
    }

    #[test]
    fn writes_webvtt_with_media_fragments() {
        let board = Storyboard::plan(12.5, 1280, 720).unwrap();
        assert_eq!(board.interval_ms, 1_000);
        let vtt = board.vtt();
        assert!(
            vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n"),
            "{vtt}"
        );
        assert!(
            vtt.contains("\n00:00:10.000 --> 00:00:11.000\nstoryboard.jpg#xywh=0,90,160,90\n"),
            "{vtt}"
        );
        assert!(
            vtt.ends_with("\n00:00:12.000 --> 00:00:12.500\nstoryboard.jpg#xywh=320,90,160,90\n"),
            "{vtt}"
        );
        assert_eq!(vtt.matches(" --> ").count(), 13);
    }

    #[test]
    fn timestamps_carry_hours() {
        assert_eq!(vtt_time(0), "00:00:00.000");
        assert_eq!(vtt_time(61_001), "00:01:01.001");
        assert_eq!(vtt_time(43_200_000), "12:00:00.000");
    }
}
