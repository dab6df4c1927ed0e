//! Settings from the environment, checked at start so a typo fails loudly.
//!
//! | Variable | Default | |
//! |---|---|---|
//! | `XTREAM_KAFKA_BROKERS` | required | Bootstrap servers, `host:port[,host:port…]`. |
//! | `XTREAM_KAFKA_GROUP` | `xtream-transcoders` | Consumer group of the workers. |
//! | `XTREAM_UPLOADS_TOPIC` | `xtream.uploads` | `video.uploaded` events. |
//! | `XTREAM_RESULTS_TOPIC` | `xtream.results` | `video.ready` / `video.failed` outcomes. |
//! | `XTREAM_DEAD_LETTER_TOPIC` | `xtream.uploads.dlq` | Upload events given up on, with the reason. |
//! | `XTREAM_CHUNKS_TOPIC` | `xtream.chunks` | Chunk jobs of long sources (consumed by the same group). |
//! | `XTREAM_S3_ENDPOINT` | required | S3 API base URL (path-style), e.g. `http://minio:9000`. |
//! | `XTREAM_S3_BUCKET` | `xtream` | |
//! | `XTREAM_S3_REGION` | `us-east-1` | |
//! | `XTREAM_S3_ACCESS_KEY`, `XTREAM_S3_SECRET_KEY` | required | |
//! | `XTREAM_CONCURRENCY` | `1` | Transcodes at once. ffmpeg uses every core, so one is right for most machines. |
//! | `XTREAM_HTTP_LISTEN` | `0.0.0.0:9090` | `/metrics` and `/health`. |
//! | `XTREAM_DATABASE_URL` | required | PostgreSQL, a `postgres://user:password@host:port/db` URL or a `host=… user=…` string; plain TCP (no TLS) for now. Its password is never logged. |
//! | `XTREAM_RELAY_AFTER` | `5s` | An outbox event not marked sent this long after it was written is published by the relay (the functions publish it themselves first). Seconds or `30s`/`10m`/`1h`. |
//! | `XTREAM_RELAY_EVERY` | `2s` | How often the relay looks for such events. |
//! | `XTREAM_RELAY_BATCH` | `100` | Events claimed per relay transaction. |
//! | `XTREAM_MIGRATE_ON_START` | `false` | `true`: `run` applies the schema migrations before it starts (as `migrate` does). |
//! | `XTREAM_MIGRATE_WAIT` | `60s` | `migrate` (and `run` with the above): how long to wait for the database to come up. |
//! | `XTREAM_MAX_ATTEMPTS` | `3` | Tries of a job whose errors may be transient (storage, broker). |
//! | `XTREAM_SHUTDOWN_GRACE` | `30s` | How long a running job may finish after SIGTERM before it is released for redelivery. |
//! | `XTREAM_X264_PRESET` | `veryfast` | x264 speed/size trade-off (`ultrafast` … `veryslow`). |
//! | `XTREAM_WORK_DIR` | the system temp dir | Where jobs keep their files while they run. |
//! | `XTREAM_KAFKA_SESSION_TIMEOUT` | `45s` | How long the group waits for a worker that stopped heartbeating (crashed) before its partitions move. |
//! | `XTREAM_UPLOAD_TTL` | `24h` | A resumable upload still open after this long (or past its own expiry) is aborted and its parts freed. |
//! | `XTREAM_SWEEP_EVERY` | a quarter of the above, 1 s–10 min | How often the sweeper looks for abandoned uploads, unfinished deletions and abandoned jobs. |
//! | `XTREAM_CHUNK_THRESHOLD` | `600s` | A source longer than this is cut into chunks that every worker encodes in parallel; `0` keeps every source one pass. |
//! | `XTREAM_CHUNK_LENGTH` | `30s` | About how long each chunk is (cut at the first keyframe after; the first chunk is at most 8 s, so the video plays sooner). A source too short to make 12 chunks gets shorter ones, down to 15 s, so the workers share it out evenly. |
//! | `XTREAM_FFMPEG_THREADS` | `0` | Threads each encoding ffmpeg may use (`-threads`); `0` lets ffmpeg use every core. |
//! | `XTREAM_JOB_LEASE` | `10m` | A running job renews its video's lease every fifth of this; a video in `queued` or `transcoding` whose lease ran out is queued again (its job died without its event coming back). |

