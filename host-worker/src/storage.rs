//! The bucket, through the `minio` crate: originals, renditions and
//! posters. Only bytes: what is known about a video is in the database
//! ([`crate::db`]).
//!
//! Downloads stream to disk and uploads stream from disk, so a job holds at
//! most one network buffer of a video in memory whatever its size.

use futures::{StreamExt, TryStreamExt};
use minio::s3::MinioClient;
use minio::s3::builders::ObjectContent;
use minio::s3::client::MinioClientBuilder;
use minio::s3::creds::StaticProvider;
use minio::s3::error::{Error as MinioError, S3ServerError};
use minio::s3::http::BaseUrl;
use minio::s3::types::{Region, S3Api, ToStream};
use std::path::Path;
use tokio::io::AsyncWriteExt;
use xtream_core::config::StorageSettings;

/// Deletes in flight at once when a prefix is cleared.
const PARALLEL_DELETES: usize = 8;

/// What went wrong talking to the bucket.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The store could not be reached or refused the request; trying again
    /// later may work.
    #[error("object storage failed on {key}: {detail}")]
    Unavailable {
        /// The object (or prefix) concerned.
        key: String,
        /// The client's or server's words.
        detail: String,
    },
    /// Reading or writing a local file failed.
    #[error("local file {path}: {source}")]
    Local {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The settings cannot make a client.
    #[error("cannot set up the S3 client: {0}")]
    Setup(String),
}

impl StorageError {
    fn unavailable(key: &str, err: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            key: key.to_owned(),
            detail: err.to_string(),
        }
    }

    fn local(path: &Path, source: std::io::Error) -> Self {
        Self::Local {
            path: path.display().to_string(),
            source,
        }
    }
}

/// One bucket.
#[derive(Clone)]
pub struct Storage {
    client: MinioClient,
    bucket: String,
}

/// Whether a minio error means "no such key".
fn is_not_found(err: &MinioError) -> bool {
    match err {
        MinioError::S3Server(S3ServerError::S3Error(response)) => {
            matches!(
                response.code().to_string().as_str(),
                "NoSuchKey" | "NoSuchObject"
            )
        }
        MinioError::S3Server(S3ServerError::HttpError(404, _)) => true,
        MinioError::S3Server(S3ServerError::InvalidServerResponse {
            http_status_code, ..
        }) => *http_status_code == 404,
        _ => false,
    }
}

/// Whether a minio error means "no such multipart upload". minio knows no
/// such code and passes it on lowercased (`OtherError("nosuchupload")`).
fn is_no_such_upload(err: &MinioError) -> bool {
    matches!(err, MinioError::S3Server(S3ServerError::S3Error(response))
        if response.code().to_string().to_ascii_lowercase().contains("nosuchupload"))
}

/// The whole error chain in one line: the clients' top-level messages
/// (minio's "Network error occurred", tokio-postgres' "db error") hide the
/// useful part in their sources.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

impl Storage {
    /// A client for `settings`' bucket. Makes no request.
    pub fn new(settings: &StorageSettings) -> Result<Self, StorageError> {
        let mut base_url: BaseUrl = settings
            .endpoint
            .parse()
            .map_err(|e| StorageError::Setup(format!("{}: {e}", settings.endpoint)))?;
        base_url.region = Region::new(settings.region.as_str())
            .map_err(|e| StorageError::Setup(e.to_string()))?;
        // Path-style, like the functions: S3-compatible stores (MinIO,
        // Garage) rarely have wildcard DNS for virtual-host buckets.
        base_url.virtual_style = false;
        let client = MinioClientBuilder::new(base_url)
            .provider(Some(StaticProvider::new(
                &settings.access_key,
                &settings.secret_key,
                None,
            )))
            // The region is configured; asking the server costs a request
            // per bucket and Garage answers it only for its own region name.
            .skip_region_lookup(true)
            .app_info(Some((
                "xtream-worker".into(),
                env!("CARGO_PKG_VERSION").into(),
            )))
            .build()
            .map_err(|e| StorageError::Setup(describe(&e)))?;
        Ok(Self {
            client,
            bucket: settings.bucket.clone(),
        })
    }

    /// Whether the bucket answers (for readiness).
    pub async fn check(&self) -> Result<(), StorageError> {
        let exists = self
            .client
            .bucket_exists(self.bucket.as_str())
            .map_err(|e| StorageError::unavailable(&self.bucket, describe(&e)))?
            .build()
            .send()
            .await
            .map_err(|e| StorageError::unavailable(&self.bucket, describe(&e)))?;
        if exists.exists() {
            Ok(())
        } else {
            Err(StorageError::NotFound(format!("bucket {}", self.bucket)))
        }
    }

