//! Streaming media from the bucket to the client: bytes flow through in
//! chunks as S3 sends them, never held whole; `Range` and `If-None-Match`
//! are answered by S3 itself (206, 304, 416) and relayed.

use crate::catalog;
use crate::http::{header, respond_error};
use crate::storage::ObjectStore;
use futures::{SinkExt, StreamExt};
use spin_sdk::http::{
    Fields, IncomingRequest, IncomingResponse, OutgoingResponse, ResponseOutparam,
};
use xtream_core::playback::{MediaKind, MediaObject, attachment, not_ready};
use xtream_core::range::ByteRange;
use xtream_core::{ApiError, VideoStatus};

/// Headers of the stored object worth passing on to the client.
const RELAYED_HEADERS: [&str; 4] = ["content-length", "content-range", "etag", "last-modified"];

/// Serves `object` to the client of `request`.
pub async fn serve(
    store: &ObjectStore,
    request: &IncomingRequest,
    out: ResponseOutparam,
    object: MediaObject,
) {
    let opened = match open(store, request, &object).await {
        Ok(opened) => opened,
        Err(error) => return respond_error(out, &error).await,
    };
    let mut sink = opened.response.take_body();
    out.set(opened.response);
    if !opened.has_body {
        return;
    }
    // The status is sent: a failure from here can only cut the body short,
    // which the client sees as a truncated transfer.
    let mut body = opened.stored.take_body_stream();
    while let Some(Ok(chunk)) = body.next().await {
        if sink.send(chunk).await.is_err() {
            break;
        }
    }
}

/// A response ready to send, and the store's response its body comes from
/// (kept alive while streaming: dropping it cancels the transfer).
struct Opened {
    response: OutgoingResponse,
    stored: IncomingResponse,
    has_body: bool,
}

async fn open(
    store: &ObjectStore,
    request: &IncomingRequest,
    object: &MediaObject,
) -> Result<Opened, ApiError> {
    let mut content_type = object.kind.content_type(&object.key).to_owned();
    let mut disposition = None;
    // Every media request reads the (small) record first: it decides 404
    // and 409, and names the original's type and file name.
    let record = catalog::get(&crate::db::open()?, object.id)?;
    if !object.kind.servable(&record) {
        return Err(not_ready(&record));
    }
    if object.kind == MediaKind::Original {
        content_type = record.content_type.clone();
        disposition = Some(attachment(&record.filename));
    }

    let head_only = request.method().to_string() == "HEAD";
    let range = header(request, "range")
        .as_deref()
        .and_then(ByteRange::parse)
        .map(ByteRange::to_header);
    let if_none_match = header(request, "if-none-match");
    let Some(stored) = store
        .open(
            head_only,
            &object.key,
            range.as_deref(),
            if_none_match.as_deref(),
        )
        .await?
    else {
        return Err(ApiError::not_found(format!(
            "video {} has no such file",
            object.id
        )));
    };

    let status = stored.status();
    if status == 416 {
        return Err(ApiError::range_not_satisfiable());
    }
    let stored_headers = stored.headers();
    let mut headers: Vec<(String, Vec<u8>)> = RELAYED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = stored_headers.get(name).into_iter().next()?;
            Some(((*name).to_owned(), value))
        })
        .collect();
    headers.push(("accept-ranges".into(), b"bytes".to_vec()));
    headers.push((
        "cache-control".into(),
        object
            .kind
            .cache_control(record.status == VideoStatus::Ready)
            .as_bytes()
            .to_vec(),
    ));
    if status != 304 {
        headers.push(("content-type".into(), content_type.into_bytes()));
    }
    if let Some(disposition) = disposition {
        headers.push(("content-disposition".into(), disposition.into_bytes()));
    }
    let fields = Fields::from_list(&headers)
        .map_err(|e| ApiError::internal(format!("bad response header: {e:?}")))?;
    let response = OutgoingResponse::new(fields);
    response
        .set_status_code(status)
        .map_err(|()| ApiError::internal(format!("bad status {status} from storage")))?;
    Ok(Opened {
        response,
        stored,
        has_body: !head_only && status != 304,
    })
}
