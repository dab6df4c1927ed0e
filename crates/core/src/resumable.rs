//! Resumable uploads: the client sends the bytes straight to S3, part by
//! part, through presigned URLs, and can pick up where it left off after a
//! crash or a dropped link.
//!
//! ```text
//! POST   /api/uploads               {filename, size, content_type, title}
//!                                   → {id, part_size, parts: [{number, url}], expires_at}
//! GET    /api/uploads/{id}          → which parts S3 has, fresh URLs for the rest
//! POST   /api/uploads/{id}/complete → 201, the video (S3 assembles the parts)
//! DELETE /api/uploads/{id}          → 204, parts freed
//! ```
//!
//! An [`UploadSession`] is a row of `upload_sessions` while the
//! upload is open. Its id is the id the video will have, and its S3
//! multipart upload writes straight to [`crate::keys::original`], so
//! completing it moves no bytes. What S3 holds is the truth about progress:
//! the session never records parts, and the ETags used to complete come from
//! S3's own part listing, never from the client.

use crate::config::UploadLimits;
use crate::{ApiError, VideoId, VideoRecord, upload};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a session (and every part URL it hands out) stays valid.
/// Presigned S3 URLs may live at most 7 days; a day is plenty to resume.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// S3 refuses multipart uploads of more parts than this.
pub const MAX_PARTS: u64 = 10_000;
/// Parts (but the last) must be at least 5 MiB; 8 MiB keeps the number of
/// requests low and a retried part cheap.
pub const MIN_PART_SIZE: u64 = 8 * 1024 * 1024;
/// The largest `POST /api/uploads` body read: a few short fields.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// The body of `POST /api/uploads`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NewUpload {
    /// The file's name (a path is cut to its last component).
    #[serde(default)]
    pub filename: Option<String>,
    /// The exact size of the file in bytes.
    #[serde(default, deserialize_with = "whole_number")]
    pub size: Option<u64>,
    /// The file's MIME type; inferred from the extension when absent.
    #[serde(default)]
    pub content_type: Option<String>,
    /// A title; the file name without extension when absent.
    #[serde(default)]
    pub title: Option<String>,
}

/// A JSON number with no fractional part, as a `u64`: JSON has one number
/// type, and `1234.0` is the same number as `1234` (JSON Schema calls both
/// integers), as clients that hold sizes as floats send it. `null` is
/// absent.
fn whole_number<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(whole) = number.as_u64() {
        return Ok(Some(whole));
    }
    // Below 2^64, so the conversion is exact for every float that passes.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    match number.as_f64() {
        Some(float) if float.fract() == 0.0 && (0.0..LIMIT).contains(&float) => {
            Ok(Some(float as u64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "size must be a whole number of bytes, not {number}"
        ))),
    }
}

/// A [`NewUpload`] that passed every check, with its part plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidUpload {
    /// Sanitised file name.
    pub filename: String,
    /// Size in bytes, at least 1 and at most the configured maximum.
    pub size: u64,
    /// An allowed video type.
    pub content_type: String,
    /// A checked title.
    pub title: String,
    /// Bytes per part (the last part may be shorter).
    pub part_size: u64,
}

impl NewUpload {
    /// Decodes the request body; malformed JSON is a 400.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "send JSON like {{\"filename\": \"clip.mp4\", \"size\": 1234, \
                 \"content_type\": \"video/mp4\", \"title\": \"…\"}}: {e}"
            ))
        })
    }

    /// Checks the declared upload before anything is stored: size (400 when
    /// missing or zero, 413 above the limit), type and extension (415),
    /// title (400).
    pub fn validate(&self, limits: UploadLimits) -> Result<ValidUpload, ApiError> {
        let size = self.size.ok_or_else(|| {
            ApiError::bad_request("size (the file's length in bytes) is required")
        })?;
        if size == 0 {
            return Err(ApiError::bad_request("the upload is empty"));
        }
        if size > limits.max_bytes {
            return Err(ApiError::too_large(limits.max_bytes));
        }
        let filename = upload::sanitize_filename(self.filename.as_deref().unwrap_or_default());
        let declared = self
            .content_type
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let content_type = upload::declared_video_type(declared, &filename)?;
        let title = upload::title_or_default(self.title.as_deref(), &filename)?;
        Ok(ValidUpload {
            filename,
            size,
            content_type,
            title,
            part_size: part_size_for(size),
        })
    }
}

/// The part size for a file of `size` bytes: [`MIN_PART_SIZE`], or more
/// (in whole MiB) when the file would not fit S3's part count otherwise.
pub fn part_size_for(size: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    needed.max(MIN_PART_SIZE)
}

