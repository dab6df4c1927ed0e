//! Reading and deleting videos: pages newest first, single records, delete.

use crate::db::{self, Metadata};
use crate::http::respond_error;
use crate::storage::ObjectStore;
use futures::SinkExt;
use spin_sdk::http::{Fields, OutgoingResponse, ResponseOutparam};
use xtream_core::catalog::{ArrayWriter, Page};
use xtream_core::metadata::{self, ListQuery};
use xtream_core::{ApiError, VideoId, VideoRecord, keys};

/// One page of videos: one indexed query, whatever the catalog's size.
pub fn page(db: &Metadata, query: &ListQuery) -> Result<Page, ApiError> {
    let rows = db.rows(&query.statement())?;
    let rows = rows
        .iter()
        .map(|row| Ok((db::text(row, 0)?, db::int64(row, 1)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    Page::from_rows(rows, query.limit)
}

/// Answers every video `query` matches (its `limit` is the page size used
/// underneath) as one JSON array, written page by page: the original
/// `GET /videos` listed everything, and a catalog of any size must neither
/// be cut at a page nor be held in memory. A failure before the first byte
/// is an error answer; one later ends the body without its closing
/// bracket, so the client sees an incomplete array rather than a short one.
pub async fn respond_all(out: ResponseOutparam, mut query: ListQuery) {
    let first = db::open().and_then(|db| Ok((page(&db, &query)?, db)));
    let (mut current, db) = match first {
        Ok(opened) => opened,
        Err(error) => return respond_error(out, &error).await,
    };
    let headers = Fields::from_list(&[("content-type".to_owned(), b"application/json".to_vec())])
        .expect("a valid header");
    let response = OutgoingResponse::new(headers);
    let mut sink = response.take_body();
    out.set(response);
    let mut array = ArrayWriter::default();
    if sink.send(array.open().to_vec()).await.is_err() {
        return;
    }
    loop {
        let chunk = match array.items(&current.videos) {
            Ok(chunk) => chunk,
            Err(error) => return eprintln!("listing stopped: {}", error.message),
        };
        if sink.send(chunk).await.is_err() {
            return; // the client went away
        }
        let Some(cursor) = current.next_cursor.take() else {
            break;
        };
        let next = metadata::decode_cursor(&cursor).and_then(|position| {
            query.before_position = Some(position);
            page(&db, &query)
        });
        current = match next {
            Ok(next) => next,
            Err(error) => return eprintln!("listing stopped after a page: {}", error.message),
        };
    }
    let _ = sink.send(array.close().to_vec()).await;
}

/// The record of `id`, or a 404.
pub fn get(db: &Metadata, id: VideoId) -> Result<VideoRecord, ApiError> {
    db.record(id)?
        .ok_or_else(|| ApiError::not_found(format!("no video with id {id}")))
}

/// Deletes video `id`; a 404 when there is no such video.
///
/// The row goes first, in the statement that records the deletion: from
/// then on the video is neither listed nor served, and a worker still
/// transcoding it fails its final write and removes what it uploaded.
/// Then every object under the video's prefix is deleted and the deletion
/// marked finished. If the objects cannot all be deleted now, the video is
/// still gone for every client, and the worker's sweeper finishes the job.
pub async fn delete(store: &ObjectStore, db: &Metadata, id: VideoId) -> Result<(), ApiError> {
    if db.rows(&metadata::delete_video(id))?.is_empty() {
        return Err(ApiError::not_found(format!("no video with id {id}")));
    }
    let removed = async {
        let objects = store.list_all(&keys::video_prefix(id)).await?;
        store.delete_many(&objects).await?;
        db.execute(&metadata::finish_deletion(id))?;
        Ok::<(), ApiError>(())
    };
    if let Err(error) = removed.await {
        eprintln!("video {id} deleted; its objects are left to the sweeper: {error}");
    }
    Ok(())
}
