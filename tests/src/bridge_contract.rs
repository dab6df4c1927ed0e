//! The Kafka bridge's contract: Strimzi Kafka Bridge 0.31.1's OpenAPI
//! document (`tests/data/strimzi-bridge/`), and a proxy that checks every
//! answer the local bridge gives in the tests against it.
//!
//! The document declares, per operation, the statuses with their content
//! type and body schema. Strimzi's server also gives answers the document
//! does not declare (its validation errors, Vert.x's own 405/406/413, the
//! 204 of `async=true`); [`BridgeContract::check`] admits exactly those, in
//! the shapes the bridge's source gives them, and nothing else.
//!
//! Response schemas are read strictly: every declared property is required
//! and no other is allowed. The bridge always sends both fields of an
//! offset and of an error, and without this the document's
//! `oneOf: [OffsetRecordSent, Error]` would match every object twice.

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, OnceLock};

/// The bridge's content type for every JSON answer.
pub const RESPONSE_CONTENT_TYPE: &str = "application/vnd.kafka.v2+json";

/// One answer, as a client saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Request method, upper case.
    pub method: String,
    /// Request path and query.
    pub target: String,
    /// Response status.
    pub status: u16,
    /// Response `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Response body.
    pub body: Bytes,
}

/// Strimzi's OpenAPI document, ready to check answers.
pub struct BridgeContract {
    document: Value,
    /// The document's `components`, with response objects made strict.
    strict_components: Value,
}

impl BridgeContract {
    /// The vendored document, loaded once.
    pub fn get() -> &'static Self {
        static CONTRACT: OnceLock<BridgeContract> = OnceLock::new();
        CONTRACT.get_or_init(|| {
            let path = crate::workspace_root().join("tests/data/strimzi-bridge/openapi.json");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let document: Value = serde_json::from_str(&text).expect("the document is JSON");
            let mut strict_components = document["components"].clone();
            make_strict(&mut strict_components);
            Self {
                document,
                strict_components,
            }
        })
    }

    /// Whether Strimzi's bridge could have given `answer`; `Err` says how
    /// it could not.
    pub fn check(&self, answer: &Exchange) -> Result<(), String> {
        let (path, query) = answer
            .target
            .split_once('?')
            .unwrap_or((answer.target.as_str(), ""));
        let Some(template) = self.template_of(path) else {
            // The router's 404, worded by the bridge's error handler.
            return expect_status(answer, &[404]).and_then(|()| self.error_body(answer));
        };
        let operation = &self.document["paths"][template][answer.method.to_ascii_lowercase()];
        if operation.is_null() {
            // Vert.x: a known path with another method.
            return expect_status(answer, &[405]).and_then(|()| expect_empty(answer));
        }
        let declared = &operation["responses"][answer.status.to_string()];
        if !declared.is_null() {
            return match declared.get("content").and_then(Value::as_object) {
                None => expect_empty(answer),
                Some(content) => {
                    let content_type = answer.content_type.as_deref().unwrap_or("");
                    let media = content.get(content_type).ok_or_else(|| {
                        format!(
                            "{} {template} {}: Content-Type {content_type:?}, declared {:?}",
                            answer.method,
                            answer.status,
                            content.keys().collect::<Vec<_>>()
                        )
                    })?;
                    self.validate(&media["schema"], answer)
                }
            };
        }
        // Answers the server gives outside its document.
        let asynchronous = query.split('&').any(|pair| pair == "async=true");
        match answer.status {
            // Request validation and the handler's own failures.
            400 | 500 => self.error_body(answer),
            204 if answer.method == "POST" && asynchronous => expect_empty(answer),
            405 | 406 => expect_empty(answer),
            413 if answer.content_type.is_none()
                && &answer.body[..] == b"Request Entity Too Large" =>
            {
                Ok(())
            }
            status => Err(format!(
                "{} {template}: Strimzi's bridge never answers {status} (body {:?})",
                answer.method,
                String::from_utf8_lossy(&answer.body)
            )),
        }
    }

    /// The document's path template that `path` falls under.
    fn template_of(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        self.document["paths"]
            .as_object()?
            .keys()
            .map(String::as_str)
            .find(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == segments.len()
                    && parts.iter().zip(&segments).all(|(part, segment)| {
                        part == segment || (part.starts_with('{') && !segment.is_empty())
                    })
            })
    }

    /// An `Error` body in the bridge's content type.
    fn error_body(&self, answer: &Exchange) -> Result<(), String> {
        if answer.content_type.as_deref() != Some(RESPONSE_CONTENT_TYPE) {
            return Err(format!(
                "{} {} {}: an error needs Content-Type {RESPONSE_CONTENT_TYPE}, got {:?}",
                answer.method, answer.target, answer.status, answer.content_type
            ));
        }
        self.validate(&json!({"$ref": "#/components/schemas/Error"}), answer)
    }

    /// The body is JSON that `schema` (which may `$ref` the document's
    /// components) accepts, and an error's code is the answer's status.
    fn validate(&self, schema: &Value, answer: &Exchange) -> Result<(), String> {
        let body: Value = serde_json::from_slice(&answer.body).map_err(|e| {
            format!(
                "{} {} {}: the body is not JSON ({e}): {:?}",
                answer.method,
                answer.target,
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )
        })?;
        let mut root = schema.as_object().cloned().unwrap_or_default();
        root.insert("components".into(), self.strict_components.clone());
        let validator = jsonschema::validator_for(&Value::Object(root))
            .map_err(|e| format!("the document's schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if let Some(code) = body.get("error_code")
            && *code != answer.status
        {
            return Err(format!(
                "{} {}: error_code {code} in a {} answer",
                answer.method, answer.target, answer.status
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} {} {}: {body} breaks the schema: {}",
                answer.method,
                answer.target,
                answer.status,
                errors.join("; ")
            ))
        }
    }
}

