//! An embedded, Spin-compatible HTTP host on Wasmtime.
//!
//! Real Spin cannot be installed where this project is built and tested, so
//! this crate stands in for `spin up`: it reads `spin.toml`, resolves Spin
//! variables, routes requests by `[[trigger.http]]` routes to the real
//! `.wasm` components (instantiated fresh per request, as Spin does),
//! provides Spin's PostgreSQL and key-value interfaces ([`postgres`],
//! [`key_value`]), and enforces each
//! component's `allowed_outbound_hosts`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use xtream_host::{HostConfig, RunningHost};
//! let host = RunningHost::start(HostConfig {
//!     manifest: "spin.toml".into(),
//!     listen: "127.0.0.1:0".parse()?,
//!     env: std::env::vars().collect(),
//!     cache_dir: None,
//!     body_idle_timeout: xtream_host::DEFAULT_BODY_IDLE_TIMEOUT,
//!     runtime_config: xtream_host::RuntimeConfig::default(),
//!     metrics_listen: None,
//! })
//! .await?;
//! println!("serving on http://{}", host.addr);
//! host.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod compile_cache;
pub mod key_value;
pub mod limits;
pub mod manifest;
pub mod metrics;
pub mod outbound;
mod outbound_pool;
pub mod postgres;
pub mod routing;
mod runtime;
pub mod runtime_config;
mod server;
pub mod variables;

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

pub use compile_cache::CompileCache;
pub use manifest::Manifest;
pub use outbound::OutboundPolicy;
pub use routing::{RouteMatch, Router};
pub use runtime::{MAX_CONCURRENT_INSTANCES, MAX_MEMORY_BYTES};
pub use runtime_config::{OutboundHttpConfig, RuntimeConfig};

/// How to start a host.
#[derive(Clone)]
pub struct HostConfig {
    /// Path of `spin.toml`; component sources are relative to its directory.
    pub manifest: PathBuf,
    /// Address to listen on; port 0 picks a free port (see [`RunningHost::addr`]).
    pub listen: SocketAddr,
    /// Environment the application variables are read from
    /// (`SPIN_VARIABLE_<NAME>`); the binary passes the process environment.
    pub env: HashMap<String, String>,
    /// Where compiled components are cached; `None` means
    /// [`CompileCache::default_dir`].
    pub cache_dir: Option<PathBuf>,
    /// A request body that sends nothing for this long is cut off, so a
    /// slow client (slowloris) cannot hold an instance forever; the
    /// component sees a failed body read. [`DEFAULT_BODY_IDLE_TIMEOUT`] is
    /// a sensible value.
    pub body_idle_timeout: std::time::Duration,
    /// What Spin's runtime configuration file (`spin up
    /// --runtime-config-file`) says; [`RuntimeConfig::default`] is Spin's
    /// behaviour without one.
    pub runtime_config: RuntimeConfig,
    /// Where to serve `GET /metrics` (Spin's request counter, see
    /// [`metrics`]); `None` serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
}

/// Default for [`HostConfig::body_idle_timeout`].
pub const DEFAULT_BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A client must send a request head within this (slowloris defence).
/// hyper runs this timer from the moment a connection waits for its next
/// request, so it is also how long an idle keep-alive connection is kept:
/// a client that pools connections must drop idle ones sooner, or it races
/// the close and sees "connection closed before message completed".
///
/// 30 s, hyper's own default, and not the 10 s it was: under `./x load
/// upload` at 1000 VUs on 2 cores, k6, starved of CPU, sent uploads on
/// connections the host had just closed after 10 idle seconds, and 48, 223
/// and 66 of about 3,300 uploads failed with a broken pipe in three runs.
/// Spin sets no such timeout; nginx's `client_header_timeout` is 60 s.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

// By hand so that secrets passed in `env` never end up in a log.
impl std::fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut env_names: Vec<&String> = self.env.keys().collect();
        env_names.sort();
        f.debug_struct("HostConfig")
            .field("manifest", &self.manifest)
            .field("listen", &self.listen)
            .field("env (names only)", &env_names)
            .field("cache_dir", &self.cache_dir)
            .field("runtime_config", &self.runtime_config)
            .field("metrics_listen", &self.metrics_listen)
            .finish()
    }
}

