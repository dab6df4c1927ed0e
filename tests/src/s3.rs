//! Direct S3 access for tests: what did the platform really store?

use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Credentials, S3Action, UrlStyle};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(600);

/// One bucket, read with signed requests.
#[derive(Clone)]
pub struct Bucket {
    bucket: rusty_s3::Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

impl Bucket {
    /// Access to `name` at `endpoint`.
    pub fn new(endpoint: &str, name: &str, access_key: &str, secret_key: &str) -> Self {
        let bucket = rusty_s3::Bucket::new(
            endpoint.parse().expect("endpoint is a URL"),
            UrlStyle::Path,
            name.to_owned(),
            "us-east-1",
        )
        .expect("valid bucket");
        Self {
            bucket,
            credentials: Credentials::new(access_key, secret_key),
            http: reqwest::Client::new(),
        }
    }

    /// Whether the bucket answers a signed HEAD with 200.
    pub async fn exists(&self) -> bool {
        let url = self.bucket.head_bucket(Some(&self.credentials)).sign(TTL);
        matches!(self.http.head(url).send().await, Ok(r) if r.status().is_success())
    }

    /// Every key under `prefix`.
    pub async fn keys(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(prefix);
            if let Some(token) = &token {
                action.with_continuation_token(token.clone());
            }
            let text = self
                .http
                .get(action.sign(TTL))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            let page = ListObjectsV2::parse_response(&text)?;
            keys.extend(page.contents.into_iter().map(|c| c.key));
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// An object's bytes, or `None`.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(TTL);
        let response = self.http.get(url).send().await?;
        if response.status() == 404 {
            return Ok(None);
        }
        Ok(Some(response.error_for_status()?.bytes().await?.to_vec()))
    }