fn expect_status(answer: &Exchange, allowed: &[u16]) -> Result<(), String> {
    if allowed.contains(&answer.status) {
        Ok(())
    } else {
        Err(format!(
            "{} {}: expected one of {allowed:?}, got {}",
            answer.method, answer.target, answer.status
        ))
    }
}

fn expect_empty(answer: &Exchange) -> Result<(), String> {
    if answer.body.is_empty() && answer.content_type.is_none() {
        Ok(())
    } else {
        Err(format!(
            "{} {} {}: expected no body, got {:?} ({:?})",
            answer.method,
            answer.target,
            answer.status,
            answer.content_type,
            String::from_utf8_lossy(&answer.body)
        ))
    }
}

/// Every object schema with `properties` requires them all and allows no
/// other.
fn make_strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                let names: Vec<Value> = properties.keys().cloned().map(Value::String).collect();
                map.insert("required".into(), Value::Array(names));
                map.entry("additionalProperties")
                    .or_insert(Value::Bool(false));
            }
            map.values_mut().for_each(make_strict);
        }
        Value::Array(items) => items.iter_mut().for_each(make_strict),
        _ => {}
    }
}

/// A proxy in front of a bridge that checks each answer against
/// [`BridgeContract`] and passes it on unchanged. When the bridge cannot
/// be reached the client's connection is closed, as if it had reached the
/// bridge's port itself. A test that made the bridge break its contract
/// fails when the proxy is dropped.
pub struct CheckedBridge {
    /// `http://127.0.0.1:PORT` of the proxy.
    pub base: String,
    violations: Arc<Mutex<Vec<String>>>,
    serving: tokio::task::JoinHandle<()>,
}

impl CheckedBridge {
    /// Starts a proxy in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the bridge proxy")?;
        let base = format!("http://{}", listener.local_addr()?);
        let violations = Arc::new(Mutex::new(Vec::new()));
        let forwarding = Forwarding {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            violations: violations.clone(),
        };
        let serving = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let forwarding = forwarding.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let forwarding = forwarding.clone();
                        async move { forwarding.forward(request).await }
                    });
                    // An Err from the service closes the connection.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            base,
            violations,
            serving,
        })
    }

    /// The answers so far that Strimzi's bridge could not have given.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("violations lock").clone()
    }
}

impl Drop for CheckedBridge {
    fn drop(&mut self) {
        self.serving.abort();
        let violations = self.violations();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "the local bridge answered outside Strimzi's contract:\n{}",
                violations.join("\n")
            );
        }
    }
}

