//! Reading the catalog: pages of records, newest first, and single records.

use crate::storage::ObjectStore;
use futures::future::join_all;
use xtream_core::catalog::{Page, PageRequest, encode_cursor};
use xtream_core::{ApiError, VideoId, VideoRecord, keys};

/// One page of the catalog.
///
/// One LIST call plus one GET per video on the page, issued concurrently:
/// the cost depends on the page size, never on the catalog's.
pub async fn page(store: &ObjectStore, request: &PageRequest) -> Result<Page, ApiError> {
    let (entries, more) = store
        .list_after(
            keys::CATALOG_PREFIX,
            request.start_after.as_deref(),
            request.limit,
        )
        .await?;
    let ids = entries
        .iter()
        .filter_map(|key| keys::id_of_catalog_entry(key));
    let records = join_all(ids.map(|id| find(store, id))).await;
    let mut videos = Vec::with_capacity(records.len());
    for record in records {
        // An entry whose record is gone (deleted between LIST and GET) is skipped.
        if let Some(record) = record? {
            videos.push(record.into());
        }
    }
    let next_cursor = if more {
        entries.last().map(|key| encode_cursor(key))
    } else {
        None
    };
    Ok(Page {
        videos,
        next_cursor,
    })
}

/// The record of `id`, or a 404.
pub async fn get(store: &ObjectStore, id: VideoId) -> Result<VideoRecord, ApiError> {
    find(store, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no video with id {id}")))
}

async fn find(store: &ObjectStore, id: VideoId) -> Result<Option<VideoRecord>, ApiError> {
    let Some(bytes) = store.get(&keys::record(id)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("the record of {id} is unreadable: {e}")))
}

/// Deletes video `id`: its catalog entry first (it stops being listed), then
/// every object under its prefix, the record last, so a delete cut short
/// can simply be repeated. A 404 when there is no such video.
pub async fn delete(store: &ObjectStore, id: VideoId) -> Result<(), ApiError> {
    let record = get(store, id).await?;
    store
        .delete(&keys::catalog_entry(record.created_at, id))
        .await?;
    let record_key = keys::record(id);
    let objects: Vec<String> = store
        .list_all(&keys::video_prefix(id))
        .await?
        .into_iter()
        .filter(|key| *key != record_key)
        .collect();
    store.delete_many(&objects).await?;
    store.delete(&record_key).await?;
    Ok(())
}
