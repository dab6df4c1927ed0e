//! Events on Kafka: what the functions announce and what the worker reports.
//!
//! Every event is keyed by its video id, so all events of one video land on
//! one partition, in order.

use crate::{VideoId, VideoRecord};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Default topic of [`VideoUploaded`] events.
pub const UPLOADS_TOPIC: &str = "xtream.uploads";
/// Default topic of [`VideoOutcome`] events.
pub const RESULTS_TOPIC: &str = "xtream.results";
/// Default topic where undeliverable upload events end up.
pub const DEAD_LETTER_TOPIC: &str = "xtream.uploads.dlq";

/// An original is stored and waits to be transcoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "video.uploaded")]
pub struct VideoUploaded {
    /// The video.
    pub video_id: VideoId,
    /// Key of the original in the bucket.
    pub original_key: String,
    /// Its MIME type as uploaded.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// When the upload finished.
    pub uploaded_at: Timestamp,
}

impl VideoUploaded {
    /// The event announcing `record`'s upload.
    pub fn of(record: &VideoRecord) -> Self {
        Self {
            video_id: record.id,
            original_key: crate::keys::original(record.id),
            content_type: record.content_type.clone(),
            size: record.size,
            uploaded_at: record.created_at,
        }
    }
}

/// What became of a video after transcoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum VideoOutcome {
    /// Renditions are stored; the record is `ready`.
    #[serde(rename = "video.ready")]
    Ready {
        /// The video.
        video_id: VideoId,
        /// Length in seconds.
        duration_seconds: f64,
        /// Rendition names, e.g. `["360p", "720p"]`.
        renditions: Vec<String>,
    },
    /// Transcoding gave up; the record is `failed`.
    #[serde(rename = "video.failed")]
    Failed {
        /// The video.
        video_id: VideoId,
        /// Why, for people.
        reason: String,
    },
}

impl VideoOutcome {
    /// The video the outcome is about (the Kafka key).
    pub fn video_id(&self) -> VideoId {
        match self {
            Self::Ready { video_id, .. } | Self::Failed { video_id, .. } => *video_id,
        }
    }
}

/// Content type of the Strimzi Kafka Bridge's JSON produce API.
pub const BRIDGE_CONTENT_TYPE: &str = "application/vnd.kafka.json.v2+json";

/// The body of a Kafka Bridge produce request (`POST /topics/{topic}`) that
/// publishes `value` under `key`.
pub fn bridge_produce_body(
    key: VideoId,
    value: &impl Serialize,
) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    struct Produce<'a, V> {
        records: [Record<'a, V>; 1],
    }
    #[derive(Serialize)]
    struct Record<'a, V> {
        key: String,
        value: &'a V,
    }
    serde_json::to_vec(&Produce {
        records: [Record {
            key: key.to_string(),
            value,
        }],
    })
}

/// Whether a Kafka Bridge produce response says every record was
/// delivered. Strimzi's bridge answers 200 even when a record failed,
/// putting `{"error_code", "message"}` in that record's place in `offsets`
/// instead of a partition and offset; only a body whose every entry is a
/// partition/offset pair means the broker has the records.
pub fn bridge_delivered(body: &[u8]) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Produced {
        offsets: Vec<serde_json::Value>,
    }
    let produced: Produced = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the Kafka bridge answered something that is not a produce result ({e}): {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(200)
                .collect::<String>()
        )
    })?;
    if produced.offsets.is_empty() {
        return Err("the Kafka bridge reported no delivered record".into());
    }
    for entry in &produced.offsets {
        let delivered = entry
            .get("partition")
            .is_some_and(serde_json::Value::is_i64)
            && entry.get("offset").is_some_and(serde_json::Value::is_i64);
        if !delivered {
            let code = entry
                .get("error_code")
                .map_or("none".into(), ToString::to_string);
            let message = entry
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no message");
            return Err(format!(
                "the Kafka bridge could not deliver the event (error {code}): {message}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partition_and_offset_pairs_mean_delivered() {
        assert_eq!(
            bridge_delivered(br#"{"offsets":[{"partition":2,"offset":17}]}"#),
            Ok(())
        );
        let failed = bridge_delivered(
            br#"{"offsets":[{"error_code":500,"message":"Topic xtream.uploads not present"}]}"#,
        )
        .unwrap_err();
        assert!(
            failed.contains("500") && failed.contains("not present"),
            "{failed}"
        );
        for junk in [
            &b"{}"[..],
            b"{\"offsets\":[]}",
            b"<html>",
            b"{\"offsets\":[{\"partition\":1}]}",
        ] {
            assert!(
                bridge_delivered(junk).is_err(),
                "{}",
                String::from_utf8_lossy(junk)
            );
        }
    }

    #[test]
    fn uploaded_events_carry_their_type_tag() {
        let record = VideoRecord::uploaded(
            VideoId::random(),
            "t".into(),
            "f.mp4".into(),
            5,
            "video/mp4".into(),
            Timestamp::from_second(0).unwrap(),
        );
        let json = serde_json::to_value(VideoUploaded::of(&record)).unwrap();
        assert_eq!(json["type"], "video.uploaded");
        assert_eq!(json["video_id"], record.id.to_string());
        assert_eq!(json["original_key"], crate::keys::original(record.id));
        let back: VideoUploaded = serde_json::from_value(json).unwrap();
        assert_eq!(back, VideoUploaded::of(&record));
    }

    #[test]
    fn bridge_bodies_hold_one_keyed_record() {
        let id = VideoId::random();
        let body = bridge_produce_body(id, &serde_json::json!({"a": 1})).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"records": [{"key": id.to_string(), "value": {"a": 1}}]})
        );
    }

    #[test]
    fn outcomes_are_told_apart_by_type() {
        let id = VideoId::random();
        let failed = VideoOutcome::Failed {
            video_id: id,
            reason: "not a video".into(),
        };
        let json = serde_json::to_string(&failed).unwrap();
        assert!(json.contains("\"type\":\"video.failed\""));
        let back: VideoOutcome = serde_json::from_str(&json).unwrap();
        assert_eq!(back.video_id(), id);
        assert!(serde_json::from_str::<VideoOutcome>(r#"{"type":"video.exploded"}"#).is_err());
    }
}
