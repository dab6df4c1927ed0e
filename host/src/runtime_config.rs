//! Spin's runtime configuration file (`spin up --runtime-config-file`), as
//! far as the embedded host implements it: the `[outbound_http]` table.
//!
//! Spin 4.0.2 reads that table in `spin-factor-outbound-http`
//! (`runtime_config/spin.rs`): `connection_pooling` (bool) and
//! `max_concurrent_requests` (a count), unknown fields refused. Two of its
//! details are mirrored on purpose, since the same file is handed to
//! `spin up` and to this host and must mean the same to both:
//!
//! - a present table that leaves `connection_pooling` out turns pooling
//!   *off* (the field's serde default is `false`, although Spin's comment
//!   says it defaults to true); with no table at all pooling is on;
//! - `max_concurrent_requests = n` lets `n + 1` outbound connections exist
//!   at once (Spin's semaphore gets `n + 1` permits: "0 concurrent
//!   connections means 1 total connection").
//!
//! Any other table is refused with an error naming it: a setting this host
//! would silently ignore is a setting that differs from `spin up`.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::Path;

/// What the runtime configuration file says, as this host uses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `[outbound_http]`.
    pub outbound_http: OutboundHttpConfig,
}

/// Outbound HTTP (`wasi:http/outgoing-handler`) settings: Spin's
/// `[outbound_http]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundHttpConfig {
    /// Whether connections are kept and reused (Spin: `connection_pooling`).
    pub connection_pooling: bool,
    /// Spin's `max_concurrent_requests`: at most this plus one outbound
    /// connections are open at once, to any host, busy or idle in the
    /// pool; a request that needs one more waits for a connection to
    /// close. `None`: no limit.
    pub max_concurrent_requests: Option<usize>,
}

impl Default for OutboundHttpConfig {
    /// Spin's defaults when the file has no `[outbound_http]` table.
    fn default() -> Self {
        Self {
            connection_pooling: true,
            max_concurrent_requests: None,
        }
    }
}

impl OutboundHttpConfig {
    /// How many outbound connections may be open at once, as Spin counts
    /// them (`max_concurrent_requests + 1`); `None` for no limit.
    pub fn connection_permits(&self) -> Option<usize> {
        self.max_concurrent_requests.map(|n| n.saturating_add(1))
    }
}

/// The `[outbound_http]` table as Spin 4.0.2 deserialises it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundHttpToml {
    #[serde(default)]
    connection_pooling: bool,
    #[serde(default)]
    max_concurrent_requests: Option<usize>,
}

impl RuntimeConfig {
    /// Reads the runtime configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read runtime config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("runtime config {}", path.display()))
    }

    /// Parses the text of a runtime configuration file.
    pub fn parse(text: &str) -> Result<Self> {
        let table: toml::Table = toml::from_str(text).context("not TOML")?;
        let mut config = RuntimeConfig::default();
        for (key, value) in table {
            match key.as_str() {
                "outbound_http" => {
                    let outbound: OutboundHttpToml = value.try_into().context("[outbound_http]")?;
                    config.outbound_http = OutboundHttpConfig {
                        connection_pooling: outbound.connection_pooling,
                        max_concurrent_requests: outbound.max_concurrent_requests,
                    };
                }
                other => bail!(
                    "`{other}` is not supported by the embedded host, which implements \
                     [outbound_http] only; serve with `spin up` to use it"
                ),
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_table_means_spins_defaults() {
        let config = RuntimeConfig::parse("").unwrap();
        assert!(config.outbound_http.connection_pooling);
        assert_eq!(config.outbound_http.connection_permits(), None);
    }

    #[test]
    fn max_concurrent_requests_allows_one_connection_more_as_in_spin() {
        let config = RuntimeConfig::parse(
            "[outbound_http]\nconnection_pooling = true\nmax_concurrent_requests = 1\n",
        )
        .unwrap();
        assert_eq!(
            config.outbound_http,
            OutboundHttpConfig {
                connection_pooling: true,
                max_concurrent_requests: Some(1),
            }
        );
        assert_eq!(config.outbound_http.connection_permits(), Some(2));
        let zero = RuntimeConfig::parse("[outbound_http]\nmax_concurrent_requests = 0").unwrap();
        assert_eq!(zero.outbound_http.connection_permits(), Some(1));
    }

    #[test]
    fn a_table_that_leaves_pooling_out_turns_it_off_as_in_spin() {
        let config = RuntimeConfig::parse("[outbound_http]\nmax_concurrent_requests = 8").unwrap();
        assert!(!config.outbound_http.connection_pooling);
    }

    #[test]
    fn what_the_host_does_not_implement_is_refused_by_name() {
        let refused = RuntimeConfig::parse("[key_value_store.default]\ntype = \"spin\"")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("key_value_store"), "{refused}");
        assert!(RuntimeConfig::parse("[outbound_http]\nmax_connections = 3").is_err());
        assert!(RuntimeConfig::parse("[outbound_http]\nmax_concurrent_requests = -1").is_err());
    }
}
