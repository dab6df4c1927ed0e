//! Settings from the environment, read by the rules the worker uses too
//! (`xtream_native::settings`).
//!
//! | Variable | Default | |
//! |---|---|---|
//! | `XTREAM_KAFKA_BROKERS` | required | Bootstrap servers, `host:port[,host:port…]`. |
//! | `XTREAM_BRIDGE_LISTEN` | `0.0.0.0:8080` | Where to serve the Kafka Bridge REST API. |
//! | `XTREAM_BRIDGE_DELIVERY_TIMEOUT` | `5s` | How long a record waits for the broker's acknowledgement before its `offsets` entry says it failed (500). |

use std::net::SocketAddr;
use std::time::Duration;
use xtream_native::settings::{ConfigError, Env};

/// Everything the bridge needs.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Where to serve the REST API.
    pub listen: SocketAddr,
    /// How long a produce may wait for the broker's acknowledgement.
    pub delivery_timeout: Duration,
}

impl BridgeConfig {
    /// Reads the bridge's settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the bridge's settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        Ok(Self {
            brokers: env.required("XTREAM_KAFKA_BROKERS")?,
            listen: env.parsed(
                "XTREAM_BRIDGE_LISTEN",
                SocketAddr::from(([0, 0, 0, 0], 8080)),
            )?,
            delivery_timeout: env
                .duration("XTREAM_BRIDGE_DELIVERY_TIMEOUT", Duration::from_secs(5))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_only_the_brokers() {
        let config = BridgeConfig::from_lookup(|name| {
            (name == "XTREAM_KAFKA_BROKERS").then(|| "127.0.0.1:9092".to_owned())
        })
        .unwrap();
        assert_eq!(config.brokers, "127.0.0.1:9092");
        assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.delivery_timeout, Duration::from_secs(5));
        assert_eq!(
            BridgeConfig::from_lookup(|_| None).unwrap_err().name,
            "XTREAM_KAFKA_BROKERS"
        );
    }
}
