//! Reading requests and writing JSON responses with spin-sdk's streaming
//! types.

use serde::Serialize;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use xtream_core::ApiError;

/// A request header as text, if present and valid UTF-8.
pub fn header(request: &IncomingRequest, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .into_iter()
        .next()
        .and_then(|value| String::from_utf8(value).ok())
}

/// The path and query of a request, split.
pub fn path_and_query(request: &IncomingRequest) -> (String, String) {
    let full = request.path_with_query().unwrap_or_else(|| "/".to_owned());
    match full.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (full, String::new()),
    }
}

/// The request method as its uppercase name.
pub fn method(request: &IncomingRequest) -> String {
    request.method().to_string()
}

/// Answers with `body` as JSON.
pub async fn respond_json(
    out: ResponseOutparam,
    status: u16,
    body: &impl Serialize,
    extra_headers: &[(&str, String)],
) {
    match serde_json::to_vec(body) {
        Ok(bytes) => respond_bytes(out, status, bytes, extra_headers).await,
        Err(e) => {
            respond_error(
                out,
                &ApiError::internal(format!("cannot encode response: {e}")),
            )
            .await
        }
    }
}

/// Answers with an [`ApiError`]'s status and JSON body.
pub async fn respond_error(out: ResponseOutparam, error: &ApiError) {
    let mut headers: Vec<(&str, String)> = Vec::new();
    // RFC 7235: a 401 names the scheme that would be accepted.
    if error.status == 401 {
        headers.push(("www-authenticate", AUTH_CHALLENGE.to_owned()));
    }
    // RFC 9110: a 503 may say when to come back.
    if let Some(seconds) = error.retry_after_seconds {
        headers.push(("retry-after", seconds.to_string()));
    }
    // RFC 9110: a 405 lists the methods the resource takes.
    if let Some(allow) = &error.allow {
        headers.push(("allow", allow.clone()));
    }
    respond_bytes(out, error.status, error.to_json().into_bytes(), &headers).await;
}

/// The `WWW-Authenticate` challenge of every 401.
pub const AUTH_CHALLENGE: &str = "Bearer realm=\"xtream\"";

/// Answers 204 No Content.
pub async fn respond_no_content(out: ResponseOutparam) {
    let headers = [("cache-control".to_owned(), b"no-store".to_vec())];
    let Ok(fields) = Fields::from_list(&headers) else {
        return;
    };
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(204).is_err() {
        return;
    }
    let _ = out.set_with_body(response, Vec::new()).await;
}

/// Answers with `result`: the value as JSON with `status`, or the error.
pub async fn respond(out: ResponseOutparam, status: u16, result: Result<impl Serialize, ApiError>) {
    match result {
        Ok(value) => respond_json(out, status, &value, &[]).await,
        Err(error) => respond_error(out, &error).await,
    }
}

/// Answers with `body`, JSON already encoded.
pub async fn respond_bytes(
    out: ResponseOutparam,
    status: u16,
    body: Vec<u8>,
    extra_headers: &[(&str, String)],
) {
    let mut headers = vec![
        ("content-type".to_owned(), b"application/json".to_vec()),
        (
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ),
        ("cache-control".to_owned(), b"no-store".to_vec()),
    ];
    headers.extend(
        extra_headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone().into_bytes())),
    );
    // Header names and values here are ours and valid; should the host still
    // refuse them, the request fails without a panic in the component.
    let Ok(fields) = Fields::from_list(&headers) else {
        return;
    };
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(status).is_err() {
        return;
    }
    // A client that went away cannot be told anything more.
    let _ = out.set_with_body(response, body).await;
}

/// Answers a newly stored video: 201 with its view and `Location`, or the
/// error.
pub async fn respond_created_video(
    out: ResponseOutparam,
    result: Result<xtream_core::VideoRecord, ApiError>,
) {
    match result {
        Ok(record) => {
            let location = format!("/api/videos/{}", record.id);
            let view = xtream_core::playback::VideoView::from(record);
            respond_json(out, 201, &view, &[("location", location)]).await
        }
        Err(error) => respond_error(out, &error).await,
    }
}
