//! Receiving an upload: the request body is streamed into the bucket part by
//! part, and the record is written only once the original is whole.

use crate::config::variable;
use crate::db::Metadata;
use crate::http::{header, path_and_query};
use crate::storage::{ObjectStore, StorageError};
use futures::StreamExt;
use spin_sdk::http::IncomingRequest;
use xtream_core::config::UploadLimits;
use xtream_core::metadata;
use xtream_core::multipart::{Event, MultipartParser};
use xtream_core::upload::{self, ByteBudget, PartBuffer, UploadForm};
use xtream_core::{ApiError, VideoId, VideoRecord, keys};

/// The form field holding the video, as the original Xtream named it.
const VIDEO_FIELD: &str = "video";
/// The optional form field holding the title.
const TITLE_FIELD: &str = "title";
/// More than enough for a 200-character title in any script.
const MAX_TITLE_FIELD_BYTES: usize = 4 * upload::MAX_TITLE_CHARS;

/// Streams an upload request into the store and records it.
///
/// Nothing becomes visible unless everything succeeded: the row (with its
/// announcement) is written after the original is whole, and a failed
/// original is aborted or deleted. The database is only reached once the
/// bytes are stored, so no upload holds a connection while it streams; it
/// only takes, renews and gives back its upload slot (one of
/// `max_concurrent_uploads`), each with a short statement.
pub async fn receive(
    store: &ObjectStore,
    request: IncomingRequest,
) -> Result<VideoRecord, ApiError> {
    let limits = crate::config::upload_limits()?;
    let (_, query) = path_and_query(&request);
    let form = upload::classify(
        header(&request, "content-type").as_deref(),
        header(&request, "content-length").as_deref(),
        &query,
        limits,
    )?;
    let id = VideoId::random();
    // Before any byte is read: past the limit, the client hears 503 with
    // Retry-After and nothing is held for it.
    let slot = match UploadSlot::take(id) {
        Ok(slot) => slot,
        Err(busy) => {
            if upload::read_before_refusing(header(&request, "content-length").as_deref()) {
                let mut body = request.into_body_stream();
                while let Some(Ok(_)) = body.next().await {}
            }
            return Err(busy);
        }
    };
    let mut original = ObjectWriter::new(store, id, limits.part_size(), slot);
    let received = match form {
        UploadForm::Raw {
            content_type,
            filename,
            title,
        } => receive_raw(request, limits, &mut original, &content_type)
            .await
            .map(|()| Received {
                title,
                filename,
                content_type,
            }),
        UploadForm::Multipart { boundary, title } => {
            receive_form(request, limits, &mut original, &boundary, title).await
        }
    };
    let received = match received {
        Ok(received) if original.size() > 0 => received,
        Ok(_) => {
            original.discard().await;
            return Err(ApiError::bad_request("the video file is empty"));
        }
        Err(error) => {
            original.discard().await;
            return Err(error);
        }
    };
    let size = original.size();
    if let Err(error) = original.finish(&received.content_type).await {
        original.discard().await;
        return Err(error);
    }
    let record = VideoRecord::uploaded(
        id,
        received.title,
        received.filename,
        size,
        received.content_type,
        jiff::Timestamp::now(),
    );
    match publish(record, Origin::Streamed).await {
        Ok(record) => Ok(record),
        Err(PublishError::NotRecorded(error)) => {
            // Best effort: without a row the original is unreachable anyway.
            let _ = store.delete(&keys::original(id)).await;
            Err(error)
        }
        Err(PublishError::NotQueued(error)) => Err(error),
    }
}

/// Why [`publish`] failed.
#[derive(Debug)]
pub enum PublishError {
    /// The row could not be written: the video does not exist, and the
    /// caller decides what becomes of its original.
    NotRecorded(ApiError),
    /// The video is stored and listed with its announcement in the outbox,
    /// but the bridge did not take it now; the row says so and the worker's
    /// outbox relay announces it. The error is the 503 to answer.
    NotQueued(ApiError),
}

