//! Receiving an upload: the request body is streamed into the bucket part by
//! part, and the record is written only once the original is whole.

use crate::http::{header, path_and_query};
use crate::storage::{ObjectStore, StorageError};
use futures::StreamExt;
use spin_sdk::http::IncomingRequest;
use xtream_core::config::UploadLimits;
use xtream_core::multipart::{Event, MultipartParser};
use xtream_core::upload::{self, ByteBudget, UploadForm};
use xtream_core::{ApiError, VideoId, VideoRecord, keys};

/// The form field holding the video, as the original Xtream named it.
const VIDEO_FIELD: &str = "video";
/// The optional form field holding the title.
const TITLE_FIELD: &str = "title";
/// More than enough for a 200-character title in any script.
const MAX_TITLE_FIELD_BYTES: usize = 4 * upload::MAX_TITLE_CHARS;

/// Streams an upload request into the store and records it.
///
/// Nothing becomes visible unless everything succeeded: the record (and its
/// catalog entry) is written after the original, and a failed original is
/// aborted or deleted.
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
    let mut original = ObjectWriter::new(store, keys::original(id), limits.part_size());
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
        return Err(error.into());
    }
    let record = VideoRecord::uploaded(
        id,
        received.title,
        received.filename,
        size,
        received.content_type,
        jiff::Timestamp::now(),
    );
    match publish(store, record).await {
        Ok(record) => Ok(record),
        Err(PublishError::NotRecorded(error)) => {
            // Best effort: without a record the original is unreachable anyway.
            let _ = store.delete(&keys::original(id)).await;
            Err(error)
        }
        Err(PublishError::NotQueued(error)) => Err(error),
    }
}

/// Why [`publish`] failed.
#[derive(Debug)]
pub enum PublishError {
    /// The record or its catalog entry could not be written: the video is
    /// not listed, and the caller decides what becomes of its original.
    NotRecorded(ApiError),
    /// The video is stored and listed, but its event could not be
    /// published; the record says so and the worker's reconciler will
    /// publish it. The error is the 503 to answer.
    NotQueued(ApiError),
}

impl From<PublishError> for ApiError {
    fn from(failure: PublishError) -> Self {
        match failure {
            PublishError::NotRecorded(error) | PublishError::NotQueued(error) => error,
        }
    }
}

/// The one path from "an original is stored" to a video: write its record,
/// then its catalog entry, then announce `video.uploaded`. Used by streamed
/// uploads and by completed resumable uploads alike.
pub async fn publish(
    store: &ObjectStore,
    record: VideoRecord,
) -> Result<VideoRecord, PublishError> {
    save_record(store, &record)
        .await
        .map_err(PublishError::NotRecorded)?;
    if let Err(error) = crate::announce::upload(&record).await {
        return Err(PublishError::NotQueued(
            not_yet_queued(store, record, error).await,
        ));
    }
    Ok(record)
}

/// The upload is stored but its event could not be published. The video is
/// kept (the worker's reconciler re-publishes records left in `uploaded`),
/// the record says what happened, and the client hears a 503 naming the id.
async fn not_yet_queued(store: &ObjectStore, mut record: VideoRecord, error: ApiError) -> ApiError {
    record.status_detail = Some(format!(
        "stored, but not yet queued for transcoding ({}); it will be queued automatically",
        error.message
    ));
    if let Ok(json) = serde_json::to_vec(&record) {
        // If this fails too, the record simply lacks the explanation.
        let _ = store
            .put(&keys::record(record.id), json, "application/json")
            .await;
    }
    ApiError::queue_unavailable(format!(
        "video {} was stored but could not be queued for transcoding: {}; \
         it will be queued automatically",
        record.id, error.message
    ))
}

/// Writes the record, then its catalog entry: a catalog entry never points
/// at a record that does not exist.
async fn save_record(store: &ObjectStore, record: &VideoRecord) -> Result<(), ApiError> {
    let json = serde_json::to_vec(record)
        .map_err(|e| ApiError::internal(format!("cannot encode record: {e}")))?;
    store
        .put(&keys::record(record.id), json, "application/json")
        .await?;
    store
        .put(
            &keys::catalog_entry(record.created_at, record.id),
            Vec::new(),
            "application/octet-stream",
        )
        .await?;
    Ok(())
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

/// Writes one object from a stream of chunks, holding at most one part in
/// memory: small objects become one PUT, larger ones a multipart upload.
struct ObjectWriter<'a> {
    store: &'a ObjectStore,
    key: String,
    part_size: usize,
    pending: Vec<u8>,
    multipart: Option<MultipartUpload>,
    size: u64,
}

struct MultipartUpload {
    upload_id: String,
    etags: Vec<String>,
}

impl<'a> ObjectWriter<'a> {
    fn new(store: &'a ObjectStore, key: String, part_size: u64) -> Self {
        Self {
            store,
            key,
            part_size: usize::try_from(part_size).unwrap_or(usize::MAX),
            pending: Vec::new(),
            multipart: None,
            size: 0,
        }
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn write(&mut self, mut data: &[u8], content_type: &str) -> Result<(), StorageError> {
        self.size += data.len() as u64;
        while !data.is_empty() {
            let room = self.part_size - self.pending.len();
            let (now, later) = data.split_at(room.min(data.len()));
            self.pending.extend_from_slice(now);
            data = later;
            if self.pending.len() == self.part_size {
                self.send_part(content_type).await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, content_type: &str) -> Result<(), StorageError> {
        if self.multipart.is_none() {
            let upload_id = self.store.start_multipart(&self.key, content_type).await?;
            self.multipart = Some(MultipartUpload {
                upload_id,
                etags: Vec::new(),
            });
        }
        let upload = self.multipart.as_mut().expect("started above");
        let number = u16::try_from(upload.etags.len() + 1)
            .map_err(|_| StorageError::BadResponse("too many parts".into()))?;
        let part = std::mem::replace(&mut self.pending, Vec::with_capacity(self.part_size));
        let etag = self
            .store
            .upload_part(&self.key, &upload.upload_id, number, part)
            .await?;
        upload.etags.push(etag);
        Ok(())
    }

    async fn finish(&mut self, content_type: &str) -> Result<(), StorageError> {
        match &self.multipart {
            None => {
                let body = std::mem::take(&mut self.pending);
                self.store.put(&self.key, body, content_type).await
            }
            Some(_) => {
                if !self.pending.is_empty() {
                    self.send_part(content_type).await?;
                }
                let upload = self.multipart.as_ref().expect("checked above");
                self.store
                    .complete_multipart(&self.key, &upload.upload_id, &upload.etags)
                    .await
            }
        }
    }

    /// Drops whatever was stored so far. Only a multipart upload has left
    /// anything in the store; aborting it is best effort, since its parts are
    /// invisible and a bucket lifecycle rule can expire them.
    async fn discard(&mut self) {
        self.pending = Vec::new();
        if let Some(upload) = self.multipart.take() {
            let _ = self
                .store
                .abort_multipart(&self.key, &upload.upload_id)
                .await;
        }
    }
}
