//! The whole platform for one test: Garage, a Kafka broker with Xtream's
//! topics, the HTTP bridge the components publish through, and the
//! components in the embedded host. (The worker is started by the tests
//! that need it: [`crate::Worker::run`].)

use crate::{Garage, Platform, Tansu, Worker};

/// Every server the API needs, killed on drop.
pub struct Stack {
    /// The platform under test.
    pub platform: Platform,
    /// `xtream-worker bridge`: the Kafka Bridge REST API uploads are
    /// announced through.
    pub bridge: Worker,
    /// The Kafka broker.
    pub kafka: Tansu,
    /// S3.
    pub garage: Garage,
}

impl Stack {
    /// Starts everything with default settings.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts everything, overriding Spin variables of the platform.
    pub async fn start_with(variables: &[(&str, &str)]) -> anyhow::Result<Self> {
        let garage = Garage::start().await?;
        let kafka = Tansu::start().await?;
        kafka.create_xtream_topics().await?;
        let bridge = Worker::bridge(&kafka).await?;
        let mut all = vec![("kafka_bridge_url", bridge.base.as_str())];
        all.extend_from_slice(variables);
        let platform = Platform::start_with(&garage, &all).await?;
        Ok(Self {
            platform,
            bridge,
            kafka,
            garage,
        })
    }
}