    /// Stores an object.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> anyhow::Result<()> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(TTL);
        self.http
            .put(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Starts a multipart upload of `key` and sends `part` as its part 1,
    /// as an instance that then died would have; returns the upload id.
    pub async fn start_multipart(&self, key: &str, part: Vec<u8>) -> anyhow::Result<String> {
        use rusty_s3::actions::{CreateMultipartUpload, UploadPart};
        let url = CreateMultipartUpload::new(&self.bucket, Some(&self.credentials), key).sign(TTL);
        let text = self
            .http
            .post(url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let upload_id = CreateMultipartUpload::parse_response(&text)?
            .upload_id()
            .to_owned();
        let url =
            UploadPart::new(&self.bucket, Some(&self.credentials), key, 1, &upload_id).sign(TTL);
        self.http
            .put(url)
            .body(part)
            .send()
            .await?
            .error_for_status()?;
        Ok(upload_id)
    }

    /// An object's SHA-256 and length, read as a stream.
    pub async fn digest(&self, key: &str) -> anyhow::Result<(String, u64)> {
        use futures::StreamExt;
        use sha2::Digest;
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(TTL);
        let response = self.http.get(url).send().await?.error_for_status()?;
        let mut hasher = sha2::Sha256::new();
        let mut length = 0u64;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            length += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((hex(&hasher.finalize()), length))
    }

    /// The part numbers S3 holds of multipart upload `upload_id` of `key`;
    /// `None` when the upload is not open (completed, aborted or unknown).
    pub async fn parts(&self, key: &str, upload_id: &str) -> anyhow::Result<Option<Vec<u16>>> {
        use rusty_s3::actions::ListParts;
        let action = ListParts::new(&self.bucket, Some(&self.credentials), key, upload_id);
        let response = self.http.get(action.sign(TTL)).send().await?;
        if response.status() == 404 {
            return Ok(None);
        }
        let text = response.error_for_status()?.text().await?;
        let listing = ListParts::parse_response(&text)?;
        Ok(Some(listing.parts.into_iter().map(|p| p.number).collect()))
    }

    /// The multipart uploads open under `prefix`, as `(key, upload id)`:
    /// what a failed upload must not leave behind (its parts hold storage
    /// without being listed as objects).
    pub async fn multipart_uploads(&self, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
        // rusty-s3 has no ListMultipartUploads action; sign it by hand.
        let url = self.signed_bucket_url(
            rusty_s3::Method::Get,
            &[("prefix", prefix), ("uploads", "")],
        );
        let text = self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let element = |within: &str, name: &str| -> Option<String> {
            let start = within.find(&format!("<{name}>"))? + name.len() + 2;
            let end = within[start..].find(&format!("</{name}>"))? + start;
            Some(within[start..end].to_owned())
        };
        Ok(text
            .split("<Upload>")
            .skip(1)
            .filter_map(|upload| Some((element(upload, "Key")?, element(upload, "UploadId")?)))
            .collect())
    }

    /// A presigned URL for `method` on the bucket itself with `query`
    /// (`?uploads`, `?lifecycle`): rusty-s3 has no action for them.
    fn signed_bucket_url(&self, method: rusty_s3::Method, query: &[(&str, &str)]) -> url::Url {
        rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            self.bucket.base_url().clone(),
            self.credentials.key(),
            self.credentials.secret(),
            self.credentials.token(),
            self.bucket.region(),
            TTL.as_secs(),
            query.iter().copied(),
            std::iter::empty(),
        )
    }

    /// PutBucketLifecycleConfiguration: replaces the bucket's lifecycle
    /// rules with the `LifecycleConfiguration` document `xml`.
    pub async fn put_lifecycle(&self, xml: &str) -> anyhow::Result<()> {
        let url = self.signed_bucket_url(rusty_s3::Method::Put, &[("lifecycle", "")]);
        let response = self
            .http
            .put(url)
            .header("content-type", "application/xml")
            .body(xml.to_owned())
            .send()
            .await?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "the lifecycle rules were refused ({status}): {}",
            response.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// GetBucketLifecycleConfiguration: the bucket's lifecycle rules (none
    /// when it has no configuration).
    pub async fn lifecycle(&self) -> anyhow::Result<Vec<LifecycleRule>> {
        let url = self.signed_bucket_url(rusty_s3::Method::Get, &[("lifecycle", "")]);
        let response = self.http.get(url).send().await?;
        if response.status() == 404 {
            return Ok(Vec::new());
        }
        Ok(LifecycleRule::parse_all(
            &response.error_for_status()?.text().await?,
        ))
    }

    /// An object's Content-Type.
    pub async fn content_type(&self, key: &str) -> anyhow::Result<Option<String>> {
        let url = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign(TTL);
        let response = self.http.head(url).send().await?.error_for_status()?;
        Ok(response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned))
    }
}

/// One rule of a bucket's lifecycle configuration: what the platform
/// relies on of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRule {
    /// `ID`.
    pub id: String,
    /// `Status` is `Enabled`.
    pub enabled: bool,
    /// `AbortIncompleteMultipartUpload/DaysAfterInitiation`.
    pub abort_incomplete_multipart_after_days: Option<u32>,
    /// Whether the rule expires objects (`Expiration`), which would
    /// delete videos.
    pub expires_objects: bool,
}

impl LifecycleRule {
    /// The rules of a `LifecycleConfiguration` document, as sent or as S3
    /// answers it.
    pub fn parse_all(xml: &str) -> Vec<LifecycleRule> {
        xml.split("<Rule>")
            .skip(1)
            .map(|rule| {
                let rule = rule.split("</Rule>").next().unwrap_or_default();
                LifecycleRule {
                    id: element(rule, "ID").unwrap_or_default(),
                    enabled: element(rule, "Status").as_deref() == Some("Enabled"),
                    abort_incomplete_multipart_after_days: element(rule, "DaysAfterInitiation")
                        .and_then(|days| days.trim().parse().ok()),
                    expires_objects: rule.contains("<Expiration>"),
                }
            })
            .collect()
    }
}

/// The text of the first `<name>` element in `within`.
fn element(within: &str, name: &str) -> Option<String> {
    let start = within.find(&format!("<{name}>"))? + name.len() + 2;
    let end = within[start..].find(&format!("</{name}>"))? + start;
    Some(within[start..end].trim().to_owned())
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
