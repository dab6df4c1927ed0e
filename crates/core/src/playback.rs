//! Serving media: which object a playback URL names, how it is typed and
//! cached, and the links a client plays from.

use crate::{ApiError, VideoId, VideoRecord, VideoStatus, keys};
use serde::Serialize;

/// What kind of media object is served; decides type, caching and whether
/// the video must be `ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// An HLS playlist (`.m3u8`).
    Playlist,
    /// An HLS media segment (`.ts`, `.m4s`, `.mp4`).
    Segment,
    /// The poster image.
    Thumbnail,
    /// The seek-preview index (`.vtt`) or its sprite (`.jpg`).
    Storyboard,
    /// The uploaded file, for download.
    Original,
}

impl MediaKind {
    /// The Content-Type to answer with (the original keeps its own).
    pub fn content_type(self, key: &str) -> &'static str {
        match self {
            MediaKind::Playlist => "application/vnd.apple.mpegurl",
            MediaKind::Segment if key.ends_with(".ts") => "video/mp2t",
            MediaKind::Segment => "video/mp4",
            MediaKind::Thumbnail => "image/jpeg",
            MediaKind::Storyboard if key.ends_with(".vtt") => "text/vtt; charset=utf-8",
            MediaKind::Storyboard => "image/jpeg",
            MediaKind::Original => "application/octet-stream",
        }
    }

    /// Cache-Control for a video that is `ready` or not (still growing):
    /// segments never change once written; final playlists may be rewritten
    /// if a video is transcoded again, so they are cached briefly; a growing
    /// playlist gains a segment every few seconds, so it is revalidated on
    /// every request (its ETag makes that a 304 when nothing changed).
    pub fn cache_control(self, ready: bool) -> &'static str {
        match self {
            MediaKind::Segment => "public, max-age=31536000, immutable",
            MediaKind::Playlist if !ready => "no-cache",
            MediaKind::Playlist => "public, max-age=10",
            MediaKind::Thumbnail | MediaKind::Storyboard | MediaKind::Original => {
                "public, max-age=300"
            }
        }
    }

    /// Whether it may be served for `record`: the original as soon as it
    /// is uploaded; the HLS as soon as the video is playable (while it
    /// transcodes, its playlists grow); the poster and the storyboard, made
    /// alongside the ladder, once it is ready.
    pub fn servable(self, record: &VideoRecord) -> bool {
        match self {
            MediaKind::Original => true,
            MediaKind::Playlist | MediaKind::Segment => record.is_playable(),
            MediaKind::Thumbnail | MediaKind::Storyboard => record.status == VideoStatus::Ready,
        }
    }
}

/// One media object of one video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaObject {
    /// The video.
    pub id: VideoId,
    /// What it is.
    pub kind: MediaKind,
    /// Its key in the bucket.
    pub key: String,
}

/// Resolves the part of a playback URL after `/api/videos/{id}/`:
/// `hls/master.m3u8`, `hls/720p/index.m3u8`, `hls/720p/segment_001.ts`,
/// `thumbnail.jpg`, `storyboard.vtt`, `storyboard.jpg`, `original`.
/// Anything else — including any attempt to
/// leave the video's folder — is a 404.
pub fn media_object(id: VideoId, rest: &str) -> Result<MediaObject, ApiError> {
    let not_found = || ApiError::not_found(format!("video {id} has no {rest:?}"));
    let (kind, key) = match rest {
        "thumbnail.jpg" => (MediaKind::Thumbnail, keys::thumbnail(id)),
        "original" => (MediaKind::Original, keys::original(id)),
        "storyboard.vtt" => (MediaKind::Storyboard, keys::storyboard_index(id)),
        crate::storyboard::SPRITE_NAME => (MediaKind::Storyboard, keys::storyboard_sprite(id)),
        _ => {
            let hls_path = rest.strip_prefix("hls/").ok_or_else(not_found)?;
            let segments: Vec<&str> = hls_path.split('/').collect();
            if segments.len() > 2 || !segments.iter().all(|s| is_safe_name(s)) {
                return Err(not_found());
            }
            let kind = if hls_path.ends_with(".m3u8") {
                MediaKind::Playlist
            } else if [".ts", ".m4s", ".mp4"]
                .iter()
                .any(|ext| hls_path.ends_with(ext))
            {
                MediaKind::Segment
            } else {
                return Err(not_found());
            };
            (kind, format!("{}{hls_path}", keys::hls_prefix(id)))
        }
    };
    Ok(MediaObject { id, kind, key })
}

