//! Request metrics under the names the functions have on the cluster, so
//! the dashboards and alerts can be tried against a local stack.
//!
//! Spin counts every request routed to a component as `spin.request_count`
//! (attributes `trigger_type`, `app_id`, `component_id`) and pushes it over
//! OTLP; Prometheus' OTLP receiver stores it as `spin_request_count_total`.
//! The embedded host keeps the same counter, counted at the same moment
//! (once the route names a component, before it runs), and serves it as a
//! Prometheus text page on an address of its own (`--metrics-listen`), so
//! no application route is shadowed.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Spin's request counter, per component of one application.
#[derive(Debug)]
pub struct RequestMetrics {
    app_id: String,
    requests: BTreeMap<String, AtomicU64>,
}

impl RequestMetrics {
    /// A counter at zero for each component, so every series exists from
    /// the first scrape (an alert's `increase` needs the zero).
    pub fn new<'a>(app_id: &str, component_ids: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            app_id: app_id.to_owned(),
            requests: component_ids
                .into_iter()
                .map(|id| (id.to_owned(), AtomicU64::new(0)))
                .collect(),
        }
    }

    /// Counts one request routed to `component_id`.
    pub fn count_request(&self, component_id: &str) {
        if let Some(counter) = self.requests.get(component_id) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut page = String::from(
            "# HELP spin_request_count_total Requests routed to each component (Spin's spin.request_count).\n\
             # TYPE spin_request_count_total counter\n",
        );
        for (component_id, counter) in &self.requests {
            let _ = writeln!(
                page,
                "spin_request_count_total{{trigger_type=\"http\",app_id=\"{}\",component_id=\"{}\"}} {}",
                label_value(&self.app_id),
                label_value(component_id),
                counter.load(Ordering::Relaxed)
            );
        }
        page
    }
}

/// A label value as the text format wants it: backslash, quote and newline
/// escaped.
fn label_value(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Serves `GET /metrics` on `listener` until `shutdown` changes.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<RequestMetrics>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let page = answer(&request, &metrics);
                async move { Ok::<_, Infallible>(page) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(request: &Request<Incoming>, metrics: &RequestMetrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"error":"not_found","message":"this address serves GET /metrics only"}"#.to_owned(),
        ),
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static parts make a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_component_apart_and_starts_every_series_at_zero() {
        let metrics = RequestMetrics::new("xtream", ["videos", "health"]);
        metrics.count_request("videos");
        metrics.count_request("videos");
        metrics.count_request("not-a-component");
        let page = metrics.render();
        assert!(
            page.contains("# TYPE spin_request_count_total counter\n"),
            "{page}"
        );
        assert!(
            page.contains(
                "spin_request_count_total{trigger_type=\"http\",app_id=\"xtream\",component_id=\"videos\"} 2\n"
            ),
            "{page}"
        );
        assert!(
            page.contains(
                "spin_request_count_total{trigger_type=\"http\",app_id=\"xtream\",component_id=\"health\"} 0\n"
            ),
            "{page}"
        );
        assert_eq!(page.lines().count(), 4, "{page}");
    }

    #[test]
    fn label_values_are_escaped() {
        let page = RequestMetrics::new("my \"app\"\\\n", ["c"]).render();
        assert!(page.contains(r#"app_id="my \"app\"\\\n""#), "{page}");
    }
}