use crate::db::DatabaseUrl;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use xtream_core::config::StorageSettings;
use xtream_core::events;
pub use xtream_native::settings::ConfigError;
use xtream_native::settings::Env;

/// Where Kafka is and which topics to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// Bootstrap servers.
    pub brokers: String,
    /// Consumer group.
    pub group: String,
    /// Topic of `video.uploaded` events.
    pub uploads_topic: String,
    /// Topic of outcomes.
    pub results_topic: String,
    /// Topic of upload events given up on.
    pub dead_letter_topic: String,
    /// Topic of chunk jobs.
    pub chunks_topic: String,
}

/// Everything `xtream-worker run` needs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Kafka.
    pub kafka: KafkaSettings,
    /// The bucket.
    pub storage: StorageSettings,
    /// The metadata database.
    pub database: DatabaseUrl,
    /// Jobs at once.
    pub concurrency: usize,
    /// `/metrics` and `/health`.
    pub http_listen: SocketAddr,
    /// Age after which the relay publishes an unsent outbox event.
    pub relay_after: Duration,
    /// Period of the relay.
    pub relay_every: Duration,
    /// Events per relay transaction.
    pub relay_batch: u64,
    /// Whether `run` applies the migrations before starting.
    pub migrate_on_start: bool,
    /// How long migrating waits for the database.
    pub migrate_wait: Duration,
    /// Tries of a job with transient errors.
    pub max_attempts: u32,
    /// Time a running job gets to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// x264 preset.
    pub x264_preset: String,
    /// Parent of the jobs' temporary directories.
    pub work_dir: PathBuf,
    /// How long the group waits for a silent worker before giving its
    /// partitions to another.
    pub kafka_session_timeout: Duration,
    /// Age after which an open resumable upload is aborted.
    pub upload_ttl: Duration,
    /// Period of the upload sweeper.
    pub sweep_every: Duration,
    /// How long a video's job may go without renewing its lease before
    /// the video is queued again.
    pub job_lease: Duration,
    /// How the worker cuts long sources.
    pub chunking: Chunking,
    /// Threads of each encoding ffmpeg; 0: ffmpeg's choice.
    pub ffmpeg_threads: u32,
}

/// When and how long sources are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chunking {
    /// Sources longer than this are chunked; zero: none is.
    pub threshold: Duration,
    /// About how long a chunk is.
    pub chunk_length: Duration,
}

impl Chunking {
    /// Whether a source of `duration_seconds` is cut into chunks.
    pub fn applies_to(&self, duration_seconds: f64) -> bool {
        !self.threshold.is_zero() && duration_seconds > self.threshold.as_secs_f64()
    }
}

/// Everything `xtream-worker migrate` needs.
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    /// The metadata database.
    pub database: DatabaseUrl,
    /// How long to wait for it to come up.
    pub wait: Duration,
}

const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// The worker's own groups of settings, read by the shared rules.
trait WorkerSettings {
    fn database(&self) -> Result<DatabaseUrl, ConfigError>;
    fn migrate_wait(&self) -> Result<Duration, ConfigError>;
    fn kafka(&self) -> Result<KafkaSettings, ConfigError>;
}

impl<F: Fn(&str) -> Option<String>> WorkerSettings for Env<F> {
    fn database(&self) -> Result<DatabaseUrl, ConfigError> {
        let name = "XTREAM_DATABASE_URL";
        // The parse error names the problem only: the text holds a password.
        self.required(name)?.parse().map_err(|e| ConfigError {
            name,
            problem: format!("{e}"),
        })
    }

    fn migrate_wait(&self) -> Result<Duration, ConfigError> {
        self.duration("XTREAM_MIGRATE_WAIT", Duration::from_secs(60))
    }

