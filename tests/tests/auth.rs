//! API keys: every write needs one (401 without, 403 with a wrong one);
//! reads are public unless `read_requires_key` is set.

use reqwest::Method;
use serde_json::{Value, json};
use xtream_tests::{Platform, Stack};

const UNKNOWN: &str = "6f9619ff-8b86-4011-b42d-00c04fc964ff";

/// A request body: its Content-Type and bytes.
type Body = Option<(&'static str, Vec<u8>)>;

/// Every write route, with a body that would otherwise be accepted.
fn writes() -> Vec<(Method, String, Body)> {
    let video = Some(("video/mp4", b"bytes".to_vec()));
    let form_type = "multipart/form-data; boundary=b";
    let form = b"--b\r\nContent-Disposition: form-data; name=\"video\"; filename=\"a.mp4\"\r\n\r\nx\r\n--b--\r\n".to_vec();
    let declared = serde_json::to_vec(&json!({"filename": "a.mp4", "size": 10})).unwrap();
    vec![
        (Method::POST, "/api/videos?filename=a.mp4".into(), video),
        (Method::POST, "/upload".into(), Some((form_type, form))),
        (
            Method::POST,
            "/api/uploads".into(),
            Some(("application/json", declared)),
        ),
        (Method::GET, format!("/api/uploads/{UNKNOWN}"), None),
        (
            Method::POST,
            format!("/api/uploads/{UNKNOWN}/complete"),
            None,
        ),
        (Method::DELETE, format!("/api/uploads/{UNKNOWN}"), None),
        (Method::DELETE, format!("/api/videos/{UNKNOWN}"), None),
    ]
}

async fn send(
    platform: &Platform,
    method: &Method,
    path: &str,
    body: &Body,
    authorization: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut request = platform
        .anonymous
        .request(method.clone(), platform.url(path));
    if let Some((content_type, bytes)) = body {
        request = request
            .header("content-type", *content_type)
            .body(bytes.clone());
    }
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        challenge,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn writes_need_a_valid_key_and_store_nothing_without_one() {
    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;
    let key = platform.api_key.clone();
    for (method, path, body) in writes() {
        let what = format!("{method} {path}");
        for (authorization, status, code) in [
            (None, 401, "unauthorized"),
            (Some(format!("Basic {key}")), 401, "unauthorized"),
            (Some("Bearer".to_owned()), 401, "unauthorized"),
            (
                Some("Bearer not-the-key-0123456789".to_owned()),
                403,
                "forbidden",
            ),
            (Some(format!("Bearer {key}x")), 403, "forbidden"),
        ] {
            let (got, challenge, body_json) =
                send(platform, &method, &path, &body, authorization.as_deref()).await;
            assert_eq!(
                (got, body_json["error"]["code"].as_str()),
                (status, Some(code)),
                "{what} with {authorization:?}: {body_json}"
            );
            assert!(!body_json["error"]["message"].as_str().unwrap().is_empty());
            if status == 401 {
                assert_eq!(
                    challenge.as_deref(),
                    Some("Bearer realm=\"xtream\""),
                    "{what}"
                );
            }
        }
        // A key without the Bearer scheme is malformed.
        let (got, _, _) = send(platform, &method, &path, &body, Some(&key)).await;
        assert_eq!(got, 401, "{what} with a bare key");
    }
    let bucket = stack.garage.bucket();
    assert_eq!(
        bucket.keys("").await.unwrap(),
        Vec::<String>::new(),
        "a refused write stored something"
    );
    assert_eq!(
        stack.db.row_counts().await.unwrap(),
        [0; 4],
        "a refused write left rows"
    );

    // With the key, each write does its work.
    let bearer = format!("Bearer {key}");
    let mut statuses = Vec::new();
    for (method, path, body) in writes() {
        let (got, _, answer) = send(platform, &method, &path, &body, Some(&bearer)).await;
        statuses.push((
            format!("{method} {path}"),
            got,
            answer["error"]["code"].clone(),
        ));
    }
    let expected = [201, 201, 201, 404, 404, 404, 404];
    for ((what, got, code), want) in statuses.iter().zip(expected) {
        assert_eq!(*got, want, "{what}: {code}");
    }
}

#[tokio::test]
async fn reads_are_public_by_default() {
    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;
    let response = platform
        .client
        .post(platform.url("/api/videos?filename=a.mp4"))
        .header("content-type", "video/mp4")
        .body("bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        "/api/videos".to_owned(),
        format!("/api/videos/{id}"),
        format!("/api/videos/{id}/original"),
        "/videos".to_owned(),
        format!("/video/{id}"),
        "/health".to_owned(),
    ] {
        let (status, _, _) = send(platform, &Method::GET, &path, &None, None).await;
        assert_eq!(status, 200, "{path}");
        // A wrong key on a public read is ignored, not refused.
        let (status, _, _) = send(platform, &Method::GET, &path, &None, Some("Bearer nope")).await;
        assert_eq!(status, 200, "{path}");
    }
}

#[tokio::test]
async fn reads_need_a_key_when_configured_and_any_listed_key_works() {
    let second = "second-key-0123456789abcdef";
    let keys = format!("first-key-0123456789abcdef, {second}");
    let stack = Stack::start_with(&[("read_requires_key", "true"), ("api_keys", &keys)])
        .await
        .unwrap();
    let platform = &stack.platform;
    assert_eq!(platform.api_key, "first-key-0123456789abcdef");
    // Uploaded with the second key.
    let response = platform
        .anonymous
        .post(platform.url("/api/videos?filename=a.mp4"))
        .header("content-type", "video/mp4")
        .bearer_auth(second)
        .body("bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        "/api/videos".to_owned(),
        format!("/api/videos/{id}"),
        format!("/api/videos/{id}/original"),
        format!("/api/videos/{id}/hls/master.m3u8"),
        "/videos".to_owned(),
        format!("/video/{id}"),
    ] {
        let (status, challenge, body) = send(platform, &Method::GET, &path, &None, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
        assert!(challenge.is_some(), "{path}");
        let (status, _, body) = send(
            platform,
            &Method::GET,
            &path,
            &None,
            Some("Bearer nope-0123456789abcdef"),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
        let (status, _, _) = send(
            platform,
            &Method::GET,
            &path,
            &None,
            Some(&format!("Bearer {second}")),
        )
        .await;
        // The playlist exists only once transcoded: 409, but past the key check.
        let want = if path.ends_with(".m3u8") { 409 } else { 200 };
        assert_eq!(status, want, "{path}");
    }
    // Health stays public for probes.
    let (status, _, _) = send(platform, &Method::GET, "/health", &None, None).await;
    assert_eq!(status, 200);
}
