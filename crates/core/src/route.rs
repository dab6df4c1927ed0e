//! Which operation a request asks for, per component.
//!
//! Spin routes by path only, so each component still has to tell
//! `GET /api/videos` from `POST /api/videos` and answer 405 for the rest.
//! Paths arrive whole (Spin passes the full original path).

use crate::auth::Access;
use crate::playback::{MediaObject, media_object};
use crate::{ApiError, VideoId};

/// Operations of the `videos` component (`/api/videos/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiRoute {
    /// `GET /api/videos`
    ListVideos,
    /// `POST /api/videos`
    UploadVideo,
    /// `GET /api/videos/{id}`
    GetVideo(VideoId),
    /// `DELETE /api/videos/{id}`
    DeleteVideo(VideoId),
}

impl ApiRoute {
    /// Whether the operation reads or writes.
    pub fn access(self) -> Access {
        match self {
            ApiRoute::ListVideos | ApiRoute::GetVideo(_) => Access::Read,
            ApiRoute::UploadVideo | ApiRoute::DeleteVideo(_) => Access::Write,
        }
    }
}

/// Routes a request of the `videos` component.
pub fn api_route(method: &str, path: &str) -> Result<ApiRoute, ApiError> {
    let rest = path
        .strip_prefix("/api/videos")
        .ok_or_else(|| unknown(path))?;
    match rest.trim_end_matches('/') {
        "" => match method {
            "GET" | "HEAD" => Ok(ApiRoute::ListVideos),
            "POST" => Ok(ApiRoute::UploadVideo),
            _ => Err(ApiError::method_not_allowed(method, &["GET", "POST"])),
        },
        id => {
            let id = video_id(id.strip_prefix('/').ok_or_else(|| unknown(path))?)?;
            match method {
                "GET" | "HEAD" => Ok(ApiRoute::GetVideo(id)),
                "DELETE" => Ok(ApiRoute::DeleteVideo(id)),
                _ => Err(ApiError::method_not_allowed(method, &["GET", "DELETE"])),
            }
        }
    }
}

/// Operations of the `uploads` component (`/api/uploads/...`): resumable
/// uploads. Every one of them writes (or reveals an upload in progress),
/// so all need an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadsRoute {
    /// `POST /api/uploads`
    Create,
    /// `GET /api/uploads/{id}`
    Status(VideoId),
    /// `POST /api/uploads/{id}/complete`
    Complete(VideoId),
    /// `DELETE /api/uploads/{id}`
    Abort(VideoId),
}

/// Routes a request of the `uploads` component.
pub fn uploads_route(method: &str, path: &str) -> Result<UploadsRoute, ApiError> {
    let rest = path
        .strip_prefix("/api/uploads")
        .ok_or_else(|| unknown(path))?
        .trim_end_matches('/');
    if rest.is_empty() {
        return match method {
            "POST" => Ok(UploadsRoute::Create),
            _ => Err(ApiError::method_not_allowed(method, &["POST"])),
        };
    }
    let rest = rest.strip_prefix('/').ok_or_else(|| unknown(path))?;
    let (id, action) = match rest.split_once('/') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    };
    let id: VideoId = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no upload with id {id:?}")))?;
    match (action, method) {
        (None, "GET" | "HEAD") => Ok(UploadsRoute::Status(id)),
        (None, "DELETE") => Ok(UploadsRoute::Abort(id)),
        (None, _) => Err(ApiError::method_not_allowed(method, &["GET", "DELETE"])),
        (Some("complete"), "POST") => Ok(UploadsRoute::Complete(id)),
        (Some("complete"), _) => Err(ApiError::method_not_allowed(method, &["POST"])),
        (Some(_), _) => Err(unknown(path)),
    }
}

/// Routes a request of the `stream` component
/// (`/api/videos/{id}/hls/...`, `/thumbnail.jpg`, `/storyboard.vtt`,
/// `/storyboard.jpg`, `/original`) to the media object it names.
pub fn stream_route(method: &str, path: &str) -> Result<MediaObject, ApiError> {
    let rest = path
        .strip_prefix("/api/videos/")
        .ok_or_else(|| unknown(path))?;
    let (id, media) = rest.split_once('/').ok_or_else(|| unknown(path))?;
    let object = media_object(video_id(id)?, media)?;
    only_get(method)?;
    Ok(object)
}

