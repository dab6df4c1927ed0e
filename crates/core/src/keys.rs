//! Where things live in the bucket.
//!
//! ```text
//! videos/{id}/video.json        the record (written last: its presence means the upload is whole)
//! videos/{id}/original          the uploaded bytes
//! videos/{id}/hls/...           HLS master playlist, renditions and segments
//! videos/{id}/thumbnail.jpg     poster image
//! catalog/{newest-first}-{id}   empty index entry, one per video
//! uploads/{id}.json             a resumable upload in progress (its session)
//! ```
//!
//! S3 lists keys in ascending byte order and can start after any key, so the
//! catalog entries carry an inverted, zero-padded creation time: ascending
//! order is newest first, and a page is one bounded `ListObjectsV2` call
//! whatever the size of the catalog.

use crate::VideoId;
use jiff::Timestamp;

/// Prefix of every catalog index entry.
pub const CATALOG_PREFIX: &str = "catalog/";

/// Prefix of every resumable upload session.
pub const UPLOADS_PREFIX: &str = "uploads/";

/// The session of the resumable upload that becomes video `id`.
pub fn upload_session(id: VideoId) -> String {
    format!("{UPLOADS_PREFIX}{id}.json")
}

/// The video an upload session key belongs to, if `key` is one.
pub fn id_of_upload_session(key: &str) -> Option<VideoId> {
    key.strip_prefix(UPLOADS_PREFIX)?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Prefix of everything stored for one video.
pub fn video_prefix(id: VideoId) -> String {
    format!("videos/{id}/")
}

/// The JSON record of a video.
pub fn record(id: VideoId) -> String {
    format!("videos/{id}/video.json")
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

/// The catalog index entry of a video created at `created_at`.
pub fn catalog_entry(created_at: Timestamp, id: VideoId) -> String {
    // Milliseconds since the epoch are positive for any upload we will see;
    // clamp anyway so a bad clock cannot produce a key that sorts oddly.
    let millis = u64::try_from(created_at.as_millisecond()).unwrap_or(0);
    format!("{CATALOG_PREFIX}{:020}-{id}", u64::MAX - millis)
}

/// The video a catalog entry points to, if `key` is a well-formed entry.
pub fn id_of_catalog_entry(key: &str) -> Option<VideoId> {
    let rest = key.strip_prefix(CATALOG_PREFIX)?;
    let (inverted_time, id) = rest.split_once('-')?;
    if inverted_time.len() != 20 || !inverted_time.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// When the video of a catalog entry was created (to the millisecond), read
/// from the entry's key alone, so old entries can be found without reading
/// their records.
pub fn created_at_of_catalog_entry(key: &str) -> Option<Timestamp> {
    id_of_catalog_entry(key)?;
    let inverted: u64 = key.strip_prefix(CATALOG_PREFIX)?.get(..20)?.parse().ok()?;
    Timestamp::from_millisecond(i64::try_from(u64::MAX - inverted).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_entries_sort_first() {
        let id = VideoId::random();
        let older = catalog_entry(Timestamp::from_second(1_000).unwrap(), id);
        let newer = catalog_entry(Timestamp::from_second(2_000).unwrap(), id);
        assert!(newer < older);
    }

    #[test]
    fn entries_point_back_to_their_video() {
        let id = VideoId::random();
        let key = catalog_entry(Timestamp::now(), id);
        assert_eq!(id_of_catalog_entry(&key), Some(id));
        assert_eq!(id_of_catalog_entry("catalog/123-abc"), None);
        assert_eq!(id_of_catalog_entry(&record(id)), None);
    }

    #[test]
    fn everything_of_a_video_shares_its_prefix() {
        let id = VideoId::random();
        assert!(record(id).starts_with(&video_prefix(id)));
        assert!(original(id).starts_with(&video_prefix(id)));
        assert!(hls_master(id).starts_with(&hls_prefix(id)));
        assert!(hls_prefix(id).starts_with(&video_prefix(id)));
        assert!(thumbnail(id).starts_with(&video_prefix(id)));
        assert!(hls_master(id).starts_with(&hls_prefix(id)));
        assert!(hls_prefix(id).starts_with(&video_prefix(id)));
        assert!(thumbnail(id).starts_with(&video_prefix(id)));
    }

    #[test]
    fn upload_sessions_live_outside_the_videos() {
        let id = VideoId::random();
        let key = upload_session(id);
        assert!(key.starts_with(UPLOADS_PREFIX));
        assert!(!key.starts_with(&video_prefix(id)));
        assert_eq!(id_of_upload_session(&key), Some(id));
        assert_eq!(id_of_upload_session("uploads/x.json"), None);
        assert_eq!(id_of_upload_session(&record(id)), None);
    }

    #[test]
    fn catalog_entries_tell_their_creation_time() {
        let id = VideoId::random();
        let at = Timestamp::from_millisecond(1_700_000_000_123).unwrap();
        assert_eq!(
            created_at_of_catalog_entry(&catalog_entry(at, id)),
            Some(at)
        );
        assert_eq!(created_at_of_catalog_entry("catalog/123-abc"), None);
        assert_eq!(created_at_of_catalog_entry(&record(id)), None);
    }
}
