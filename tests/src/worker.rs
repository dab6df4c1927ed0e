//! The real `xtream-worker` binary as a child process, in `run` or
//! `maintain` mode, and the local Kafka bridge (`xtream-kafka-bridge`),
//! pointed at a test's Garage and tansu.

use crate::bridge_contract::CheckedBridge;
use crate::{Garage, Postgres, Tansu};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The binaries, each built once per test binary.
static WORKER_BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
static BRIDGE_BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Consumer group the tests' workers use.
pub const GROUP: &str = "xtream-transcoders";

/// Builds `package` (debug profile) and returns the path of its binary of
/// the same name.
fn build(package: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args(["build", "-p", package])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building {package} failed: {status}"));
    }
    Ok(crate::target_dir().join("debug").join(package))
}

fn built(once: &OnceLock<Result<PathBuf, String>>, package: &str) -> anyhow::Result<PathBuf> {
    match once.get_or_init(|| build(package)) {
        Ok(path) => Ok(path.clone()),
        Err(why) => bail!("{why}"),
    }
}

/// The path of the worker binary, building it first if needed.
pub fn worker_binary() -> anyhow::Result<PathBuf> {
    built(&WORKER_BUILT, "xtream-worker")
}

/// The path of the local Kafka bridge's binary, building it first if needed.
pub fn bridge_binary() -> anyhow::Result<PathBuf> {
    built(&BRIDGE_BUILT, "xtream-kafka-bridge")
}

/// How a worker or bridge process is launched. The default is the tests'
/// way: a debug build made on demand, a free port, a temporary log, and
/// settings that keep tests quick.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The directory of already built binaries (`target/release` after
    /// `./x build`) instead of a debug build.
    pub binaries: Option<PathBuf>,
    /// The HTTP port instead of a free one.
    pub port: Option<u16>,
    /// The log file instead of a temporary one.
    pub log: Option<PathBuf>,
    /// Settings as deployed rather than tuned for tests: the worker's own
    /// x264 preset, the bridge's own delivery timeout, and no proxy
    /// checking the bridge's answers.
    pub as_deployed: bool,
}

/// What a [`Worker`] process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `xtream-worker run`.
    Run,
    /// `xtream-worker maintain`.
    Maintain,
    /// `xtream-kafka-bridge`.
    Bridge,
}

impl Role {
    /// The command line, for logs and errors.
    fn name(self) -> &'static str {
        match self {
            Self::Run => "xtream-worker run",
            Self::Maintain => "xtream-worker maintain",
            Self::Bridge => "xtream-kafka-bridge",
        }
    }

    fn command(self, binaries: Option<&std::path::Path>) -> anyhow::Result<Command> {
        let binary = |package: &str, build: fn() -> anyhow::Result<PathBuf>| match binaries {
            Some(dir) => Ok(dir.join(package)),
            None => build(),
        };
        Ok(match self {
            Self::Run | Self::Maintain => {
                let mut command = crate::server_command(binary("xtream-worker", worker_binary)?);
                command.arg(if self == Self::Run { "run" } else { "maintain" });
                command
            }
            Self::Bridge => crate::server_command(binary("xtream-kafka-bridge", bridge_binary)?),
        })
    }

    /// The path that answers 2xx once the process serves.
    fn probe(self) -> &'static str {
        match self {
            Self::Bridge => "/healthy",
            Self::Run | Self::Maintain => "/health",
        }
    }
}

/// A worker or bridge process; killed on drop.
pub struct Worker {
    /// `http://127.0.0.1:PORT`: `/metrics`, `/health` (the worker) or the
    /// bridge API (the bridge, through a proxy that checks every answer
    /// against Strimzi's contract).
    pub base: String,
    /// The process's own address.
    direct: String,
    /// The bridge: the checking proxy `base` points at.
    contract: Option<CheckedBridge>,
    env: Vec<(String, String)>,
    role: Role,
    binaries: Option<PathBuf>,
    port: u16,
    log: crate::LogFile,
    child: Option<Child>,
    _work_dir: tempfile::TempDir,
}

