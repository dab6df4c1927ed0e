//! Reading and deleting videos: pages newest first, single records, delete.

use crate::db::{self, Metadata};
use crate::http::{respond_bytes, respond_error};
use crate::storage::ObjectStore;
use futures::SinkExt;
use spin_sdk::http::{Fields, OutgoingResponse, ResponseOutparam};
use spin_sdk::key_value::Store;
use spin_sdk::pg4::DbValue;
use xtream_core::catalog::{
    ArrayWriter, Page, REPLICA_COPY_KEY, open_replica_copy, seal_replica_copy,
};
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
/// underneath) as one JSON array: the original `GET /videos` listed
/// everything.
///
/// The whole catalog, unfiltered, is answered from the array cached while
/// no video has changed (this replica's copy of the one the database
/// keeps), and otherwise built, answered and cached for the calls after
/// ([`whole_catalog`]). A catalog too big to
/// cache, and any filtered listing, is written page by page: it must
/// neither be cut at a page nor be held in memory. A failure before the
/// first byte is an error answer; one later ends the body without its
/// closing bracket, so the client sees an incomplete array rather than a
/// short one.
pub async fn respond_all(out: ResponseOutparam, mut query: ListQuery) {
    let first = db::open().and_then(|db| {
        let first = if query.is_whole_catalog() {
            whole_catalog(&db)?
        } else {
            Everything::StartsWith(page(&db, &query)?)
        };
        Ok((first, db))
    });
    let (mut current, db) = match first {
        Ok((Everything::Array(body), _)) => {
            return respond_bytes(out, 200, body, &[]).await;
        }
        Ok((Everything::StartsWith(page), db)) => (page, db),
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

/// Every video, as [`respond_all`] starts answering it.
enum Everything {
    /// The whole JSON array.
    Array(Vec<u8>),
    /// Its first page; the rest follows page by page.
    StartsWith(Page),
}

/// The whole catalog: the cached array if no video changed since it was
/// built (this replica's copy when it has it, else the database's); else
/// the array built now (and cached, when nothing was being written
/// meanwhile), or for a catalog too big to cache, its first
/// [`metadata::WHOLE_CATALOG_CACHE_MAX_VIDEOS`] videos.
fn whole_catalog(db: &Metadata) -> Result<Everything, ApiError> {
    let mut current = db.rows(&metadata::whole_catalog_digest())?;
    let Some(mut row) = current.pop() else {
        return Err(ApiError::internal("the catalog has no generation"));
    };
    let generation = db::int64(&row, 0)?;
    if let Some(digest) = db::take_optional_text(&mut row, 1)? {
        if let Some(array) = replica_copy(&digest) {
            return Ok(Everything::Array(array));
        }
        let mut cached = db.rows(&metadata::cached_whole_catalog(&digest))?;
        if let Some(mut row) = cached.pop() {
            let array = db::take_text(&mut row, 0)?.into_bytes();
            keep_replica_copy(&array, &digest);
            return Ok(Everything::Array(array));
        }
        // Replaced by a newer array since: build the current one.
    }
    let limit = metadata::WHOLE_CATALOG_CACHE_MAX_VIDEOS;
    let rows = db.rows(&metadata::whole_catalog_rows(limit))?;
    let (builder, settled) = match rows.first() {
        Some(first) => (db::boolean(first, 0)?, db::boolean(first, 1)?),
        None => return Err(ApiError::internal("the catalog query answered no row")),
    };
    let built = build_whole_catalog(&rows, limit);
    if builder {
        if let Ok(Everything::Array(array)) = &built
            && settled
        {
            // serde_json writes UTF-8: nothing is replaced.
            let array = String::from_utf8_lossy(array).into_owned();
            // Only a later call is slower if this fails.
            let stored = db.execute(&metadata::store_whole_catalog(generation, array));
            if let Err(error) = stored {
                eprintln!("the catalog's array is not cached: {}", error.message);
            }
        }
        if let Err(error) = db.execute(&metadata::release_whole_catalog_builder()) {
            eprintln!(
                "the catalog builder's lock is left to the pool: {}",
                error.message
            );
        }
    }
    built
}

/// This replica's copy of the array whose digest is `digest`, if it has
/// that one. A store that fails only makes the call take the database's.
fn replica_copy(digest: &str) -> Option<Vec<u8>> {
    let kept = Store::open_default().and_then(|store| store.get(REPLICA_COPY_KEY));
    match kept {
        Ok(value) => open_replica_copy(value?, digest),
        Err(error) => {
            eprintln!("the catalog's replica copy cannot be read: {error:?}");
            None
        }
    }
}

/// Keeps `array`, whose digest is `digest`, as this replica's copy.
fn keep_replica_copy(array: &[u8], digest: &str) {
    let kept = Store::open_default()
        .and_then(|store| store.set(REPLICA_COPY_KEY, &seal_replica_copy(array, digest)));
    if let Err(error) = kept {
        eprintln!("the catalog's replica copy is not kept: {error:?}");
    }
}

/// The answer made of [`metadata::whole_catalog_rows`]' rows.
fn build_whole_catalog(rows: &[Vec<DbValue>], limit: usize) -> Result<Everything, ApiError> {
    let mut listed = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(position) = db::optional_int64(row, 3)? {
            listed.push((db::text(row, 2)?, position));
        }
    }
    let everything = Page::from_rows(listed, limit)?;
    if everything.next_cursor.is_some() {
        return Ok(Everything::StartsWith(everything));
    }
    let mut array = ArrayWriter::default();
    let mut body = array.open().to_vec();
    body.extend(array.items(&everything.videos)?);
    body.extend(array.close());
    Ok(Everything::Array(body))
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