/// A host serving in the background until [`RunningHost::shutdown`] (or
/// until dropped, which also stops it).
#[derive(Debug)]
pub struct RunningHost {
    /// The address actually bound.
    pub addr: SocketAddr,
    /// The address `GET /metrics` is served on, when one was asked for.
    pub metrics_addr: Option<SocketAddr>,
    routes: Vec<(String, String)>,
    shutdown: watch::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl RunningHost {
    /// Loads the manifest, resolves variables and outbound policies,
    /// compiles (or loads from cache) and pre-instantiates every component,
    /// binds `config.listen` and starts serving.
    pub async fn start(config: HostConfig) -> Result<RunningHost> {
        let manifest = Manifest::load(&config.manifest)?;
        let app_values =
            variables::resolve_application_variables(&manifest.variables, &config.env)?;
        for (name, decl) in &manifest.variables {
            if !decl.secret {
                tracing::debug!(variable = %name, value = %app_values[name], "application variable");
            }
        }

        let router = Router::new(
            manifest
                .triggers
                .iter()
                .map(|t| (t.route.as_str(), t.component.as_str())),
        )?;

        // Only components with a route are served (Spin does the same).
        let key_value_stores = key_value::KeyValueStores::default();
        let mut settings = Vec::new();
        for trigger in &manifest.triggers {
            if settings
                .iter()
                .any(|s: &runtime::ComponentSettings| s.decl.id == trigger.component)
            {
                continue;
            }
            let decl = manifest.components[&trigger.component].clone();
            let id = decl.id.clone();
            let variables = variables::render_component_variables(&decl.variables, &app_values)
                .with_context(|| format!("component `{id}`"))?;
            let policy = outbound_policy(&id, &decl.allowed_outbound_hosts, &app_values)?;
            key_value_stores.check_labels(&id, &decl.key_value_stores)?;
            settings.push(runtime::ComponentSettings {
                decl,
                variables,
                policy,
            });
        }

        let engine = runtime::engine()?;
        let cache = CompileCache::new(config.cache_dir.or_else(CompileCache::default_dir));
        let components = runtime::load_components(
            &engine,
            &cache,
            settings,
            outbound_pool::OutboundPool::new(&config.runtime_config.outbound_http),
            key_value_stores,
        )
        .await?;

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let routes = router
            .routes()
            .map(|(r, c)| (r.to_owned(), c.to_owned()))
            .collect();
        let request_metrics = Arc::new(metrics::RequestMetrics::new(
            &manifest.name,
            components.keys().map(String::as_str),
        ));
        let (shutdown, shutdown_rx) = watch::channel(());
        let metrics_addr = match config.metrics_listen {
            Some(listen) => {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot serve metrics on {listen}"))?;
                let bound = listener.local_addr()?;
                tokio::spawn(metrics::serve(
                    listener,
                    request_metrics.clone(),
                    shutdown_rx.clone(),
                ));
                Some(bound)
            }
            None => None,
        };
        let app = Arc::new(server::App {
            router,
            components,
            body_idle_timeout: config.body_idle_timeout,
            request_metrics,
        });
        let server = tokio::spawn(server::serve(listener, app, shutdown_rx));
        tracing::info!(app = %manifest.name, %addr, "host started");
        Ok(RunningHost {
            addr,
            metrics_addr,
            routes,
            shutdown,
            server,
        })
    }

    /// The `(route, component id)` pairs served, in manifest order.
    pub fn routes(&self) -> &[(String, String)] {
        &self.routes
    }

    /// Stops accepting connections, lets in-flight requests finish (up to a
    /// timeout) and returns once the server task has ended.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        if let Err(e) = self.server.await {
            tracing::warn!("server task ended abnormally: {e}");
        }
    }
}

/// A component's outbound policy, as Spin builds it: a literal entry that
/// does not parse stops the application from starting, but an entry made
/// from a template is only resolved when the component calls out, and one
/// that does not parse then (a variable holding a URL with a path, say)
/// fails every outbound call of the component while the application runs.
/// So a bad templated entry denies all of the component's outbound calls
/// here too, with a warning naming it, instead of refusing to start.
fn outbound_policy(
    component: &str,
    templates: &[String],
    app_values: &HashMap<String, String>,
) -> Result<OutboundPolicy> {
    let context = || format!("component `{component}`: allowed_outbound_hosts");
    let literal: Vec<&String> = templates.iter().filter(|t| !t.contains("{{")).collect();
    OutboundPolicy::parse(&literal).with_context(context)?;
    let rendered = templates
        .iter()
        .map(|t| variables::render_template(t, app_values))
        .collect::<Result<Vec<_>>>()
        .with_context(context)?;
    match OutboundPolicy::parse(&rendered) {
        Ok(policy) => Ok(policy),
        Err(err) => {
            tracing::warn!(
                component,
                "{err:#}; every outbound call of this component will be denied, as under Spin"
            );
            Ok(OutboundPolicy::default())
        }
    }
}
