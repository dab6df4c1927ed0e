//! `xtream-worker bridge`: the produce half of the Strimzi Kafka Bridge's
//! REST API, on rdkafka, so that Wasm components (which cannot speak the
//! Kafka protocol) can publish over HTTP in local runs and tests exactly as
//! they do against a real bridge in production.
//!
//! - `POST /topics/{topic}` with `Content-Type:
//!   application/vnd.kafka.json.v2+json` and `{"records": [{"key": …,
//!   "value": …, "partition": n, "headers": [{"key": "k", "value":
//!   "base64"}]}]}` (all but `value` optional; keys and values are any JSON
//!   and are stored as their JSON text, as the bridge does). Answers `200
//!   {"offsets": [{"partition": p, "offset": o}]}` once the broker has
//!   acknowledged every record (acks=all, idempotent producer).
//! - Errors are `{"error_code": n, "message": "…"}`: 415 for another
//!   content type, 422 for a body that is not such a request, 404 for an
//!   unknown topic, 413 above 1 MiB, 503 when the broker does not
//!   acknowledge within `XTREAM_BRIDGE_DELIVERY_TIMEOUT`.
//! - `GET /healthy` (the process is up) and `GET /ready` (the broker
//!   answers) reply 204, or 503 when not ready.

use crate::config::BridgeConfig;
use crate::kafka::{self, PublishError};
use crate::serve::{self, Reply};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use rdkafka::producer::Producer;
use rdkafka::util::Timeout;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xtream_core::events::BRIDGE_CONTENT_TYPE;

/// Content type of the bridge's answers.
const RESPONSE_CONTENT_TYPE: &str = "application/vnd.kafka.v2+json";
/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// A produce request as the bridge accepts it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    /// The records, sent in order.
    pub records: Vec<ProduceRecord>,
}

/// One record of a produce request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    /// Any JSON; stored as its JSON text. Absent: no key.
    #[serde(default)]
    pub key: Option<Value>,
    /// Any JSON; stored as its JSON text.
    pub value: Value,
    /// A partition to send to instead of the key's.
    #[serde(default)]
    pub partition: Option<i32>,
    /// Record headers; values are base64.
    #[serde(default)]
    pub headers: Vec<ProduceHeader>,
}

/// A record header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceHeader {
    /// Header name.
    pub key: String,
    /// Header value, base64.
    pub value: String,
}

/// A record ready for the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Vec<u8>,
    /// Explicit partition.
    pub partition: Option<i32>,
    /// Headers, decoded.
    pub headers: Vec<(String, Vec<u8>)>,
}

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

    fn reply(&self) -> Response<Full<Bytes>> {
        let body = json!({"error_code": self.status, "message": self.message});
        Reply::text(self.status, RESPONSE_CONTENT_TYPE, body.to_string())
    }
}