    async fn get(&self, key: &str) -> Result<minio::s3::response::GetObjectResponse, StorageError> {
        self.client
            .get_object(self.bucket.as_str(), key)
            .map_err(|e| StorageError::unavailable(key, describe(&e)))?
            .build()
            .send()
            .await
            .map_err(|e| {
                if is_not_found(&e) {
                    StorageError::NotFound(key.to_owned())
                } else {
                    StorageError::unavailable(key, describe(&e))
                }
            })
    }

    /// Streams the object at `key` into the file `to`; returns its length.
    pub async fn download(&self, key: &str, to: &Path) -> Result<u64, StorageError> {
        let response = self.get(key).await?;
        let (mut stream, _) = response
            .into_boxed_stream()
            .map_err(|e| StorageError::unavailable(key, describe(&e)))?;
        let mut file = tokio::fs::File::create(to)
            .await
            .map_err(|e| StorageError::local(to, e))?;
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| StorageError::unavailable(key, e))?;
            written += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| StorageError::local(to, e))?;
        }
        // Flushed, not synced: ffmpeg reads it through the page cache, and a
        // crash loses the scratch directory anyway.
        file.flush().await.map_err(|e| StorageError::local(to, e))?;
        Ok(written)
    }

    /// Streams the file `from` to `key` (multipart when large).
    pub async fn upload_file(
        &self,
        from: &Path,
        key: &str,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.put_content(key, from, content_type).await
    }

    /// Stores `text` at `key`: a playlist exactly as it was read, even if
    /// ffmpeg replaces the file meanwhile.
    pub async fn upload_text(
        &self,
        text: String,
        key: &str,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.put_content(key, text, content_type).await
    }

    /// Stores a file at `key`; minio streams it in parts.
    async fn put_content(
        &self,
        key: &str,
        content: impl Into<ObjectContent>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client
            .put_object_content(self.bucket.as_str(), key, content)
            .map_err(|e| StorageError::unavailable(key, describe(&e)))?
            .content_type(Some(content_type.to_owned()))
            .build()
            .send()
            .await
            .map_err(|e| StorageError::unavailable(key, describe(&e)))?;
        Ok(())
    }

    /// Every key under `prefix`, in ascending order, one listing page (up to
    /// 1000 keys) at a time.
    pub async fn pages(
        &self,
        prefix: &str,
    ) -> Result<
        impl futures::Stream<Item = Result<Vec<String>, StorageError>> + Unpin + Send + use<>,
        StorageError,
    > {
        let pages = self
            .client
            .list_objects(self.bucket.as_str())
            .map_err(|e| StorageError::unavailable(prefix, describe(&e)))?
            .prefix(Some(prefix.to_owned()))
            .recursive(true)
            .build()
            .to_stream()
            .await;
        let prefix = prefix.to_owned();
        Ok(pages.map(move |page| {
            let page = page.map_err(|e| StorageError::unavailable(&prefix, describe(&e)))?;
            Ok(page
                .contents
                .into_iter()
                .filter(|e| !e.is_prefix)
                .map(|e| e.name)
                .collect())
        }))
    }

    /// Every key under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut all = Vec::new();
        let mut pages = self.pages(prefix).await?;
        while let Some(page) = pages.next().await {
            all.extend(page?);
        }
        Ok(all)
    }

    /// Aborts multipart upload `upload_id` of `key`, freeing its parts (no
    /// error if it is already completed or aborted).
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        let sent = self
            .client
            .abort_multipart_upload(self.bucket.as_str(), key, upload_id)
            .map_err(|e| StorageError::unavailable(key, describe(&e)))?
            .build()
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) || is_no_such_upload(&err) => Ok(()),
            Err(err) => Err(StorageError::unavailable(key, describe(&err))),
        }
    }

    /// Deletes `key` (no error if it is already gone).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object(self.bucket.as_str(), key)
            .map_err(|e| StorageError::unavailable(key, describe(&e)))?
            .build()
            .send()
            .await
            .map_err(|e| StorageError::unavailable(key, describe(&e)))?;
        Ok(())
    }

    /// Deletes every object under `prefix` (a video's, when it is deleted);
    /// returns how many there were. Repeating it after a failure finishes
    /// the job.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        let keys = self.list(prefix).await?;
        let count = keys.len();
        futures::stream::iter(
            keys.into_iter()
                .map(|key| async move { self.delete(&key).await }),
        )
        .buffer_unordered(PARALLEL_DELETES)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(count)
    }
}
