//! `xtream-kafka-bridge`: the produce half of the Strimzi Kafka Bridge's
//! REST API, on rdkafka, so that Wasm components (which cannot speak the
//! Kafka protocol) publish over HTTP in local runs and tests exactly as they
//! do against the real bridge in production.
//!
//! It answers as Strimzi's bridge 0.31.1 does (the one Strimzi 0.45.0, our
//! pinned operator, deploys), failures included; the status codes and body
//! shapes are checked against that release's OpenAPI document by the
//! contract tests (`tests/tests/bridge_contract.rs`). Messages are ours.
//!
//! - `POST /topics/{topic}` and `POST /topics/{topic}/partitions/{p}` with
//!   `Content-Type: application/vnd.kafka.{json,binary,text}.v2+json`
//!   answer **200** `{"offsets": [...]}` with one entry per record, in
//!   order: `{"partition", "offset"}` once the broker acknowledged it
//!   (acks=all, idempotent producer), or `{"error_code", "message"}` when
//!   it did not: 404 when the topic or partition is not in the broker's
//!   metadata (or the metadata cannot be had), 500 for any other delivery
//!   failure, such as no acknowledgement within
//!   `XTREAM_BRIDGE_DELIVERY_TIMEOUT`. A failed delivery is never an HTTP
//!   error: callers must read `offsets`.
//! - `?async=true`: **204** at once, deliveries not reported.
//! - Refusals are `{"error_code": n, "message": "…"}`: 400 for a body the
//!   schema refuses, a missing or non-JSON content type or a bad `async`;
//!   500 for another JSON content type; 422 for a body that cannot be
//!   converted (no `records`, a non-string in the text format, bad base64);
//!   404 `Not Found` for an unknown path. 405 (with `Allow`) for another
//!   method, 406 for an `Accept` without the response type and 413 (plain
//!   text) above 10 MiB come with no JSON body, as Vert.x sends them.
//! - `GET /healthy` and `GET /ready`: 204 while the process runs (Strimzi's
//!   probes do not look at the broker).
//! - The rest of the API (consumers, topic metadata) is not served here:
//!   `GET` on a topic is 501.
//!
//! Local runs and tests only: Kubernetes runs Strimzi's own bridge, so this
//! binary is a crate of its own and the worker's image does not carry it.
//! Settings: see [`config`].

mod config;
mod request;

use crate::config::BridgeConfig;
use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use rdkafka::producer::Producer;
use rdkafka::util::Timeout;
use request::{EmbeddedFormat, OutgoingRecord, accepts, decode_produce};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use xtream_native::kafka::{self, Delivered, PublishError};
use xtream_native::serve::{self, Reply};

/// Content type of the bridge's answers.
const RESPONSE_CONTENT_TYPE: &str = "application/vnd.kafka.v2+json";
/// Largest request body accepted: Vert.x's default body limit, which the
/// bridge keeps.
const MAX_BODY: usize = 10 * 1024 * 1024;

/// A refusal, as the bridge words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeError {
    /// HTTP status, also the body's `error_code`.
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

impl BridgeError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn to_json(&self) -> Value {
        json!({"error_code": self.status, "message": self.message})
    }

    fn reply(&self) -> Response<Full<Bytes>> {
        Reply::text(
            self.status,
            RESPONSE_CONTENT_TYPE,
            self.to_json().to_string(),
        )
    }
}

/// A status Vert.x answers itself, with no JSON body.
fn bare(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("status and headers are valid")
}

/// What a request asks for, by path.
enum Route {
    Probe,
    Topic {
        topic: String,
        partition: Option<String>,
    },
    Unknown,
}

impl Route {
    fn of(path: &str) -> Self {
        if path == "/healthy" || path == "/ready" {
            return Self::Probe;
        }
        let Some(rest) = path.strip_prefix("/topics/") else {
            return Self::Unknown;
        };
        match rest.split('/').collect::<Vec<_>>()[..] {
            [topic] if !topic.is_empty() => Self::Topic {
                topic: topic.to_owned(),
                partition: None,
            },
            [topic, "partitions", partition] if !topic.is_empty() && !partition.is_empty() => {
                Self::Topic {
                    topic: topic.to_owned(),
                    partition: Some(partition.to_owned()),
                }
            }
            _ => Self::Unknown,
        }
    }
}

