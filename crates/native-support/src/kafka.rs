//! Kafka through rdkafka: the producer every mode shares, and the key
//! encoding all producers of Xtream agree on.
//!
//! Keys are JSON: the Strimzi Kafka Bridge's JSON format (which the Spin
//! components publish through) stores a record's key as the JSON text of
//! the key value, so a video id `abc` is the 5 bytes `"abc"`, quotes
//! included. Our own producers (outbox relay, outcomes, dead letters) write
//! the same bytes so that every event of a video hashes to the same
//! partition and stays in order.

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use xtream_core::VideoId;

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

/// Why a record was not delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The broker does not have the topic (or partition).
    #[error("unknown topic or partition: {0}")]
    UnknownTopic(String),
    /// The broker did not acknowledge in time, or could not be reached.
    #[error("the broker did not take the record: {0}")]
    Unavailable(String),
    /// The broker refused the record (too large, invalid).
    #[error("the broker refused the record: {0}")]
    Refused(String),
}

impl From<KafkaError> for PublishError {
    fn from(err: KafkaError) -> Self {
        use RDKafkaErrorCode as Code;
        match err.rdkafka_error_code() {
            Some(Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::UnknownPartition) => {
                Self::UnknownTopic(err.to_string())
            }
            Some(
                Code::MessageSizeTooLarge
                | Code::InvalidMessage
                | Code::InvalidMessageSize
                | Code::InvalidRecord
                | Code::InvalidTopic
                | Code::TopicAuthorizationFailed
                | Code::InvalidPartitions,
            ) => Self::Refused(err.to_string()),
            _ => Self::Unavailable(err.to_string()),
        }
    }
}

/// The record key of a video's events (see the module doc).
pub fn video_key(id: VideoId) -> Vec<u8> {
    text_key(&id.to_string())
}

/// The record key for a key stored as text (the outbox's `key` column):
/// its JSON string, as the bridge writes it.
pub fn text_key(key: &str) -> Vec<u8> {
    serde_json::to_vec(key).expect("a string always serialises")
}

/// Settings every client shares.
pub fn base_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "xtream-worker")
        // Logs go through tracing; "broker down" is an expected state that
        // the callers report themselves.
        .set("log_level", "4");
    config
}

/// A producer that only reports success once every in-sync replica has the
/// record, and never duplicates or reorders on its internal retries.
pub fn producer(brokers: &str, delivery_timeout: Duration) -> Result<FutureProducer, KafkaError> {
    let timeout_ms = delivery_timeout.as_millis().max(1).to_string();
    base_config(brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // Bounded: a caller waiting on a broker that is down hears so in
        // seconds rather than librdkafka's default five minutes.
        .set("message.timeout.ms", &timeout_ms)
        .set("socket.connection.setup.timeout.ms", &timeout_ms)
        .set("linger.ms", "5")
        .create()
}

/// A [`producer`] that replaces itself when deliveries fail for want of a
/// broker. librdkafka's idempotent producer can stay wedged after its
/// broker lost state (a restart of an in-memory broker, a wiped cluster):
/// fatally, or waiting for a producer id that never comes. A new one
/// reconnects cleanly. Cheap to clone; clones share the producer.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<PublisherState>,
}

struct PublisherState {
    producer: RwLock<FutureProducer>,
    brokers: String,
    delivery_timeout: Duration,
    /// When the producer was last replaced: at most once per delivery
    /// timeout, so a long outage does not churn producers.
    last_rebuild: Mutex<Instant>,
}

impl Publisher {
    /// A publisher to `brokers`, waiting at most `delivery_timeout` for an
    /// acknowledgement.
    pub fn new(brokers: &str, delivery_timeout: Duration) -> Result<Self, KafkaError> {
        Ok(Self {
            shared: Arc::new(PublisherState {
                producer: RwLock::new(producer(brokers, delivery_timeout)?),
                brokers: brokers.to_owned(),
                delivery_timeout,
                last_rebuild: Mutex::new(Instant::now()),
            }),
        })
    }

    /// How long a delivery may wait for the broker's acknowledgement.
    pub fn delivery_timeout(&self) -> Duration {
        self.shared.delivery_timeout
    }

    /// The producer in use now.
    pub fn current(&self) -> FutureProducer {
        self.shared.producer.read().expect("producer lock").clone()
    }

