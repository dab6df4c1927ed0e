//! Where things live in the bucket. The bucket holds only bytes; what is
//! known about a video lives in PostgreSQL ([`crate::metadata`]).
//!
//! ```text
//! videos/{id}/original          the uploaded bytes
//! videos/{id}/hls/...           HLS master playlist, renditions and segments
//! videos/{id}/thumbnail.jpg     poster image
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
        assert!(hls_master(id).starts_with(&hls_prefix(id)));
        assert!(hls_prefix(id).starts_with(&video_prefix(id)));
        assert!(thumbnail(id).starts_with(&video_prefix(id)));
    }
}