#[derive(Clone)]
struct Forwarding {
    upstream: String,
    client: reqwest::Client,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Forwarding {
    async fn forward(&self, request: Request<Incoming>) -> anyhow::Result<Response<Full<Bytes>>> {
        let (parts, body) = request.into_parts();
        let target = parts
            .uri
            .path_and_query()
            .map_or("/".to_owned(), |pq| pq.as_str().to_owned());
        let body = body.collect().await?.to_bytes();
        let mut headers = parts.headers.clone();
        headers.remove(hyper::header::HOST);
        let answer = self
            .client
            .request(parts.method.clone(), format!("{}{target}", self.upstream))
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = answer.status();
        let headers = answer.headers().clone();
        let body = answer.bytes().await?;
        let exchange = Exchange {
            method: parts.method.as_str().to_owned(),
            target,
            status: status.as_u16(),
            content_type: headers
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: body.clone(),
        };
        if let Err(violation) = BridgeContract::get().check(&exchange) {
            self.violations
                .lock()
                .expect("violations lock")
                .push(violation);
        }
        let mut response = Response::builder().status(status);
        for (name, value) in &headers {
            if name != hyper::header::TRANSFER_ENCODING && name != hyper::header::CONNECTION {
                response = response.header(name, value);
            }
        }
        Ok(response.body(Full::new(body))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(method: &str, target: &str, status: u16, body: &str) -> Exchange {
        Exchange {
            method: method.into(),
            target: target.into(),
            status,
            content_type: (!body.is_empty()).then(|| RESPONSE_CONTENT_TYPE.to_owned()),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn admits_what_strimzi_answers() {
        let contract = BridgeContract::get();
        for good in [
            answer(
                "POST",
                "/topics/t",
                200,
                r#"{"offsets":[{"partition":0,"offset":4}]}"#,
            ),
            answer(
                "POST",
                "/topics/t",
                200,
                r#"{"offsets":[{"partition":0,"offset":4},{"error_code":500,"message":"timed out"}]}"#,
            ),
            answer(
                "POST",
                "/topics/t/partitions/1",
                422,
                r#"{"error_code":422,"message":"no records"}"#,
            ),
            answer(
                "POST",
                "/topics/t",
                400,
                r#"{"error_code":400,"message":"bad"}"#,
            ),
            answer("POST", "/topics/t?async=true", 204, ""),
            answer("GET", "/ready", 204, ""),
            answer("PUT", "/topics/t", 405, ""),
            answer(
                "GET",
                "/nowhere",
                404,
                r#"{"error_code":404,"message":"Not Found"}"#,
            ),
        ] {
            assert_eq!(contract.check(&good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn refuses_what_strimzi_never_answers() {
        let contract = BridgeContract::get();
        for bad in [
            // What the local bridge used to answer when the broker was down
            // or the content type was wrong.
            answer(
                "POST",
                "/topics/t",
                503,
                r#"{"error_code":503,"message":"down"}"#,
            ),
            answer(
                "POST",
                "/topics/t",
                415,
                r#"{"error_code":415,"message":"type"}"#,
            ),
            // An offset entry that is neither shape, or half of one.
            answer("POST", "/topics/t", 200, r#"{"offsets":[{"partition":0}]}"#),
            answer(
                "POST",
                "/topics/t",
                200,
                r#"{"offsets":[{"partition":0,"offset":1,"error_code":5,"message":""}]}"#,
            ),
            answer("POST", "/topics/t", 200, r#"{"offsets":"none"}"#),
            // An error whose code is not its status.
            answer(
                "POST",
                "/topics/t",
                422,
                r#"{"error_code":400,"message":"x"}"#,
            ),
            // A body where none belongs, and none where one does.
            answer("GET", "/healthy", 204, r#"{"ok":true}"#),
            answer("POST", "/topics/t", 200, ""),
            answer("POST", "/topics/t", 204, ""),
        ] {
            assert!(contract.check(&bad).is_err(), "admitted {bad:?}");
        }
        let mut wrong_type = answer("POST", "/topics/t", 200, r#"{"offsets":[]}"#);
        wrong_type.content_type = Some("application/json".into());
        assert!(contract.check(&wrong_type).is_err());
    }
}
