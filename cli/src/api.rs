//! The Xtream HTTP API, as the CLI calls it. Request and response shapes
//! are `xtream_core`'s, so the CLI and the server cannot drift apart.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::Duration;
use xtream_core::VideoRecord;
use xtream_core::resumable::{CreatedUpload, UploadStatus};

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The server answered with one of its JSON errors.
    Api {
        /// HTTP status.
        status: u16,
        /// The error's stable code, e.g. `payload_too_large`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server (or S3) could not be reached, or answered something that
    /// is not the API.
    Transport(String),
    /// A local problem: the file, the state directory.
    Local(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Api { status, .. } if (400..500).contains(status) => 1,
            CliError::Api { .. } | CliError::Transport(_) => 4,
            CliError::Local(_) => 5,
        }
    }

    /// The error as the API's envelope, for `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        let (code, message, status) = match self {
            CliError::Api {
                status,
                code,
                message,
            } => (code.as_str(), message.clone(), Some(*status)),
            CliError::Transport(message) => ("unreachable", message.clone(), None),
            CliError::Local(message) => ("local", message.clone(), None),
        };
        serde_json::json!({"error": {"code": code, "message": message, "status": status}})
    }

    /// Whether the server said there is no such thing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CliError::Api { status: 404, .. })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Api {
                status,
                code,
                message,
            } => write!(f, "{message} ({code}, HTTP {status})"),
            CliError::Transport(message) | CliError::Local(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CliError {}

impl From<reqwest::Error> for CliError {
    fn from(err: reqwest::Error) -> Self {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(inner) = source {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            source = inner.source();
        }
        CliError::Transport(text)
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: EnvelopeBody,
}

#[derive(Deserialize)]
struct EnvelopeBody {
    code: String,
    message: String,
}

/// One page of `GET /api/videos`.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// The videos, newest first.
    pub videos: Vec<VideoRecord>,
    /// The next page's cursor.
    pub next_cursor: Option<String>,
}

/// A client of one Xtream server.
pub struct Api {
    base: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// A client of `server` (`http://host:port`), sending `api_key` as a
    /// bearer token when there is one.
    pub fn new(server: &str, api_key: Option<String>) -> Result<Self, CliError> {
        let base = server.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Local(format!(
                "--server must be an http:// or https:// URL, not {server:?}"
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("xtream-cli/", env!("CARGO_PKG_VERSION")))
            // Servers close idle keep-alive connections (the embedded host
            // after 10 s); while parts go to S3 the API connection idles,
            // and reusing it just as the server closes it fails the call.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            base,
            api_key: api_key.filter(|k| !k.trim().is_empty()),
            http,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("accept", "application/json");
        match &self.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<T, CliError> {
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if (200..300).contains(&status) {
            let body = if bytes.is_empty() {
                &b"null"[..]
            } else {
                &bytes[..]
            };
            return serde_json::from_slice(body).map_err(|e| {
                CliError::Transport(format!(
                    "the server's answer is not what the API sends: {e}"
                ))
            });
        }
        Err(match serde_json::from_slice::<Envelope>(&bytes) {
            Ok(envelope) => CliError::Api {
                status,
                code: envelope.error.code,
                message: envelope.error.message,
            },
            Err(_) => CliError::Api {
                status,
                code: "http_error".into(),
                message: format!(
                    "the server answered {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ),
            },
        })
    }

    /// `POST /api/uploads`.
    pub async fn create_upload(
        &self,
        filename: &str,
        size: u64,
        title: Option<&str>,
    ) -> Result<CreatedUpload, CliError> {
        let body = serde_json::json!({"filename": filename, "size": size, "title": title});
        self.call(
            self.request(reqwest::Method::POST, "/api/uploads")
                .json(&body),
        )
        .await
    }

    /// `GET /api/uploads/{id}`.
    pub async fn upload_status(&self, id: &str) -> Result<UploadStatus, CliError> {
        self.call(self.request(reqwest::Method::GET, &format!("/api/uploads/{id}")))
            .await
    }

    /// `POST /api/uploads/{id}/complete`.
    pub async fn complete_upload(&self, id: &str) -> Result<VideoRecord, CliError> {
        let path = format!("/api/uploads/{id}/complete");
        self.call(self.request(reqwest::Method::POST, &path)).await
    }

    /// `DELETE /api/uploads/{id}`.
    pub async fn abort_upload(&self, id: &str) -> Result<(), CliError> {
        let path = format!("/api/uploads/{id}");
        self.call::<serde_json::Value>(self.request(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }

    /// `GET /api/videos` (one page).
    pub async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<Page, CliError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        self.call(
            self.request(reqwest::Method::GET, "/api/videos")
                .query(&query),
        )
        .await
    }

    /// `GET /api/videos/{id}`, as the raw JSON the server sent (with its
    /// playback links) and as a record.
    pub async fn video(&self, id: &str) -> Result<(serde_json::Value, VideoRecord), CliError> {
        let json: serde_json::Value = self
            .call(self.request(reqwest::Method::GET, &format!("/api/videos/{id}")))
            .await?;
        let record = serde_json::from_value(json.clone()).map_err(|e| {
            CliError::Transport(format!("the server's video is not a video record: {e}"))
        })?;
        Ok((json, record))
    }

    /// `DELETE /api/videos/{id}`.
    pub async fn delete(&self, id: &str) -> Result<(), CliError> {
        let path = format!("/api/videos/{id}");
        self.call::<serde_json::Value>(self.request(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }
}
