//! The platform under test: the real components in the embedded host.

use crate::Garage;
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;
use xtream_host::{HostConfig, RunningHost};

/// The components' .wasm files, built once per test binary.
static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
/// The first host to start compiles the components into the shared cache;
/// the others wait for it rather than compile the same code at once.
static WARMING: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);

/// The components, in the embedded host, serving on a free loopback port.
pub struct Platform {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// A client for it.
    pub client: reqwest::Client,
    host: Option<RunningHost>,
}

/// Builds the components exactly as spin.toml's build commands do.
fn build_components() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args(["build", "--target", "wasm32-wasip2", "--release"])
        .args([
            "-p",
            "xtream-health",
            "-p",
            "xtream-videos",
            "-p",
            "xtream-legacy",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building the components failed: {status}"))
    }
}

impl Platform {
    /// Starts the platform against `garage` with default settings.
    pub async fn start(garage: &Garage) -> anyhow::Result<Self> {
        Self::start_with(garage, &[]).await
    }

    /// Starts the platform against `garage`, overriding Spin variables
    /// (`("max_upload_bytes", "1MiB")`).
    pub async fn start_with(garage: &Garage, variables: &[(&str, &str)]) -> anyhow::Result<Self> {
        if let Err(why) = BUILT.get_or_init(build_components) {
            bail!("{why}");
        }
        let env: HashMap<String, String> = [
            ("s3_endpoint", garage.endpoint.as_str()),
            ("s3_bucket", garage.bucket.as_str()),
            ("s3_access_key", garage.access_key.as_str()),
            ("s3_secret_key", garage.secret_key.as_str()),
        ]
        .into_iter()
        .chain(variables.iter().copied())
        .map(|(name, value)| {
            (
                format!("SPIN_VARIABLE_{}", name.to_uppercase()),
                value.to_owned(),
            )
        })
        .collect();

        let config = HostConfig {
            manifest: crate::workspace_root().join("spin.toml"),
            listen: "127.0.0.1:0".parse().expect("literal address"),
            env,
            cache_dir: None,
        };
        let host = {
            let mut warmed = WARMING.lock().await;
            let host = RunningHost::start(config)
                .await
                .context("starting the embedded host")?;
            *warmed = true;
            host
        };
        Ok(Self {
            base: format!("http://{}", host.addr),
            client: reqwest::Client::new(),
            host: Some(host),
        })
    }

    /// The URL of `path` on the platform.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` and decode its JSON body, with the status.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let response = self.client.get(self.url(path)).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// Stops the host.
    pub async fn shutdown(mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown().await;
        }
    }
}