/// Operations of the original Xtream API, kept for its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyRoute {
    /// `POST /upload` (multipart field `video`)
    Upload,
    /// `GET /videos`
    List,
    /// `GET /video/{id}`
    Get(VideoId),
}

impl LegacyRoute {
    /// Whether the operation reads or writes: `POST /upload` follows the
    /// same rule as `POST /api/videos`.
    pub fn access(self) -> Access {
        match self {
            LegacyRoute::Upload => Access::Write,
            LegacyRoute::List | LegacyRoute::Get(_) => Access::Read,
        }
    }
}

/// Routes a request of the `legacy` component.
pub fn legacy_route(method: &str, path: &str) -> Result<LegacyRoute, ApiError> {
    let path = path.trim_end_matches('/');
    if path == "/upload" {
        return match method {
            "POST" => Ok(LegacyRoute::Upload),
            _ => Err(ApiError::method_not_allowed(method, &["POST"])),
        };
    }
    if path == "/videos" {
        only_get(method)?;
        return Ok(LegacyRoute::List);
    }
    if let Some(id) = path.strip_prefix("/video/") {
        let id = video_id(id)?;
        only_get(method)?;
        return Ok(LegacyRoute::Get(id));
    }
    Err(unknown(path))
}

/// Operations of the `health` component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthRoute {
    /// `GET /health`: the process answers.
    Live,
    /// `GET /health/ready`: storage is reachable too.
    Ready,
}

/// Routes a request of the `health` component.
pub fn health_route(method: &str, path: &str) -> Result<HealthRoute, ApiError> {
    let route = match path.trim_end_matches('/') {
        "/health" => HealthRoute::Live,
        "/health/ready" => HealthRoute::Ready,
        _ => return Err(unknown(path)),
    };
    only_get(method)?;
    Ok(route)
}

fn only_get(method: &str) -> Result<(), ApiError> {
    match method {
        "GET" | "HEAD" => Ok(()),
        _ => Err(ApiError::method_not_allowed(method, &["GET"])),
    }
}

fn video_id(text: &str) -> Result<VideoId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no video with id {text:?}")))
}