/// Checks the content type and decodes a produce request into records.
pub fn decode_produce(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<OutgoingRecord>, BridgeError> {
    let essence = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if essence != BRIDGE_CONTENT_TYPE {
        return Err(BridgeError::new(
            415,
            format!(
                "send Content-Type {BRIDGE_CONTENT_TYPE} (got {:?})",
                content_type.unwrap_or("none")
            ),
        ));
    }
    let request: ProduceRequest = serde_json::from_slice(body)
        .map_err(|e| BridgeError::new(422, format!("the body is not a produce request: {e}")))?;
    request
        .records
        .into_iter()
        .map(|record| {
            if record.partition.is_some_and(|p| p < 0) {
                return Err(BridgeError::new(422, "partition must not be negative"));
            }
            let headers = record
                .headers
                .into_iter()
                .map(|h| {
                    base64::engine::general_purpose::STANDARD
                        .decode(&h.value)
                        .map(|value| (h.key, value))
                        .map_err(|e| {
                            BridgeError::new(422, format!("header values must be base64: {e}"))
                        })
                })
                .collect::<Result<_, _>>()?;
            Ok(OutgoingRecord {
                key: record.key.map(|k| k.to_string().into_bytes()),
                value: record.value.to_string().into_bytes(),
                partition: record.partition,
                headers,
            })
        })
        .collect()
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

    async fn produce(&self, topic: &str, records: Vec<OutgoingRecord>) -> Response<Full<Bytes>> {
        match self.topic_exists(topic).await {
            Ok(true) => {}
            Ok(false) => return BridgeError::new(404, format!("topic {topic} not found")).reply(),
            Err(err) => {
                self.recover();
                return BridgeError::new(503, format!("the Kafka broker is unreachable: {err}"))
                    .reply();
            }
        }
        // Sent together, acknowledged each on its own, answered in order.
        let sends = records.iter().map(|r| {
            self.publisher.publish(
                topic,
                r.key.as_deref(),
                Some(&r.value),
                r.partition,
                &r.headers,
            )
        });
        let results = futures::future::join_all(sends).await;
        if !results.is_empty()
            && results
                .iter()
                .all(|r| matches!(r, Err(PublishError::Unavailable(_))))
        {
            self.recover();
            let Some(Err(err)) = results.into_iter().next() else {
                unreachable!("checked above")
            };
            return BridgeError::new(503, err.to_string()).reply();
        }
        let offsets: Vec<Value> = results
            .into_iter()
            .map(|result| match result {
                Ok(d) => json!({"partition": d.partition, "offset": d.offset}),
                Err(err) => {
                    let code = match err {
                        PublishError::UnknownTopic(_) => 404,
                        PublishError::Refused(_) => 422,
                        PublishError::Unavailable(_) => 503,
                    };
                    json!({"error_code": code, "message": err.to_string()})
                }
            })
            .collect();
        Reply::text(
            200,
            RESPONSE_CONTENT_TYPE,
            json!({ "offsets": offsets }).to_string(),
        )
    }

    async fn ready(&self) -> Response<Full<Bytes>> {
        let producer = self.publisher.current();
        let probe = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Timeout::After(Duration::from_secs(2)))
        })
        .await;
        match probe {
            Ok(Ok(_)) => Reply::empty(204),
            Ok(Err(err)) => {
                BridgeError::new(503, format!("the Kafka broker is unreachable: {err}")).reply()
            }
            Err(err) => BridgeError::new(503, err.to_string()).reply(),
        }
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = request.method().as_str().to_owned();
        let path = request.uri().path().to_owned();
        match (method.as_str(), path.as_str()) {
            ("GET", "/healthy") => return Reply::empty(204),
            ("GET", "/ready") => return self.ready().await,
            _ => {}
        }
        let Some(topic) = path
            .strip_prefix("/topics/")
            .filter(|t| !t.is_empty() && !t.contains('/'))
        else {
            return BridgeError::new(404, format!("no route {path}")).reply();
        };
        if method != "POST" {
            return BridgeError::new(405, "only POST (produce) is served here").reply();
        }
        let topic = topic.to_owned();
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) => {
                return if err.is::<http_body_util::LengthLimitError>() {
                    BridgeError::new(413, format!("bodies are limited to {MAX_BODY} bytes")).reply()
                } else {
                    BridgeError::new(400, format!("reading the body failed: {err}")).reply()
                };
            }
        };
        match decode_produce(content_type.as_deref(), &body) {
            Ok(records) => self.produce(&topic, records).await,
            Err(err) => err.reply(),
        }
    }
}

/// Serves the bridge until SIGTERM/SIGINT.
pub async fn run(config: BridgeConfig) -> anyhow::Result<()> {
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
    crate::run::shutdown_signal().await;
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

    fn decode(body: &str) -> Result<Vec<OutgoingRecord>, BridgeError> {
        decode_produce(Some(BRIDGE_CONTENT_TYPE), body.as_bytes())
    }

    #[test]
    fn stores_keys_and_values_as_json_text() {
        let records = decode(
            r#"{"records":[{"key":"abc","value":{"type":"video.uploaded","size":5}},{"value":[1,2]}]}"#,
        )
        .unwrap();
        assert_eq!(records[0].key.as_deref(), Some(&b"\"abc\""[..]));
        let value: Value = serde_json::from_slice(&records[0].value).unwrap();
        assert_eq!(value, json!({"type": "video.uploaded", "size": 5}));
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value, b"[1,2]");
    }

    #[test]
    fn takes_partitions_and_base64_headers() {
        let records = decode(
            r#"{"records":[{"value":1,"partition":2,"headers":[{"key":"why","value":"aGk="}]}]}"#,
        )
        .unwrap();
        assert_eq!(records[0].partition, Some(2));
        assert_eq!(records[0].headers, vec![("why".to_owned(), b"hi".to_vec())]);
    }

    #[test]
    fn refuses_other_content_types_with_415() {
        for ct in [
            None,
            Some("application/json"),
            Some("application/vnd.kafka.binary.v2+json"),
        ] {
            assert_eq!(
                decode_produce(ct, b"{\"records\":[]}").unwrap_err().status,
                415,
                "{ct:?}"
            );
        }
        let with_charset = format!("{BRIDGE_CONTENT_TYPE}; charset=utf-8");
        assert!(decode_produce(Some(&with_charset), b"{\"records\":[]}").is_ok());
    }

    #[test]
    fn refuses_malformed_bodies_with_422() {
        for body in [
            "",
            "not json",
            "{}",
            r#"{"records":{}}"#,
            r#"{"records":[{"key":"k"}]}"#,
            r#"{"records":[{"value":1,"partition":-1}]}"#,
            r#"{"records":[{"value":1,"headers":[{"key":"a","value":"***"}]}]}"#,
            r#"{"records":[{"value":1,"colour":"red"}]}"#,
        ] {
            assert_eq!(decode(body).unwrap_err().status, 422, "{body}");
        }
    }
}
