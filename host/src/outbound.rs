//! Outbound HTTP policy: Spin's `allowed_outbound_hosts`.
//!
//! Each entry is `scheme://host[:port]`. The scheme may be `*`; the host may
//! be `*` or `*.example.com` (any subdomain); the port may be `*`, and when
//! omitted means the scheme's default port. Hosts compare case-insensitively.
//! `*://*:*` allows everything.

use crate::outbound_pool::{OutboundPool, Sent};
use anyhow::{Context, Result, bail, ensure};
use std::sync::Arc;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: stored as `.example.com`.
    Subdomains(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exact(u16),
    /// No port written: the default port of the request's scheme.
    SchemeDefault,
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// `None` for `*`.
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

impl AllowedHost {
    /// Parses one entry such as `http://127.0.0.1:3900` or `https://*.example.com`.
    pub fn parse(entry: &str) -> Result<AllowedHost> {
        let (scheme, rest) = entry
            .split_once("://")
            .with_context(|| format!("outbound host `{entry}` has no `scheme://`"))?;
        // A trailing `/` is harmless (it comes from URL-shaped variables);
        // any other path is not something a host/port rule can express.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        ensure!(
            !rest.contains('/'),
            "outbound host `{entry}` must not contain a path"
        );
        ensure!(
            !scheme.is_empty(),
            "outbound host `{entry}` has an empty scheme"
        );
        let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());

        let (host, port) = split_host_port(rest);
        let host = normalise_host(host);
        let host = match host.as_str() {
            "" => bail!("outbound host `{entry}` has an empty host"),
            "*" => HostPattern::Any,
            h => match h.strip_prefix("*.") {
                Some(domain) if !domain.is_empty() => HostPattern::Subdomains(format!(".{domain}")),
                Some(_) => bail!("outbound host `{entry}` has an empty domain after `*.`"),
                None if h.contains('*') => {
                    bail!("outbound host `{entry}`: `*` is only allowed as `*` or `*.domain`")
                }
                None => HostPattern::Exact(h.to_owned()),
            },
        };
        let port = match port {
            None => PortPattern::SchemeDefault,
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(
                p.parse()
                    .with_context(|| format!("outbound host `{entry}` has an invalid port"))?,
            ),
        };
        Ok(AllowedHost { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Subdomains(suffix) => host.ends_with(suffix.as_str()),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
            PortPattern::SchemeDefault => default_port(scheme) == Some(port),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// Splits `host[:port]`, taking care of bracketed IPv6 literals.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            let (host, rest) = authority.split_at(end + 1);
            return (host, rest.strip_prefix(':'));
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

fn normalise_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        // Spin's rule for `spin:postgres`: `postgres://db` means port 5432.
        "postgres" => Some(5432),
        _ => None,
    }
}

/// The rendered `allowed_outbound_hosts` of one component.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    entries: Vec<AllowedHost>,
}

impl OutboundPolicy {
    /// Parses rendered entries; empty entries (a template whose variable is
    /// empty) are skipped, malformed ones are errors.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<OutboundPolicy> {
        let entries = entries
            .iter()
            .map(|e| e.as_ref().trim())
            .filter(|e| !e.is_empty())
            .map(AllowedHost::parse)
            .collect::<Result<_>>()?;
        Ok(OutboundPolicy { entries })
    }

    /// Whether a request to `scheme://host:port` is allowed; `port` `None`
    /// means the scheme's default.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme = scheme.to_ascii_lowercase();
        let host = normalise_host(host);
        let Some(port) = port.or_else(|| default_port(&scheme)) else {
            return false;
        };
        self.entries.iter().any(|e| e.allows(&scheme, &host, port))
    }

    /// Whether the absolute URL `url` is allowed; unparsable URLs are not.
    pub fn allows_url(&self, url: &str) -> bool {
        match url.parse::<http::Uri>() {
            Ok(uri) => self.allows_uri(&uri),
            Err(_) => false,
        }
    }

    fn allows_uri(&self, uri: &http::Uri) -> bool {
        match (uri.scheme_str(), uri.host()) {
            (Some(scheme), Some(host)) => self.allows(scheme, host, uri.port_u16()),
            _ => false,
        }
    }
}

type SendFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<Sent>> + Send>;

/// `wasi:http` hooks for one component's store: every outgoing request is
/// checked against the component's policy before it leaves the host.
pub(crate) struct OutboundHooks {
    pub(crate) component: Arc<str>,
    pub(crate) policy: Arc<OutboundPolicy>,
    pub(crate) pool: OutboundPool,
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        if !self.policy.allows_uri(request.uri()) {
            tracing::warn!(
                component = %self.component,
                url = %request.uri(),
                "outbound request denied: not in allowed_outbound_hosts"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let pool = self.pool.clone();
        Box::new(async move { pool.send(request, options).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::parse(entries).unwrap()
    }

    #[test]
    fn exact_entries() {
        let p = policy(&["http://127.0.0.1:3900", "https://S3.Example.com"]);
        assert!(p.allows_url("http://127.0.0.1:3900/bucket/key"));
        assert!(!p.allows_url("http://127.0.0.1:3901/"));
        assert!(!p.allows_url("https://127.0.0.1:3900/"));
        assert!(p.allows_url("https://s3.example.COM/x"));
        assert!(p.allows_url("https://s3.example.com:443/x"));
        assert!(!p.allows_url("https://s3.example.com:8443/x"));
        assert!(!p.allows_url("http://s3.example.com/x"));
        assert!(!p.allows_url("https://evil.com/"));
    }

    #[test]
    fn wildcards() {
        assert!(policy(&["*://*:*"]).allows_url("ftp://anything:1/"));
        let p = policy(&["http://localhost:*"]);
        assert!(p.allows_url("http://localhost:1234/"));
        assert!(p.allows_url("http://localhost/"));
        assert!(!p.allows_url("http://127.0.0.1:1234/"));
        let p = policy(&["*://db.internal:5432"]);
        assert!(p.allows_url("http://db.internal:5432/"));
        assert!(p.allows_url("https://db.internal:5432/"));
        let p = policy(&["https://*.example.com"]);
        assert!(p.allows_url("https://a.b.example.com/"));
        assert!(!p.allows_url("https://example.com/"));
        assert!(!p.allows_url("https://badexample.com/"));
        let p = policy(&["http://*"]);
        assert!(p.allows_url("http://x.y/"));
        assert!(!p.allows_url("http://x.y:81/"));
    }

    #[test]
    fn postgres_entries_default_to_port_5432() {
        let p = policy(&["postgres://db.internal", "postgres://127.0.0.1:15432"]);
        assert!(p.allows("postgres", "db.internal", None));
        assert!(p.allows("postgres", "db.internal", Some(5432)));
        assert!(!p.allows("postgres", "db.internal", Some(5433)));
        assert!(p.allows("postgres", "127.0.0.1", Some(15432)));
        assert!(!p.allows("postgres", "127.0.0.1", None));
        assert!(!p.allows("http", "db.internal", Some(5432)));
    }

    #[test]
    fn ipv6_and_trailing_slash() {
        let p = policy(&["http://[::1]:8080", "http://minio:9000/"]);
        assert!(p.allows_url("http://[::1]:8080/"));
        assert!(p.allows_url("http://minio:9000/b"));
    }

    #[test]
    fn empty_policy_denies_everything() {
        let p = policy(&[]);
        assert!(!p.allows_url("http://127.0.0.1/"));
        assert!(!p.allows_url("not a url"));
        assert!(!policy(&[""]).allows_url("http://127.0.0.1/"));
    }

    #[test]
    fn malformed_entries_are_errors() {
        for bad in [
            "127.0.0.1:80",
            "http://",
            "http://host:port",
            "http://a*b",
            "http://h/path",
            "://h",
        ] {
            assert!(OutboundPolicy::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
