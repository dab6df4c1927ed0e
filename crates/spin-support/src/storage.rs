//! A small S3 client over `wasi:http`: requests are presigned with rusty-s3
//! (maintained SigV4, no hand-written signing) and sent with spin-sdk.

use rusty_s3::actions::{
    CreateMultipartUpload, DeleteObjectsResponse, ListObjectsV2, ListParts, ObjectIdentifier,
};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use spin_sdk::http::{IncomingResponse, Method, Request, Response};
use std::time::Duration;
use xtream_core::ApiError;
use xtream_core::config::StorageSettings;
use xtream_core::resumable::StoredPart;

/// Presigned URLs only need to outlive the start of their request.
const SIGNATURE_TTL: Duration = Duration::from_secs(15 * 60);
/// S3 deletes at most this many keys per DeleteObjects request.
const DELETE_BATCH: usize = 1000;

/// Why a storage call failed.
#[derive(Debug)]
pub enum StorageError {
    /// The store could not be reached (connection refused, DNS, time-out).
    Unreachable(String),
    /// The store answered with an unexpected status.
    Refused {
        /// The S3 status code.
        status: u16,
        /// What the request was for.
        operation: &'static str,
        /// The start of S3's error body.
        detail: String,
    },
    /// The store's answer could not be understood.
    BadResponse(String),
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "object storage is unreachable: {why}"),
            Self::Refused {
                status,
                operation,
                detail,
            } => write!(f, "object storage refused {operation} ({status}): {detail}"),
            Self::BadResponse(why) => write!(f, "object storage answered oddly: {why}"),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        ApiError::storage_unavailable(err.to_string())
    }
}

/// The platform's bucket.
pub struct ObjectStore {
    bucket: Bucket,
    credentials: Credentials,
}