/// The bridge's state.
struct Bridge {
    publisher: kafka::Publisher,
    /// Topics the broker confirmed, so a produce asks for metadata once.
    known_topics: Mutex<HashSet<String>>,
}

impl Bridge {
    /// After deliveries failed for want of a broker: forget what we knew of
    /// its topics (it may have come back without them) and let the
    /// publisher start afresh.
    fn recover(&self) {
        self.known_topics.lock().expect("topics lock").clear();
        self.publisher.recover();
    }

    /// Whether the broker has `topic`; `Err` when it cannot be asked.
    async fn topic_exists(&self, topic: &str) -> Result<bool, String> {
        if self
            .known_topics
            .lock()
            .expect("topics lock")
            .contains(topic)
        {
            return Ok(true);
        }
        let producer = self.publisher.current();
        let name = topic;
        let timeout = self.publisher.delivery_timeout();
        // Metadata for all topics, not for this one: a request naming a
        // topic asks the broker to create it (tansu and auto-creating Kafka
        // clusters do), and a typo must be a 404, not a new topic.
        let metadata = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Timeout::After(timeout))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty());
        if exists {
            self.known_topics
                .lock()
                .expect("topics lock")
                .insert(topic.to_owned());
        }
        Ok(exists)
    }

    /// Sends `records` to `topic`: one outcome per record, in order.
    async fn produce(
        &self,
        topic: &str,
        records: &[OutgoingRecord],
    ) -> Vec<Result<Delivered, BridgeError>> {
        // Kafka's producer blocks on metadata and then fails each record
        // with "not present in metadata", which the bridge reports as 404.
        let absent = |why: &str| {
            let timeout = self.publisher.delivery_timeout().as_millis();
            BridgeError::new(
                404,
                format!("Topic {topic} not present in metadata after {timeout} ms ({why})."),
            )
        };
        match self.topic_exists(topic).await {
            Ok(true) => {}
            Ok(false) => {
                return records
                    .iter()
                    .map(|_| Err(absent("no such topic")))
                    .collect();
            }
            Err(err) => {
                self.recover();
                let why = format!("the broker cannot be reached: {err}");
                return records.iter().map(|_| Err(absent(&why))).collect();
            }
        }
        // Sent together, acknowledged each on its own, answered in order.
        let sends = records.iter().map(|r| {
            self.publisher.publish(
                topic,
                kafka::Record {
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                    partition: r.partition,
                    timestamp: r.timestamp,
                    headers: &r.headers,
                },
            )
        });
        let results = futures::future::join_all(sends).await;
        if results
            .iter()
            .any(|r| matches!(r, Err(PublishError::Unavailable(_))))
        {
            // The topics may have gone with the broker.
            self.known_topics.lock().expect("topics lock").clear();
        }
        results
            .into_iter()
            .map(|result| {
                result.map_err(|err| match err {
                    PublishError::UnknownTopic(_) => absent(&err.to_string()),
                    other => BridgeError::new(500, other.to_string()),
                })
            })
            .collect()
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (topic, partition) = match Route::of(request.uri().path()) {
            Route::Unknown => return BridgeError::new(404, "Not Found").reply(),
            Route::Probe if request.method() == "GET" => return Reply::empty(204),
            Route::Probe => return bare(405, &[("allow", "GET")], ""),
            Route::Topic { topic, partition } => (topic, partition),
        };
        match request.method().as_str() {
            "POST" => {}
            "GET" => {
                return BridgeError::new(
                    501,
                    "this local bridge serves only the produce API; topic metadata is not served",
                )
                .reply();
            }
            _ => return bare(405, &[("allow", "GET, POST")], ""),
        }
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if !accepts(header("accept").as_deref(), RESPONSE_CONTENT_TYPE) {
            return bare(406, &[], "");
        }
        let asynchronous = match query_flag(request.uri().query(), "async") {
            Ok(flag) => flag,
            Err(err) => return err.reply(),
        };
        let partition = match partition.map(|p| p.parse::<i32>()).transpose() {
            Ok(partition) => partition,
            Err(err) => {
                return BridgeError::new(400, format!("the partition in the path: {err}")).reply();
            }
        };
        let content_type = header("content-type");
        let body = match read_body(request.into_body()).await {
            Ok(Some(body)) => body,
            Ok(None) => return bare(413, &[], "Request Entity Too Large"),
            Err(err) => {
                return BridgeError::new(400, format!("reading the body failed: {err}")).reply();
            }
        };
        let records = match EmbeddedFormat::from_content_type(content_type.as_deref())
            .and_then(|format| decode_produce(format, partition, &body))
        {
            Ok(records) => records,
            Err(err) => return err.reply(),
        };
        if asynchronous {
            tokio::spawn(async move { self.produce(&topic, &records).await });
            return Reply::empty(204);
        }
        let offsets: Vec<Value> = self
            .produce(&topic, &records)
            .await
            .into_iter()
            .map(|outcome| match outcome {
                Ok(d) => json!({"partition": d.partition, "offset": d.offset}),
                Err(err) => err.to_json(),
            })
            .collect();
        Reply::text(
            200,
            RESPONSE_CONTENT_TYPE,
            json!({ "offsets": offsets }).to_string(),
        )
    }
}