impl From<PublishError> for ApiError {
    fn from(failure: PublishError) -> Self {
        match failure {
            PublishError::NotRecorded(error) | PublishError::NotQueued(error) => error,
        }
    }
}

/// Where a stored original came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A request body streamed through the component.
    Streamed,
    /// A completed resumable upload, whose session closes with the insert.
    Resumable,
}

/// The one path from "an original is stored" to a video: one statement
/// writes its row and its `video.uploaded` outbox entry (and closes a
/// resumable upload's session), then the event is sent through the bridge
/// at once and its outbox entry marked sent. Used by streamed uploads and
/// completed resumable uploads alike.
///
/// Idempotent: when the video already exists (a repeated completion), its
/// row is returned and nothing is announced again.
pub async fn publish(record: VideoRecord, origin: Origin) -> Result<VideoRecord, PublishError> {
    let db = crate::db::open().map_err(PublishError::NotRecorded)?;
    let topic = variable("uploads_topic").map_err(PublishError::NotRecorded)?;
    let statement = metadata::insert_uploaded(&record, &topic, origin == Origin::Resumable);
    let inserted = db.rows(&statement).map_err(PublishError::NotRecorded)?;
    let Some(row) = inserted.first() else {
        return crate::catalog::get(&db, record.id).map_err(PublishError::NotRecorded);
    };
    let stored = crate::db::text(row, 0)
        .and_then(|json| metadata::decode_record(&json))
        .map_err(PublishError::NotRecorded)?;
    let outbox_id = crate::db::int64(row, 1).map_err(PublishError::NotRecorded)?;
    match crate::announce::upload(&stored).await {
        Ok(()) => {
            // If this fails the relay sends the event again: consumers
            // already take events at least once.
            let _ = db.execute(&metadata::mark_sent(outbox_id));
            Ok(stored)
        }
        Err(error) => Err(PublishError::NotQueued(not_yet_queued(
            &db, &stored, outbox_id, error,
        ))),
    }
}

/// The upload is stored but the bridge did not take its event. The outbox
/// keeps it for the worker's relay, the row says what happened (unless the
/// video has moved on meanwhile), and the client hears a 503 naming the id.
fn not_yet_queued(
    db: &Metadata,
    record: &VideoRecord,
    outbox_id: i64,
    error: ApiError,
) -> ApiError {
    let detail = format!(
        "stored, but not yet queued for transcoding ({}); it will be queued automatically",
        error.message
    );
    // If this fails too, the row simply lacks the explanation.
    let _ = db.execute(&metadata::note_not_sent(
        record.id,
        outbox_id,
        &error.message,
        &detail,
    ));
    ApiError::queue_unavailable(format!(
        "video {} was stored but could not be queued for transcoding: {}; \
         it will be queued automatically",
        record.id, error.message
    ))
}

struct Received {
    title: String,
    filename: String,
    content_type: String,
}

fn interrupted<E: std::fmt::Debug>(error: E) -> ApiError {
    ApiError::bad_request(format!("the upload was interrupted: {error:?}"))
}

async fn receive_raw(
    request: IncomingRequest,
    limits: UploadLimits,
    original: &mut ObjectWriter<'_>,
    content_type: &str,
) -> Result<(), ApiError> {
    let mut budget = ByteBudget::new(limits);
    let mut body = request.into_body_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(interrupted)?;
        budget.spend(chunk.len())?;
        original.write(&chunk, content_type).await?;
    }
    Ok(())
}

/// Which form field the parser is inside.
enum Field {
    Video { content_type: String },
    Title(Vec<u8>),
    Ignored,
}

