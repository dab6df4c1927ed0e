//! Resumable uploads (`/api/uploads`): open an S3 multipart upload and hand
//! out presigned part URLs, report what S3 holds, complete or abort. The
//! rules (validation, part plan, expiry, completion) are
//! `xtream_core::resumable`; this is the I/O around them.

use crate::config;
use crate::db::{self, Metadata};
use crate::storage::ObjectStore;
use crate::upload::{Origin, publish};
use futures::StreamExt;
use jiff::Timestamp;
use spin_sdk::http::IncomingRequest;
use xtream_core::resumable::{
    CreatedUpload, MAX_REQUEST_BYTES, NewUpload, PartUrl, UploadSession, UploadStatus,
};
use xtream_core::{ApiError, VideoId, VideoRecord, keys, metadata};

/// Opens a resumable upload from a `POST /api/uploads` request. Everything
/// is validated before S3 is asked for anything.
pub async fn create(
    store: &ObjectStore,
    request: IncomingRequest,
) -> Result<CreatedUpload, ApiError> {
    let body = read_small_body(request).await?;
    let valid = NewUpload::from_json(&body)?.validate(config::upload_limits()?)?;
    let signer = store.part_signer(&config::public_endpoint()?)?;
    let id = VideoId::random();
    let original = keys::original(id);
    let s3_upload_id = store
        .start_multipart(&original, &valid.content_type)
        .await?;
    let now = Timestamp::now();
    let session = UploadSession::open(valid, id, s3_upload_id, now);
    let saved = db::open().and_then(|db| db.execute(&metadata::insert_session(&session)));
    if let Err(error) = saved {
        // Without its session nobody can complete or abort the upload.
        let _ = store
            .abort_multipart(&original, &session.s3_upload_id)
            .await;
        return Err(error);
    }
    let ttl = session.url_lifetime(now);
    let parts = (1..=session.part_count())
        .map(|number| PartUrl {
            number,
            url: signer.part_url(&original, &session.s3_upload_id, number, ttl),
        })
        .collect();
    Ok(CreatedUpload {
        id,
        size: session.size,
        part_size: session.part_size,
        parts,
        expires_at: session.expires_at,
    })
}

/// What S3 holds of upload `id`, and fresh URLs for the parts it lacks.
pub async fn status(store: &ObjectStore, id: VideoId) -> Result<UploadStatus, ApiError> {
    let session = load_session(&db::open()?, id)?;
    let now = Timestamp::now();
    session.check_open(now)?;
    let original = keys::original(id);
    let stored = store
        .list_parts(&original, &session.s3_upload_id)
        .await?
        .ok_or_else(|| not_open(id))?;
    let progress = session.progress(&stored);
    let signer = store.part_signer(&config::public_endpoint()?)?;
    let ttl = session.url_lifetime(now);
    let parts = progress
        .missing
        .iter()
        .map(|&number| PartUrl {
            number,
            url: signer.part_url(&original, &session.s3_upload_id, number, ttl),
        })
        .collect();
    Ok(UploadStatus {
        id,
        size: session.size,
        part_size: session.part_size,
        part_count: session.part_count(),
        parts_done: progress.done,
        bytes_done: progress.bytes_done,
        parts,
        expires_at: session.expires_at,
    })
}

/// Completes upload `id`: S3 assembles the parts it lists (their ETags
/// are S3's, never the client's), then the video is recorded, listed and
/// announced through the same path as a streamed upload, and the session
/// closed in the same statement.
///
/// Repeating a completion is safe: once the video exists, it is returned;
/// if S3 already assembled the original but the row was not written (the
/// database failed), the row is written now.
pub async fn complete(store: &ObjectStore, id: VideoId) -> Result<VideoRecord, ApiError> {
    let db = db::open()?;
    if let Some(record) = db.record(id)? {
        return Ok(record);
    }
    let session = load_session(&db, id)?;
    // Nothing below needs the database until the record is published,
    // which opens its own connection.
    drop(db);
    session.check_open(Timestamp::now())?;
    let original = keys::original(id);
    match store.list_parts(&original, &session.s3_upload_id).await? {
        Some(stored) => {
            let etags = session.completion(&stored)?;
            store
                .complete_multipart(&original, &session.s3_upload_id, &etags)
                .await?;
        }
        // An earlier completion got as far as assembling the original.
        None if store.size(&original).await? == Some(session.size) => {}
        None => return Err(not_open(id)),
    }
    let record = session.record(Timestamp::now());
    // A row that could not be written leaves the session and the assembled
    // original in place, so the client's retry completes it.
    Ok(publish(record, Origin::Resumable).await?)
}

/// Aborts upload `id`: S3 frees its parts and the session is removed.
pub async fn abort(store: &ObjectStore, id: VideoId) -> Result<(), ApiError> {
    let db = db::open()?;
    let session = load_session(&db, id)?;
    store
        .abort_multipart(&keys::original(id), &session.s3_upload_id)
        .await?;
    db.execute(&metadata::delete_session(id))?;
    Ok(())
}

fn load_session(db: &Metadata, id: VideoId) -> Result<UploadSession, ApiError> {
    let rows = db.rows(&metadata::select_session(id))?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found(format!("no open upload with id {id}")))?;
    metadata::decode_session(&db::text(row, 0)?)
}

fn not_open(id: VideoId) -> ApiError {
    ApiError::not_found(format!(
        "upload {id} is no longer open (it was completed, aborted or swept)"
    ))
}

/// The whole body of a request that should be small; a 400 beyond
/// [`MAX_REQUEST_BYTES`], so a mistaken client cannot make us buffer a file.
async fn read_small_body(request: IncomingRequest) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    let mut stream = request.into_body_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("the request body was cut short: {e:?}")))?;
        if body.len() + chunk.len() > MAX_REQUEST_BYTES {
            return Err(ApiError::bad_request(format!(
                "the request body is larger than {MAX_REQUEST_BYTES} bytes; \
                 send the upload's description as JSON, not the file"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
