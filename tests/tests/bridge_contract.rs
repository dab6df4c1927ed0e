//! The local Kafka bridge answers as Strimzi's bridge 0.31.1 does, in every
//! case its produce API defines, failures included. Every answer goes
//! through the harness's checking proxy, which holds it against Strimzi's
//! OpenAPI document; the statuses asserted here are what Strimzi's source
//! gives where the document is silent.

use serde_json::Value;
use std::time::{Duration, Instant};
use xtream_core::events::BRIDGE_CONTENT_TYPE;
use xtream_tests::{Tansu, Worker};

const TOPIC: &str = "bridge.test";
const BINARY: &str = "application/vnd.kafka.binary.v2+json";
const TEXT: &str = "application/vnd.kafka.text.v2+json";

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn produce(&self, target: &str, content_type: Option<&str>, body: &str) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{target}", self.base))
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn json(&self, body: &str) -> (u16, Value) {
        self.produce(&format!("/topics/{TOPIC}"), Some(BRIDGE_CONTENT_TYPE), body)
            .await
    }

    async fn status(&self, method: reqwest::Method, path: &str) -> u16 {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }
}

/// A broker with [`TOPIC`], a bridge in front of it, and a client of the
/// bridge (through the harness's contract-checking proxy).
async fn bridge_with_topic() -> (Tansu, Worker, Client) {
    let tansu = Tansu::start().await.unwrap();
    tansu.create_topics(&[TOPIC]).await.unwrap();
    let bridge = Worker::bridge(&tansu).await.unwrap();
    let client = Client {
        http: reqwest::Client::new(),
        base: bridge.base.clone(),
    };
    (tansu, bridge, client)
}

/// One entry of `offsets` per record, each a partition and offset.
fn delivered(body: &Value, records: usize) -> Vec<(i64, i64)> {
    let offsets = body["offsets"].as_array().expect("offsets");
    assert_eq!(offsets.len(), records, "{body}");
    offsets
        .iter()
        .map(|o| {
            let pair = (o["partition"].as_i64(), o["offset"].as_i64());
            let (Some(partition), Some(offset)) = pair else {
                panic!("not delivered: {body}")
            };
            (partition, offset)
        })
        .collect()
}