async fn receive_form(
    request: IncomingRequest,
    limits: UploadLimits,
    original: &mut ObjectWriter<'_>,
    boundary: &str,
    query_title: Option<String>,
) -> Result<Received, ApiError> {
    let mut parser = MultipartParser::new(boundary)?;
    let mut budget = ByteBudget::new(limits);
    let mut body = request.into_body_stream();
    let mut field = Field::Ignored;
    let mut video: Option<(String, String)> = None;
    let mut title_field: Option<Vec<u8>> = None;

    while let Some(chunk) = body.next().await {
        parser.push(&chunk.map_err(interrupted)?);
        while let Some(event) = parser.next_event()? {
            match event {
                Event::PartStart(part) if part.name == VIDEO_FIELD => {
                    if video.is_some() {
                        return Err(ApiError::bad_request("send one `video` field per upload"));
                    }
                    let filename =
                        upload::sanitize_filename(part.filename.as_deref().unwrap_or(""));
                    let content_type =
                        upload::video_content_type(part.content_type.as_deref(), &filename)?;
                    video = Some((filename, content_type.clone()));
                    field = Field::Video { content_type };
                }
                Event::PartStart(part) if part.name == TITLE_FIELD => {
                    field = Field::Title(Vec::new())
                }
                Event::PartStart(_) => field = Field::Ignored,
                Event::Data(data) => match &mut field {
                    Field::Video { content_type } => {
                        budget.spend(data.len())?;
                        original.write(&data, content_type).await?;
                    }
                    Field::Title(text) => {
                        text.extend_from_slice(&data);
                        if text.len() > MAX_TITLE_FIELD_BYTES {
                            return Err(ApiError::bad_request(format!(
                                "title must be at most {} characters",
                                upload::MAX_TITLE_CHARS
                            )));
                        }
                    }
                    Field::Ignored => {}
                },
                Event::PartEnd => {
                    if let Field::Title(text) = std::mem::replace(&mut field, Field::Ignored) {
                        title_field = Some(text);
                    }
                }
                Event::End => {}
            }
        }
    }
    parser.finish()?;

    let (filename, content_type) =
        video.ok_or_else(|| ApiError::bad_request("the form has no `video` file field"))?;
    let title = match title_field {
        Some(bytes) => Some(
            String::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("title must be UTF-8 text"))?,
        ),
        None => query_title,
    };
    let title = upload::title_or_default(title.as_deref(), &filename)?;
    Ok(Received {
        title,
        filename,
        content_type,
    })
}

/// A streamed upload's place among the `max_concurrent_uploads` the
/// platform receives at once, across every instance (a row of
/// `streamed_upload_slots`). Leased: renewed while bytes arrive, so the
/// slot of an upload whose instance dies frees itself; given back when
/// dropped.
struct UploadSlot {
    id: VideoId,
    slot: i64,
    renewed: std::time::Instant,
}

impl UploadSlot {
    /// Takes a free slot, or answers 503 with Retry-After when every slot
    /// is taken.
    fn take(id: VideoId) -> Result<Self, ApiError> {
        let limit = crate::config::max_concurrent_uploads()?;
        let db = crate::db::open()?;
        let take = metadata::take_upload_slot(id, limit, upload::UPLOAD_SLOT_LEASE.as_secs());
        for _ in 0..upload::UPLOAD_SLOT_ATTEMPTS {
            let rows = db.rows(&take)?;
            let row = rows
                .first()
                .ok_or_else(|| ApiError::internal("taking an upload slot returned no row"))?;
            if let Some(slot) = crate::db::optional_int64(row, 1)? {
                return Ok(Self {
                    id,
                    slot,
                    renewed: std::time::Instant::now(),
                });
            }
            // Slots were free, but another upload took the one picked at
            // the same moment: ask again. None free: the limit is reached.
            if crate::db::int64(row, 0)? == 0 {
                break;
            }
        }
        Err(upload::busy_with_uploads(limit))
    }

    /// Extends the lease when it is due, as bytes arrive. A failed renewal
    /// is left for the next: the lease outlasts a few of them.
    fn keep(&mut self) {
        if self.renewed.elapsed() < upload::UPLOAD_SLOT_RENEWAL {
            return;
        }
        self.renewed = std::time::Instant::now();
        let renew =
            metadata::renew_upload_slot(self.id, self.slot, upload::UPLOAD_SLOT_LEASE.as_secs());
        let _ = crate::db::open().and_then(|db| db.rows(&renew));
    }
}

