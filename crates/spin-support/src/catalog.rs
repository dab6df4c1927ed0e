//! Reading and deleting videos: pages newest first, single records, delete.

use crate::db::{self, Metadata};
use crate::storage::ObjectStore;
use xtream_core::catalog::Page;
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
