//! A minimal HTTP/1.1 server on hyper, for the worker's `/metrics` and the bridge.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;

/// A response with a whole body.
pub struct Reply;

impl Reply {
    /// `status` with `body` of `content_type`.
    pub fn text(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("status and header are valid")
    }

    /// `status` with no body.
    pub fn empty(status: u16) -> Response<Full<Bytes>> {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .expect("status is valid")
    }
}

/// Binds `listen` and serves every connection with `handle` in the
/// background. Returns the bound address.
pub async fn http<H, F>(listen: SocketAddr, handle: H) -> std::io::Result<SocketAddr>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let reply = handle(request);
                    async move { Ok::<_, std::convert::Infallible>(reply.await) }
                });
                if let Err(err) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%err, "connection ended with an error");
                }
            });
        }
    });
    Ok(addr)
}
