//! Reading a produce request the way Strimzi's bridge does: which content
//! types it takes, which bodies it refuses and with which status.
//!
//! Strimzi validates a request against its OpenAPI document before its own
//! code sees it, so a body that breaks the schema (malformed JSON, a
//! missing `value`, an unknown field, a number as a value) is a 400, while
//! a body the schema allows but the embedded format cannot convert (no
//! `records`, a non-string value in the text format, bad base64) is a 422.

use super::BridgeError;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

/// How record keys and values are carried in the JSON body, chosen by the
/// request's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddedFormat {
    /// Any JSON; the record holds its JSON text.
    Json,
    /// Base64 strings; the record holds the decoded bytes.
    Binary,
    /// Strings; the record holds their UTF-8 bytes.
    Text,
}

impl EmbeddedFormat {
    const NAMED: [(&str, Self); 3] = [
        (xtream_core::events::BRIDGE_CONTENT_TYPE, Self::Json),
        ("application/vnd.kafka.binary.v2+json", Self::Binary),
        ("application/vnd.kafka.text.v2+json", Self::Text),
    ];

    /// The format a `Content-Type` names. Strimzi compares the whole header
    /// with its three types, parameters included; another JSON type passes
    /// its router and then fails its handler (500), anything else has no
    /// body processor (400).
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, BridgeError> {
        let Some(given) = content_type else {
            return Err(BridgeError::new(
                400,
                "a produce request needs a body and its Content-Type",
            ));
        };
        if let Some((_, format)) = Self::NAMED.iter().find(|(name, _)| *name == given) {
            return Ok(*format);
        }
        let lower = given.to_ascii_lowercase();
        let names = Self::NAMED.map(|(name, _)| name).join(", ");
        if lower.contains("application/json") || lower.contains("+json") {
            Err(BridgeError::new(
                500,
                format!("Content-Type {given:?} is not exactly one of {names}"),
            ))
        } else {
            Err(BridgeError::new(
                400,
                format!("no body processor for Content-Type {given:?}; send one of {names}"),
            ))
        }
    }
}

