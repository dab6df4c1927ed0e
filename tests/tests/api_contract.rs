//! The API's contract: `api/openapi.json` is a valid OpenAPI 3.1 document
//! of every route spin.toml serves, the platform serves that very document
//! at `/api/openapi.json`, and schemathesis, run against the real platform
//! with every check and the document's links (upload → get → delete),
//! finds no answer the document does not allow.
//!
//! schemathesis is installed by `./x setup` (`SCHEMATHESIS_VERSION` in
//! versions.env; its settings and generators for what the document says only
//! in words are in `tests/api/`). When it is missing the test fails.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use xtream_host::Manifest;
use xtream_host::routing::Router;
use xtream_tests::{Garage, Platform, Postgres, Stack, workspace_root};

fn document_path() -> PathBuf {
    workspace_root().join("api/openapi.json")
}

fn document() -> Value {
    let text = std::fs::read_to_string(document_path()).expect("api/openapi.json is readable");
    serde_json::from_str(&text).expect("api/openapi.json is JSON")
}

/// The value `#/a/b` points at in `document`.
fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    document.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` in `value`, with where it was found.
fn references(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "$ref"
                    && let Some(target) = inner.as_str()
                {
                    found.push((at.to_owned(), target.to_owned()));
                }
                references(inner, &format!("{at}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                references(inner, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// Every link of the document's responses (`links` maps), references
/// resolved.
fn collect_links<'a>(document: &'a Value, value: &'a Value, found: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "links"
                    && let Some(links) = inner.as_object()
                {
                    for link in links.values() {
                        found.push(match link["$ref"].as_str() {
                            Some(target) => resolve(document, target).expect("a link resolves"),
                            None => link,
                        });
                    }
                } else {
                    collect_links(document, inner, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_links(document, v, found)),
        _ => {}
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[test]
fn the_document_is_valid_openapi_3_1() {
    let document = document();
    let schema_path = workspace_root().join("tests/data/openapi-3.1/schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&schema_path).expect("the OAS schema"))
            .expect("the OAS schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the OAS 3.1 schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not OpenAPI 3.1: {errors:#?}");
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        document["openapi"]
    );

    // Every reference points somewhere.
    let mut found = Vec::new();
    references(&document, "#", &mut found);
    let dangling: Vec<_> = found
        .iter()
        .filter(|(_, target)| resolve(&document, target).is_none())
        .collect();
    assert!(dangling.is_empty(), "dangling $ref: {dangling:?}");

    // Each schema is a JSON Schema 2020-12 schema that compiles, with the
    // document's components to resolve against.
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        let mut root = schema.as_object().cloned().unwrap();
        root.insert("components".into(), document["components"].clone());
        if let Err(e) = jsonschema::validator_for(&Value::Object(root)) {
            panic!("components/schemas/{name} does not compile: {e}");
        }
    }

    // Operation ids are unique, and every link names one.
    let mut operation_ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                let id = operation["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                assert!(operation_ids.insert(id.to_owned()), "{id} twice");
            }
        }
    }
    let mut links = Vec::new();
    collect_links(&document, &document, &mut links);
    for link in &links {
        let target = link["operationId"]
            .as_str()
            .expect("links name an operationId");
        assert!(operation_ids.contains(target), "a link to {target}");
    }
    // The stateful links the contract test follows: upload → get → delete.
    let upload = &document["paths"]["/api/videos"]["post"]["responses"]["201"]["links"];
    for link in ["GetVideo", "DeleteVideo"] {
        assert!(upload.get(link).is_some(), "POST /api/videos links {link}");
    }
}

/// `/api/videos/{id}/hls/{file}` with a value for each parameter that the
/// parameter's schema allows, as a request path.
fn example_path(document: &Value, path: &str, item: &Value) -> String {
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    for parameter in item["parameters"].as_array().into_iter().flatten() {
        let parameter = match parameter["$ref"].as_str() {
            Some(target) => resolve(document, target).unwrap(),
            None => parameter,
        };
        let name = parameter["name"].as_str().unwrap().to_owned();
        let value = match name.as_str() {
            "id" => "0f8fad5b-d9cb-469f-a165-70867728950e",
            "file" => "index.m3u8",
            "rendition" => "360p",
            other => panic!("no example for path parameter {other}"),
        };
        parameters.insert(name, value.to_owned());
    }
    let mut concrete = path.to_owned();
    for (name, value) in &parameters {
        concrete = concrete.replace(&format!("{{{name}}}"), value);
    }
    assert!(!concrete.contains('{'), "{path}: an undeclared parameter");
    concrete
}

#[test]
fn every_route_of_the_manifest_is_documented() {
    let document = document();
    let manifest = Manifest::load(&workspace_root().join("spin.toml")).expect("spin.toml loads");
    let router = Router::new(
        manifest
            .triggers
            .iter()
            .map(|t| (t.route.as_str(), t.component.as_str())),
    )
    .expect("spin.toml's routes");
    let mut reached = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let concrete = example_path(&document, path, item);
        let matched = router
            .route(&concrete)
            .unwrap_or_else(|| panic!("no route of spin.toml takes {path}"));
        // Only the web app and this document are the web component's.
        if matched.component == "web" {
            assert!(
                ["/", "/api/openapi.json"].contains(&path.as_str()),
                "{path}"
            );
        }
        reached.insert(matched.matched_route);
    }
    let undocumented: Vec<&str> = manifest
        .triggers
        .iter()
        .map(|t| t.route.as_str())
        .filter(|route| !reached.contains(*route))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes of spin.toml that no path of api/openapi.json reaches: {undocumented:?}"
    );
}

#[tokio::test]
async fn the_platform_serves_the_document() {
    let (garage, db) = tokio::join!(Garage::start(), Postgres::start());
    let (garage, db) = (garage.unwrap(), db.unwrap());
    let platform = Platform::start(&garage, &db).await.unwrap();

    let response = platform
        .anonymous
        .get(platform.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-cache")
    );
    let etag = header(&response, "etag").expect("an ETag");
    let served = response.bytes().await.unwrap();
    let file = std::fs::read(document_path()).unwrap();
    assert!(
        served == file,
        "the served document is not api/openapi.json"
    );

    // Revalidation costs no body.
    let again = platform
        .anonymous
        .get(platform.url("/api/openapi.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
}

/// Where `./x setup` installs schemathesis, unless `XTREAM_SCHEMATHESIS`
/// names the program.
fn schemathesis_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("XTREAM_SCHEMATHESIS") {
        return path.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let installed = cache.join("xtream/tools/bin/schemathesis");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("schemathesis")
    }
}

/// Test cases per operation and phase: enough to find what the document
/// and the platform disagree on, bounded so the run takes about a minute
/// on two cores. `XTREAM_SCHEMATHESIS_EXAMPLES` asks for more, and
/// `XTREAM_SCHEMATHESIS_SEED` for other cases than the fixed seed's.
const MAX_EXAMPLES: &str = "100";
/// The whole run must end within this, or the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(8 * 60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure() {
    let binary = schemathesis_binary();
    let version = match std::process::Command::new(&binary)
        .arg("--version")
        .output()
    {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        Ok(output) => panic!(
            "{} --version failed ({}): {}; run `./x setup` to install schemathesis",
            binary.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => panic!(
            "schemathesis is not installed ({}: {e}); run `./x setup` to install it",
            binary.display()
        ),
    };

    let stack = Stack::start().await.unwrap();
    let platform = &stack.platform;
    let root = workspace_root();
    let examples =
        std::env::var("XTREAM_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| MAX_EXAMPLES.to_owned());
    let seed = std::env::var("XTREAM_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".to_owned());
    let report = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(&binary);
    command
        .current_dir(&root)
        .env("SCHEMATHESIS_HOOKS", root.join("tests/api/hooks.py"))
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(root.join("tests/api/schemathesis.toml"))
        .arg("run")
        .arg(platform.url("/api/openapi.json"))
        .args(["--checks", "all"])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", platform.api_key),
        ])
        .args(["--max-examples", &examples])
        .args(["--seed", &seed])
        // One worker: hypothesis describes its strategies with Python's
        // `ast.parse`, which fails now and then when two threads parse at
        // once (CPython 3.11's "AST constructor recursion depth mismatch").
        .args(["--workers", "1"])
        .args(["--generation-database", "none"])
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(report.path())
        .arg("--no-color")
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {RUN_LIMIT:?}"))
        .expect("schemathesis runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!(
        "{} ({} examples per operation, seed {seed}) took {:.0?}:\n{printed}",
        version.trim(),
        examples,
        started.elapsed()
    );
    assert!(
        output.status.success(),
        "schemathesis found failures ({}); its report is above",
        output.status
    );
}