/// A part as S3 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// Part number, from 1.
    pub number: u16,
    /// Its ETag, as S3 gave it (quotes included).
    pub etag: String,
    /// Its length in bytes.
    pub size: u64,
}

/// An open resumable upload, stored as JSON while it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    /// The upload's id, which is also the id the video will have.
    pub id: VideoId,
    /// S3's id of the multipart upload writing the original.
    pub s3_upload_id: String,
    /// Sanitised file name.
    pub filename: String,
    /// Checked title.
    pub title: String,
    /// Allowed video type.
    pub content_type: String,
    /// Declared size in bytes; completion checks the parts add up to it.
    pub size: u64,
    /// Bytes per part (the last may be shorter).
    pub part_size: u64,
    /// When the session was opened.
    pub created_at: Timestamp,
    /// After this the session can no longer be completed, and the worker's
    /// sweeper aborts it.
    pub expires_at: Timestamp,
}

/// What S3 holds of an upload, per part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Parts stored whole, in order.
    pub done: Vec<u16>,
    /// Parts still to send (absent, or stored with the wrong length), in order.
    pub missing: Vec<u16>,
    /// Bytes of the parts in `done`.
    pub bytes_done: u64,
}

impl UploadSession {
    /// A session for `upload`, opened at `now`, backed by S3 multipart
    /// upload `s3_upload_id`.
    pub fn open(upload: ValidUpload, id: VideoId, s3_upload_id: String, now: Timestamp) -> Self {
        let expires_at = now.checked_add(SESSION_LIFETIME).unwrap_or(Timestamp::MAX);
        Self {
            id,
            s3_upload_id,
            filename: upload.filename,
            title: upload.title,
            content_type: upload.content_type,
            size: upload.size,
            part_size: upload.part_size,
            created_at: now,
            expires_at,
        }
    }

    /// How many parts the file is cut into.
    pub fn part_count(&self) -> u16 {
        let count = self.size.div_ceil(self.part_size.max(1));
        u16::try_from(count).unwrap_or(u16::MAX)
    }

    /// The length part `number` must have: `part_size`, except the last.
    pub fn part_len(&self, number: u16) -> u64 {
        let start = u64::from(number.saturating_sub(1)) * self.part_size;
        self.size.saturating_sub(start).min(self.part_size)
    }

    /// Whether the session is past its expiry at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }

    /// Whether the sweeper should abort the session at `now`: it expired, or
    /// it is older than the operator's `ttl` (which may be shorter than
    /// [`SESSION_LIFETIME`]).
    pub fn is_abandoned(&self, now: Timestamp, ttl: Duration) -> bool {
        let age = Duration::try_from(now.duration_since(self.created_at)).unwrap_or(Duration::ZERO);
        self.is_expired(now) || age >= ttl
    }

    /// A 410 when the session expired at `now`.
    pub fn check_open(&self, now: Timestamp) -> Result<(), ApiError> {
        if self.is_expired(now) {
            Err(ApiError::upload_expired(format!(
                "upload {} expired at {}; start a new one",
                self.id, self.expires_at
            )))
        } else {
            Ok(())
        }
    }

    /// How long URLs signed at `now` should stay valid: until the session
    /// expires (at least a minute, so a URL is never born dead).
    pub fn url_lifetime(&self, now: Timestamp) -> Duration {
        Duration::try_from(self.expires_at.duration_since(now))
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(60))
    }

    /// Which parts are done, from S3's listing. A part of the wrong length
    /// (a client that cut the file differently) counts as missing, so it is
    /// sent again.
    pub fn progress(&self, stored: &[StoredPart]) -> Progress {
        let mut progress = Progress::default();
        for number in 1..=self.part_count() {
            let whole = stored
                .iter()
                .any(|p| p.number == number && p.size == self.part_len(number));
            if whole {
                progress.done.push(number);
                progress.bytes_done += self.part_len(number);
            } else {
                progress.missing.push(number);
            }
        }
        progress
    }

    /// The ETags to complete with, in part order, when every part is stored
    /// whole and nothing else is; a 409 naming what is missing otherwise.
    pub fn completion(&self, stored: &[StoredPart]) -> Result<Vec<String>, ApiError> {
        let progress = self.progress(stored);
        if !progress.missing.is_empty() {
            return Err(ApiError::upload_incomplete(format!(
                "upload {} is missing {} of {} parts ({}); send them, then complete again",
                self.id,
                progress.missing.len(),
                self.part_count(),
                summarize(&progress.missing)
            )));
        }
        if let Some(extra) = stored.iter().find(|p| p.number > self.part_count()) {
            return Err(ApiError::upload_incomplete(format!(
                "upload {} has a part {} beyond its {} parts; the file is larger than declared",
                self.id,
                extra.number,
                self.part_count()
            )));
        }
        Ok((1..=self.part_count())
            .map(|number| {
                stored
                    .iter()
                    .find(|p| p.number == number)
                    .map(|p| p.etag.clone())
                    .expect("progress found every part")
            })
            .collect())
    }

    /// The record of the video once the upload is complete.
    pub fn record(&self, now: Timestamp) -> VideoRecord {
        VideoRecord::uploaded(
            self.id,
            self.title.clone(),
            self.filename.clone(),
            self.size,
            self.content_type.clone(),
            now,
        )
    }
}

