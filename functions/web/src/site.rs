//! Which bytes and headers answer a request for the web app.
//!
//! Pure rules over the embedded asset table, unit-tested natively: the Spin
//! handler only reads the request and writes what [`reply`] decides.
//!
//! Caching: every file is `Cache-Control: no-cache` with a strong ETag, so a
//! browser keeps its copy but asks before each use and gets a bodiless 304
//! while the content is unchanged. The app is a handful of small files plus
//! hls.js, loaded once per visit (navigation is client-side), so the
//! revalidation round trips cost little, and a new deployment is picked up
//! on the next load with no stale script talking to a newer API. Fingerprinted
//! URLs with year-long caching would save those round trips but need the
//! build to rewrite every reference; not worth it at this size.
//!
//! Paths are looked up verbatim in the table: nothing touches a file system,
//! so `..`, encoded slashes and the like simply name no asset (404).

use std::borrow::Cow;
use xtream_core::ApiError;

/// One embedded file of the web app.
#[derive(Debug)]
pub struct Asset {
    /// URL path, e.g. `/app.js`.
    pub path: &'static str,
    /// Strong ETag, quoted: 128 bits of the content's SHA-256.
    pub etag: &'static str,
    /// The file's bytes.
    pub body: &'static [u8],
}

/// The response to send.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers, lowercase names.
    pub headers: Vec<(&'static str, String)>,
    /// The body: empty for 304 and for HEAD.
    pub body: Cow<'static, [u8]>,
}

/// The methods the web app answers.
const ALLOWED: &[&str] = &["GET", "HEAD"];

/// What the pages may load: only our own origin, plus the `blob:` URLs hls.js
/// makes for its MediaSource and its transmuxing worker. No inline script or
/// style, so injected markup cannot run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     media-src 'self' blob:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Answers `method path` from `assets` (sorted by path), honouring
/// `If-None-Match`. Unknown paths are a JSON 404 like the rest of the API:
/// the app navigates by fragment (`/#/watch/{id}`), so no other path is a page.
pub fn reply(
    assets: &'static [Asset],
    method: &str,
    path: &str,
    if_none_match: Option<&str>,
) -> Reply {
    match serve(assets, method, path, if_none_match) {
        Ok(reply) => reply,
        Err(error) => error_reply(&error),
    }
}

