//! The native baseline the load report compares the embedded host with.
//!
//! It answers `GET /health` and `GET /api/videos` exactly as the `health`
//! and `videos` components do — same JSON, same core logic, same S3 calls —
//! but as a plain hyper server with a pooled reqwest client, so the ratio
//! shows what running as WebAssembly components costs.
//!
//! `xtream-baseline LISTEN` with the S3 settings in `SPIN_VARIABLE_S3_*`
//! (the same variables the platform reads).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::sync::Arc;
use std::time::Duration;
use xtream_core::catalog::{Page, PageRequest, encode_cursor};
use xtream_core::playback::VideoView;
use xtream_core::{ApiError, VideoRecord, keys};

const TTL: Duration = Duration::from_secs(900);

struct Store {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

impl Store {
    fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var(format!("SPIN_VARIABLE_{name}"))
                .map_err(|_| anyhow::anyhow!("set SPIN_VARIABLE_{name}"))
        };
        let region = var("S3_REGION").unwrap_or_else(|_| "us-east-1".into());
        let bucket = var("S3_BUCKET").unwrap_or_else(|_| "xtream".into());
        Ok(Self {
            bucket: Bucket::new(var("S3_ENDPOINT")?.parse()?, UrlStyle::Path, bucket, region)?,
            credentials: Credentials::new(var("S3_ACCESS_KEY")?, var("S3_SECRET_KEY")?),
            http: reqwest::Client::new(),
        })
    }

    async fn page(&self, request: &PageRequest) -> Result<Page, ApiError> {
        let unavailable = |e: reqwest::Error| ApiError::storage_unavailable(e.to_string());
        let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
        action.with_prefix(keys::CATALOG_PREFIX);
        action.with_max_keys(request.limit);
        if let Some(after) = &request.start_after {
            action.with_start_after(after.as_str());
        }
        let text = self
            .http
            .get(action.sign(TTL))
            .send()
            .await
            .map_err(unavailable)?;
        let text = text.text().await.map_err(unavailable)?;
        let listing = ListObjectsV2::parse_response(&text)
            .map_err(|e| ApiError::storage_unavailable(e.to_string()))?;
        let keys: Vec<String> = listing.contents.into_iter().map(|c| c.key).collect();
        let fetches = keys
            .iter()
            .filter_map(|key| keys::id_of_catalog_entry(key))
            .map(|id| {
                let url = self
                    .bucket
                    .get_object(Some(&self.credentials), &keys::record(id))
                    .sign(TTL);
                async move {
                    let response = self.http.get(url).send().await.ok()?;
                    let bytes = response.error_for_status().ok()?.bytes().await.ok()?;
                    serde_json::from_slice::<VideoRecord>(&bytes).ok()
                }
            });
        let videos = futures::future::join_all(fetches).await;
        Ok(Page {
            videos: videos.into_iter().flatten().map(VideoView::from).collect(),
            next_cursor: listing
                .next_continuation_token
                .and(keys.last().map(|key| encode_cursor(key))),
        })
    }
}

fn json(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("static parts are valid")
}

async fn answer(store: Arc<Store>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let query = request.uri().query().unwrap_or_default().to_owned();
    match request.uri().path() {
        "/health" => json(200, br#"{"status":"ok"}"#.to_vec()),
        "/api/videos" => {
            let page = match PageRequest::from_query(&query) {
                Ok(page_request) => store.page(&page_request).await,
                Err(error) => Err(error),
            };
            match page
                .and_then(|p| serde_json::to_vec(&p).map_err(|e| ApiError::internal(e.to_string())))
            {
                Ok(body) => json(200, body),
                Err(error) => json(error.status, error.to_json().into_bytes()),
            }
        }
        path => json(
            404,
            ApiError::not_found(format!("no route for {path}"))
                .to_json()
                .into_bytes(),
        ),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3100".into());
    let store = Arc::new(Store::from_env()?);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("baseline serving http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let store = store.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let store = store.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(store, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
