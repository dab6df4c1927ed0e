//! Where things live in the bucket. The bucket holds only bytes; what is
//! known about a video lives in PostgreSQL ([`crate::metadata`]).
//!
//! ```text
//! videos/{id}/original          the uploaded bytes
//! videos/{id}/hls/...           HLS master playlist, renditions and segments
//! videos/{id}/thumbnail.jpg     poster image
//! videos/{id}/storyboard.vtt    seek-preview index (WebVTT) …
//! videos/{id}/storyboard.jpg    … and the sprite its cues point into
//! ```

use crate::VideoId;

/// Prefix of everything stored for one video.
pub fn video_prefix(id: VideoId) -> String {
    format!("videos/{id}/")
}

/// The uploaded original of a video.
pub fn original(id: VideoId) -> String {
    format!("videos/{id}/original")
}

/// Prefix of a video's HLS renditions (`master.m3u8`, `{rung}/index.m3u8`,
/// `{rung}/segment_NNN.ts`), written by the worker.
pub fn hls_prefix(id: VideoId) -> String {
    format!("videos/{id}/hls/")
}

/// The HLS master playlist of a video.
pub fn hls_master(id: VideoId) -> String {
    format!("videos/{id}/hls/master.m3u8")
}

/// The poster image of a video.
pub fn thumbnail(id: VideoId) -> String {
    format!("videos/{id}/thumbnail.jpg")
}

/// The WebVTT index of a video's seek previews. Its cues name the sprite
/// by a relative URL, so the two must stay side by side
/// ([`crate::storyboard::SPRITE_NAME`]).
pub fn storyboard_index(id: VideoId) -> String {
    format!("videos/{id}/storyboard.vtt")
}

/// The sprite of a video's seek previews.
pub fn storyboard_sprite(id: VideoId) -> String {
    format!("videos/{id}/{}", crate::storyboard::SPRITE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_of_a_video_shares_its_prefix() {
        let id = VideoId::random();
        assert!(original(id).starts_with(&video_prefix(id)));
        assert!(hls_master(id).starts_with(&hls_prefix(id)));
        assert!(hls_prefix(id).starts_with(&video_prefix(id)));
        assert!(thumbnail(id).starts_with(&video_prefix(id)));
        assert!(storyboard_index(id).starts_with(&video_prefix(id)));
        assert!(storyboard_sprite(id).starts_with(&video_prefix(id)));
    }

    #[test]
    fn the_storyboard_sprite_sits_where_its_index_points() {
        let id = VideoId::random();
        let (index, sprite) = (storyboard_index(id), storyboard_sprite(id));
        let folder = |key: &str| key.rsplit_once('/').unwrap().0.to_owned();
        assert_eq!(folder(&index), folder(&sprite));
        assert!(sprite.ends_with(crate::storyboard::SPRITE_NAME));
        // Outside `hls/`: a re-run's stale-key sweep there never touches it.
        assert!(!index.starts_with(&hls_prefix(id)));
    }
}
