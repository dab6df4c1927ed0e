//! The platform under test: the real components in the embedded host, or
//! in a real `spin up` when `XTREAM_SPIN` names a Spin CLI.

use crate::{Garage, LogFile, Postgres};
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use xtream_host::{HostConfig, RunningHost};

/// The components' .wasm files, built once per test binary.
static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
/// The first host to start compiles the components into the shared cache;
/// the others wait for it rather than compile the same code at once.
static WARMING: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);

/// Spin's runtime configuration file both `spin up` and the embedded host
/// are given, relative to the workspace root (as `./x up` does).
const RUNTIME_CONFIG: &str = "runtime-config.toml";

/// The API key the platform accepts unless a test sets `api_keys` itself.
pub const TEST_API_KEY: &str = "xtream-test-key-0123456789abcdef";

/// The components, in the embedded host, serving on a free loopback port.
pub struct Platform {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// A client for it that sends [`Platform::api_key`] with every request,
    /// as an authorised client does.
    pub client: reqwest::Client,
    /// A client that sends no key, for the tests of authorisation.
    pub anonymous: reqwest::Client,
    /// The (first) API key the platform accepts.
    pub api_key: String,
    host: Option<RunningHost>,
    /// The serving process, when the host does not run in this one
    /// (`XTREAM_SPIN`, the dev stack); killed on drop.
    process: Option<PlatformProcess>,
}

/// The environment variable naming a Spin CLI to serve the components with
/// instead of the embedded host: `XTREAM_SPIN=/path/to/spin cargo test`
/// runs the same tests against real Spin, to check that the embedded host
/// behaves as Spin does.
pub const SPIN_CLI_VARIABLE: &str = "XTREAM_SPIN";

/// A program that serves the platform as a process of its own.
#[derive(Debug, Clone)]
pub enum PlatformProgram {
    /// `spin up` with this Spin CLI.
    SpinUp(PathBuf),
    /// The embedded host's binary (`target/release/xtream-host`), serving
    /// Spin's request counter on `metrics`.
    Host {
        /// The binary.
        binary: PathBuf,
        /// Where it serves `GET /metrics`.
        metrics: SocketAddr,
    },
}

/// How the platform is served by a process of its own rather than by a
/// host inside this one: the dev stack's way, and the tests' under
/// `XTREAM_SPIN`.
#[derive(Debug)]
pub struct Served {
    /// What serves it.
    pub program: PlatformProgram,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Environment beyond the Spin variables
    /// (`SPIN_WASMTIME_INSTANCE_COUNT`).
    pub env: Vec<(String, String)>,
    /// Where its output goes; `None`: the terminal.
    pub log: Option<LogFile>,
}

/// The process serving the platform, killed on drop.
struct PlatformProcess {
    child: std::process::Child,
    log: Option<LogFile>,
    metrics: Option<SocketAddr>,
}