/// A file or folder name we could have written: letters, digits, `_`, `-`
/// and inner dots; never `.`/`..` or anything percent-encoded.
fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// The 409 for media of a video that is not playable yet.
pub fn not_ready(record: &VideoRecord) -> ApiError {
    ApiError::conflict(format!(
        "video {} is {}; it can be played once it is playable (the first segment of every \
         rendition stored) and its pictures shown once it is ready",
        record.id,
        record.status.as_str()
    ))
}

/// `Content-Disposition` for downloading the original under its name:
/// an ASCII fallback plus the exact UTF-8 name (RFC 6266 / 8187).
pub fn attachment(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Where a client fetches a video's media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlaybackLinks {
    /// The HLS master playlist (once playable: possibly still growing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hls: Option<String>,
    /// The poster image (once ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    /// The seek-preview index, WebVTT (once ready, if it has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storyboard: Option<String>,
    /// The uploaded file.
    pub original: String,
}

/// A video as the API shows it: the record plus its playback links.
#[derive(Debug, Clone, Serialize)]
pub struct VideoView {
    /// The stored record.
    #[serde(flatten)]
    pub record: VideoRecord,
    /// Links to its media.
    pub playback: PlaybackLinks,
}

impl From<VideoRecord> for VideoView {
    fn from(record: VideoRecord) -> Self {
        let base = format!("/api/videos/{}", record.id);
        let ready = record.status == VideoStatus::Ready;
        let playback = PlaybackLinks {
            hls: record
                .is_playable()
                .then(|| format!("{base}/hls/master.m3u8")),
            thumbnail: ready.then(|| format!("{base}/thumbnail.jpg")),
            storyboard: (ready && record.storyboard.is_some())
                .then(|| format!("{base}/storyboard.vtt")),
            original: format!("{base}/original"),
        };
        Self { record, playback }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    #[test]
    fn resolves_the_media_of_a_video() {
        let id = VideoId::random();
        let master = media_object(id, "hls/master.m3u8").unwrap();
        assert_eq!(master.kind, MediaKind::Playlist);
        assert_eq!(master.key, keys::hls_master(id));
        let segment = media_object(id, "hls/720p/segment_007.ts").unwrap();
        assert_eq!(segment.kind, MediaKind::Segment);
        assert_eq!(segment.key, format!("videos/{id}/hls/720p/segment_007.ts"));
        assert_eq!(
            media_object(id, "thumbnail.jpg").unwrap().key,
            keys::thumbnail(id)
        );
        assert_eq!(
            media_object(id, "original").unwrap().kind,
            MediaKind::Original
        );
        let index = media_object(id, "storyboard.vtt").unwrap();
        assert_eq!(
            (index.kind, index.key.as_str()),
            (MediaKind::Storyboard, keys::storyboard_index(id).as_str())
        );
        assert_eq!(
            media_object(id, "storyboard.jpg").unwrap().key,
            keys::storyboard_sprite(id)
        );
    }

    #[test]
    fn refuses_paths_outside_the_video() {
        let id = VideoId::random();
        for rest in [
            "hls/../video.json",
            "hls/..",
            "hls/%2e%2e/original",
            "hls/720p/../../original",
            "hls//x.ts",
            "hls/a/b/c.ts",
            "hls/.hidden.m3u8",
            "hls/x.json",
            "video.json",
            "hls/",
            "",
        ] {
            assert_eq!(media_object(id, rest).unwrap_err().status, 404, "{rest:?}");
        }
    }

    #[test]
    fn downloads_keep_their_name_safely() {
        assert_eq!(
            attachment("my \"cat\" é.mp4"),
            "attachment; filename=\"my _cat_ _.mp4\"; filename*=UTF-8''my%20%22cat%22%20%C3%A9.mp4"
        );
    }

    #[test]
    fn hls_is_served_once_playable_and_pictures_once_ready() {
        let mut record = crate::record::tests::record();
        let kinds = |record: &VideoRecord| {
            [
                MediaKind::Playlist,
                MediaKind::Segment,
                MediaKind::Thumbnail,
                MediaKind::Storyboard,
                MediaKind::Original,
            ]
            .map(|kind| kind.servable(record))
        };
        assert_eq!(kinds(&record), [false, false, false, false, true]);
        record.status = VideoStatus::Transcoding;
        assert_eq!(kinds(&record), [false, false, false, false, true]);
        record.playable = true;
        assert_eq!(kinds(&record), [true, true, false, false, true]);
        record.status = VideoStatus::Ready;
        assert_eq!(kinds(&record), [true; 5]);
        record.status = VideoStatus::Failed;
        assert_eq!(kinds(&record), [false, false, false, false, true]);
    }

    #[test]
    fn types_and_caches_by_kind() {
        assert_eq!(MediaKind::Segment.content_type("a.ts"), "video/mp2t");
        assert_eq!(MediaKind::Segment.content_type("a.m4s"), "video/mp4");
        assert_eq!(
            MediaKind::Storyboard.content_type("videos/x/storyboard.vtt"),
            "text/vtt; charset=utf-8"
        );
        assert_eq!(
            MediaKind::Storyboard.content_type("videos/x/storyboard.jpg"),
            "image/jpeg"
        );
        assert!(
            MediaKind::Segment
                .cache_control(false)
                .contains("immutable")
        );
        assert!(
            !MediaKind::Playlist
                .cache_control(true)
                .contains("immutable")
        );
        assert!(
            MediaKind::Playlist
                .cache_control(true)
                .contains("max-age=10")
        );
        assert_eq!(MediaKind::Playlist.cache_control(false), "no-cache");
    }

    #[test]
    fn views_link_to_playback_only_when_ready() {
        let mut record = VideoRecord::uploaded(
            VideoId::random(),
            "t".into(),
            "f.mp4".into(),
            1,
            "video/mp4".into(),
            Timestamp::now(),
        );
        let view = VideoView::from(record.clone());
        assert_eq!(view.playback.hls, None);
        assert!(view.playback.original.ends_with("/original"));
        assert_eq!(not_ready(&record).status, 409);

        let now = Timestamp::now();
        for status in [VideoStatus::Queued, VideoStatus::Transcoding] {
            record.move_to(status, now).unwrap();
        }
        assert_eq!(VideoView::from(record.clone()).playback.hls, None);
        // Playable while it transcodes: the stream, not the pictures yet.
        record.playable = true;
        record.storyboard = Some(keys::storyboard_index(record.id));
        let view = VideoView::from(record.clone());
        assert!(view.playback.hls.is_some());
        assert_eq!(view.playback.thumbnail, None);
        assert_eq!(view.playback.storyboard, None);
        record.storyboard = None;
        record.move_to(VideoStatus::Ready, now).unwrap();
        let json = serde_json::to_value(VideoView::from(record.clone())).unwrap();
        assert_eq!(json["id"], record.id.to_string());
        assert_eq!(json["playable"], true);
        // Videos transcoded before storyboards existed offer none.
        assert!(json["playback"].get("storyboard").is_none(), "{json}");
        record.storyboard = Some(keys::storyboard_index(record.id));
        let json = serde_json::to_value(VideoView::from(record.clone())).unwrap();
        assert_eq!(
            json["playback"]["storyboard"],
            format!("/api/videos/{}/storyboard.vtt", record.id)
        );
        assert_eq!(
            json["playback"]["hls"],
            format!("/api/videos/{}/hls/master.m3u8", record.id)
        );
    }
}