/// `1-3, 7, 9-12` for a sorted list of part numbers, cut short when long.
fn summarize(numbers: &[u16]) -> String {
    let mut ranges: Vec<String> = Vec::new();
    let mut iter = numbers.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().expect("peeked");
        }
        ranges.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    if ranges.len() > 10 {
        let more = ranges.len() - 10;
        ranges.truncate(10);
        ranges.push(format!("and {more} more ranges"));
    }
    ranges.join(", ")
}

/// Where to send one part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartUrl {
    /// Part number, from 1.
    pub number: u16,
    /// A presigned `PUT` URL for it.
    pub url: String,
}

/// The answer to `POST /api/uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedUpload {
    /// The upload's id (the video's id once complete).
    pub id: VideoId,
    /// Declared size.
    pub size: u64,
    /// Bytes per part: part `n` is bytes `(n-1)*part_size ..` of the file.
    pub part_size: u64,
    /// Every part's URL, in order.
    pub parts: Vec<PartUrl>,
    /// When the session and its URLs expire.
    pub expires_at: Timestamp,
}

/// The answer to `GET /api/uploads/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    /// The upload's id.
    pub id: VideoId,
    /// Declared size.
    pub size: u64,
    /// Bytes per part.
    pub part_size: u64,
    /// How many parts in all.
    pub part_count: u16,
    /// Parts S3 holds whole.
    pub parts_done: Vec<u16>,
    /// Bytes of those parts.
    pub bytes_done: u64,
    /// Fresh URLs for every part still to send.
    pub parts: Vec<PartUrl>,
    /// When the session and its URLs expire.
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const LIMITS: UploadLimits = UploadLimits { max_bytes: 1 << 40 };

    fn new_upload(size: u64) -> NewUpload {
        NewUpload {
            filename: Some("holiday.mp4".into()),
            size: Some(size),
            content_type: Some("video/mp4".into()),
            title: Some("Holiday".into()),
        }
    }

    fn session(size: u64) -> UploadSession {
        let valid = new_upload(size).validate(LIMITS).unwrap();
        UploadSession::open(
            valid,
            VideoId::random(),
            "s3-upload".into(),
            Timestamp::from_second(1_700_000_000).unwrap(),
        )
    }

    fn part(number: u16, size: u64) -> StoredPart {
        StoredPart {
            number,
            etag: format!("\"etag-{number}\""),
            size,
        }
    }

    #[test]
    fn validates_before_anything_is_stored() {
        let status = |upload: NewUpload, max: u64| {
            upload
                .validate(UploadLimits { max_bytes: max })
                .map(|_| 200)
                .unwrap_or_else(|e| e.status)
        };
        assert_eq!(status(new_upload(100), 100), 200);
        assert_eq!(status(new_upload(101), 100), 413);
        assert_eq!(status(new_upload(0), 100), 400);
        assert_eq!(status(NewUpload::default(), 100), 400);
        let mut text = new_upload(10);
        text.filename = Some("notes.txt".into());
        assert_eq!(status(text, 100), 415);
        let mut image = new_upload(10);
        image.content_type = Some("image/png".into());
        assert_eq!(status(image, 100), 415);
        let mut bad_title = new_upload(10);
        bad_title.title = Some("bell\u{7}".into());
        assert_eq!(status(bad_title, 100), 400);
        let mut inferred = new_upload(10);
        inferred.content_type = None;
        inferred.title = None;
        let valid = inferred.validate(LIMITS).unwrap();
        assert_eq!(valid.content_type, "video/mp4");
        assert_eq!(valid.title, "holiday");
    }

    #[test]
    fn decodes_the_request_or_says_what_to_send() {
        let upload = NewUpload::from_json(br#"{"filename":"a.mp4","size":5}"#).unwrap();
        assert_eq!(upload.size, Some(5));
        assert_eq!(NewUpload::from_json(b"{nope").unwrap_err().status, 400);
        assert_eq!(
            NewUpload::from_json(br#"{"size":-1}"#).unwrap_err().status,
            400
        );
    }

    #[test]
    fn a_size_is_any_json_number_without_a_fraction() {
        let size = |json: &str| NewUpload::from_json(json.as_bytes()).map(|u| u.size);
        assert_eq!(size(r#"{"size":13578.0}"#), Ok(Some(13578)));
        assert_eq!(size(r#"{"size":1e3}"#), Ok(Some(1000)));
        assert_eq!(size(r#"{"size":18446744073709551615}"#), Ok(Some(u64::MAX)));
        assert_eq!(size(r#"{"size":null}"#), Ok(None));
        assert_eq!(size(r#"{}"#), Ok(None));
        for bad in ["1.5", "-1", "-1.0", "1e20", "\"5\"", "true"] {
            let error = size(&format!(r#"{{"size":{bad}}}"#)).unwrap_err();
            assert_eq!(error.status, 400, "{bad}");
        }
    }

    #[test]
    fn cuts_files_into_parts_s3_accepts() {
        assert_eq!(part_size_for(1), MIN_PART_SIZE);
        assert_eq!(part_size_for(1 << 30), MIN_PART_SIZE);
        let huge = 5u64 << 40;
        assert!(part_size_for(huge) * MAX_PARTS >= huge);
        assert_eq!(part_size_for(huge) % MIB, 0);

        let s = session(20 * MIB + 5);
        assert_eq!(s.part_count(), 3);
        assert_eq!(s.part_len(1), 8 * MIB);
        assert_eq!(s.part_len(3), 4 * MIB + 5);
        assert_eq!(session(16 * MIB).part_count(), 2);
        assert_eq!(session(16 * MIB).part_len(2), 8 * MIB);
    }

    #[test]
    fn progress_counts_only_whole_parts() {
        let s = session(20 * MIB + 5);
        let progress = s.progress(&[part(1, 8 * MIB), part(2, 100)]);
        assert_eq!(progress.done, vec![1]);
        assert_eq!(progress.missing, vec![2, 3]);
        assert_eq!(progress.bytes_done, 8 * MIB);
    }

    #[test]
    fn completes_only_with_every_part_in_order() {
        let s = session(20 * MIB + 5);
        let err = s.completion(&[part(2, 8 * MIB)]).unwrap_err();
        assert_eq!((err.status, err.code), (409, "upload_incomplete"));
        assert!(err.message.contains("1, 3"), "{}", err.message);
        let stored = [part(3, 4 * MIB + 5), part(1, 8 * MIB), part(2, 8 * MIB)];
        assert_eq!(
            s.completion(&stored).unwrap(),
            vec!["\"etag-1\"", "\"etag-2\"", "\"etag-3\""]
        );
        let mut extra = stored.to_vec();
        extra.push(part(4, 1));
        assert_eq!(s.completion(&extra).unwrap_err().status, 409);
    }

    #[test]
    fn sessions_expire_and_are_abandoned_after_the_ttl() {
        let s = session(1);
        let opened = s.created_at;
        let hour = Duration::from_secs(3600);
        assert!(s.check_open(opened).is_ok());
        assert!(!s.is_abandoned(opened, SESSION_LIFETIME));
        let later = opened.checked_add(SESSION_LIFETIME).unwrap();
        assert_eq!(s.check_open(later).unwrap_err().status, 410);
        assert!(s.is_abandoned(later, SESSION_LIFETIME * 2));
        let two_hours = opened.checked_add(hour * 2).unwrap();
        assert!(s.is_abandoned(two_hours, hour));
        assert!(!s.is_abandoned(two_hours, hour * 3));
        assert_eq!(s.url_lifetime(opened), SESSION_LIFETIME);
        assert_eq!(s.url_lifetime(later), Duration::from_secs(60));
    }

    #[test]
    fn summarizes_part_numbers_as_ranges() {
        assert_eq!(summarize(&[1, 2, 3, 7, 9, 10]), "1-3, 7, 9-10");
        let many: Vec<u16> = (1..100).step_by(2).collect();
        assert!(summarize(&many).ends_with("and 40 more ranges"));
    }

    #[test]
    fn the_completed_record_is_the_declared_upload() {
        let s = session(42);
        let record = s.record(Timestamp::from_second(1_700_000_100).unwrap());
        assert_eq!(record.id, s.id);
        assert_eq!(record.size, 42);
        assert_eq!(record.title, "Holiday");
        assert_eq!(record.status, crate::VideoStatus::Uploaded);
    }
}