fn serve(
    assets: &'static [Asset],
    method: &str,
    path: &str,
    if_none_match: Option<&str>,
) -> Result<Reply, ApiError> {
    let asset = find(assets, path)
        .ok_or_else(|| ApiError::not_found(format!("there is no page or file at {path}")))?;
    if !ALLOWED.contains(&method) {
        return Err(ApiError::method_not_allowed(method, ALLOWED));
    }
    let mut headers = vec![
        ("content-type", content_type(asset.path).to_owned()),
        ("etag", asset.etag.to_owned()),
        ("cache-control", "no-cache".to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
    ];
    if asset.path.ends_with(".html") {
        headers.push((
            "content-security-policy",
            CONTENT_SECURITY_POLICY.to_owned(),
        ));
        headers.push(("referrer-policy", "same-origin".to_owned()));
    }
    if if_none_match.is_some_and(|tags| etag_matches(tags, asset.etag)) {
        return Ok(Reply {
            status: 304,
            headers,
            body: Cow::Borrowed(&[]),
        });
    }
    let body: &'static [u8] = if method == "HEAD" { &[] } else { asset.body };
    headers.push(("content-length", asset.body.len().to_string()));
    Ok(Reply {
        status: 200,
        headers,
        body: Cow::Borrowed(body),
    })
}

/// The asset at `path`; `/` is the app's page.
pub fn find(assets: &'static [Asset], path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    assets
        .binary_search_by(|asset| asset.path.cmp(path))
        .ok()
        .map(|i| &assets[i])
}

/// The Content-Type of a file, from its extension. Text types say UTF-8 so
/// browsers never guess.
pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("");
    match extension {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether an `If-None-Match` value matches `etag`: `*`, or any listed tag
/// equal to it. The comparison is weak (a `W/` prefix is ignored), as RFC
/// 9110 §13.1.2 requires for `If-None-Match`.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

fn error_reply(error: &ApiError) -> Reply {
    let body = error.to_json().into_bytes();
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("cache-control", "no-store".to_owned()),
        ("content-length", body.len().to_string()),
    ];
    if let Some(allow) = &error.allow {
        headers.push(("allow", allow.clone()));
    }
    Reply {
        status: error.status,
        headers,
        body: Cow::Owned(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static ASSETS: &[Asset] = &[
        Asset {
            path: "/app.js",
            etag: "\"aaaa\"",
            body: b"console.log(1)",
        },
        Asset {
            path: "/index.html",
            etag: "\"bbbb\"",
            body: b"<!doctype html>",
        },
    ];

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn error_code(reply: &Reply) -> String {
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        body["error"]["code"].as_str().unwrap().to_owned()
    }

    #[test]
    fn root_serves_the_page_with_its_policy() {
        let reply = reply(ASSETS, "GET", "/", None);
        assert_eq!(reply.status, 200);
        assert_eq!(&*reply.body, b"<!doctype html>");
        assert_eq!(
            header(&reply, "content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(header(&reply, "etag"), Some("\"bbbb\""));
        assert_eq!(header(&reply, "cache-control"), Some("no-cache"));
        assert_eq!(header(&reply, "content-length"), Some("15"));
        assert!(header(&reply, "content-security-policy").is_some());
    }

    #[test]
    fn scripts_have_a_javascript_type_and_no_page_policy() {
        let reply = reply(ASSETS, "GET", "/app.js", None);
        assert_eq!(reply.status, 200);
        assert_eq!(
            header(&reply, "content-type"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(header(&reply, "content-security-policy"), None);
    }

    #[test]
    fn matching_etag_is_not_modified_without_a_body() {
        for tags in ["\"aaaa\"", "\"zzzz\", \"aaaa\"", "W/\"aaaa\"", "*"] {
            let reply = reply(ASSETS, "GET", "/app.js", Some(tags));
            assert_eq!(reply.status, 304, "{tags}");
            assert!(reply.body.is_empty());
            assert_eq!(header(&reply, "etag"), Some("\"aaaa\""));
            assert_eq!(header(&reply, "content-length"), None);
        }
        let reply = reply(ASSETS, "GET", "/app.js", Some("\"bbbb\""));
        assert_eq!(reply.status, 200);
    }

    #[test]
    fn head_has_the_headers_but_no_body() {
        let reply = reply(ASSETS, "HEAD", "/app.js", None);
        assert_eq!(reply.status, 200);
        assert!(reply.body.is_empty());
        assert_eq!(header(&reply, "content-length"), Some("14"));
    }

    #[test]
    fn other_methods_are_refused_with_allow() {
        let reply = reply(ASSETS, "POST", "/", None);
        assert_eq!(reply.status, 405);
        assert_eq!(error_code(&reply), "method_not_allowed");
        assert_eq!(header(&reply, "allow"), Some("GET, HEAD"));
    }

    #[test]
    fn unknown_and_traversing_paths_are_json_404s() {
        for path in [
            "/nope",
            "/app.js/",
            "/../index.html",
            "/%2e%2e/index.html",
            "//index.html",
            "/watch/123",
            "",
        ] {
            let reply = reply(ASSETS, "GET", path, None);
            assert_eq!(reply.status, 404, "{path}");
            assert_eq!(error_code(&reply), "not_found");
            assert_eq!(header(&reply, "content-type"), Some("application/json"));
        }
        // Unknown paths are 404 whatever the method: there is nothing there.
        assert_eq!(reply(ASSETS, "DELETE", "/nope", None).status, 404);
    }

    #[test]
    fn etag_comparison_is_weak_and_list_aware() {
        assert!(etag_matches("\"x\"", "\"x\""));
        assert!(etag_matches(" \"y\" ,W/\"x\"", "\"x\""));
        assert!(etag_matches("*", "\"x\""));
        assert!(!etag_matches("\"xx\"", "\"x\""));
        assert!(!etag_matches("", "\"x\""));
    }

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(content_type("/a.css"), "text/css; charset=utf-8");
        assert_eq!(
            content_type("/vendor/hls.light.min.mjs"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("/icon.svg"), "image/svg+xml");
        assert_eq!(content_type("/LICENSE"), "application/octet-stream");
    }

    #[test]
    fn the_embedded_app_is_complete_and_sorted() {
        let assets = crate::bundle::ASSETS;
        assert!(assets.windows(2).all(|w| w[0].path < w[1].path));
        for path in ["/", "/app.js", "/app.css", "/vendor/hls.light.min.mjs"] {
            let asset = find(assets, path).unwrap_or_else(|| panic!("{path} is embedded"));
            assert!(!asset.body.is_empty());
            assert_eq!(asset.etag.len(), 34, "quoted 32 hex digits");
        }
    }

    #[test]
    fn the_api_document_is_served_as_json() {
        let reply = reply(crate::bundle::ASSETS, "GET", "/api/openapi.json", None);
        assert_eq!(reply.status, 200);
        assert_eq!(header(&reply, "content-type"), Some("application/json"));
        let document: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
    }

    /// Quoted local file names in a page or script: `"/app.css"`,
    /// `'./api.js'`, `'/vendor/hls.light.min.mjs'`.
    fn local_references(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (start, quote) in text.match_indices(['\'', '"']) {
            let rest = &text[start + 1..];
            let Some(end) = rest.find(quote) else {
                continue;
            };
            let name = &rest[..end];
            let local = name.starts_with('/') || name.starts_with("./");
            let file = [".js", ".mjs", ".css", ".svg"]
                .iter()
                .any(|ext| name.ends_with(ext));
            if local && file && !name.contains(char::is_whitespace) {
                found.push(format!(
                    "/{}",
                    name.trim_start_matches("./").trim_start_matches('/')
                ));
            }
        }
        found
    }

    #[test]
    fn every_file_the_app_references_is_embedded() {
        let assets = crate::bundle::ASSETS;
        let mut checked = 0;
        for asset in assets.iter().filter(|a| !a.path.starts_with("/vendor/")) {
            let Ok(text) = std::str::from_utf8(asset.body) else {
                continue;
            };
            for reference in local_references(text) {
                assert!(
                    find(assets, &reference).is_some(),
                    "{} refers to {reference}, which is not embedded",
                    asset.path
                );
                checked += 1;
            }
        }
        // index.html's stylesheet, icon and script, the modules' imports, hls.js.
        assert!(checked >= 8, "only {checked} references found");
    }
}
