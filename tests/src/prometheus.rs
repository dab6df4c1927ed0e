//! A real Prometheus for one test: Debian's `prometheus` (installed by
//! `./x setup`) with the local configuration `./x up` uses
//! (tests/data/prometheus/prometheus.yml) and the cluster's alerting rules
//! (k8s/base/monitoring/alerts.yml), scraping the targets the test names.

use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The local configuration, shared with `./x up`.
pub const LOCAL_CONFIG: &str = "tests/data/prometheus/prometheus.yml";
/// The cluster's alerting rules, which the local configuration loads.
pub const ALERT_RULES: &str = "k8s/base/monitoring/alerts.yml";

/// A running Prometheus, killed on drop (its data goes with it).
pub struct Prometheus {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// Writes a run directory for the local configuration: the configuration
/// and the rules side by side, and `targets/<job>.json` for each
/// `(job, address)`.
pub fn run_directory(dir: &Path, targets: &[(&str, String)]) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    std::fs::copy(root.join(LOCAL_CONFIG), dir.join("prometheus.yml"))?;
    std::fs::copy(root.join(ALERT_RULES), dir.join("alerts.yml"))?;
    std::fs::create_dir_all(dir.join("targets"))?;
    for (job, address) in targets {
        let file = serde_json::json!([{ "targets": [address] }]);
        std::fs::write(
            dir.join("targets").join(format!("{job}.json")),
            file.to_string(),
        )?;
    }
    Ok(())
}

impl Prometheus {
    /// Starts Prometheus scraping `(job, address)` targets (jobs of the
    /// local configuration: `xtream-worker`, `xtream-functions`), and
    /// waits until it answers and has loaded the rules.
    pub async fn start(targets: &[(&str, String)]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = crate::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut all = targets.to_vec();
        all.push(("prometheus", format!("127.0.0.1:{port}")));
        run_directory(dir.path(), &all)?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(binary())
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting prometheus (./x setup installs Debian's package)")?;
        let mut prometheus = Self {
            base,
            child: Some(child),
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
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `XTREAM_PROMETHEUS` or Debian's `prometheus` on the PATH.
fn binary() -> PathBuf {
    std::env::var_os("XTREAM_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("prometheus"))
}