impl Worker {
    /// `xtream-worker run` against `garage`, `tansu` and `db`, with Xtream's
    /// default topics and `extra` settings (`("XTREAM_CONCURRENCY", "2")`).
    pub async fn run(
        garage: &Garage,
        tansu: &Tansu,
        db: &Postgres,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::run_launched(garage, tansu, db, extra, &Launch::default()).await
    }

    /// `xtream-worker run` launched as `launch` says.
    pub async fn run_launched(
        garage: &Garage,
        tansu: &Tansu,
        db: &Postgres,
        extra: &[(&str, &str)],
        launch: &Launch,
    ) -> anyhow::Result<Self> {
        Self::against(Role::Run, garage, tansu, db, extra, launch).await
    }

    /// `xtream-worker maintain` (the relay and the sweeper, no jobs), set up
    /// as [`Worker::run`] is.
    pub async fn maintain(
        garage: &Garage,
        tansu: &Tansu,
        db: &Postgres,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::against(Role::Maintain, garage, tansu, db, extra, &Launch::default()).await
    }

    async fn against(
        role: Role,
        garage: &Garage,
        tansu: &Tansu,
        db: &Postgres,
        extra: &[(&str, &str)],
        launch: &Launch,
    ) -> anyhow::Result<Self> {
        let database_url = db.url();
        let work_dir = tempfile::tempdir()?;
        let port = launch.port.unwrap_or_else(crate::free_port);
        let mut env: Vec<(String, String)> = [
            ("XTREAM_KAFKA_BROKERS", tansu.brokers.as_str()),
            ("XTREAM_S3_ENDPOINT", garage.endpoint.as_str()),
            ("XTREAM_DATABASE_URL", database_url.as_str()),
            ("XTREAM_S3_BUCKET", garage.bucket.as_str()),
            ("XTREAM_S3_ACCESS_KEY", garage.access_key.as_str()),
            ("XTREAM_S3_SECRET_KEY", garage.secret_key.as_str()),
            // tansu completes a group's first join only after about half
            // the session timeout; Kafka's 45 s default would make every
            // test wait ~20 s. 6 s is the broker-side minimum in Kafka.
            ("XTREAM_KAFKA_SESSION_TIMEOUT", "6s"),
            ("XTREAM_WORK_DIR", &work_dir.path().display().to_string()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if !launch.as_deployed {
            env.push(("XTREAM_X264_PRESET".into(), "ultrafast".into()));
        }
        env.push(("XTREAM_HTTP_LISTEN".into(), format!("127.0.0.1:{port}")));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut worker = Self::new(role, launch, port, env, work_dir)?;
        worker.start().await?;
        Ok(worker)
    }

    /// `xtream-kafka-bridge` in front of `tansu`.
    pub async fn bridge(tansu: &Tansu) -> anyhow::Result<Self> {
        Self::bridge_launched(tansu, &Launch::default()).await
    }

    /// `xtream-kafka-bridge` in front of `tansu`, launched as `launch` says.
    pub async fn bridge_launched(tansu: &Tansu, launch: &Launch) -> anyhow::Result<Self> {
        let port = launch.port.unwrap_or_else(crate::free_port);
        let mut env = vec![
            ("XTREAM_KAFKA_BROKERS".to_owned(), tansu.brokers.clone()),
            (
                "XTREAM_BRIDGE_LISTEN".to_owned(),
                format!("127.0.0.1:{port}"),
            ),
        ];
        if launch.as_deployed {
            let mut bridge = Self::new(Role::Bridge, launch, port, env, tempfile::tempdir()?)?;
            bridge.start().await?;
            return Ok(bridge);
        }
        env.push(("XTREAM_BRIDGE_DELIVERY_TIMEOUT".to_owned(), "3s".to_owned()));
        let mut bridge = Self::new(Role::Bridge, launch, port, env, tempfile::tempdir()?)?;
        bridge.start().await?;
        let contract = CheckedBridge::start(&bridge.direct).await?;
        bridge.base = contract.base.clone();
        bridge.contract = Some(contract);
        Ok(bridge)
    }

    fn new(
        role: Role,
        launch: &Launch,
        port: u16,
        env: Vec<(String, String)>,
        work_dir: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let direct = format!("http://127.0.0.1:{port}");
        Ok(Self {
            base: direct.clone(),
            direct,
            contract: None,
            env,
            role,
            binaries: launch.binaries.clone(),
            port,
            log: crate::LogFile::at_or_temporary(launch.log.clone())?,
            child: None,
            _work_dir: work_dir,
        })
    }

    /// Starts the process (again) and waits until its HTTP port answers.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let log = self.log.append()?;
        let child = self
            .role
            .command(self.binaries.as_deref())?
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.role.name()))?;
        self.child = Some(child);
        let url = format!("{}{}", self.direct, self.role.probe());
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("{} exited with {status}: {}", self.role.name(), self.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer on port {} within 30 s: {}",
                    self.role.name(),
                    self.port,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU seconds the process has used so far, with its ffmpeg and
    /// ffprobe runs (children it waited for), as Linux counts them in
    /// `/proc/PID/stat`; `None` once it stopped.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        cpu_seconds_of(&stat)
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as Kubernetes sends on a rollout; waits up to `timeout` for
    /// the process to exit and returns how it did.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("the worker is not running")?;
        // SAFETY: kill(2) with our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the worker did not exit within {timeout:?} of SIGTERM: {}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The bridge: the answers so far that Strimzi's bridge could not have
    /// given (the proxy also fails the test with them when dropped).
    pub fn contract_violations(&self) -> Vec<String> {
        self.contract
            .as_ref()
            .map(CheckedBridge::violations)
            .unwrap_or_default()
    }

    /// Everything the process wrote to stderr (all its runs).
    pub fn log(&self) -> String {
        self.log.read()
    }

    /// `GET /metrics` (the worker).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(reqwest::get(format!("{}/metrics", self.base))
            .await?
            .text()
            .await?)
    }

    /// A counter or gauge from `/metrics`, 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await.unwrap_or_default();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `utime + stime + cutime + cstime` of a `/proc/PID/stat` line, seconds.
