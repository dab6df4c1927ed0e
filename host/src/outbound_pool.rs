//! Outgoing HTTP over reused connections.
//!
//! wasmtime-wasi-http's default sender opens a TCP connection for every
//! request and closes it after. Our components talk to one S3 endpoint and
//! one Kafka bridge all the time (a catalog page reads up to 100 records),
//! so on a busy host most of an outbound call was connection set-up, and
//! thousands of sockets sat in TIME_WAIT. Every instance of every component
//! shares this pool of keep-alive connections per origin instead.
//!
//! Plain `http://` only: the platform's S3 and bridge are in-cluster
//! services reached over http. An `https://` request goes through the
//! default sender, as before.
//!
//! Bounded as Spin 4.0.2 bounds it (`[outbound_http]
//! max_concurrent_requests` in the runtime config, see
//! [`crate::runtime_config`]): one semaphore for the whole application,
//! every host together, and each open connection holds a permit for as long
//! as it is open, busy or idle in the pool. A request that needs a new
//! connection while every permit is held waits (queued, first come first
//! served) until a connection closes or an idle one frees up; nothing
//! fails for it, and the host never opens more sockets than that, however
//! many instances call out at once. As in Spin, the wait counts against the
//! request's first-byte timeout, and an `https://` request holds its permit
//! until its response body is done.

use crate::runtime_config::OutboundHttpConfig;
use http::Uri;
use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Used when a request sets no timeout of its own (the default sender's).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// A connection must be up within this. Per-request connect timeouts
/// cannot apply to a shared connector; guests rarely set one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections are dropped after this: below the idle limits of the
/// servers we talk to, so a reused connection is rarely one they are
/// closing.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per origin: enough for a burst of catalog pages.
const MAX_IDLE_PER_ORIGIN: usize = 256;

/// A response, and the future the default sender uses to report a broken
/// connection after the head (the pool reports such errors in the body).
pub(crate) type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
);

/// The host's shared outbound connection pool.
#[derive(Clone)]
pub(crate) struct OutboundPool {
    client: Client<PermittedConnector, WasiBody>,
    /// Spin's connection semaphore; `None`: no limit.
    permits: Option<Arc<Semaphore>>,
}

impl OutboundPool {
    /// A pool configured as Spin's `[outbound_http]` table says.
    pub(crate) fn new(config: &OutboundHttpConfig) -> Self {
        Self::with_permits(config.connection_pooling, config.connection_permits())
    }

    /// A pool letting at most `permits` connections be open at once.
    fn with_permits(pooling: bool, permits: Option<usize>) -> Self {
        let permits = permits.map(|n| Arc::new(Semaphore::new(n)));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = PermittedConnector {
            inner: connector,
            permits: permits.clone(),
        };
        let max_idle = if pooling { MAX_IDLE_PER_ORIGIN } else { 0 };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(max_idle)
            .build(connector);
        Self { client, permits }
    }

