//! What an acceptable upload looks like, decided before and while bytes
//! arrive.
//!
//! Two forms are accepted on `POST /api/videos` (and `POST /upload`):
//! a raw body with a `video/*` Content-Type (file name and title in the
//! query string), or `multipart/form-data` with a `video` file field and an
//! optional `title` field, as browsers and the original Xtream clients send.

use crate::ApiError;
use crate::config::UploadLimits;
use crate::multipart::MultipartError;

/// Longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest file name kept, in characters.
const MAX_FILENAME_CHARS: usize = 255;
/// Multipart framing around the file: boundaries, part headers and a title.
/// Bodies may exceed the file limit by this much before their declared
/// length alone is refused.
const MULTIPART_FRAMING_ALLOWANCE: u64 = 64 * 1024;

/// The form an upload request takes, from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadForm {
    /// The body is the video itself.
    Raw {
        /// The video's MIME type.
        content_type: String,
        /// The file name to record.
        filename: String,
        /// The title to record.
        title: String,
    },
    /// The body is `multipart/form-data`; the video is its `video` field.
    Multipart {
        /// The body's boundary.
        boundary: String,
        /// A title from the query string, if any (a `title` field wins).
        title: Option<String>,
    },
}

/// Decides the form of an upload from its `Content-Type`, `Content-Length`
/// and query string, refusing what can be refused before reading the body.
pub fn classify(
    content_type: Option<&str>,
    content_length: Option<&str>,
    query: &str,
    limits: UploadLimits,
) -> Result<UploadForm, ApiError> {
    let length: u64 = content_length
        .ok_or_else(ApiError::length_required)?
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request("Content-Length is not a number"))?;
    if length == 0 {
        return Err(ApiError::bad_request("the upload is empty"));
    }
    let query = QueryFields::parse(query);
    let content_type = content_type.map(str::trim).unwrap_or_default();
    let essence = mime_essence(content_type);

    if essence == "multipart/form-data" {
        if length > limits.max_bytes.saturating_add(MULTIPART_FRAMING_ALLOWANCE) {
            return Err(ApiError::too_large(limits.max_bytes));
        }
        let boundary = mime_param(content_type, "boundary").ok_or_else(|| {
            ApiError::bad_request("multipart/form-data needs a boundary parameter")
        })?;
        // Checked now even though a `title` field of the form would win: a
        // malformed parameter is refused, never silently ignored.
        if let Some(title) = &query.title {
            title_or_default(Some(title), "")?;
        }
        return Ok(UploadForm::Multipart {
            boundary,
            title: query.title,
        });
    }

    if length > limits.max_bytes {
        return Err(ApiError::too_large(limits.max_bytes));
    }
    let filename = sanitize_filename(query.filename.as_deref().unwrap_or_default());
    let declared = (!content_type.is_empty()).then_some(content_type);
    let content_type = video_content_type(declared, &filename).map_err(|_| {
        ApiError::unsupported_media_type(format!(
            "send a video: a video/* body, or multipart/form-data with a `video` file field \
             (got Content-Type {:?})",
            content_type
        ))
    })?;
    let title = title_or_default(query.title.as_deref(), &filename)?;
    Ok(UploadForm::Raw {
        content_type,
        filename,
        title,
    })
}

#[derive(Default)]
struct QueryFields {
    title: Option<String>,
    filename: Option<String>,
}

impl QueryFields {
    fn parse(query: &str) -> Self {
        let mut fields = Self::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "title" => fields.title = Some(value.into_owned()),
                "filename" => fields.filename = Some(value.into_owned()),
                _ => {}
            }
        }
        fields
    }
}

/// The MIME type of an uploaded file: a declared `video/*` type, or — when
/// the client declared nothing useful (curl sends `application/octet-stream`
/// for `.mp4`) — the type its extension names. Anything else is not a video.
pub fn video_content_type(declared: Option<&str>, filename: &str) -> Result<String, ApiError> {
    let essence = declared.map(mime_essence).unwrap_or_default();
    if let Some(subtype) = essence.strip_prefix("video/")
        && !subtype.is_empty()
        && subtype.bytes().all(is_mime_token_byte)
    {
        return Ok(essence);
    }
    if (essence.is_empty() || essence == "application/octet-stream")
        && let Some(from_extension) = content_type_for_extension(filename)
    {
        return Ok(from_extension.to_owned());
    }
    Err(ApiError::unsupported_media_type(format!(
        "{filename:?} is not a video (type {:?}); send a video/* file such as .mp4, .mov, .mkv or .webm",
        declared.unwrap_or("none")
    )))
}