/// The fields are counted after the command name, which may hold spaces
/// but ends at the last `)`.
fn cpu_seconds_of(stat: &str) -> Option<f64> {
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let mut total = 0.0;
    // utime, stime, cutime, cstime: fields 14 to 17 of proc(5), the 12th
    // to 15th after the name.
    for field in fields.get(11..15)? {
        total += field.parse::<f64>().ok()?;
    }
    Some(total / ticks)
}

/// Random-looking bytes: no container ffprobe recognises.
pub fn corrupt_bytes(len: usize) -> Vec<u8> {
    // A fixed xorshift stream: the same "corrupt upload" in every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Applies the schema to `db` with the real `xtream-worker migrate`, as
/// `./x up` and Kubernetes do.
pub async fn migrate(db: &Postgres) -> anyhow::Result<()> {
    migrate_launched(db, &Launch::default()).await
}

/// [`migrate`] with the worker binary `launch` names.
pub async fn migrate_launched(db: &Postgres, launch: &Launch) -> anyhow::Result<()> {
    let binary = match &launch.binaries {
        Some(dir) => dir.join("xtream-worker"),
        None => worker_binary()?,
    };
    let output = tokio::process::Command::new(binary)
        .arg("migrate")
        .env("XTREAM_DATABASE_URL", db.url())
        .output()
        .await
        .context("running xtream-worker migrate")?;
    if !output.status.success() {
        bail!(
            "xtream-worker migrate failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The record of video `id` as stored in `db`, if it has a row, in the
/// shape the API shows it (absent fields left out, as `VideoRecord`
/// serialises).
pub async fn record(db: &Postgres, id: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let statement = xtream_core::metadata::select_record(id.parse().context("a video id")?);
    match db.run(&statement).await?.first() {
        Some(row) => {
            let record = xtream_core::metadata::decode_record(row.try_get::<_, &str>(0)?)
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            Ok(Some(serde_json::to_value(record)?))
        }
        None => Ok(None),
    }
}

/// Marks the outbox entries of video `id` sent, as the component does once
/// the bridge took the event (for tests that announce with
/// [`crate::Tansu::announce`] after [`store_upload`]).
pub async fn mark_announced(db: &Postgres, id: &str) -> anyhow::Result<u64> {
    let client = db.connect().await?;
    Ok(client
        .execute(
            "UPDATE outbox SET sent_at = now() WHERE key = $1 AND sent_at IS NULL",
            &[&id],
        )
        .await?)
}

/// Polls the record of `id` in `db` until its status is one of `statuses`,
/// and returns it; fails after `timeout` with the last record.
pub async fn wait_for_status(
    db: &Postgres,
    id: &str,
    statuses: &[&str],
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    let mut last = serde_json::Value::Null;
    loop {
        if let Ok(Some(found)) = record(db, id).await {
            last = found;
            if statuses.iter().any(|s| last["status"] == *s) {
                return Ok(last);
            }
        }
        if Instant::now() > deadline {
            bail!("video {id} did not reach {statuses:?} within {timeout:?}; record: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stores an upload the way the `videos` component does (the original,
/// then its row and outbox entry in one statement) but never sends the
/// event, as if the component died right after the insert; the entry is
/// backdated by `unsent_for` so the outbox relay sees it as overdue.
pub async fn store_upload(
    bucket: &crate::Bucket,
    db: &Postgres,
    original: Vec<u8>,
    unsent_for: Duration,
) -> anyhow::Result<xtream_core::VideoRecord> {
    use xtream_core::{VideoId, VideoRecord, keys};
    let id = VideoId::random();
    let record = VideoRecord::uploaded(
        id,
        "Test".into(),
        "clip.mp4".into(),
        original.len() as u64,
        "video/mp4".into(),
        jiff::Timestamp::now(),
    );
    bucket
        .put(&keys::original(id), original, "video/mp4")
        .await?;
    let client = db.connect().await?;
    let uuid: uuid::Uuid = id.to_string().parse()?;
    let payload = serde_json::to_value(xtream_core::events::VideoUploaded::of(&record))?;
    let size = record.size as i64;
    client
        .execute(
            "INSERT INTO videos (id, title, filename, size, content_type, status) \
             VALUES ($1, $2, $3, $4, $5, 'uploaded')",
            &[
                &uuid,
                &record.title,
                &record.filename,
                &size,
                &record.content_type,
            ],
        )
        .await?;
    let backdate = format!("{} seconds", unsent_for.as_secs());
    client
        .execute(
            "INSERT INTO outbox (topic, key, payload, created_at) \
             VALUES ('xtream.uploads', $1, $2, now() - $3::text::interval)",
            &[&id.to_string(), &payload, &backdate],
        )
        .await?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_counts_the_process_and_the_children_it_waited_for() {
        // A name with spaces and parentheses; then state, 10 fields, and
        // utime 100, stime 50, cutime 20, cstime 30 ticks.
        let stat = "1234 (xtream (w) x) S 1 2 3 4 5 6 7 8 9 10 100 50 20 30 20 0 1 0";
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        assert_eq!(cpu_seconds_of(stat), Some(200.0 / ticks));
        assert_eq!(cpu_seconds_of("1234 (cut short) S 1 2"), None);
        // The harness's own process, which has used some CPU by now.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_seconds_of(&own).unwrap() >= 0.0);
    }
}
