//! A listing page as the API returns it. Which videos are on it is decided
//! by [`crate::metadata::ListQuery`], one SQL query whatever the catalog's
//! size.

use crate::metadata::encode_cursor;
use crate::playback::VideoView;
use crate::{ApiError, VideoRecord};
use serde::Serialize;

pub use crate::metadata::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// One page of the catalog, newest first, as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The videos on this page.
    pub videos: Vec<VideoView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl Page {
    /// The page made of the rows `(record json, position)` of a
    /// [`crate::metadata::ListQuery`] asking for `limit` videos: the query
    /// fetched one row more than the page holds, to tell whether a next
    /// page exists without counting.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (String, i64)>,
        limit: usize,
    ) -> Result<Self, ApiError> {
        let mut videos = Vec::with_capacity(limit);
        let mut last_position = None;
        let mut more = false;
        for (json, position) in rows {
            if videos.len() == limit {
                more = true;
                break;
            }
            let record: VideoRecord = crate::metadata::decode_record(&json)?;
            videos.push(VideoView::from(record));
            last_position = Some(position);
        }
        Ok(Page {
            videos,
            next_cursor: last_position.filter(|_| more).map(encode_cursor),
        })
    }
}

/// One JSON array written in pieces: the whole catalog as the original
/// `GET /videos` answered it, sent page by page so that neither side holds
/// it all.
#[derive(Debug, Default)]
pub struct ArrayWriter {
    started: bool,
}

impl ArrayWriter {
    /// The opening bracket.
    pub fn open(&self) -> &'static [u8] {
        b"["
    }

    /// The next `items`, each after a comma unless it is the first of all.
    pub fn items<T: Serialize>(&mut self, items: &[T]) -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::new();
        for item in items {
            if self.started {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, item)
                .map_err(|e| ApiError::internal(format!("cannot encode a video: {e}")))?;
            self.started = true;
        }
        Ok(out)
    }

    /// The closing bracket.
    pub fn close(&self) -> &'static [u8] {
        b"]"
    }
}

/// The key under which a replica keeps its own copy of the whole
/// catalog's array in its key-value store.
pub const REPLICA_COPY_KEY: &str = "whole-catalog";

/// A replica's copy of the whole catalog's array as its key-value store
/// keeps it: the array's bytes, then the digest the database gave them.
/// The digest goes last so that taking the array out is a truncation, not
/// a copy of a megabyte.
pub fn seal_replica_copy(array: &[u8], digest: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(array.len() + digest.len());
    value.extend_from_slice(array);
    value.extend_from_slice(digest.as_bytes());
    value
}

/// The array in `value` ([`seal_replica_copy`]) if it is the one whose
/// digest is `digest`, the database's current one; `None` for a copy of
/// any other array.
pub fn open_replica_copy(mut value: Vec<u8>, digest: &str) -> Option<Vec<u8>> {
    if digest.is_empty() || !value.ends_with(digest.as_bytes()) {
        return None;
    }
    value.truncate(value.len() - digest.len());
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VideoId;
    use crate::metadata::{ListQuery, decode_cursor};

    #[test]
    fn an_array_written_in_pieces_is_one_array() {
        for pages in [
            vec![],
            vec![vec![]],
            vec![vec![1], vec![], vec![2, 3], vec![4]],
        ] {
            let mut writer = ArrayWriter::default();
            let mut bytes = writer.open().to_vec();
            for page in &pages {
                bytes.extend(writer.items(page).unwrap());
            }
            bytes.extend(writer.close());
            let parsed: Vec<i32> = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(parsed, pages.concat());
        }
    }

    fn row(position: i64) -> (String, i64) {
        let json = serde_json::json!({
            "id": VideoId::random(), "title": "t", "filename": "t.mp4", "size": 1,
            "content_type": "video/mp4", "status": "ready",
            "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
            "renditions": []
        });
        (json.to_string(), position)
    }

    #[test]
    fn a_full_page_points_at_the_next() {
        let page = Page::from_rows([row(9), row(8), row(7)], 2).unwrap();
        assert_eq!(page.videos.len(), 2);
        let cursor = page.next_cursor.expect("a next page");
        assert_eq!(decode_cursor(&cursor).unwrap(), 8);
        let next = ListQuery::from_query(&format!("cursor={cursor}")).unwrap();
        assert_eq!(next.before_position, Some(8));
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let page = Page::from_rows([row(2), row(1)], 2).unwrap();
        assert_eq!(page.videos.len(), 2);
        assert_eq!(page.next_cursor, None);
        assert!(Page::from_rows([], 20).unwrap().videos.is_empty());
    }

    #[test]
    fn an_unreadable_row_is_an_error_not_a_panic() {
        let err = Page::from_rows([("{}".to_owned(), 1)], 20).unwrap_err();
        assert_eq!(err.status, 500);
    }

    #[test]
    fn a_replica_copy_opens_only_with_the_digest_it_was_sealed_with() {
        let array = br#"[{"id":"a"}]"#;
        let sealed = seal_replica_copy(array, "9f86d0");
        assert_eq!(
            open_replica_copy(sealed.clone(), "9f86d0").as_deref(),
            Some(&array[..])
        );
        assert_eq!(open_replica_copy(sealed.clone(), "9f86d1"), None);
        assert_eq!(open_replica_copy(sealed, ""), None);
        assert_eq!(open_replica_copy(b"d0".to_vec(), "9f86d0"), None);
        // An empty catalog's array is a copy like any other.
        assert_eq!(
            open_replica_copy(seal_replica_copy(b"[]", "e3b0"), "e3b0").as_deref(),
            Some(&b"[]"[..])
        );
    }
}