/// Video types accepted from clients that declare their upload up front
/// (resumable uploads): those of [`content_type_for_extension`] plus common
/// aliases browsers and tools report.
const DECLARED_VIDEO_TYPES: [&str; 15] = [
    "video/mp4",
    "video/x-m4v",
    "video/quicktime",
    "video/x-matroska",
    "video/matroska",
    "video/webm",
    "video/x-msvideo",
    "video/avi",
    "video/mpeg",
    "video/mp2t",
    "video/3gpp",
    "video/x-flv",
    "video/x-ms-wmv",
    "video/ogg",
    "video/h264",
];

/// The MIME type of an upload declared before any byte is sent, checked
/// against allow-lists: its extension (when it has one) must be a video
/// extension, and its type (declared, or else from the extension) a known
/// video type. Anything else is a 415, so nothing is stored for it.
pub fn declared_video_type(declared: Option<&str>, filename: &str) -> Result<String, ApiError> {
    let has_extension = matches!(filename.rsplit_once('.'), Some((stem, ext)) if !stem.is_empty() && !ext.is_empty());
    if has_extension && content_type_for_extension(filename).is_none() {
        return Err(ApiError::unsupported_media_type(format!(
            "{filename:?} does not have a video file extension; send a file such as .mp4, .mov, .mkv or .webm"
        )));
    }
    let content_type = video_content_type(declared, filename)?;
    if !DECLARED_VIDEO_TYPES.contains(&content_type.as_str()) {
        return Err(ApiError::unsupported_media_type(format!(
            "{content_type:?} is not a video type we accept; send one of {}",
            DECLARED_VIDEO_TYPES.join(", ")
        )));
    }
    Ok(content_type)
}

fn is_mime_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b)
}

fn content_type_for_extension(filename: &str) -> Option<&'static str> {
    let extension = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "mp4" => "video/mp4",
        "m4v" => "video/x-m4v",
        "mov" => "video/quicktime",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "avi" => "video/x-msvideo",
        "mpeg" | "mpg" => "video/mpeg",
        "ts" => "video/mp2t",
        "3gp" => "video/3gpp",
        "flv" => "video/x-flv",
        "wmv" => "video/x-ms-wmv",
        "ogv" => "video/ogg",
        _ => return None,
    })
}

