//! The whole platform for one test: Garage, a database of its own on the
//! test PostgreSQL server (migrated with `xtream-worker migrate`), a Kafka
//! broker with Xtream's topics, the HTTP bridge the components publish
//! through, and the components in the embedded host. (The worker is started by the tests
//! that need it: [`crate::Worker::run`].)

use crate::{Garage, Platform, Postgres, Tansu, Worker};

/// Every server the API needs, killed on drop.
pub struct Stack {
    /// The platform under test.
    pub platform: Platform,
    /// `xtream-kafka-bridge`: the Kafka Bridge REST API uploads are
    /// announced through.
    pub bridge: Worker,
    /// The Kafka broker.
    pub kafka: Tansu,
    /// S3.
    pub garage: Garage,
    /// The metadata database, migrated.
    pub db: Postgres,
}

impl Stack {
    /// Starts everything with default settings.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts everything, overriding Spin variables of the platform.
    pub async fn start_with(variables: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_on(Postgres::start().await?, variables).await
    }

    /// Starts everything with a PostgreSQL server of its own, which the
    /// test may stop and resume ([`Postgres::stop`]) to stage an outage.
    pub async fn start_with_private_db(variables: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_on(Postgres::start_private().await?, variables).await
    }

    async fn start_on(db: Postgres, variables: &[(&str, &str)]) -> anyhow::Result<Self> {
        let garage = Garage::start().await?;
        crate::worker::migrate(&db).await?;
        let kafka = Tansu::start().await?;
        kafka.create_xtream_topics().await?;
        let bridge = Worker::bridge(&kafka).await?;
        let mut all = vec![("kafka_bridge_url", bridge.base.as_str())];
        all.extend_from_slice(variables);
        let platform = Platform::start_with(&garage, &db, &all).await?;
        Ok(Self {
            platform,
            bridge,
            kafka,
            garage,
            db,
        })
    }
}

impl Stack {
    /// `xtream-worker run` against this stack's services, with `extra`
    /// settings.
    pub async fn worker(&self, extra: &[(&str, &str)]) -> anyhow::Result<Worker> {
        Worker::run(&self.garage, &self.kafka, &self.db, extra).await
    }
}
