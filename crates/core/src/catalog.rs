//! Listing pages: how many, and where the next one starts.

use crate::ApiError;
use crate::keys;
use crate::playback::VideoView;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// Page size when the client does not ask for one.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// The largest page a client may ask for; bounds the work of one request.
pub const MAX_PAGE_SIZE: usize = 100;

/// What one listing request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// How many videos at most.
    pub limit: usize,
    /// The catalog key the page starts after (decoded from the cursor).
    pub start_after: Option<String>,
}

impl PageRequest {
    /// Reads `limit` and `cursor` from a URL query string.
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        let mut page = PageRequest {
            limit: DEFAULT_PAGE_SIZE,
            start_after: None,
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "limit" => {
                    page.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "limit must be a whole number from 1 to {MAX_PAGE_SIZE}, not {value:?}"
                            ))
                        })?;
                }
                "cursor" if !value.is_empty() => page.start_after = Some(decode_cursor(&value)?),
                _ => {}
            }
        }
        Ok(page)
    }
}

/// The opaque cursor a client sends back to get the page after `last_key`.
///
/// Opaque so that clients cannot come to depend on the key layout.
pub fn encode_cursor(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_key)
}

/// The catalog key inside a cursor; a cursor we did not make is a 400.
pub fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::bad_request("cursor is not one this server handed out");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let key = String::from_utf8(bytes).map_err(|_| invalid())?;
    keys::id_of_catalog_entry(&key).ok_or_else(invalid)?;
    Ok(key)
}

/// One page of the catalog, newest first, as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The videos on this page.
    pub videos: Vec<VideoView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VideoId;
    use jiff::Timestamp;

    #[test]
    fn defaults_when_nothing_is_asked() {
        let page = PageRequest::from_query("").unwrap();
        assert_eq!(page.limit, DEFAULT_PAGE_SIZE);
        assert_eq!(page.start_after, None);
    }

    #[test]
    fn bounds_the_page_size() {
        assert_eq!(PageRequest::from_query("limit=100").unwrap().limit, 100);
        for bad in ["limit=0", "limit=101", "limit=-1", "limit=ten", "limit="] {
            assert_eq!(
                PageRequest::from_query(bad).unwrap_err().status,
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn cursors_round_trip() {
        let key = keys::catalog_entry(Timestamp::now(), VideoId::random());
        let query = format!("limit=5&cursor={}", encode_cursor(&key));
        let page = PageRequest::from_query(&query).unwrap();
        assert_eq!(page.start_after.as_deref(), Some(key.as_str()));
        assert_eq!(page.limit, 5);
    }

    #[test]
    fn rejects_forged_cursors() {
        for bad in [
            "!!!",
            &encode_cursor("videos/x/video.json"),
            &encode_cursor("catalog/"),
        ] {
            let err = PageRequest::from_query(&format!("cursor={bad}")).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
        }
    }
}
