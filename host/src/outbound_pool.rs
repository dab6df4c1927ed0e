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

use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
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
    client: Client<HttpConnector, WasiBody>,
}

impl OutboundPool {
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_ORIGIN)
            .build(connector);
        Self { client }
    }

    /// Sends `request`, honouring the guest's first-byte and between-bytes
    /// timeouts.
    pub(crate) async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> wasmtime_wasi_http::Result<Sent> {
        if request.uri().scheme() != Some(&Scheme::HTTP) {
            let (response, connection) =
                wasmtime_wasi_http::default_send_request(request, options).await?;
            return Ok((response.map(BodyExt::boxed_unsync), Box::new(connection)));
        }
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
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
        let pool = OutboundPool::new();
        for _ in 0..20 {
            let (response, _) = pool.send(get(&format!("{base}/x")), None).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_hits_the_first_byte_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let _silent = tokio::spawn(async move { listener.accept().await });
        let pool = OutboundPool::new();
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
        let pool = OutboundPool::new();
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
        let sent = OutboundPool::new().send(get(&url), None).await;
        assert!(matches!(sent, Err(Error::Connect(_))), "{:?}", sent.err());
    }
}