/// The request body, or `None` when it is larger than [`MAX_BODY`]. An
/// oversized body is still read to its end, and thrown away: a client
/// that is still sending when the answer comes and the connection closes
/// would see a reset instead of the 413.
async fn read_body(mut body: Incoming) -> Result<Option<Bytes>, hyper::Error> {
    let mut kept = Vec::new();
    let mut oversized = false;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            oversized |= kept.len() + data.len() > MAX_BODY;
            if oversized {
                kept = Vec::new();
            } else {
                kept.extend_from_slice(&data);
            }
        }
    }
    Ok((!oversized).then(|| Bytes::from(kept)))
}

/// A boolean query parameter: absent is false.
fn query_flag(query: Option<&str>, name: &str) -> Result<bool, BridgeError> {
    let value = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value);
    match value {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(BridgeError::new(
            400,
            format!("the query parameter {name}: {other:?} should be true or false"),
        )),
    }
}

fn main() -> anyhow::Result<()> {
    xtream_native::log_to_stderr();
    if let Some(arg) = std::env::args().nth(1) {
        let usage = "usage: xtream-kafka-bridge (settings from XTREAM_KAFKA_BROKERS, \
                     XTREAM_BRIDGE_LISTEN, XTREAM_BRIDGE_DELIVERY_TIMEOUT)";
        if matches!(arg.as_str(), "-h" | "--help" | "help") {
            println!("{usage}");
            return Ok(());
        }
        eprintln!("unexpected argument {arg:?}\n{usage}");
        std::process::exit(2);
    }
    let config = BridgeConfig::from_env()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(config))
        .context("the bridge failed")
}

/// Serves the bridge until SIGTERM/SIGINT.
async fn run(config: BridgeConfig) -> anyhow::Result<()> {
    let bridge = Arc::new(Bridge {
        publisher: kafka::Publisher::new(&config.brokers, config.delivery_timeout)?,
        known_topics: Mutex::new(HashSet::new()),
    });
    let serving = bridge.clone();
    let addr: SocketAddr = serve::http(config.listen, move |request| {
        serving.clone().handle(request)
    })
    .await?;
    tracing::info!(%addr, brokers = %config.brokers, "serving the Kafka Bridge produce API");
    xtream_native::shutdown_signal().await;
    // Whatever is still queued was not acknowledged to anyone; give it the
    // delivery timeout to go out.
    if bridge.publisher.flush().await.is_err() {
        tracing::warn!("some records were still unacknowledged at exit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(Route::of("/ready"), Route::Probe));
        assert!(matches!(
            Route::of("/topics/a"),
            Route::Topic {
                partition: None,
                ..
            }
        ));
        assert!(matches!(
            Route::of("/topics/a/partitions/2"),
            Route::Topic { partition: Some(p), .. } if p == "2"
        ));
        for path in [
            "/",
            "/topics/",
            "/topics/a/b",
            "/topics/a/partitions/",
            "/consumers/g",
        ] {
            assert!(matches!(Route::of(path), Route::Unknown), "{path}");
        }
    }

    #[test]
    fn async_is_a_boolean() {
        assert_eq!(query_flag(None, "async"), Ok(false));
        assert_eq!(query_flag(Some("async=true"), "async"), Ok(true));
        assert_eq!(query_flag(Some("x=1&async=false"), "async"), Ok(false));
        assert_eq!(
            query_flag(Some("async=yes"), "async").unwrap_err().status,
            400
        );
    }
}
