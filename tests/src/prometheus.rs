//! A real Prometheus for one test: Debian's `prometheus` (installed by
//! `./x setup`) with the local configuration `./x up` uses
//! (tests/data/prometheus/prometheus.yml) and the cluster's alerting rules
//! (k8s/base/monitoring/alerts.yml), scraping the targets the test names.

use crate::{DataDir, LogFile};
use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The local configuration, shared with `./x up`.
pub const LOCAL_CONFIG: &str = "tests/data/prometheus/prometheus.yml";
/// The cluster's alerting rules, which the local configuration loads.
pub const ALERT_RULES: &str = "k8s/base/monitoring/alerts.yml";

/// A running Prometheus, killed on drop (its data goes with it unless it
/// is kept).
pub struct Prometheus {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    child: Option<Child>,
    log: LogFile,
    dir: DataDir,
}

/// How a Prometheus is set up: [`PrometheusSettings::for_tests`], or the
/// dev stack's (a fixed port, data kept for a while).
pub struct PrometheusSettings {
    /// The port of its UI and API.
    pub port: u16,
    /// Its run directory (configuration, rules, targets) and data.
    pub dir: DataDir,
    /// Its log.
    pub log: LogFile,
    /// How long it keeps samples (`--storage.tsdb.retention.time`), if not
    /// Prometheus' default.
    pub retention: Option<String>,
}

impl PrometheusSettings {
    /// A free port, a temporary directory and log.
    pub fn for_tests() -> anyhow::Result<Self> {
        Ok(Self {
            port: crate::free_port(),
            dir: DataDir::temporary()?,
            log: LogFile::temporary()?,
            retention: None,
        })
    }
}

/// The jobs of the local configuration, each with a target file.
const JOBS: [&str; 3] = ["xtream-worker", "xtream-functions", "prometheus"];

/// Writes a run directory for the local configuration: the configuration
/// and the rules side by side, and `targets/<job>.json` for each
/// `(job, address)`; a job given no address gets an empty target list
/// (`spin up` serves no `/metrics`), replacing one a previous run wrote.
pub fn run_directory(dir: &Path, targets: &[(&str, String)]) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    std::fs::copy(root.join(LOCAL_CONFIG), dir.join("prometheus.yml"))?;
    std::fs::copy(root.join(ALERT_RULES), dir.join("alerts.yml"))?;
    std::fs::create_dir_all(dir.join("targets"))?;
    for job in JOBS {
        let addresses: Vec<&String> = targets
            .iter()
            .filter(|(named, _)| *named == job)
            .map(|(_, address)| address)
            .collect();
        let file = if addresses.is_empty() {
            serde_json::json!([])
        } else {
            serde_json::json!([{ "targets": addresses }])
        };
        std::fs::write(
            dir.join("targets").join(format!("{job}.json")),
            file.to_string(),
        )?;
    }
    Ok(())
}

impl Prometheus {
    /// Starts Prometheus for a test ([`PrometheusSettings::for_tests`]).
    pub async fn start(targets: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::start_with(targets, PrometheusSettings::for_tests()?).await
    }

    /// Starts Prometheus as `settings` say, scraping `(job, address)`
    /// targets (jobs of the local configuration: `xtream-worker`,
    /// `xtream-functions`) and itself, and waits until it answers and has
    /// loaded the rules.
    pub async fn start_with(
        targets: &[(&str, String)],
        settings: PrometheusSettings,
    ) -> anyhow::Result<Self> {
        let PrometheusSettings {
            port,
            dir,
            log,
            retention,
        } = settings;
        let base = format!("http://127.0.0.1:{port}");
        let mut all = targets.to_vec();
        all.push(("prometheus", format!("127.0.0.1:{port}")));
        run_directory(dir.path(), &all)?;
        let mut command = crate::server_command(binary());
        command
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        if let Some(retention) = retention {
            command.arg(format!("--storage.tsdb.retention.time={retention}"));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log.append()?)
            .spawn()
            .context("starting prometheus (./x setup installs Debian's package)")?;
        let mut prometheus = Self {
            base,
            child: Some(child),
            log,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(rules) = prometheus.api("rules").await
                && rules["groups"].as_array().is_some_and(|g| !g.is_empty())
            {
                return Ok(prometheus);
            }
            if let Some(child) = prometheus.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("prometheus exited ({status}): {}", prometheus.log());
            }
            if Instant::now() > deadline {
                bail!("prometheus did not load its rules: {}", prometheus.log());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `GET /api/v1/<path>`'s `data`.
    pub async fn api(&self, path: &str) -> anyhow::Result<Value> {
        let answer: Value = reqwest::get(format!("{}/api/v1/{path}", self.base))
            .await?
            .error_for_status()?
            .json()
            .await?;
        if answer["status"] != "success" {
            bail!("prometheus: {answer}");
        }
        Ok(answer["data"].clone())
    }

    /// The state of alert `name` (`pending`, `firing`), `None` while inactive.
    pub async fn alert_state(&self, name: &str) -> anyhow::Result<Option<String>> {
        let alerts = self.api("alerts").await?;
        Ok(alerts["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["labels"]["alertname"] == name)
            .and_then(|a| a["state"].as_str())
            .map(str::to_owned))
    }

    /// Health of every scrape target, `(job, health)`.
    pub async fn target_health(&self) -> anyhow::Result<Vec<(String, String)>> {
        let targets = self.api("targets").await?;
        Ok(targets["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap_or_default().to_owned(),
                    t["health"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    /// Prometheus' own log so far.
    pub fn log(&self) -> String {
        self.log.read()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.dir.is_kept() {
                // Its kept data stays consistent with a clean shutdown.
                crate::stop_child(&mut child, libc::SIGTERM, Duration::from_secs(10));
            } else {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `XTREAM_PROMETHEUS` or Debian's `prometheus` on the PATH.
fn binary() -> PathBuf {
    std::env::var_os("XTREAM_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("prometheus"))
}
