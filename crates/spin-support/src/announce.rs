//! Announcing uploads on Kafka, over HTTP.
//!
//! A Spin component cannot run a Kafka client (librdkafka is C, and Spin
//! refuses the DNS lookups a client needs for broker addresses), so events
//! go through the Strimzi Kafka Bridge's REST produce API; locally,
//! `xtream-kafka-bridge` serves the same API.

use crate::config::variable;
use spin_sdk::http::{Method, Request, Response};
use xtream_core::events::{
    BRIDGE_CONTENT_TYPE, VideoUploaded, bridge_delivered, bridge_produce_body,
};
use xtream_core::{ApiError, VideoRecord};

/// Publishes the `video.uploaded` event of `record` and waits for the
/// bridge to confirm the broker took it.
pub async fn upload(record: &VideoRecord) -> Result<(), ApiError> {
    let bridge = variable("kafka_bridge_url")?;
    let topic = variable("uploads_topic")?;
    let url = format!("{}/topics/{topic}", bridge.trim_end_matches('/'));
    let body = bridge_produce_body(record.id, &VideoUploaded::of(record))
        .map_err(|e| ApiError::internal(format!("cannot encode the upload event: {e}")))?;
    let request = Request::builder()
        .method(Method::Post)
        .uri(url)
        .header("content-type", BRIDGE_CONTENT_TYPE)
        .header("content-length", body.len().to_string())
        .body(body)
        .build();
    let response: Response = spin_sdk::http::send(request).await.map_err(|e| {
        ApiError::queue_unavailable(format!("the Kafka bridge is unreachable: {e}"))
    })?;
    let status = *response.status();
    if (200..300).contains(&status) {
        // A 200 is not a delivery: Strimzi's bridge reports a failed record
        // inside it, and taking it for one would mark the outbox entry sent
        // and lose the announcement.
        bridge_delivered(response.body()).map_err(ApiError::queue_unavailable)
    } else {
        let detail: String = String::from_utf8_lossy(response.body())
            .chars()
            .take(300)
            .collect();
        Err(ApiError::queue_unavailable(format!(
            "the Kafka bridge refused the upload event ({status}): {detail}"
        )))
    }
}