    /// Sends `request`, honouring the guest's first-byte and between-bytes
    /// timeouts.
    pub(crate) async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> wasmtime_wasi_http::Result<Sent> {
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        if request.uri().scheme() != Some(&Scheme::HTTP) {
            // The default sender opens a connection of its own, which lives
            // as long as the response body: the permit goes with the body.
            let permit = match &self.permits {
                Some(permits) => Some(
                    tokio::time::timeout(first_byte, permits.clone().acquire_owned())
                        .await
                        .map_err(|_| Error::ConnectionReadTimeout)?
                        .expect("the semaphore is never closed"),
                ),
                None => None,
            };
            let (response, connection) =
                wasmtime_wasi_http::default_send_request(request, options).await?;
            let response = response.map(|body| {
                PermittedBody {
                    body: body.boxed_unsync(),
                    _permit: permit,
                }
                .boxed_unsync()
            });
            return Ok((response, Box::new(connection)));
        }
        let between_bytes = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(DEFAULT_TIMEOUT)
            // tokio's interval cannot be zero.
            .max(Duration::from_nanos(1));
        let response = tokio::time::timeout(first_byte, self.client.request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(client_error)?;
        let response = response.map(|incoming| {
            BetweenBytesTimeout {
                incoming,
                timer: idle_timer(between_bytes),
            }
            .boxed_unsync()
        });
        let nothing_more_to_report = async { Ok(()) };
        Ok((response, Box::new(nothing_more_to_report)))
    }
}

fn idle_timer(period: Duration) -> tokio::time::Interval {
    let mut timer = tokio::time::interval(period);
    // The first tick of an interval is immediate; start counting from now.
    timer.reset();
    timer
}

/// What the guest sees when the pool fails to get an answer.
fn client_error(err: hyper_util::client::legacy::Error) -> Error {
    if err.is_connect() {
        return Error::Connect(std::io::Error::other(err));
    }
    let hyper_error =
        std::error::Error::source(&err).and_then(|s| s.downcast_ref::<hyper::Error>());
    match hyper_error {
        Some(e) if e.is_timeout() => Error::HttpResponseTimeout,
        Some(e) if e.is_incomplete_message() || e.is_closed() || e.is_canceled() => {
            Error::ConnectionTerminated
        }
        _ => Error::HttpProtocolError,
    }
}

/// Opens outbound TCP connections, each holding a permit of the pool's
/// semaphore (when it has one) for as long as it is open: past the limit, a
/// new connection waits for another to close. Spin takes the permit at the
/// same point, before connecting.
#[derive(Clone)]
struct PermittedConnector {
    inner: HttpConnector,
    permits: Option<Arc<Semaphore>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for PermittedConnector {
    type Response = PermittedConnection;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<PermittedConnection, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let permits = self.permits.clone();
        Box::pin(async move {
            let permit = match permits {
                Some(permits) => Some(permits.acquire_owned().await?),
                None => None,
            };
            let io = tower_service::Service::<Uri>::call(&mut inner, uri).await?;
            Ok(PermittedConnection {
                io,
                _permit: permit,
            })
        })
    }
}

/// A TCP connection and the permit it holds until it is closed.
struct PermittedConnection {
    io: TokioIo<TcpStream>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Connection for PermittedConnection {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl hyper::rt::Read for PermittedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for PermittedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// A response body holding a connection permit until it is done with.
struct PermittedBody {
    body: WasiBody,
    _permit: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for PermittedBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A response body that fails when the server goes quiet for longer than
/// the guest's between-bytes timeout.
struct BetweenBytesTimeout {
    incoming: hyper::body::Incoming,
    timer: tokio::time::Interval,
}

impl http_body::Body for BetweenBytesTimeout {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.timer.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) if err.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Error::from(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.timer.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Idle pooled connections keep their permits (as in Spin), so the
    /// project's runtime config must leave room above what idle connections
    /// to the components' two hosts (S3 and the Kafka bridge) can hold: at
    /// 256 permits, idle S3 connections left by a playback burst held them
    /// all and uploads waited minutes for a connection to the bridge.
    #[test]
    fn the_projects_cap_leaves_room_above_idle_connections() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime-config.toml");
        let config = crate::runtime_config::RuntimeConfig::load(&path).unwrap();
        let permits = config.outbound_http.connection_permits().unwrap();
        let hosts_called = 2;
        assert!(
            permits > hosts_called * MAX_IDLE_PER_ORIGIN,
            "{permits} connection permits: idle connections alone may hold them all"
        );
    }

    /// A real HTTP/1.1 server on loopback that counts the connections it
    /// accepts and answers every request head with `answer`.
    async fn server(answer: &'static [u8]) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        let Ok(n) = stream.read(&mut buffer).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buffer[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (base, accepted)
    }

    fn get(url: &str) -> http::Request<WasiBody> {
        let empty = http_body_util::Empty::new().map_err(|never| match never {});
        http::Request::get(url).body(empty.boxed_unsync()).unwrap()
    }

    fn options(first_byte: u64, between_bytes: u64) -> Option<RequestOptions> {
        Some(RequestOptions {
            connect_timeout: None,
            first_byte_timeout: Some(Duration::from_millis(first_byte)),
            between_bytes_timeout: Some(Duration::from_millis(between_bytes)),
        })
    }

    #[tokio::test]
    async fn requests_to_one_origin_share_a_connection() {
        let (base, accepted) = server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let pool = OutboundPool::with_permits(true, None);
        for _ in 0..20 {
            let (response, _) = pool.send(get(&format!("{base}/x")), None).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// A real HTTP/1.1 server on loopback that answers each request after
    /// `delay`, keeping connections open, and records the most connections
    /// it ever had open at once.
    async fn slow_server(delay: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let open = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let most_seen = most.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let open = open.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen.extend_from_slice(&buffer[..n]),
                        }
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            tokio::time::sleep(delay).await;
                            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if stream.write_all(answer).await.is_err() {
                                break;
                            }
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (base, most_seen)
    }

    #[tokio::test]
    async fn requests_past_the_connection_limit_wait_their_turn() {
        let (base, most_open) = slow_server(Duration::from_millis(300)).await;
        let pool = OutboundPool::with_permits(true, Some(2));
        let requests = (0..5).map(|i| {
            let pool = pool.clone();
            let url = format!("{base}/{i}");
            async move {
                let (response, _) = pool.send(get(&url), None).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                Ok::<_, Error>((status, body))
            }
        });
        for answer in futures::future::join_all(requests).await {
            let (status, body) = answer.expect("a queued request is served, not failed");
            assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..]));
        }
        assert_eq!(most_open.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_runtime_configs_limit_counts_one_more_connection_as_spin_does() {
        let (base, most_open) = slow_server(Duration::from_millis(200)).await;
        let config = OutboundHttpConfig {
            connection_pooling: true,
            max_concurrent_requests: Some(1),
        };
        let pool = OutboundPool::new(&config);
        let requests = (0..4).map(|i| {
            let pool = pool.clone();
            let url = format!("{base}/{i}");
            async move {
                let (response, _) = pool.send(get(&url), None).await.unwrap();
                response.into_body().collect().await.unwrap();
            }
        });
        futures::future::join_all(requests).await;
        assert_eq!(most_open.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_hits_the_first_byte_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let _silent = tokio::spawn(async move { listener.accept().await });
        let pool = OutboundPool::with_permits(true, None);
        let sent = pool.send(get(&url), options(200, 10_000)).await;
        assert!(
            matches!(sent, Err(Error::ConnectionReadTimeout)),
            "{:?}",
            sent.err()
        );
    }

    #[tokio::test]
    async fn a_body_that_stalls_hits_the_between_bytes_timeout() {
        // Promises ten bytes, sends two, then goes quiet.
        let (base, _) = server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok").await;
        let pool = OutboundPool::with_permits(true, None);
        let (response, _) = pool.send(get(&base), options(10_000, 200)).await.unwrap();
        let read = response.into_body().collect().await;
        assert!(
            matches!(read, Err(Error::ConnectionReadTimeout)),
            "{:?}",
            read.err()
        );
    }

    #[tokio::test]
    async fn an_origin_nobody_listens_on_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let sent = OutboundPool::with_permits(true, None)
            .send(get(&url), None)
            .await;
        assert!(matches!(sent, Err(Error::Connect(_))), "{:?}", sent.err());
    }
}