impl Drop for UploadSlot {
    /// Gives the slot back; if that fails, its lease runs out instead.
    fn drop(&mut self) {
        let release = metadata::release_upload_slot(self.id, self.slot);
        let _ = crate::db::open().and_then(|db| db.execute(&release));
    }
}

/// Writes a video's original from a stream of chunks, holding at most one
/// part in memory ([`PartBuffer`]): small originals become one PUT, larger
/// ones a multipart upload. A multipart upload is noted in
/// `streamed_uploads` while it is open, so that its parts (which no object
/// listing shows) are freed by the worker's sweeper if this instance dies
/// before completing or aborting it. The upload's slot is held for as long
/// as the writer may hold a part, and given back once the original is
/// stored or discarded.
struct ObjectWriter<'a> {
    store: &'a ObjectStore,
    id: VideoId,
    key: String,
    part: PartBuffer,
    multipart: Option<MultipartUpload>,
    size: u64,
    slot: Option<UploadSlot>,
}

struct MultipartUpload {
    upload_id: String,
    etags: Vec<String>,
}

impl<'a> ObjectWriter<'a> {
    fn new(store: &'a ObjectStore, id: VideoId, part_size: u64, slot: UploadSlot) -> Self {
        Self {
            store,
            id,
            key: keys::original(id),
            part: PartBuffer::new(part_size),
            multipart: None,
            size: 0,
            slot: Some(slot),
        }
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn write(&mut self, mut data: &[u8], content_type: &str) -> Result<(), ApiError> {
        if let Some(slot) = &mut self.slot {
            slot.keep();
        }
        self.size += data.len() as u64;
        while !data.is_empty() {
            data = self.part.fill(data);
            if self.part.is_full() {
                self.send_part(content_type).await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, content_type: &str) -> Result<(), ApiError> {
        if self.multipart.is_none() {
            let upload_id = self.store.start_multipart(&self.key, content_type).await?;
            // Noted before any part is sent; a connection only for this.
            let noted = crate::db::open()
                .and_then(|db| db.execute(&metadata::track_streamed_upload(self.id, &upload_id)));
            if let Err(error) = noted {
                let _ = self.store.abort_multipart(&self.key, &upload_id).await;
                return Err(error);
            }
            self.multipart = Some(MultipartUpload {
                upload_id,
                etags: Vec::new(),
            });
        }
        let upload = self.multipart.as_mut().expect("started above");
        let number = u16::try_from(upload.etags.len() + 1)
            .map_err(|_| StorageError::BadResponse("too many parts".into()))?;
        let part = self.part.take();
        let etag = self
            .store
            .upload_part(&self.key, &upload.upload_id, number, part)
            .await?;
        upload.etags.push(etag);
        Ok(())
    }

    async fn finish(&mut self, content_type: &str) -> Result<(), ApiError> {
        match &self.multipart {
            None => {
                let body = self.part.take();
                self.store.put(&self.key, body, content_type).await?;
            }
            Some(_) => {
                if !self.part.is_empty() {
                    self.send_part(content_type).await?;
                }
                let upload = self.multipart.as_ref().expect("checked above");
                self.store
                    .complete_multipart(&self.key, &upload.upload_id, &upload.etags)
                    .await?;
                untrack(&upload.upload_id);
            }
        }
        // Nothing is held any more; the row and announcement need no slot.
        self.slot = None;
        Ok(())
    }

    /// Drops whatever was stored so far. Only a multipart upload has left
    /// anything in the store; if aborting it fails, its row stays for the
    /// sweeper.
    async fn discard(&mut self) {
        self.part.clear();
        if let Some(upload) = self.multipart.take()
            && self
                .store
                .abort_multipart(&self.key, &upload.upload_id)
                .await
                .is_ok()
        {
            untrack(&upload.upload_id);
        }
        self.slot = None;
    }
}

/// Forgets a multipart upload that is completed or aborted. If this fails
/// the row stays, and the sweeper's abort of a finished upload is a no-op.
fn untrack(upload_id: &str) {
    let _ =
        crate::db::open().and_then(|db| db.execute(&metadata::untrack_streamed_upload(upload_id)));
}