/// A record ready for the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes; none for a JSON `null` (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Explicit partition.
    pub partition: Option<i32>,
    /// Milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// Headers, decoded.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The body of a produce request, as the schema allows it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceRequest {
    /// Not required by the schema: its absence is the handler's 422.
    records: Option<Vec<ProduceRecord>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceRecord {
    #[serde(default)]
    key: Option<Value>,
    value: Value,
    #[serde(default)]
    partition: Option<i32>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    headers: Vec<ProduceHeader>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceHeader {
    key: String,
    /// Base64.
    value: String,
}

/// Decodes a produce request body into records. `path_partition` is the
/// partition of `POST /topics/{topic}/partitions/{partition}`, whose
/// records may not name one themselves.
pub fn decode_produce(
    format: EmbeddedFormat,
    path_partition: Option<i32>,
    body: &[u8],
) -> Result<Vec<OutgoingRecord>, BridgeError> {
    let invalid = |what: String| BridgeError::new(400, format!("invalid produce request: {what}"));
    let request: ProduceRequest =
        serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    let records = request
        .records
        .ok_or_else(|| BridgeError::new(422, "the request has no `records`"))?;
    records
        .into_iter()
        .enumerate()
        .map(|(n, record)| {
            // The schema's RecordKey and RecordValue: array, object or
            // string, and a value may also be null.
            let shaped = |v: &Value| v.is_array() || v.is_object() || v.is_string();
            if record.key.as_ref().is_some_and(|k| !shaped(k)) {
                return Err(invalid(format!(
                    "records/{n}/key must be an array, object or string"
                )));
            }
            if !(record.value.is_null() || shaped(&record.value)) {
                return Err(invalid(format!(
                    "records/{n}/value must be an array, object, string or null"
                )));
            }
            if path_partition.is_some() && record.partition.is_some() {
                return Err(invalid(format!(
                    "records/{n} names a partition, and so does the path"
                )));
            }
            let headers = record
                .headers
                .into_iter()
                .map(|h| {
                    base64::engine::general_purpose::STANDARD
                        .decode(&h.value)
                        .map(|value| (h.key, value))
                        .map_err(|e| {
                            BridgeError::new(
                                422,
                                format!("records/{n}: header values must be base64: {e}"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?;
            let value = match record.value {
                Value::Null => None,
                value => Some(embedded_bytes(format, &value, "value")?),
            };
            Ok(OutgoingRecord {
                key: record
                    .key
                    .map(|key| embedded_bytes(format, &key, "key"))
                    .transpose()?,
                value,
                partition: path_partition.or(record.partition),
                timestamp: record.timestamp,
                headers,
            })
        })
        .collect()
}

/// The bytes a key or value carries in `format`.
fn embedded_bytes(
    format: EmbeddedFormat,
    data: &Value,
    what: &str,
) -> Result<Vec<u8>, BridgeError> {
    let unconvertible = |why: String| BridgeError::new(422, why);
    match (format, data) {
        (EmbeddedFormat::Json, data) => Ok(data.to_string().into_bytes()),
        (EmbeddedFormat::Text, Value::String(text)) => Ok(text.clone().into_bytes()),
        (EmbeddedFormat::Binary, Value::String(encoded)) => {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| unconvertible(format!("the {what} is not base64: {e}")))
        }
        (EmbeddedFormat::Text, _) => Err(unconvertible(format!(
            "because the embedded format is 'text', the {what} must be a string"
        ))),
        (EmbeddedFormat::Binary, _) => Err(unconvertible(format!(
            "because the embedded format is 'binary', the {what} must be a base64 string"
        ))),
    }
}

/// Whether an `Accept` header admits `media_type` (no header admits all).
pub fn accepts(accept: Option<&str>, media_type: &str) -> bool {
    let Some(accept) = accept else { return true };
    let (kind, _) = media_type.split_once('/').unwrap_or((media_type, ""));
    accept.split(',').any(|range| {
        let range = range.split(';').next().unwrap_or("").trim();
        range == "*/*"
            || range.eq_ignore_ascii_case(media_type)
            || range
                .strip_suffix("/*")
                .is_some_and(|r| r.eq_ignore_ascii_case(kind))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use xtream_core::events::BRIDGE_CONTENT_TYPE;

    fn decode(body: &str) -> Result<Vec<OutgoingRecord>, BridgeError> {
        decode_produce(EmbeddedFormat::Json, None, body.as_bytes())
    }

    fn status(result: Result<Vec<OutgoingRecord>, BridgeError>) -> u16 {
        result.expect_err("refused").status
    }

    #[test]
    fn json_keys_and_values_are_stored_as_json_text() {
        let records = decode(
            r#"{"records":[{"key":"abc","value":{"type":"video.uploaded","size":5}},{"value":[1,2]},{"value":null}]}"#,
        )
        .unwrap();
        assert_eq!(records[0].key.as_deref(), Some(&b"\"abc\""[..]));
        let value: Value = serde_json::from_slice(records[0].value.as_ref().unwrap()).unwrap();
        assert_eq!(value, json!({"type": "video.uploaded", "size": 5}));
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value.as_deref(), Some(&b"[1,2]"[..]));
        assert_eq!(records[2].value, None, "null is a tombstone");
    }

    #[test]
    fn binary_and_text_formats_carry_strings() {
        let body = br#"{"records":[{"key":"aGk=","value":"AAEC"}]}"#;
        let binary = decode_produce(EmbeddedFormat::Binary, None, body).unwrap();
        assert_eq!(binary[0].key.as_deref(), Some(&b"hi"[..]));
        assert_eq!(binary[0].value.as_deref(), Some(&[0u8, 1, 2][..]));
        let text = decode_produce(EmbeddedFormat::Text, None, body).unwrap();
        assert_eq!(text[0].value.as_deref(), Some(&b"AAEC"[..]));

        let object = br#"{"records":[{"value":{"n":1}}]}"#;
        for format in [EmbeddedFormat::Binary, EmbeddedFormat::Text] {
            assert_eq!(
                status(decode_produce(format, None, object)),
                422,
                "{format:?}"
            );
        }
        let not_base64 = br#"{"records":[{"value":"***"}]}"#;
        assert_eq!(
            status(decode_produce(EmbeddedFormat::Binary, None, not_base64)),
            422
        );
    }

    #[test]
    fn takes_partitions_timestamps_and_base64_headers() {
        let records = decode(
            r#"{"records":[{"value":"v","partition":2,"timestamp":1700000000000,"headers":[{"key":"why","value":"aGk="}]}]}"#,
        )
        .unwrap();
        assert_eq!(records[0].partition, Some(2));
        assert_eq!(records[0].timestamp, Some(1_700_000_000_000));
        assert_eq!(records[0].headers, vec![("why".to_owned(), b"hi".to_vec())]);
    }

    #[test]
    fn the_path_partition_applies_and_records_may_not_repeat_it() {
        let body = br#"{"records":[{"value":"v"}]}"#;
        let records = decode_produce(EmbeddedFormat::Json, Some(3), body).unwrap();
        assert_eq!(records[0].partition, Some(3));
        let both = br#"{"records":[{"value":"v","partition":1}]}"#;
        assert_eq!(
            status(decode_produce(EmbeddedFormat::Json, Some(3), both)),
            400
        );
    }

    #[test]
    fn bodies_the_schema_refuses_are_400() {
        for body in [
            "",
            "not json",
            r#"{"records":{}}"#,
            r#"{"records":[{"key":"k"}]}"#,
            r#"{"records":[{"value":1}]}"#,
            r#"{"records":[{"value":true}]}"#,
            r#"{"records":[{"value":"v","key":7}]}"#,
            r#"{"records":[{"value":"v","colour":"red"}]}"#,
            r#"{"records":[],"extra":1}"#,
        ] {
            assert_eq!(status(decode(body)), 400, "{body}");
        }
    }

    #[test]
    fn bodies_the_handler_cannot_convert_are_422() {
        for body in [
            "{}",
            r#"{"records":[{"value":"v","headers":[{"key":"a","value":"***"}]}]}"#,
        ] {
            assert_eq!(status(decode(body)), 422, "{body}");
        }
    }

    #[test]
    fn content_types_are_matched_exactly() {
        let format = |ct| EmbeddedFormat::from_content_type(ct).map_err(|e| e.status);
        assert_eq!(format(Some(BRIDGE_CONTENT_TYPE)), Ok(EmbeddedFormat::Json));
        assert_eq!(
            format(Some("application/vnd.kafka.binary.v2+json")),
            Ok(EmbeddedFormat::Binary)
        );
        assert_eq!(format(None), Err(400));
        assert_eq!(format(Some("text/plain")), Err(400));
        assert_eq!(format(Some("application/json")), Err(500));
        let with_charset = format!("{BRIDGE_CONTENT_TYPE}; charset=utf-8");
        assert_eq!(format(Some(&with_charset)), Err(500));
    }

    #[test]
    fn accept_ranges() {
        let ours = "application/vnd.kafka.v2+json";
        assert!(accepts(None, ours));
        assert!(accepts(Some("*/*"), ours));
        assert!(accepts(Some("text/html, application/*;q=0.5"), ours));
        assert!(accepts(Some("Application/Vnd.Kafka.V2+Json"), ours));
        assert!(!accepts(Some("application/json"), ours));
        assert!(!accepts(Some("text/*"), ours));
    }
}