fn unknown(path: &str) -> ApiError {
    ApiError::not_found(format!("no route for {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_listing_from_uploading_and_getting() {
        let id = VideoId::random();
        assert_eq!(api_route("GET", "/api/videos"), Ok(ApiRoute::ListVideos));
        assert_eq!(api_route("GET", "/api/videos/"), Ok(ApiRoute::ListVideos));
        assert_eq!(api_route("POST", "/api/videos"), Ok(ApiRoute::UploadVideo));
        assert_eq!(
            api_route("GET", &format!("/api/videos/{id}")),
            Ok(ApiRoute::GetVideo(id))
        );
    }

    #[test]
    fn deletes_one_video_with_a_key() {
        let id = VideoId::random();
        let route = api_route("DELETE", &format!("/api/videos/{id}")).unwrap();
        assert_eq!(route, ApiRoute::DeleteVideo(id));
        assert_eq!(route.access(), Access::Write);
        assert_eq!(ApiRoute::UploadVideo.access(), Access::Write);
        assert_eq!(ApiRoute::ListVideos.access(), Access::Read);
        assert_eq!(LegacyRoute::Upload.access(), Access::Write);
        assert_eq!(LegacyRoute::List.access(), Access::Read);
    }

    #[test]
    fn routes_resumable_uploads() {
        let id = VideoId::random();
        let at = |method, path: &str| uploads_route(method, path);
        assert_eq!(at("POST", "/api/uploads"), Ok(UploadsRoute::Create));
        assert_eq!(at("POST", "/api/uploads/"), Ok(UploadsRoute::Create));
        assert_eq!(
            at("GET", &format!("/api/uploads/{id}")),
            Ok(UploadsRoute::Status(id))
        );
        assert_eq!(
            at("DELETE", &format!("/api/uploads/{id}")),
            Ok(UploadsRoute::Abort(id))
        );
        assert_eq!(
            at("POST", &format!("/api/uploads/{id}/complete")),
            Ok(UploadsRoute::Complete(id))
        );
        assert_eq!(at("GET", "/api/uploads").unwrap_err().status, 405);
        assert_eq!(
            at("PUT", &format!("/api/uploads/{id}")).unwrap_err().status,
            405
        );
        assert_eq!(
            at("GET", &format!("/api/uploads/{id}/complete"))
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            at("POST", &format!("/api/uploads/{id}/finish"))
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(at("GET", "/api/uploads/nope").unwrap_err().status, 404);
        assert_eq!(at("POST", "/api/uploadsx").unwrap_err().status, 404);
    }

    #[test]
    fn answers_405_and_404_where_due() {
        let id = VideoId::random();
        assert_eq!(api_route("DELETE", "/api/videos").unwrap_err().status, 405);
        // Each 405 carries the Allow header of its resource.
        let allow = |error: ApiError| error.allow.unwrap_or_default();
        assert_eq!(
            allow(api_route("TRACE", "/api/videos").unwrap_err()),
            "GET, HEAD, POST"
        );
        let one = format!("/api/videos/{id}");
        assert_eq!(
            allow(api_route("PATCH", &one).unwrap_err()),
            "GET, HEAD, DELETE"
        );
        assert_eq!(
            allow(uploads_route("GET", "/api/uploads").unwrap_err()),
            "POST"
        );
        assert_eq!(
            allow(health_route("POST", "/health").unwrap_err()),
            "GET, HEAD"
        );
        let original = format!("/api/videos/{id}/original");
        assert_eq!(
            allow(stream_route("PUT", &original).unwrap_err()),
            "GET, HEAD"
        );
        assert_eq!(
            api_route("PUT", &format!("/api/videos/{id}"))
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            api_route("GET", "/api/videos/nope").unwrap_err().status,
            404
        );
        assert_eq!(
            api_route("GET", "/api/videos/../secrets")
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(api_route("GET", "/api/videosx").unwrap_err().status, 404);
        assert_eq!(
            api_route("GET", &format!("/api/videos/{id}/x"))
                .unwrap_err()
                .status,
            404
        );
    }

    #[test]
    fn keeps_the_original_routes() {
        let id = VideoId::random();
        assert_eq!(legacy_route("POST", "/upload"), Ok(LegacyRoute::Upload));
        assert_eq!(legacy_route("GET", "/videos"), Ok(LegacyRoute::List));
        assert_eq!(
            legacy_route("GET", &format!("/video/{id}")),
            Ok(LegacyRoute::Get(id))
        );
        assert_eq!(legacy_route("GET", "/upload").unwrap_err().status, 405);
        assert_eq!(legacy_route("GET", "/video/42").unwrap_err().status, 404);
    }

    #[test]
    fn streams_only_media_of_valid_ids() {
        let id = VideoId::random();
        let object = stream_route("GET", &format!("/api/videos/{id}/hls/360p/index.m3u8")).unwrap();
        assert_eq!(object.key, format!("videos/{id}/hls/360p/index.m3u8"));
        assert_eq!(
            stream_route("GET", "/api/videos/x/original")
                .unwrap_err()
                .status,
            404
        );
        let traversal = format!("/api/videos/{id}/hls/../../other/original");
        assert_eq!(stream_route("GET", &traversal).unwrap_err().status, 404);
        let post = stream_route("POST", &format!("/api/videos/{id}/original"));
        assert_eq!(post.unwrap_err().status, 405);
    }

    #[test]
    fn health_is_get_only() {
        assert_eq!(health_route("GET", "/health"), Ok(HealthRoute::Live));
        assert_eq!(health_route("GET", "/health/ready"), Ok(HealthRoute::Ready));
        assert_eq!(health_route("POST", "/health").unwrap_err().status, 405);
    }
}