impl PlatformProcess {
    /// Starts `served` with the application variables in `variables`, and
    /// waits until `/health` answers.
    async fn start(served: Served, variables: &HashMap<String, String>) -> anyhow::Result<Self> {
        let root = crate::workspace_root();
        let listen = served.listen.to_string();
        let (mut command, metrics) = match &served.program {
            PlatformProgram::SpinUp(spin) => {
                let mut command = crate::server_command(spin);
                command
                    .args(["up", "--from", "spin.toml", "--listen", listen.as_str()])
                    .args(["--runtime-config-file", RUNTIME_CONFIG]);
                (command, None)
            }
            PlatformProgram::Host { binary, metrics } => {
                let mut command = crate::server_command(binary);
                command
                    .arg("--manifest")
                    .arg(root.join("spin.toml"))
                    .args(["--listen", listen.as_str()])
                    .arg("--runtime-config-file")
                    .arg(root.join(RUNTIME_CONFIG))
                    .args(["--metrics-listen", &metrics.to_string()]);
                (command, Some(*metrics))
            }
        };
        command
            .current_dir(&root)
            .envs(variables)
            .envs(served.env.iter().map(|(k, v)| (k, v)));
        if let Some(log) = &served.log {
            command.stdout(log.append()?).stderr(log.append()?);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {:?}", served.program))?;
        let mut process = PlatformProcess {
            child,
            log: served.log,
            metrics,
        };
        let base = format!("http://{listen}");
        let client = reqwest::Client::new();
        // Long enough for a first start to compile every component.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        loop {
            if let Ok(response) = client.get(format!("{base}/health")).send().await
                && response.status().is_success()
            {
                return Ok(process);
            }
            let log = process.log.as_ref().map(LogFile::read).unwrap_or_default();
            if let Some(status) = process.child.try_wait()? {
                bail!("{:?} exited ({status}): {log}", served.program);
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "{:?} did not answer within 5 minutes: {log}",
                    served.program
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

impl Drop for PlatformProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the components by running spin.toml's own build commands, as
/// `spin build` would, so tests never run stale .wasm files (and `./x
/// build` builds what they run).
pub fn build_components() -> Result<(), String> {
    let root = crate::workspace_root();
    let manifest = std::fs::read_to_string(root.join("spin.toml"))
        .map_err(|e| format!("cannot read spin.toml: {e}"))?;
    let manifest: toml::Table =
        toml::from_str(&manifest).map_err(|e| format!("spin.toml is not TOML: {e}"))?;
    let components = manifest.get("component").and_then(toml::Value::as_table);
    let commands = components
        .into_iter()
        .flat_map(|components| components.values())
        .filter_map(|component| component.get("build")?.get("command")?.as_str());
    for command in commands {
        let status = Command::new("sh")
            .current_dir(&root)
            .args(["-c", command])
            .status()
            .map_err(|e| format!("cannot run `{command}`: {e}"))?;
        if !status.success() {
            return Err(format!("`{command}` failed: {status}"));
        }
    }
    Ok(())
}

impl Platform {
    /// Starts the platform against `garage` and `db` with default settings.
    pub async fn start(garage: &Garage, db: &Postgres) -> anyhow::Result<Self> {
        Self::start_with(garage, db, &[]).await
    }

    /// Starts the platform against `garage` and `db`, overriding Spin
    /// variables (`("max_upload_bytes", "1MiB")`).
    pub async fn start_with(
        garage: &Garage,
        db: &Postgres,
        variables: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        if let Err(why) = BUILT.get_or_init(build_components) {
            bail!("{why}");
        }
        let env = spin_variables(garage, db, variables);
        let api_key = first_api_key(variables);
        if let Some(spin) = std::env::var_os(SPIN_CLI_VARIABLE) {
            let served = Served {
                program: PlatformProgram::SpinUp(spin.into()),
                listen: SocketAddr::from(([127, 0, 0, 1], crate::free_port())),
                env: Vec::new(),
                log: Some(LogFile::temporary()?),
            };
            return Self::serve(served, &env, api_key).await;
        }
        Self::start_in_process(env, api_key).await
    }
}

/// The Spin variables (as `SPIN_VARIABLE_*` environment) that point the
/// components at `garage` and `db`, then `variables`, which win.
fn spin_variables(
    garage: &Garage,
    db: &Postgres,
    variables: &[(&str, &str)],
) -> HashMap<String, String> {
    let port = db.port.to_string();
    [
        ("db_host", db.host.as_str()),
        ("db_port", port.as_str()),
        ("db_name", db.database.as_str()),
        ("db_user", db.user.as_str()),
        ("db_password", db.password.as_str()),
        ("db_sslmode", "disable"),
        ("s3_endpoint", garage.endpoint.as_str()),
        ("s3_bucket", garage.bucket.as_str()),
        ("s3_access_key", garage.access_key.as_str()),
        ("s3_secret_key", garage.secret_key.as_str()),
        ("api_keys", TEST_API_KEY),
    ]
    .into_iter()
    .chain(variables.iter().copied())
    .map(|(name, value)| {
        (
            format!("SPIN_VARIABLE_{}", name.to_uppercase()),
            value.to_owned(),
        )
    })
    .collect()
}

/// The first key of the `api_keys` among `variables`, else the tests' key.
fn first_api_key(variables: &[(&str, &str)]) -> String {
    variables
        .iter()
        .rev()
        .find(|(name, _)| *name == "api_keys")
        .map_or(TEST_API_KEY, |(_, keys)| keys)
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

impl Platform {
    /// Serves the platform by a process of its own as `served` says,
    /// against `garage` and `db`, with Spin variables `variables`
    /// (`kafka_bridge_url`, `api_keys`). The components must be built
    /// ([`build_components`]; `./x build` does).
    pub async fn start_served(
        garage: &Garage,
        db: &Postgres,
        variables: &[(&str, &str)],
        served: Served,
    ) -> anyhow::Result<Self> {
        let env = spin_variables(garage, db, variables);
        Self::serve(served, &env, first_api_key(variables)).await
    }

    async fn serve(
        served: Served,
        env: &HashMap<String, String>,
        api_key: String,
    ) -> anyhow::Result<Self> {
        let base = format!("http://{}", served.listen);
        let process = PlatformProcess::start(served, env).await?;
        Ok(Self {
            base,
            client: keyed_client(&api_key)?,
            anonymous: platform_client().build()?,
            api_key,
            host: None,
            process: Some(process),
        })
    }

    /// Starts the platform in a host inside this process.
    async fn start_in_process(
        env: HashMap<String, String>,
        api_key: String,
    ) -> anyhow::Result<Self> {
        let config = HostConfig {
            manifest: crate::workspace_root().join("spin.toml"),
            listen: "127.0.0.1:0".parse().expect("literal address"),
            env,
            cache_dir: None,
            // Short, so the slow-client tests need not wait long; data in
            // the other tests never pauses this long.
            body_idle_timeout: std::time::Duration::from_secs(5),
            runtime_config: xtream_host::RuntimeConfig::load(
                &crate::workspace_root().join(RUNTIME_CONFIG),
            )?,
            metrics_listen: Some("127.0.0.1:0".parse().expect("literal address")),
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
            client: keyed_client(&api_key)?,
            anonymous: platform_client().build()?,
            api_key,
            host: Some(host),
            process: None,
        })
    }

    /// `Authorization: Bearer <api key>`, for requests built elsewhere.
    pub fn authorization(&self) -> (&'static str, String) {
        ("authorization", format!("Bearer {}", self.api_key))
    }

    /// Where the embedded host serves `GET /metrics` (Spin's request
    /// counter); `None` under `spin up`, which pushes its metrics over OTLP
    /// instead.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        match (&self.host, &self.process) {
            (Some(host), _) => host.metrics_addr,
            (None, Some(process)) => process.metrics,
            (None, None) => None,
        }
    }

    /// The id of the process serving the platform: this one, unless a
    /// process of its own serves it.
    pub fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .map_or_else(std::process::id, |process| process.child.id())
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

    /// POST `body` as JSON to `path` (with the key); the status and the
    /// decoded answer (`null` when it is not JSON).
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("the platform answers");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// POSTs `parts` as a `multipart/form-data` body to `path`, with the
    /// key, as a browser's form would.
    pub async fn post_form(
        &self,
        path: &str,
        parts: &[crate::bodies::FormPart<'_>],
    ) -> reqwest::Result<reqwest::Response> {
        let (body, content_type) = crate::bodies::form(parts);
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
    }

    /// Uploads `body` as a raw `video/mp4` named `clip.mp4`, with the key.
    pub async fn upload_raw(&self, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.url("/api/videos?filename=clip.mp4"))
            .header("content-type", "video/mp4")
            .body(body)
            .send()
            .await
            .expect("the platform answers")
    }

    /// The request of a raw `video/mp4` upload named `big.mp4` of `size`
    /// bytes streamed from `body` (which may hold back part of itself, as
    /// [`crate::bodies::held`] does), with the key; not sent yet, so the
    /// test can stage a fault while it streams.
    pub fn streamed_upload<S>(&self, size: u64, body: S) -> reqwest::RequestBuilder
    where
        S: futures::TryStream + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        bytes::Bytes: From<S::Ok>,
    {
        self.client
            .post(self.url("/api/videos?filename=big.mp4"))
            .header("content-type", "video/mp4")
            .header("content-length", size.to_string())
            .body(reqwest::Body::wrap_stream(body))
    }

    /// Stops the host.
    pub async fn shutdown(mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown().await;
        }
        if let Some(mut process) = self.process.take() {
            // SIGTERM, as Spin's runtime is told to stop; killed if it
            // takes long.
            // SAFETY: kill(2) on our own child, not yet waited for.
            unsafe { libc::kill(process.child.id() as libc::pid_t, libc::SIGTERM) };
            for _ in 0..100 {
                if let Ok(Some(_)) = process.child.try_wait() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// A client sending `Authorization: Bearer <key>` with every request.
fn keyed_client(key: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
        .context("the API key is not a valid header value")?;
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(platform_client().default_headers(headers).build()?)
}

/// A client of the host that retires idle connections before the host
/// closes them (see [`xtream_host::HEADER_READ_TIMEOUT`]), so a request
/// after a quiet spell never lands on a connection being closed.
pub fn platform_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(xtream_host::HEADER_READ_TIMEOUT / 2)
}
