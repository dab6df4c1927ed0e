//! The video record: what Xtream knows about one video, stored as JSON.

use crate::VideoId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a video is in its life.
///
/// `uploaded → queued → transcoding → ready | failed`. The worker may put a
/// video back to `queued` from `transcoding` when a job is released, and
/// re-delivered events may repeat a step, so a move to the same status is
/// allowed too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoStatus {
    /// The original is stored; nothing has happened to it yet.
    Uploaded,
    /// A worker has taken the upload event.
    Queued,
    /// ffmpeg is running.
    Transcoding,
    /// Renditions are stored and playable.
    Ready,
    /// Transcoding gave up; the record says why.
    Failed,
}

impl VideoStatus {
    /// Whether a record in this status may move to `next`.
    pub fn can_move_to(self, next: VideoStatus) -> bool {
        use VideoStatus::*;
        self == next
            || matches!(
                (self, next),
                (Uploaded, Queued)
                    | (Queued, Transcoding)
                    | (Transcoding, Queued)
                    | (Transcoding, Ready)
                    | (Transcoding, Failed)
                    | (Uploaded | Queued, Failed)
            )
    }

    /// The lowercase name used in JSON and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoStatus::Uploaded => "uploaded",
            VideoStatus::Queued => "queued",
            VideoStatus::Transcoding => "transcoding",
            VideoStatus::Ready => "ready",
            VideoStatus::Failed => "failed",
        }
    }
}

/// A status change that the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalTransition {
    /// The status the record has.
    pub from: VideoStatus,
    /// The status that was asked for.
    pub to: VideoStatus,
}

impl std::fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a video cannot go from {} to {}",
            self.from.as_str(),
            self.to.as_str()
        )
    }
}

impl std::error::Error for IllegalTransition {}

/// One video, as stored in the `videos` table and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoRecord {
    /// The video's id.
    pub id: VideoId,
    /// A title given at upload, else derived from the file name.
    pub title: String,
    /// The uploaded file's name, as the client sent it (sanitised).
    pub filename: String,
    /// Size of the original in bytes.
    pub size: u64,
    /// MIME type of the original, always `video/*`.
    pub content_type: String,
    /// Where the video is in its life.
    pub status: VideoStatus,
    /// Whether it can be played now: always once `ready`, and already while
    /// `transcoding` once the first segment of every rendition is stored
    /// (the playlists then grow until the video is ready).
    #[serde(default)]
    pub playable: bool,
    /// When the upload finished.
    pub created_at: Timestamp,
    /// When the status last changed.
    pub updated_at: Timestamp,
    /// Why the video failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Something a person should know about the current status, e.g. that
    /// the upload could not be queued yet and will be retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<String>,
    /// Length in seconds, once the worker has probed the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Display width of the original in pixels (after rotation), once probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Display height of the original in pixels (after rotation), once probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The original's video codec as ffprobe names it, e.g. `h264`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_codec: Option<String>,
    /// The original's audio codec, e.g. `aac`; absent for silent videos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_codec: Option<String>,
    /// The HLS renditions stored, smallest first (when `ready`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renditions: Vec<crate::ladder::Rendition>,
    /// Key of the HLS master playlist (when `ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hls_master: Option<String>,
    /// Key of the poster image (when `ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    /// Key of the seek-preview index, a WebVTT file whose cues point into a
    /// sprite beside it (when `ready`; absent for videos transcoded before
    /// storyboards existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storyboard: Option<String>,
}

