//! The one error type every HTTP edge speaks.
//!
//! Each variant of failure a client can cause or observe maps to exactly one
//! status code and a stable machine-readable `code`, rendered as
//! `{"error":{"code":"...","message":"..."}}`.

use serde::Serialize;

/// An error answered to an HTTP client: a status, a stable code and a
/// human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code (4xx for the client's mistakes, 5xx for ours or a
    /// dependency's).
    pub status: u16,
    /// Stable identifier clients can branch on, e.g. `unsupported_media_type`.
    pub code: &'static str,
    /// What went wrong, in words a person can act on.
    pub message: String,
    /// When the client may try again, in seconds: sent as `Retry-After`
    /// (only by [`ApiError::busy`]).
    pub retry_after_seconds: Option<u32>,
    /// The methods the resource takes, as the `Allow` header a 405 must
    /// carry (RFC 9110 §15.5.6); set only by [`ApiError::method_not_allowed`].
    pub allow: Option<String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_seconds: None,
            allow: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 401: the request needs an API key and sent none (or a malformed
    /// `Authorization` header). Answered with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    /// 403: the request sent an API key that is not one of ours.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    /// 404: no such video (or route).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 405: the route exists but not for this method; `allowed` lists the
    /// methods that are. Its [`ApiError::allow`] lists them too, with `HEAD`
    /// wherever `GET` is (every route that answers `GET` answers `HEAD`).
    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        let mut allow: Vec<&str> = Vec::with_capacity(allowed.len() + 1);
        for &name in allowed {
            allow.push(name);
            if name == "GET" && !allowed.contains(&"HEAD") {
                allow.push("HEAD");
            }
        }
        Self {
            allow: Some(allow.join(", ")),
            ..Self::new(
                405,
                "method_not_allowed",
                format!("{method} is not allowed here; use {}", allowed.join(", ")),
            )
        }
    }

    /// 409: the request conflicts with the video's state (e.g. playing a
    /// video that is still transcoding).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "not_ready", message)
    }

    /// 409: a resumable upload cannot be completed yet: parts are missing
    /// or do not add up to the declared size.
    pub fn upload_incomplete(message: impl Into<String>) -> Self {
        Self::new(409, "upload_incomplete", message)
    }

    /// 410: a resumable upload outlived its expiry; start a new one.
    pub fn upload_expired(message: impl Into<String>) -> Self {
        Self::new(410, "upload_expired", message)
    }

    /// 411: an upload must declare its size up front.
    pub fn length_required() -> Self {
        Self::new(
            411,
            "length_required",
            "uploads must send a Content-Length header",
        )
    }

    /// 413: the upload is larger than the configured maximum.
    pub fn too_large(max_bytes: u64) -> Self {
        Self::new(
            413,
            "payload_too_large",
            format!("uploads are limited to {max_bytes} bytes"),
        )
    }

    /// 416: the requested byte range lies outside the object.
    pub fn range_not_satisfiable() -> Self {
        Self::new(
            416,
            "range_not_satisfiable",
            "the requested range is outside the file",
        )
    }

    /// 415: the upload is not a video.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "unsupported_media_type", message)
    }

    /// 500: a bug or misconfiguration on our side.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    /// 503: a setting of the platform is missing or malformed, so it is not
    /// ready to serve; the message names the setting and what to fix.
    pub fn misconfigured(message: impl Into<String>) -> Self {
        Self::new(503, "misconfigured", message)
    }

    /// 503: object storage cannot be reached or refused the request.
    pub fn storage_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "storage_unavailable", message)
    }

    /// 503: the metadata database cannot be reached, or refused the
    /// request for a reason that may pass (restarting, overloaded, its
    /// schema not yet migrated).
    pub fn database_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "database_unavailable", message)
    }

    /// 503: the event queue (Kafka, through its HTTP bridge) cannot be
    /// reached.
    pub fn queue_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "queue_unavailable", message)
    }

    /// 503: the platform is at a limit it keeps to stay within its memory
    /// (as many streamed uploads as it takes at once); nothing went wrong,
    /// and the same request will succeed later. Answered with
    /// `Retry-After: retry_after_seconds`.
    pub fn busy(message: impl Into<String>, retry_after_seconds: u32) -> Self {
        Self {
            retry_after_seconds: Some(retry_after_seconds),
            ..Self::new(503, "server_busy", message)
        }
    }

    /// The JSON body: `{"error":{"code":"...","message":"..."}}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
            },
        })
        .expect("serialising two strings cannot fail")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_documented_envelope() {
        let body: serde_json::Value =
            serde_json::from_str(&ApiError::unsupported_media_type("not a \"video\"").to_json())
                .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "unsupported_media_type", "message": "not a \"video\""}})
        );
    }

    #[test]
    fn statuses_match_their_meaning() {
        assert_eq!(ApiError::length_required().status, 411);
        assert_eq!(ApiError::too_large(1).status, 413);
        assert_eq!(ApiError::method_not_allowed("PUT", &["GET"]).status, 405);
        assert_eq!(ApiError::storage_unavailable("down").status, 503);
        assert_eq!(ApiError::database_unavailable("down").status, 503);
        assert_eq!(ApiError::unauthorized("no key").status, 401);
        assert_eq!(ApiError::forbidden("wrong key").status, 403);
        assert_eq!(ApiError::upload_incomplete("parts missing").status, 409);
        assert_eq!(ApiError::upload_expired("too late").status, 410);
    }

    #[test]
    fn a_busy_server_says_when_to_come_back_in_the_usual_envelope() {
        let busy = ApiError::busy("too many uploads at once", 5);
        assert_eq!((busy.status, busy.code), (503, "server_busy"));
        assert_eq!(busy.retry_after_seconds, Some(5));
        let body: serde_json::Value = serde_json::from_str(&busy.to_json()).unwrap();
        assert_eq!(body["error"]["code"], "server_busy");
        assert_eq!(body["error"]["message"], "too many uploads at once");
        assert_eq!(
            ApiError::storage_unavailable("down").retry_after_seconds,
            None
        );
    }

    #[test]
    fn a_405_names_the_methods_allowed_head_wherever_get_is() {
        let refused = ApiError::method_not_allowed("TRACE", &["GET", "POST"]);
        assert_eq!(refused.allow.as_deref(), Some("GET, HEAD, POST"));
        assert_eq!(refused.message, "TRACE is not allowed here; use GET, POST");
        let refused = ApiError::method_not_allowed("PUT", &["POST"]);
        assert_eq!(refused.allow.as_deref(), Some("POST"));
        let refused = ApiError::method_not_allowed("POST", &["GET", "HEAD"]);
        assert_eq!(refused.allow.as_deref(), Some("GET, HEAD"));
        assert_eq!(ApiError::not_found("x").allow, None);
    }
}
