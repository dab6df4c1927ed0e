//! The HTTP/1.1 front end: accepts connections, routes each request to its
//! component with Spin's informational headers, and turns every failure into
//! a JSON error response.

use crate::routing::{RouteMatch, Router};
use crate::runtime::AppComponent;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// How long shutdown waits for in-flight requests before cutting them off.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything needed to answer a request.
pub(crate) struct App {
    pub(crate) router: Router,
    pub(crate) components: HashMap<String, Arc<AppComponent>>,
    pub(crate) body_idle_timeout: Duration,
    pub(crate) request_metrics: Arc<crate::metrics::RequestMetrics>,
}

/// Accepts connections until `shutdown` changes (or its sender is dropped),
/// then lets open connections finish their current request.
pub(crate) async fn serve(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<()>) {
    let local = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!("listener has no address: {e}");
            return;
        }
    };
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, local, app.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown: aborting connections still busy after {DRAIN_TIMEOUT:?}");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    app: Arc<App>,
    mut shutdown: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.handle(request, peer, local).await) }
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(crate::HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended with error: {e}");
    }
}

impl App {
    async fn handle(
        &self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let path = request.uri().path().to_owned();
        let Some(route) = self.router.route(&path) else {
            return error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no route for {path}"),
            );
        };
        let Some(component) = self.components.get(&route.component) else {
            // Unreachable by construction (the manifest is validated), but
            // not worth a panic.
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "route leads to a missing component",
            );
        };
        // Counted where Spin counts it: routed, before the component runs.
        self.request_metrics.count_request(&route.component);
        add_spin_headers(&mut request, &route, peer, local);
        let request = request.map(|body| IdleTimeout::new(body, self.body_idle_timeout));
        tracing::debug!(method = %request.method(), uri = %request.uri(), component = %route.component, "request");
        match component.handle(request).await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(component = %route.component, %path, "request failed: {e:?}");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    &format!("component `{}` failed: {}", route.component, summary(&e)),
                )
            }
        }
    }
}

/// The error chain on one line, without Wasmtime's multi-line backtrace
/// (whose header line ends in `:`); the full error goes to the log.
fn summary(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let line = text.lines().next().unwrap_or_default().trim();
        if !line.is_empty() && !line.ends_with(':') && parts.last().is_none_or(|p| p != line) {
            parts.push(line.to_owned());
        }
    }
    parts.join(": ")
}

/// Adds the headers Spin gives every HTTP component, replacing any the
/// client sent. Values that are not valid header text are skipped.
fn add_spin_headers(
    request: &mut Request<Incoming>,
    route: &RouteMatch,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let headers = request.headers_mut();
    // A request without Host (HTTP/1.0) would have no authority to hand to
    // the component.
    if !headers.contains_key(HOST)
        && let Ok(value) = HeaderValue::from_str(&local.to_string())
    {
        headers.insert(HOST, value);
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let full_url = format!("http://{host}{path_and_query}");

    let mut spin: Vec<(String, String)> = vec![
        ("spin-full-url".into(), full_url),
        ("spin-path-info".into(), route.path_info.clone()),
        ("spin-matched-route".into(), route.matched_route.clone()),
        (
            "spin-raw-component-route".into(),
            route.matched_route.clone(),
        ),
        ("spin-component-route".into(), route.component_route.clone()),
        ("spin-base-path".into(), "/".into()),
        ("spin-client-addr".into(), peer.to_string()),
    ];
    for (name, value) in &route.params {
        spin.push((
            format!("spin-path-match-{}", name.to_ascii_lowercase()),
            value.clone(),
        ));
    }
    let headers = request.headers_mut();
    for (name, value) in spin {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// `{"error":{"code":…,"message":…}}` with `status`.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response<HyperOutgoingBody> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A request body that fails once no data has arrived for a while.
///
/// Without it a client trickling (or never finishing) its body would keep a
/// component instance, and its memory, busy indefinitely.
struct IdleTimeout {
    body: Incoming,
    idle: Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl IdleTimeout {
    fn new(body: Incoming, idle: Duration) -> Self {
        Self {
            body,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl hyper::body::Body for IdleTimeout {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match std::future::Future::poll(this.deadline.as_mut(), cx) {
                // The component's body read fails with a read time-out.
                Poll::Ready(()) => Poll::Ready(Some(Err(ErrorCode::ConnectionReadTimeout.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
