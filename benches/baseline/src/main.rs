//! The native baseline the load report compares the embedded host with.
//!
//! It answers `GET /health` and `GET /api/videos` exactly as the `health`
//! and `videos` components do — same JSON, same core logic, the same SQL
//! statement from [`xtream_core::metadata`] — but as a plain hyper server
//! with a pool of tokio-postgres connections (statements prepared once per
//! connection), so the ratio shows what running as WebAssembly components
//! costs.
//!
//! `xtream-baseline [LISTEN] [DATABASE_URL]` (LISTEN defaults to
//! `127.0.0.1:3100`). The database is, in order: the second argument;
//! `XTREAM_DATABASE_URL` (a `postgres://` URL or `key=value` string, as the
//! worker reads it); else the platform's own Spin variables
//! `SPIN_VARIABLE_DB_HOST`, `_DB_PORT`, `_DB_NAME`, `_DB_USER` and
//! `_DB_PASSWORD`, with `spin.toml`'s defaults. Plain TCP, no TLS.

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use xtream_core::ApiError;
use xtream_core::catalog::Page;
use xtream_core::metadata::{self, ListQuery, Param, SqlStateMeaning, Statement};
use xtream_core::playback::VideoView;

/// Connections to the database: enough for the load test's concurrency to
/// queue on the server, not on the pool.
const POOL_SIZE: usize = 32;

/// The database's settings from the arguments or the environment (see the
/// module doc).
fn database_config() -> anyhow::Result<tokio_postgres::Config> {
    let url = std::env::args()
        .nth(2)
        .or_else(|| std::env::var("XTREAM_DATABASE_URL").ok())
        .filter(|url| !url.trim().is_empty());
    if let Some(url) = url {
        return tokio_postgres::Config::from_str(&url)
            .map_err(|e| anyhow::anyhow!("the database URL is not valid: {e}"));
    }
    let var = |name: &str, default: &str| {
        std::env::var(format!("SPIN_VARIABLE_{name}")).unwrap_or_else(|_| default.to_owned())
    };
    let mut config = tokio_postgres::Config::new();
    config
        .host(var("DB_HOST", "127.0.0.1"))
        .port(var("DB_PORT", "5432").parse()?)
        .dbname(var("DB_NAME", "xtream"))
        .user(var("DB_USER", "xtream"))
        .password(std::env::var("SPIN_VARIABLE_DB_PASSWORD").map_err(|_| {
            anyhow::anyhow!("set XTREAM_DATABASE_URL or SPIN_VARIABLE_DB_PASSWORD")
        })?);
    Ok(config)
}

fn pool(mut config: tokio_postgres::Config) -> anyhow::Result<Pool> {
    config
        .application_name("xtream-baseline")
        .connect_timeout(Duration::from_secs(5));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()?)
}

/// A parameter as tokio-postgres binds it: the type its `$n::type` cast
/// asks for (the worker's `host-worker/src/db.rs` binds the same way).
fn bind(param: &Param) -> Box<dyn ToSql + Sync + Send> {
    match param {
        Param::Uuid(id) => {
            Box::new(uuid::Uuid::parse_str(&id.to_string()).expect("a video id is a UUID"))
        }
        Param::Text(text) => Box::new(text.clone()),
        Param::NullableText(text) => Box::new(text.clone()),
        Param::BigInt(n) => Box::new(*n),
        Param::NullableBigInt(n) => Box::new(*n),
        Param::NullableFloat(x) => Box::new(*x),
        Param::Jsonb(value) => Box::new(value.clone()),
    }
}

/// A database error as the components answer it: 503 when it may pass
/// (no connection, the server restarting, the schema not migrated yet), 500
/// otherwise.
fn database_error(err: tokio_postgres::Error) -> ApiError {
    let meaning = err.code().map_or(SqlStateMeaning::Transient, |code| {
        metadata::sqlstate_meaning(code.code())
    });
    match meaning {
        SqlStateMeaning::Transient | SqlStateMeaning::SchemaMissing => {
            ApiError::database_unavailable(err.to_string())
        }
        SqlStateMeaning::Bug => ApiError::internal(format!("listing failed: {err}")),
    }
}

async fn query(pool: &Pool, statement: &Statement) -> Result<Vec<tokio_postgres::Row>, ApiError> {
    let client = pool
        .get()
        .await
        .map_err(|e| ApiError::database_unavailable(e.to_string()))?;
    let bound: Vec<_> = statement.params.iter().map(bind).collect();
    let params: Vec<&(dyn ToSql + Sync)> = bound
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let prepared = client
        .prepare_cached(&statement.sql)
        .await
        .map_err(database_error)?;
    client
        .query(&prepared, &params)
        .await
        .map_err(database_error)
}

/// One page: the statement asks for one row more than the limit, so a
/// next page exists exactly when that row came back; the cursor points
/// after the page's last video.
async fn page(pool: &Pool, list: &ListQuery) -> Result<Page, ApiError> {
    let rows = query(pool, &list.statement()).await?;
    let has_more = rows.len() > list.limit;
    let mut videos = Vec::with_capacity(list.limit.min(rows.len()));
    let mut last_position = None;
    for row in rows.iter().take(list.limit) {
        let unreadable = |e: tokio_postgres::Error| ApiError::internal(e.to_string());
        let json: String = row.try_get(0).map_err(unreadable)?;
        last_position = Some(row.try_get::<_, i64>(1).map_err(unreadable)?);
        videos.push(VideoView::from(metadata::decode_record(&json)?));
    }
    Ok(Page {
        videos,
        next_cursor: last_position
            .filter(|_| has_more)
            .map(metadata::encode_cursor),
    })
}

fn json(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("static parts are valid")
}

async fn answer(pool: Arc<Pool>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let query = request.uri().query().unwrap_or_default().to_owned();
    match request.uri().path() {
        "/health" => json(200, br#"{"status":"ok"}"#.to_vec()),
        "/api/videos" => {
            let page = match ListQuery::from_query(&query) {
                Ok(list) => page(&pool, &list).await,
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
    let pool = Arc::new(pool(database_config()?)?);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("baseline serving http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let pool = pool.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let pool = pool.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(pool, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