    fn kafka(&self) -> Result<KafkaSettings, ConfigError> {
        Ok(KafkaSettings {
            brokers: self.required("XTREAM_KAFKA_BROKERS")?,
            group: self.or("XTREAM_KAFKA_GROUP", "xtream-transcoders"),
            uploads_topic: self.or("XTREAM_UPLOADS_TOPIC", events::UPLOADS_TOPIC),
            results_topic: self.or("XTREAM_RESULTS_TOPIC", events::RESULTS_TOPIC),
            dead_letter_topic: self.or("XTREAM_DEAD_LETTER_TOPIC", events::DEAD_LETTER_TOPIC),
            chunks_topic: self.or("XTREAM_CHUNKS_TOPIC", xtream_core::chunks::CHUNKS_TOPIC),
        })
    }
}

impl WorkerConfig {
    /// Reads the worker's settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the worker's settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let storage = StorageSettings::new(
            &env.required("XTREAM_S3_ENDPOINT")?,
            &env.or("XTREAM_S3_BUCKET", "xtream"),
            &env.or("XTREAM_S3_REGION", "us-east-1"),
            &env.required("XTREAM_S3_ACCESS_KEY")?,
            &env.required("XTREAM_S3_SECRET_KEY")?,
        )
        .map_err(|e| ConfigError {
            name: match e.name {
                "s3_endpoint" => "XTREAM_S3_ENDPOINT",
                "s3_bucket" => "XTREAM_S3_BUCKET",
                "s3_region" => "XTREAM_S3_REGION",
                "s3_access_key" => "XTREAM_S3_ACCESS_KEY",
                _ => "XTREAM_S3_SECRET_KEY",
            },
            problem: e.problem,
        })?;
        let concurrency: usize = env.parsed("XTREAM_CONCURRENCY", 1)?;
        if concurrency == 0 {
            return Err(ConfigError {
                name: "XTREAM_CONCURRENCY",
                problem: "must be at least 1".into(),
            });
        }
        let max_attempts: u32 = env.parsed("XTREAM_MAX_ATTEMPTS", 3)?;
        if max_attempts == 0 {
            return Err(ConfigError {
                name: "XTREAM_MAX_ATTEMPTS",
                problem: "must be at least 1".into(),
            });
        }
        let relay_batch: u64 = env.parsed("XTREAM_RELAY_BATCH", 100)?;
        if relay_batch == 0 {
            return Err(ConfigError {
                name: "XTREAM_RELAY_BATCH",
                problem: "must be at least 1".into(),
            });
        }
        let upload_ttl = env.duration("XTREAM_UPLOAD_TTL", Duration::from_secs(24 * 60 * 60))?;
        // Sweeping four times per TTL frees abandoned parts within 1.25× the
        // TTL; an idle sweep costs two indexed queries.
        let default_sweep =
            (upload_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        let job_lease = env.duration("XTREAM_JOB_LEASE", Duration::from_secs(600))?;
        if job_lease < Duration::from_secs(5) {
            return Err(ConfigError {
                name: "XTREAM_JOB_LEASE",
                problem: "must be at least 5s (jobs renew it every fifth)".into(),
            });
        }
        let chunk_length = env.duration("XTREAM_CHUNK_LENGTH", Duration::from_secs(30))?;
        if chunk_length < Duration::from_secs(2) {
            return Err(ConfigError {
                name: "XTREAM_CHUNK_LENGTH",
                problem: "must be at least 2s (a chunk holds whole segments)".into(),
            });
        }
        let chunking = Chunking {
            // Ten minutes: the chunked path makes a video playable later
            // (its first chunk waits for the keyframe scan, the cut and the
            // whole audio encode: 17-20 s for a 3-minute 1080p source
            // against 4-6 s in one pass, BENCHMARKS.md), so it pays only
            // where one worker alone would take far longer to finish.
            threshold: env.duration("XTREAM_CHUNK_THRESHOLD", Duration::from_secs(600))?,
            chunk_length,
        };
        let x264_preset = env.or("XTREAM_X264_PRESET", "veryfast");
        if !X264_PRESETS.contains(&x264_preset.as_str()) {
            return Err(ConfigError {
                name: "XTREAM_X264_PRESET",
                problem: format!(
                    "must be one of {}, not {x264_preset:?}",
                    X264_PRESETS.join(", ")
                ),
            });
        }
        Ok(Self {
            kafka: env.kafka()?,
            storage,
            database: env.database()?,
            concurrency,
            http_listen: env
                .parsed("XTREAM_HTTP_LISTEN", SocketAddr::from(([0, 0, 0, 0], 9090)))?,
            relay_after: env.duration("XTREAM_RELAY_AFTER", Duration::from_secs(5))?,
            relay_every: env.duration("XTREAM_RELAY_EVERY", Duration::from_secs(2))?,
            relay_batch,
            migrate_on_start: env.parsed("XTREAM_MIGRATE_ON_START", false)?,
            migrate_wait: env.migrate_wait()?,
            max_attempts,
            shutdown_grace: env.duration("XTREAM_SHUTDOWN_GRACE", Duration::from_secs(30))?,
            x264_preset,
            work_dir: env
                .get("XTREAM_WORK_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            kafka_session_timeout: env
                .duration("XTREAM_KAFKA_SESSION_TIMEOUT", Duration::from_secs(45))?,
            upload_ttl,
            sweep_every: env.duration("XTREAM_SWEEP_EVERY", default_sweep)?,
            job_lease,
            chunking,
            ffmpeg_threads: env.parsed("XTREAM_FFMPEG_THREADS", 0)?,
        })
    }
}