impl ObjectStore {
    /// A client for the bucket in `settings` (no I/O).
    pub fn new(settings: &StorageSettings) -> Result<Self, ApiError> {
        let misconfigured =
            |why: String| ApiError::misconfigured(format!("the platform is misconfigured: {why}"));
        let endpoint = settings
            .endpoint
            .parse()
            .map_err(|e| misconfigured(format!("s3_endpoint: {e}")))?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|e| misconfigured(format!("s3 bucket: {e}")))?;
        Ok(Self {
            bucket,
            credentials: Credentials::new(&settings.access_key, &settings.secret_key),
        })
    }

    /// Checks that the bucket exists and that we may use it.
    pub async fn check_bucket(&self) -> Result<(), StorageError> {
        let url = self
            .bucket
            .head_bucket(Some(&self.credentials))
            .sign(SIGNATURE_TTL);
        expect_success(send(Method::Head, url, None, &[]).await?, "HEAD bucket").map(drop)
    }

    /// Stores a whole small object.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(SIGNATURE_TTL);
        let response = send(
            Method::Put,
            url,
            Some(body),
            &[("content-type", content_type)],
        )
        .await?;
        expect_success(response, "PUT object").map(drop)
    }

    /// Reads a whole small object; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNATURE_TTL);
        let response = send(Method::Get, url, None, &[]).await?;
        if *response.status() == 404 {
            return Ok(None);
        }
        expect_success(response, "GET object").map(|r| Some(r.into_body()))
    }

    /// Opens an object for streaming (`GET`) or just its headers (`HEAD`),
    /// passing `Range` and `If-None-Match` on so the store answers 206, 304
    /// or 416 itself. `None` when the object does not exist. The caller
    /// reads the body from the returned response and must keep it alive
    /// while doing so.
    pub async fn open(
        &self,
        head_only: bool,
        key: &str,
        range: Option<&str>,
        if_none_match: Option<&str>,
    ) -> Result<Option<IncomingResponse>, StorageError> {
        let (method, url) = if head_only {
            let action = self.bucket.head_object(Some(&self.credentials), key);
            (Method::Head, action.sign(SIGNATURE_TTL))
        } else {
            let action = self.bucket.get_object(Some(&self.credentials), key);
            (Method::Get, action.sign(SIGNATURE_TTL))
        };
        let mut builder = Request::builder();
        builder.method(method).uri(url.as_str());
        if let Some(range) = range {
            builder.header("range", range);
        }
        if let Some(etag) = if_none_match {
            builder.header("if-none-match", etag);
        }
        let response: IncomingResponse = spin_sdk::http::send(builder.build())
            .await
            .map_err(|e| StorageError::Unreachable(e.to_string()))?;
        match response.status() {
            200 | 206 | 304 | 416 => Ok(Some(response)),
            404 => Ok(None),
            status => Err(StorageError::Refused {
                status,
                operation: "GET object",
                detail: String::new(),
            }),
        }
    }

    /// Deletes an object (absent objects are fine).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(SIGNATURE_TTL);
        expect_success(send(Method::Delete, url, None, &[]).await?, "DELETE object").map(drop)
    }

    /// Up to `max_keys` keys under `prefix` after `start_after`, in key order,
    /// and whether more follow.
    pub async fn list_after(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<(Vec<String>, bool), StorageError> {
        let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
        action.with_prefix(prefix);
        action.with_max_keys(max_keys);
        if let Some(after) = start_after {
            action.with_start_after(after);
        }
        let url = action.sign(SIGNATURE_TTL);
        let response = expect_success(send(Method::Get, url, None, &[]).await?, "LIST objects")?;
        let text = String::from_utf8_lossy(response.body());
        let listing = ListObjectsV2::parse_response(&text)
            .map_err(|e| StorageError::BadResponse(format!("listing: {e}")))?;
        let more = listing.next_continuation_token.is_some();
        Ok((listing.contents.into_iter().map(|c| c.key).collect(), more))
    }

    /// Starts a multipart upload; returns its upload id.
    pub async fn start_multipart(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, StorageError> {
        let url = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), key)
            .sign(SIGNATURE_TTL);
        let response = send(Method::Post, url, None, &[("content-type", content_type)]).await?;
        let response = expect_success(response, "CREATE multipart upload")?;
        let text = String::from_utf8_lossy(response.body());
        let created = CreateMultipartUpload::parse_response(&text)
            .map_err(|e| StorageError::BadResponse(format!("multipart upload: {e}")))?;
        Ok(created.upload_id().to_owned())
    }

    /// Uploads part `number` (from 1); returns its ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        body: Vec<u8>,
    ) -> Result<String, StorageError> {
        let url = self
            .bucket
            .upload_part(Some(&self.credentials), key, number, upload_id)
            .sign(SIGNATURE_TTL);
        let response = expect_success(send(Method::Put, url, Some(body), &[]).await?, "PUT part")?;
        response
            .header("etag")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| StorageError::BadResponse("a part upload returned no ETag".into()))
    }

    /// Completes a multipart upload from its parts' ETags, in order.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), StorageError> {
        let action = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNATURE_TTL);
        let body = action.body().into_bytes();
        let response = send(Method::Post, url, Some(body), &[]).await?;
        let response = expect_success(response, "COMPLETE multipart upload")?;
        // S3 may answer 200 with an error document when completion fails late.
        if String::from_utf8_lossy(response.body()).contains("<Error>") {
            return Err(StorageError::BadResponse(
                "completing the multipart upload failed".into(),
            ));
        }
        Ok(())
    }

    /// Abandons a multipart upload and frees its parts.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        let url = self
            .bucket
            .abort_multipart_upload(Some(&self.credentials), key, upload_id)
            .sign(SIGNATURE_TTL);
        let response = send(Method::Delete, url, None, &[]).await?;
        // Already aborted or completed: nothing is left to free.
        if *response.status() == 404 {
            return Ok(());
        }
        expect_success(response, "ABORT multipart upload").map(drop)
    }

    /// The parts S3 holds of a multipart upload, in order; `None` when the
    /// upload is no longer open (completed, aborted or unknown).
    pub async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<StoredPart>>, StorageError> {
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let mut action = ListParts::new(&self.bucket, Some(&self.credentials), key, upload_id);
            if let Some(marker) = marker {
                action.set_part_number_marker(marker);
            }
            let url = action.sign(SIGNATURE_TTL);
            let response = send(Method::Get, url, None, &[]).await?;
            if *response.status() == 404 {
                return Ok(None);
            }
            let response = expect_success(response, "LIST parts")?;
            let text = String::from_utf8_lossy(response.body());
            let page = ListParts::parse_response(&text)
                .map_err(|e| StorageError::BadResponse(format!("part listing: {e}")))?;
            parts.extend(page.parts.into_iter().map(|p| StoredPart {
                number: p.number,
                etag: p.etag,
                size: p.size,
            }));
            match page.next_part_number_marker {
                Some(next) => marker = Some(next),
                None => return Ok(Some(parts)),
            }
        }
    }

    /// Every key under `prefix`, in key order (one LIST per 1000 keys).
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(prefix);
            if let Some(token) = token.take() {
                action.with_continuation_token(token);
            }
            let url = action.sign(SIGNATURE_TTL);
            let response =
                expect_success(send(Method::Get, url, None, &[]).await?, "LIST objects")?;
            let text = String::from_utf8_lossy(response.body());
            let page = ListObjectsV2::parse_response(&text)
                .map_err(|e| StorageError::BadResponse(format!("listing: {e}")))?;
            keys.extend(page.contents.into_iter().map(|c| c.key));
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Deletes `keys` with batched DeleteObjects requests; absent keys are
    /// fine, any key S3 could not delete is an error naming it.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), StorageError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let objects: Vec<ObjectIdentifier> = batch
                .iter()
                .map(|key| ObjectIdentifier::new(key.clone()))
                .collect();
            let mut action = self
                .bucket
                .delete_objects(Some(&self.credentials), objects.iter());
            action.set_quiet(true);
            let url = action.sign(SIGNATURE_TTL);
            let (body, md5) = action.body_with_md5();
            let response = send(
                Method::Post,
                url,
                Some(body.into_bytes()),
                &[("content-md5", &md5)],
            )
            .await?;
            let response = expect_success(response, "DELETE objects")?;
            let text = String::from_utf8_lossy(response.body());
            let result = DeleteObjectsResponse::parse(&text)
                .map_err(|e| StorageError::BadResponse(format!("batch delete: {e}")))?;
            if let Some(failed) = result.errors.first() {
                return Err(StorageError::Refused {
                    status: 200,
                    operation: "DELETE objects",
                    detail: format!("{}: {} {}", failed.key, failed.code, failed.message),
                });
            }
        }
        Ok(())
    }

    /// The length of an object; `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let url = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign(SIGNATURE_TTL);
        let response = send(Method::Head, url, None, &[]).await?;
        if *response.status() == 404 {
            return Ok(None);
        }
        let response = expect_success(response, "HEAD object")?;
        response
            .header("content-length")
            .and_then(|v| v.as_str())
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| StorageError::BadResponse("HEAD answered no Content-Length".into()))
    }

    /// Signs part uploads for clients, against `public_endpoint`: the
    /// address clients reach S3 at, which may differ from ours. It is only
    /// put into URLs, never called from here.
    pub fn part_signer(&self, public_endpoint: &str) -> Result<PartSigner, ApiError> {
        let endpoint = public_endpoint.parse().map_err(|e| {
            ApiError::misconfigured(format!(
                "the platform is misconfigured: s3_public_endpoint: {e}"
            ))
        })?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            self.bucket.name().to_owned(),
            self.bucket.region().to_owned(),
        )
        .map_err(|e| ApiError::misconfigured(format!("the platform is misconfigured: {e}")))?;
        Ok(PartSigner {
            bucket,
            credentials: self.credentials.clone(),
        })
    }
}

