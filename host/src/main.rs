//! `xtream-host`: serve a Spin application locally, like `spin up`.

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;
use xtream_host::{HostConfig, RunningHost, RuntimeConfig};

const USAGE: &str = "\
usage: xtream-host [--manifest spin.toml] [--listen 127.0.0.1:3000] [--cache-dir DIR]
                   [--runtime-config-file runtime-config.toml]
                   [--metrics-listen 127.0.0.1:9091]

Serves the Spin application described by the manifest. Application variables
come from SPIN_VARIABLE_<NAME> environment variables; RUST_LOG sets the log
level (default: info). --runtime-config-file reads Spin's runtime
configuration file, as `spin up --runtime-config-file` does; the host
implements its [outbound_http] table (connection_pooling,
max_concurrent_requests) and refuses any other. --metrics-listen serves
GET /metrics there: Spin's request counter, spin_request_count_total, as
Prometheus stores what Spin pushes over OTLP.";

struct Args {
    manifest: PathBuf,
    listen: SocketAddr,
    cache_dir: Option<PathBuf>,
    runtime_config: Option<PathBuf>,
    metrics_listen: Option<SocketAddr>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>> {
    let mut parsed = Args {
        manifest: PathBuf::from("spin.toml"),
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        cache_dir: None,
        runtime_config: None,
        metrics_listen: None,
    };
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => bail!("{flag} needs a value\n\n{USAGE}"),
        };
        match flag.as_str() {
            "--manifest" | "-f" => parsed.manifest = value.into(),
            "--listen" => {
                parsed.listen = value.parse().with_context(|| {
                    format!("--listen: `{value}` is not an address like 127.0.0.1:3000")
                })?
            }
            "--cache-dir" => parsed.cache_dir = Some(value.into()),
            "--runtime-config-file" => parsed.runtime_config = Some(value.into()),
            "--metrics-listen" => {
                parsed.metrics_listen = Some(value.parse().with_context(|| {
                    format!("--metrics-listen: `{value}` is not an address like 127.0.0.1:9091")
                })?)
            }
            other => bail!("unknown argument `{other}`\n\n{USAGE}"),
        }
    }
    Ok(Some(parsed))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let Some(args) = parse_args(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    match xtream_host::limits::raise_open_file_limit() {
        Ok((before, now)) if before != now => {
            tracing::info!(before, now, "raised the open-file limit")
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "cannot raise the open-file limit"),
    }
    let runtime_config = match &args.runtime_config {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    let host = RunningHost::start(HostConfig {
        manifest: args.manifest,
        listen: args.listen,
        env: std::env::vars().collect(),
        cache_dir: args.cache_dir,
        body_idle_timeout: xtream_host::DEFAULT_BODY_IDLE_TIMEOUT,
        runtime_config,
        metrics_listen: args.metrics_listen,
    })
    .await?;

    println!("Serving http://{}", host.addr);
    if let Some(metrics) = host.metrics_addr {
        println!("Metrics: http://{metrics}/metrics");
    }
    println!("Available Routes:");
    for (route, component) in host.routes() {
        let (path, wildcard) = match route.strip_suffix("/...") {
            Some(prefix) => (if prefix.is_empty() { "/" } else { prefix }, " (wildcard)"),
            None => (route.as_str(), ""),
        };
        println!("  {component}: http://{}{path}{wildcard}", host.addr);
    }

    shutdown_signal().await;
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!("cannot listen for SIGTERM: {e}"),
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!("cannot listen for Ctrl-C: {e}; stopping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_flags() {
        let a = parse(&[]).unwrap().unwrap();
        assert_eq!(a.manifest, PathBuf::from("spin.toml"));
        assert_eq!(a.listen.to_string(), "127.0.0.1:3000");
        let a = parse(&[
            "--manifest",
            "x/spin.toml",
            "--listen=0.0.0.0:80",
            "--cache-dir",
            "/c",
            "--runtime-config-file",
            "rc.toml",
            "--metrics-listen=127.0.0.1:9091",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(a.runtime_config, Some(PathBuf::from("rc.toml")));
        assert_eq!(a.metrics_listen, Some("127.0.0.1:9091".parse().unwrap()));
        assert!(parse(&["--metrics-listen", "9091"]).is_err());
        assert_eq!(a.manifest, PathBuf::from("x/spin.toml"));
        assert_eq!(a.listen.port(), 80);
        assert_eq!(a.cache_dir, Some(PathBuf::from("/c")));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--listen", "nope"]).is_err());
        assert!(parse(&["--bogus", "1"]).is_err());
        assert!(parse(&["--manifest"]).is_err());
    }
}