impl MigrateConfig {
    /// Reads the migration runner's settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the migration runner's settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        Ok(Self {
            database: env.database()?,
            wait: env.migrate_wait()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const MINIMAL: [(&str, &str); 5] = [
        ("XTREAM_KAFKA_BROKERS", "127.0.0.1:9092"),
        ("XTREAM_S3_ENDPOINT", "http://127.0.0.1:3900/"),
        ("XTREAM_S3_ACCESS_KEY", "GK1"),
        ("XTREAM_S3_SECRET_KEY", "secret"),
        (
            "XTREAM_DATABASE_URL",
            "postgres://xtream:pg-secret@127.0.0.1:5432/xtream",
        ),
    ];

    #[test]
    fn defaults_follow_the_documentation() {
        let config = WorkerConfig::from_lookup(lookup(&MINIMAL)).unwrap();
        assert_eq!(config.kafka.group, "xtream-transcoders");
        assert_eq!(config.kafka.uploads_topic, events::UPLOADS_TOPIC);
        assert_eq!(config.kafka.results_topic, events::RESULTS_TOPIC);
        assert_eq!(config.kafka.dead_letter_topic, events::DEAD_LETTER_TOPIC);
        assert_eq!(config.storage.endpoint, "http://127.0.0.1:3900");
        assert_eq!(config.storage.bucket, "xtream");
        assert_eq!(config.storage.region, "us-east-1");
        assert_eq!(config.concurrency, 1);
        assert_eq!(config.http_listen.to_string(), "0.0.0.0:9090");
        assert_eq!(
            config.database.to_string(),
            "postgres://xtream@127.0.0.1:5432/xtream"
        );
        assert_eq!(config.relay_after, Duration::from_secs(5));
        assert_eq!(config.relay_every, Duration::from_secs(2));
        assert_eq!(config.relay_batch, 100);
        assert!(!config.migrate_on_start);
        assert_eq!(config.migrate_wait, Duration::from_secs(60));
        assert_eq!(config.max_attempts, 3);
        assert_eq!(config.x264_preset, "veryfast");
        assert_eq!(config.upload_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(config.sweep_every, Duration::from_secs(600));
        assert_eq!(config.kafka.chunks_topic, "xtream.chunks");
        assert_eq!(config.chunking.threshold, Duration::from_secs(600));
        assert_eq!(config.chunking.chunk_length, Duration::from_secs(30));
        assert_eq!(config.ffmpeg_threads, 0);
        assert!(config.chunking.applies_to(601.0));
        assert!(!config.chunking.applies_to(600.0));
    }

    #[test]
    fn chunking_can_be_switched_off() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("XTREAM_CHUNK_THRESHOLD", "0"));
        let config = WorkerConfig::from_lookup(lookup(&pairs)).unwrap();
        assert!(!config.chunking.applies_to(86_400.0));
    }

    #[test]
    fn durations_take_seconds_or_units() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("XTREAM_RELAY_AFTER", "1m"));
        pairs.push(("XTREAM_RELAY_EVERY", "500ms"));
        pairs.push(("XTREAM_MIGRATE_ON_START", "true"));
        let config = WorkerConfig::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.relay_after, Duration::from_secs(60));
        assert_eq!(config.relay_every, Duration::from_millis(500));
        assert!(config.migrate_on_start);
    }

    #[test]
    fn refuses_bad_values_by_name() {
        let refused = |extra: (&'static str, &'static str)| {
            let mut pairs = MINIMAL.to_vec();
            pairs.push(extra);
            WorkerConfig::from_lookup(lookup(&pairs)).unwrap_err().name
        };
        assert_eq!(refused(("XTREAM_CONCURRENCY", "0")), "XTREAM_CONCURRENCY");
        assert_eq!(refused(("XTREAM_CONCURRENCY", "two")), "XTREAM_CONCURRENCY");
        assert_eq!(refused(("XTREAM_MAX_ATTEMPTS", "0")), "XTREAM_MAX_ATTEMPTS");
        assert_eq!(
            refused(("XTREAM_CHUNK_LENGTH", "1s")),
            "XTREAM_CHUNK_LENGTH"
        );
        assert_eq!(
            refused(("XTREAM_FFMPEG_THREADS", "many")),
            "XTREAM_FFMPEG_THREADS"
        );
        assert_eq!(
            refused(("XTREAM_RELAY_AFTER", "soon")),
            "XTREAM_RELAY_AFTER"
        );
        assert_eq!(refused(("XTREAM_RELAY_BATCH", "0")), "XTREAM_RELAY_BATCH");
        assert_eq!(
            refused(("XTREAM_MIGRATE_ON_START", "yes please")),
            "XTREAM_MIGRATE_ON_START"
        );
        assert_eq!(
            refused(("XTREAM_DATABASE_URL", "postgres://u:pw@h:port/db")),
            "XTREAM_DATABASE_URL"
        );
        assert_eq!(
            refused(("XTREAM_X264_PRESET", "warp")),
            "XTREAM_X264_PRESET"
        );
        assert_eq!(
            refused(("XTREAM_S3_ENDPOINT", "minio:9000")),
            "XTREAM_S3_ENDPOINT"
        );
        assert_eq!(
            refused(("XTREAM_HTTP_LISTEN", "localhost")),
            "XTREAM_HTTP_LISTEN"
        );
        assert_eq!(
            WorkerConfig::from_lookup(lookup(&MINIMAL[1..]))
                .unwrap_err()
                .name,
            "XTREAM_KAFKA_BROKERS"
        );
    }

    #[test]
    fn the_database_password_never_reaches_an_error_or_the_debug_output() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("XTREAM_DATABASE_URL", "postgres://u:pg-secret@h:nope/db"));
        let err = WorkerConfig::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(!err.to_string().contains("pg-secret"), "{err}");
        let config = WorkerConfig::from_lookup(lookup(&MINIMAL)).unwrap();
        assert!(!format!("{config:?}").contains("pg-secret"));
    }

    #[test]
    fn migrate_needs_only_the_database() {
        let config = MigrateConfig::from_lookup(lookup(&MINIMAL[4..])).unwrap();
        assert_eq!(config.wait, Duration::from_secs(60));
        assert_eq!(
            MigrateConfig::from_lookup(lookup(&[])).unwrap_err().name,
            "XTREAM_DATABASE_URL"
        );
        let config =
            MigrateConfig::from_lookup(lookup(&[MINIMAL[4], ("XTREAM_MIGRATE_WAIT", "5s")]))
                .unwrap();
        assert_eq!(config.wait, Duration::from_secs(5));
    }
}