/// Presigns `UploadPart` URLs for clients to send parts straight to S3.
pub struct PartSigner {
    bucket: Bucket,
    credentials: Credentials,
}

impl PartSigner {
    /// A `PUT` URL for part `number` of multipart upload `upload_id` of
    /// `key`, valid for `ttl`.
    pub fn part_url(&self, key: &str, upload_id: &str, number: u16, ttl: Duration) -> String {
        self.bucket
            .upload_part(Some(&self.credentials), key, number, upload_id)
            .sign(ttl)
            .to_string()
    }
}

async fn send(
    method: Method,
    url: url::Url,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> Result<Response, StorageError> {
    let mut builder = Request::builder();
    builder.method(method).uri(url.as_str());
    for (name, value) in headers {
        builder.header(*name, *value);
    }
    // S3 wants a length on every body; wasi:http would otherwise send it
    // chunked.
    let body = body.unwrap_or_default();
    builder.header("content-length", body.len().to_string());
    builder.body(body);
    spin_sdk::http::send(builder.build())
        .await
        .map_err(|e| StorageError::Unreachable(e.to_string()))
}

fn expect_success(response: Response, operation: &'static str) -> Result<Response, StorageError> {
    let status = *response.status();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let detail: String = String::from_utf8_lossy(response.body())
        .chars()
        .take(300)
        .collect();
    Err(StorageError::Refused {
        status,
        operation,
        detail,
    })
}