impl VideoRecord {
    /// The record of a freshly stored upload.
    pub fn uploaded(
        id: VideoId,
        title: String,
        filename: String,
        size: u64,
        content_type: String,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            title,
            filename,
            size,
            content_type,
            status: VideoStatus::Uploaded,
            playable: false,
            created_at: now,
            updated_at: now,
            failure_reason: None,
            status_detail: None,
            duration_seconds: None,
            width: None,
            height: None,
            video_codec: None,
            audio_codec: None,
            renditions: Vec::new(),
            hls_master: None,
            thumbnail: None,
            storyboard: None,
        }
    }

    /// Moves the record to `next`, stamping `updated_at`, if the lifecycle
    /// allows it.
    pub fn move_to(&mut self, next: VideoStatus, now: Timestamp) -> Result<(), IllegalTransition> {
        if !self.status.can_move_to(next) {
            return Err(IllegalTransition {
                from: self.status,
                to: next,
            });
        }
        self.status = next;
        // Only a running transcode keeps what it published playable; a job
        // put back in the queue starts its playlists again.
        self.playable = match next {
            VideoStatus::Ready => true,
            VideoStatus::Transcoding => self.playable,
            VideoStatus::Uploaded | VideoStatus::Queued | VideoStatus::Failed => false,
        };
        self.updated_at = now;
        self.status_detail = None;
        if next != VideoStatus::Failed {
            self.failure_reason = None;
        }
        Ok(())
    }

    /// Whether its HLS may be served: once ready, or while transcoding once
    /// it became playable.
    pub fn is_playable(&self) -> bool {
        match self.status {
            VideoStatus::Ready => true,
            VideoStatus::Transcoding => self.playable,
            _ => false,
        }
    }

    /// Marks the record failed with a reason a person can read.
    pub fn fail(
        &mut self,
        reason: impl Into<String>,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.move_to(VideoStatus::Failed, now)?;
        self.failure_reason = Some(reason.into());
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A freshly uploaded record with a fixed creation time, for the
    /// crate's unit tests.
    pub(crate) fn record() -> VideoRecord {
        VideoRecord::uploaded(
            VideoId::random(),
            "Cat".into(),
            "cat.mp4".into(),
            42,
            "video/mp4".into(),
            Timestamp::from_second(1_700_000_000).unwrap(),
        )
    }

    #[test]
    fn follows_the_happy_path() {
        let mut r = record();
        let later = Timestamp::from_second(1_700_000_100).unwrap();
        for next in [
            VideoStatus::Queued,
            VideoStatus::Transcoding,
            VideoStatus::Ready,
        ] {
            r.move_to(next, later).unwrap();
        }
        assert_eq!(r.status, VideoStatus::Ready);
        assert_eq!(r.updated_at, later);
        assert!(r.created_at < r.updated_at);
    }

    #[test]
    fn refuses_to_skip_or_go_back_from_terminal_states() {
        let mut r = record();
        let now = Timestamp::now();
        assert!(r.move_to(VideoStatus::Ready, now).is_err());
        r.move_to(VideoStatus::Queued, now).unwrap();
        r.move_to(VideoStatus::Transcoding, now).unwrap();
        r.fail("not a video", now).unwrap();
        assert_eq!(r.failure_reason.as_deref(), Some("not a video"));
        assert_eq!(
            r.move_to(VideoStatus::Ready, now),
            Err(IllegalTransition {
                from: VideoStatus::Failed,
                to: VideoStatus::Ready
            })
        );
    }

    #[test]
    fn playable_while_transcoding_and_ready_but_not_once_requeued() {
        let mut r = record();
        let now = Timestamp::now();
        r.move_to(VideoStatus::Queued, now).unwrap();
        r.move_to(VideoStatus::Transcoding, now).unwrap();
        assert!(!r.is_playable());
        r.playable = true;
        r.move_to(VideoStatus::Transcoding, now).unwrap();
        assert!(r.is_playable(), "a transcode keeps what it published");
        r.move_to(VideoStatus::Queued, now).unwrap();
        assert!(
            !r.playable && !r.is_playable(),
            "a released job starts again"
        );
        r.move_to(VideoStatus::Transcoding, now).unwrap();
        assert!(!r.is_playable());
        r.move_to(VideoStatus::Ready, now).unwrap();
        assert!(r.playable && r.is_playable());
        let mut failed = record();
        failed.playable = true;
        failed.fail("broken", now).unwrap();
        assert!(!failed.playable && !failed.is_playable());
        // A stale flag on a row that is not transcoding serves nothing.
        let mut queued = record();
        queued.status = VideoStatus::Queued;
        queued.playable = true;
        assert!(!queued.is_playable());
    }

    #[test]
    fn serialises_with_the_documented_field_names() {
        let r = record();
        let json = serde_json::to_value(&r).unwrap();
        for field in [
            "id",
            "title",
            "filename",
            "size",
            "content_type",
            "status",
            "playable",
            "created_at",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["status"], "uploaded");
        assert_eq!(json["created_at"], "2023-11-14T22:13:20Z");
        let back: VideoRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