/// The lowercase `type/subtype` of a MIME type, without parameters.
fn mime_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A parameter of a MIME type, unquoted.
fn mime_param(content_type: &str, name: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// A file name safe to store and show: its last path component, without
/// control characters, at most 255 characters; `video` when nothing is left.
pub fn sanitize_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "video".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// The title to record: the one given (trimmed), else the file name without
/// its extension. A title with control characters or over
/// [`MAX_TITLE_CHARS`] characters is a 400.
pub fn title_or_default(given: Option<&str>, filename: &str) -> Result<String, ApiError> {
    let given = given.map(str::trim).unwrap_or_default();
    if given.is_empty() {
        let stem = match filename.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem,
            _ => filename,
        };
        return Ok(stem.chars().take(MAX_TITLE_CHARS).collect());
    }
    if given.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "title must not contain control characters",
        ));
    }
    if given.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_request(format!(
            "title must be at most {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(given.to_owned())
}

/// Counts the bytes of an upload as they stream in and stops at the limit,
/// for bodies whose declared length does not bound the file (multipart).
#[derive(Debug, Clone, Copy)]
pub struct ByteBudget {
    max: u64,
    used: u64,
}

impl ByteBudget {
    /// A budget of `limits.max_bytes`.
    pub fn new(limits: UploadLimits) -> Self {
        Self {
            max: limits.max_bytes,
            used: 0,
        }
    }

    /// Accounts for `n` more bytes; a 413 once past the limit.
    pub fn spend(&mut self, n: usize) -> Result<(), ApiError> {
        self.used = self.used.saturating_add(n as u64);
        if self.used > self.max {
            Err(ApiError::too_large(self.max))
        } else {
            Ok(())
        }
    }

    /// Bytes accounted so far.
    pub fn used(&self) -> u64 {
        self.used
    }
}

/// How long a streamed upload's slot is leased (see
/// [`crate::metadata::take_upload_slot`]): an upload whose instance died
/// frees its slot this long after its last renewal.
pub const UPLOAD_SLOT_LEASE: std::time::Duration = std::time::Duration::from_secs(60);
/// How often a streaming upload renews its slot's lease, while bytes
/// arrive: a few renewals fit in a lease, so one failed renewal loses
/// nothing.
pub const UPLOAD_SLOT_RENEWAL: std::time::Duration = std::time::Duration::from_secs(20);
/// How long a client refused for lack of an upload slot is asked to wait
/// (`Retry-After`): uploads last seconds to minutes, and a client that
/// comes back sooner would mostly be refused again.
pub const BUSY_RETRY_AFTER_SECONDS: u32 = 5;

/// Times a streamed upload asks for a slot when slots were free but
/// another upload took the one it picked at the same moment.
pub const UPLOAD_SLOT_ATTEMPTS: usize = 3;

/// The answer to a streamed upload that found every slot taken.
pub fn busy_with_uploads(limit: u32) -> ApiError {
    ApiError::busy(
        format!(
            "the server is busy: it is already receiving {limit} uploads, as many as it takes \
             at once; retry after {BUSY_RETRY_AFTER_SECONDS} seconds (large files upload best \
             as resumable uploads, POST /api/uploads)"
        ),
        BUSY_RETRY_AFTER_SECONDS,
    )
}

/// The largest body a refused upload still reads (and throws away) before
/// its answer ends: see [`read_before_refusing`].
pub const MAX_BODY_READ_BEFORE_REFUSING: u64 = 8 * 1024 * 1024;

/// Whether an upload refused before its body was read (every slot taken)
/// should read the body first. A server that answers and closes while the
/// client is still sending resets the connection, and the client sees a
/// broken pipe instead of the 503 telling it to retry (measured: 15 of
/// 5,011 refused uploads at 1000 VUs). Reading the rest lets the answer
/// arrive; it is worth it for a short body only, so a body of unknown or
/// large size is left unread (a client sending `Expect: 100-continue`, as
/// curl does for large files, has not sent it yet anyway).
pub fn read_before_refusing(content_length: Option<&str>) -> bool {
    content_length
        .and_then(|length| length.trim().parse::<u64>().ok())
        .is_some_and(|length| length <= MAX_BODY_READ_BEFORE_REFUSING)
}

/// The bytes of a streamed upload's next S3 part, held until the part is
/// full (or the upload ends).
///
/// Memory grows with the data, geometrically but never past one part, so
/// a small upload holds about its own size and a large one at most one
/// part (a `Vec` left to grow by itself can reach twice the part size
/// before the part is full). Once a part has been full the upload is known
/// to be large, and each later part is reserved whole up front instead of
/// being grown (and copied) again.
#[derive(Debug)]
pub struct PartBuffer {
    part_size: usize,
    pending: Vec<u8>,
    large: bool,
}

impl PartBuffer {
    /// An empty buffer for parts of `part_size` bytes.
    pub fn new(part_size: u64) -> Self {
        Self {
            part_size: usize::try_from(part_size).unwrap_or(usize::MAX).max(1),
            pending: Vec::new(),
            large: false,
        }
    }

    /// Takes as much of `data` as the current part has room for and
    /// returns the rest; when something is left, the part is full.
    pub fn fill<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let room = self.part_size - self.pending.len();
        let (now, later) = data.split_at(room.min(data.len()));
        let needed = self.pending.len() + now.len();
        if needed > self.pending.capacity() {
            let grown = if self.large {
                self.part_size
            } else {
                (self.pending.capacity() * 2)
                    .max(needed)
                    .min(self.part_size)
            };
            self.pending.reserve_exact(grown - self.pending.len());
        }
        self.pending.extend_from_slice(now);
        later
    }

    /// Whether the current part has reached the part size.
    pub fn is_full(&self) -> bool {
        self.pending.len() == self.part_size
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes reserved: what the buffer costs in memory.
    pub fn capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// Hands over the bytes held (a full part, or the last one) and starts
    /// the next part empty.
    pub fn take(&mut self) -> Vec<u8> {
        self.large |= self.is_full();
        std::mem::take(&mut self.pending)
    }

    /// Drops whatever is held.
    pub fn clear(&mut self) {
        self.pending = Vec::new();
    }
}

impl From<MultipartError> for ApiError {
    fn from(err: MultipartError) -> Self {
        ApiError::bad_request(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_upload_reads_a_short_body_only() {
        assert!(read_before_refusing(Some("409584")));
        assert!(read_before_refusing(Some(" 8388608 ")));
        assert!(!read_before_refusing(Some("8388609")));
        assert!(!read_before_refusing(None), "chunked: size unknown");
        assert!(!read_before_refusing(Some("lots")));
    }

    const LIMITS: UploadLimits = UploadLimits { max_bytes: 1000 };

    /// Feeds `total` bytes in `chunk`-sized pieces; returns the parts
    /// handed over and the largest reservation seen.
    fn stream_through(buffer: &mut PartBuffer, total: usize, chunk: usize) -> (Vec<usize>, usize) {
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let (mut parts, mut peak, mut joined) = (Vec::new(), 0, Vec::new());
        for piece in data.chunks(chunk) {
            let mut rest = piece;
            while !rest.is_empty() {
                rest = buffer.fill(rest);
                peak = peak.max(buffer.capacity());
                if buffer.is_full() {
                    let part = buffer.take();
                    parts.push(part.len());
                    joined.extend_from_slice(&part);
                }
            }
        }
        if !buffer.is_empty() {
            let part = buffer.take();
            parts.push(part.len());
            joined.extend_from_slice(&part);
        }
        assert_eq!(joined, data, "every byte, in order, once");
        (parts, peak)
    }

    #[test]
    fn a_small_upload_holds_about_its_own_size() {
        const MIB: usize = 1 << 20;
        let mut buffer = PartBuffer::new(8 * MIB as u64);
        let (parts, peak) = stream_through(&mut buffer, 100_000, 16_384);
        assert_eq!(parts, [100_000]);
        assert!(peak < 2 * 100_000, "reserved {peak} bytes for 100 kB");
    }

    #[test]
    fn the_part_buffer_never_reserves_more_than_a_part() {
        const PART: usize = 8 << 20;
        // Chunk sizes that are not powers of two, as multipart parsing
        // yields them: a Vec growing by itself doubles past the part size.
        for chunk in [1, 1000, 16_384, 100_000, 65_537, 3 << 20, 9 << 20] {
            let mut buffer = PartBuffer::new(PART as u64);
            let total = if chunk == 1 {
                3 * PART / 2
            } else {
                2 * PART + 12_345
            };
            let (parts, peak) = stream_through(&mut buffer, total, chunk);
            assert!(peak <= PART, "chunks of {chunk}: reserved {peak}");
            assert!(parts[..parts.len() - 1].iter().all(|&len| len == PART));
            assert_eq!(parts.iter().sum::<usize>(), total);
        }
    }

    fn status(result: Result<UploadForm, ApiError>) -> u16 {
        result.map(|_| 200).unwrap_or_else(|e| e.status)
    }

    #[test]
    fn accepts_a_raw_video_with_query_metadata() {
        let form = classify(
            Some("video/MP4; codecs=avc1"),
            Some("10"),
            "filename=..%2Fclip.mp4&title=%20Holiday%20",
            LIMITS,
        )
        .unwrap();
        assert_eq!(
            form,
            UploadForm::Raw {
                content_type: "video/mp4".into(),
                filename: "clip.mp4".into(),
                title: "Holiday".into(),
            }
        );
    }

    #[test]
    fn accepts_multipart_with_its_boundary() {
        let form = classify(
            Some("multipart/form-data; boundary=\"--x y\""),
            Some("2000"),
            "",
            LIMITS,
        )
        .unwrap();
        assert_eq!(
            form,
            UploadForm::Multipart {
                boundary: "--x y".into(),
                title: None
            }
        );
    }

    #[test]
    fn a_malformed_query_title_is_refused_whatever_the_form() {
        for content_type in ["multipart/form-data; boundary=x", "video/mp4"] {
            for title in ["bell%07", &"a".repeat(MAX_TITLE_CHARS + 1)] {
                let query = format!("title={title}");
                let refused = classify(Some(content_type), Some("10"), &query, LIMITS);
                assert_eq!(status(refused), 400, "{content_type} {title}");
            }
        }
        let form = classify(
            Some("multipart/form-data; boundary=x"),
            Some("10"),
            "title=%20",
            LIMITS,
        );
        assert_eq!(status(form), 200);
    }

    #[test]
    fn applies_the_size_rules_before_reading() {
        assert_eq!(status(classify(Some("video/mp4"), None, "", LIMITS)), 411);
        assert_eq!(
            status(classify(Some("video/mp4"), Some("1001"), "", LIMITS)),
            413
        );
        assert_eq!(
            status(classify(Some("video/mp4"), Some("0"), "", LIMITS)),
            400
        );
        assert_eq!(
            status(classify(Some("video/mp4"), Some("-5"), "", LIMITS)),
            400
        );
        let huge_form = (LIMITS.max_bytes + MULTIPART_FRAMING_ALLOWANCE + 1).to_string();
        assert_eq!(
            status(classify(
                Some("multipart/form-data; boundary=b"),
                Some(&huge_form),
                "",
                LIMITS
            )),
            413
        );
    }

    #[test]
    fn refuses_what_is_not_a_video() {
        assert_eq!(
            status(classify(Some("text/plain"), Some("5"), "", LIMITS)),
            415
        );
        assert_eq!(status(classify(None, Some("5"), "", LIMITS)), 415);
        assert_eq!(status(classify(Some("video/"), Some("5"), "", LIMITS)), 415);
        assert_eq!(
            status(classify(
                Some("application/octet-stream"),
                Some("5"),
                "filename=a.txt",
                LIMITS
            )),
            415
        );
        assert_eq!(
            status(classify(Some("multipart/form-data"), Some("5"), "", LIMITS)),
            400
        );
    }

    #[test]
    fn infers_the_type_of_octet_streams_from_the_extension() {
        assert_eq!(
            video_content_type(Some("application/octet-stream"), "a.MOV").unwrap(),
            "video/quicktime"
        );
        assert_eq!(video_content_type(None, "a.webm").unwrap(), "video/webm");
        assert_eq!(
            video_content_type(Some("image/png"), "a.mp4")
                .unwrap_err()
                .status,
            415
        );
    }

    #[test]
    fn declared_uploads_meet_both_allow_lists() {
        assert_eq!(
            declared_video_type(Some("video/mp4"), "a.mp4").unwrap(),
            "video/mp4"
        );
        assert_eq!(
            declared_video_type(None, "a.mkv").unwrap(),
            "video/x-matroska"
        );
        assert_eq!(
            declared_video_type(Some("video/quicktime"), "no extension").unwrap(),
            "video/quicktime"
        );
        for (declared, filename) in [
            (Some("video/mp4"), "notes.txt"),
            (Some("video/x-unheard-of"), "a.mp4"),
            (Some("image/png"), "a.mp4"),
            (None, "video"),
            (Some("application/octet-stream"), "a.exe"),
        ] {
            assert_eq!(
                declared_video_type(declared, filename).unwrap_err().status,
                415,
                "{declared:?} {filename}"
            );
        }
    }

    #[test]
    fn keeps_file_names_inside_their_folder() {
        assert_eq!(sanitize_filename("C:\\Users\\me\\cat.mp4"), "cat.mp4");
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("a\u{0}b\nc.mp4"), "abc.mp4");
        assert_eq!(sanitize_filename(".."), "video");
        assert_eq!(sanitize_filename(""), "video");
    }

    #[test]
    fn titles_are_checked_or_derived() {
        assert_eq!(title_or_default(None, "cat.mp4").unwrap(), "cat");
        assert_eq!(title_or_default(Some("  "), ".hidden").unwrap(), ".hidden");
        assert_eq!(
            title_or_default(Some("Éclair 🎬"), "x").unwrap(),
            "Éclair 🎬"
        );
        assert_eq!(
            title_or_default(Some("a\u{7}b"), "x").unwrap_err().status,
            400
        );
        let long = "é".repeat(MAX_TITLE_CHARS + 1);
        assert_eq!(title_or_default(Some(&long), "x").unwrap_err().status, 400);
    }

    #[test]
    fn budget_stops_at_the_limit() {
        let mut budget = ByteBudget::new(LIMITS);
        budget.spend(600).unwrap();
        budget.spend(400).unwrap();
        assert_eq!(budget.spend(1).unwrap_err().status, 413);
        assert_eq!(budget.used(), 1001);
    }
}