    /// The broker could not be reached or did not acknowledge: start a
    /// fresh producer, unless one was started within the delivery timeout.
    pub fn recover(&self) {
        let mut last = self.shared.last_rebuild.lock().expect("rebuild lock");
        if last.elapsed() < self.shared.delivery_timeout {
            return;
        }
        *last = Instant::now();
        if let Some((code, reason)) = self.current().client().fatal_error() {
            tracing::warn!(?code, %reason, "the Kafka producer failed fatally");
        }
        match producer(&self.shared.brokers, self.shared.delivery_timeout) {
            Ok(fresh) => {
                tracing::info!("deliveries failed; starting a fresh Kafka producer");
                *self.shared.producer.write().expect("producer lock") = fresh;
            }
            Err(err) => tracing::error!("cannot create a new Kafka producer: {err}"),
        }
    }

    /// [`publish`] on the current producer, recovering after an outage.
    pub async fn publish(
        &self,
        topic: &str,
        record: Record<'_>,
    ) -> Result<Delivered, PublishError> {
        let sent = publish(&self.current(), topic, record).await;
        if matches!(sent, Err(PublishError::Unavailable(_))) {
            self.recover();
        }
        sent
    }

    /// Sends one JSON event about video `id`.
    pub async fn publish_event(
        &self,
        topic: &str,
        id: VideoId,
        event: &impl serde::Serialize,
        headers: &[(String, Vec<u8>)],
    ) -> Result<Delivered, PublishError> {
        let value = serde_json::to_vec(event).expect("events always serialise");
        let key = video_key(id);
        let record = Record {
            headers,
            ..Record::keyed(&key, &value)
        };
        self.publish(topic, record).await
    }

    /// Waits up to the delivery timeout for queued records to go out.
    pub async fn flush(&self) -> Result<(), KafkaError> {
        let producer = self.current();
        let timeout = self.shared.delivery_timeout;
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout)))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }
}

/// One record to send.
#[derive(Debug, Clone, Copy, Default)]
pub struct Record<'a> {
    /// Key bytes; none: no key.
    pub key: Option<&'a [u8]>,
    /// Value bytes; none: a null value.
    pub value: Option<&'a [u8]>,
    /// A partition to send to instead of the key's.
    pub partition: Option<i32>,
    /// Milliseconds since the epoch; none: the producer's clock.
    pub timestamp: Option<i64>,
    /// Header names and values.
    pub headers: &'a [(String, Vec<u8>)],
}

impl<'a> Record<'a> {
    /// A record with a key and a value, and nothing else set.
    pub fn keyed(key: &'a [u8], value: &'a [u8]) -> Self {
        Self {
            key: Some(key),
            value: Some(value),
            ..Self::default()
        }
    }
}

/// Sends one record and waits for the broker's acknowledgement.
async fn publish(
    producer: &FutureProducer,
    topic: &str,
    sending: Record<'_>,
) -> Result<Delivered, PublishError> {
    let Record {
        key,
        value,
        partition,
        timestamp,
        headers,
    } = sending;
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(value) = value {
        record = record.payload(value);
    }
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Some(timestamp) = timestamp {
        record = record.timestamp(timestamp);
    }
    if !headers.is_empty() {
        let owned = headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (name, value)| {
                all.insert(Header {
                    key: name,
                    value: Some(value),
                })
            });
        record = record.headers(owned);
    }
    // `Timeout::Never` only for queueing: message.timeout.ms bounds delivery.
    match producer.send(record, Timeout::Never).await {
        Ok(delivery) => Ok(Delivered {
            partition: delivery.partition,
            offset: delivery.offset,
        }),
        Err((err, _)) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_json_strings_like_the_bridge_writes() {
        let id: VideoId = "6f9619ff-8b86-4011-b42d-00c04fc964ff".parse().unwrap();
        assert_eq!(video_key(id), b"\"6f9619ff-8b86-4011-b42d-00c04fc964ff\"");
        // What the Spin components send through the bridge decodes to the
        // same bytes.
        let body = xtream_core::events::bridge_produce_body(id, &1).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            serde_json::to_vec(&body["records"][0]["key"]).unwrap(),
            video_key(id)
        );
    }

    #[test]
    fn tells_missing_topics_from_outages() {
        let unknown = KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert!(matches!(
            PublishError::from(unknown),
            PublishError::UnknownTopic(_)
        ));
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(matches!(
            PublishError::from(timeout),
            PublishError::Unavailable(_)
        ));
        let big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(matches!(PublishError::from(big), PublishError::Refused(_)));
    }
}