#[tokio::test]
async fn produces_in_all_three_formats_and_to_a_partition() {
    let (tansu, bridge, client) = bridge_with_topic().await;

    let (status, body) = client
        .json(r#"{"records":[{"key":"k1","value":{"n":1}},{"value":{"n":2},"partition":2,"timestamp":1700000000000}]}"#)
        .await;
    assert_eq!(status, 200);
    let offsets = delivered(&body, 2);
    assert_eq!(offsets[1].0, 2);
    let target = format!("/topics/{TOPIC}");
    let (status, body) = client
        .produce(
            &target,
            Some(BINARY),
            r#"{"records":[{"key":"aGk=","value":"AAEC"}]}"#,
        )
        .await;
    assert_eq!(status, 200);
    delivered(&body, 1);
    let (status, body) = client
        .produce(
            &target,
            Some(TEXT),
            r#"{"records":[{"value":"plain words"}]}"#,
        )
        .await;
    assert_eq!(status, 200);
    delivered(&body, 1);
    let (status, body) = client
        .produce(
            &format!("/topics/{TOPIC}/partitions/1"),
            Some(BRIDGE_CONTENT_TYPE),
            r#"{"records":[{"value":{"n":3}}]}"#,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(delivered(&body, 1)[0].0, 1);
    let (status, _) = client
        .produce(
            &format!("{target}?async=true"),
            Some(TEXT),
            r#"{"records":[{"value":"later"}]}"#,
        )
        .await;
    assert_eq!(status, 204);

    let records = tansu
        .records(TOPIC, 6, Duration::from_secs(10))
        .await
        .unwrap();
    let value = |bytes: &[u8]| {
        records
            .iter()
            .find(|r| r.value.as_deref() == Some(bytes))
            .cloned()
    };
    let first = value(br#"{"n":1}"#).expect("the JSON record");
    assert_eq!(
        first.key.as_deref(),
        Some(&b"\"k1\""[..]),
        "JSON keys are JSON text"
    );
    assert_eq!(first.partition as i64, offsets[0].0);
    let binary = value(&[0, 1, 2]).expect("the binary record, decoded");
    assert_eq!(binary.key.as_deref(), Some(&b"hi"[..]));
    assert!(value(b"plain words").is_some());
    assert_eq!(
        value(br#"{"n":3}"#)
            .expect("the partition record")
            .partition,
        1
    );
    assert!(value(b"later").is_some(), "the async record was sent");
    assert_eq!(bridge.contract_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn refuses_as_strimzi_does() {
    let (_tansu, bridge, client) = bridge_with_topic().await;
    let target = format!("/topics/{TOPIC}");
    let one = r#"{"records":[{"value":{"n":1}}]}"#;

    // Content types: none or not JSON is 400, another JSON type 500.
    assert_eq!(client.produce(&target, None, one).await.0, 400);
    assert_eq!(
        client.produce(&target, Some("text/plain"), one).await.0,
        400
    );
    assert_eq!(
        client
            .produce(&target, Some("application/json"), one)
            .await
            .0,
        500
    );
    // Bodies: what the schema refuses is 400, what cannot be converted 422.
    for body in [
        "{nope",
        r#"{"records":[{"key":"k"}]}"#,
        r#"{"records":[{"value":7}]}"#,
    ] {
        assert_eq!(client.json(body).await.0, 400, "{body}");
    }
    let (status, error) = client.json("{}").await;
    assert_eq!((status, error["error_code"].as_i64()), (422, Some(422)));
    assert_eq!(client.produce(&target, Some(TEXT), one).await.0, 422);
    assert_eq!(
        client
            .produce(
                &format!("{target}?async=maybe"),
                Some(BRIDGE_CONTENT_TYPE),
                one
            )
            .await
            .0,
        400
    );
    let both = r#"{"records":[{"value":{"n":1},"partition":0}]}"#;
    assert_eq!(
        client
            .produce(
                &format!("{target}/partitions/1"),
                Some(BRIDGE_CONTENT_TYPE),
                both
            )
            .await
            .0,
        400
    );

    // A topic the broker does not have: a 200 whose entry says 404.
    let (status, body) = client
        .produce("/topics/no.such.topic", Some(BRIDGE_CONTENT_TYPE), one)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["offsets"][0]["error_code"], 404, "{body}");

    // Routing, negotiation and size, as Vert.x answers them.
    assert_eq!(client.status(reqwest::Method::GET, "/nowhere").await, 404);
    assert_eq!(client.status(reqwest::Method::PUT, &target).await, 405);
    assert_eq!(client.status(reqwest::Method::POST, "/ready").await, 405);
    let refused = client
        .http
        .post(format!("{}{target}", client.base))
        .header("content-type", BRIDGE_CONTENT_TYPE)
        .header("accept", "application/json")
        .body(one)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);
    let oversized = format!(
        r#"{{"records":[{{"value":"{}"}}]}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    assert_eq!(client.json(&oversized).await.0, 413);
    assert_eq!(client.status(reqwest::Method::GET, "/healthy").await, 204);
    assert_eq!(client.status(reqwest::Method::GET, "/ready").await, 204);
    assert_eq!(bridge.contract_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_record_the_broker_does_not_take_fails_inside_a_200() {
    let (mut tansu, bridge, client) = bridge_with_topic().await;
    let one = r#"{"records":[{"value":{"n":1}},{"value":{"n":2}}]}"#;
    assert_eq!(client.json(one).await.0, 200);

    // Broker gone: still a 200, each record failed, within the delivery
    // timeout (3 s in the harness), and the bridge stays ready as
    // Strimzi's does.
    tansu.stop();
    for _ in 0..2 {
        let started = Instant::now();
        let (status, body) = client.json(one).await;
        assert_eq!(status, 200);
        let offsets = body["offsets"].as_array().unwrap();
        assert_eq!(offsets.len(), 2);
        for entry in offsets {
            let code = entry["error_code"].as_i64();
            assert!(matches!(code, Some(404 | 500)), "{body}");
            assert!(entry["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(client.status(reqwest::Method::GET, "/ready").await, 204);

    // And delivers again once the broker is back.
    tansu.resume().await.unwrap();
    tansu.create_topics(&[TOPIC]).await.unwrap();
    let mut back = false;
    for _ in 0..30 {
        let (status, body) = client.json(one).await;
        assert_eq!(status, 200);
        if body["offsets"][0]["offset"].is_i64() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        back,
        "no delivery after the broker came back:\n{}",
        bridge.log()
    );
    assert_eq!(bridge.contract_violations(), Vec::<String>::new());
}
