//! The real `xtream` CLI binary, run as a child process against a
//! platform under test.

use crate::Platform;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The binary, built once per test binary.
static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn build_cli() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args(["build", "-p", "xtream-cli"])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building xtream-cli failed: {status}"));
    }
    Ok(crate::target_dir().join("debug").join("xtream"))
}

/// The path of the `xtream` binary, building it first if needed.
pub fn cli_binary() -> anyhow::Result<PathBuf> {
    match BUILT.get_or_init(build_cli) {
        Ok(path) => Ok(path.clone()),
        Err(why) => bail!("{why}"),
    }
}

/// How one run of the CLI ended.
#[derive(Debug)]
pub struct CliRun {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output, as JSON (`--json` is always passed); `Null` if it
    /// is not JSON.
    pub json: serde_json::Value,
    /// Standard error.
    pub stderr: String,
}

/// Runs `xtream --json ARGS` against `platform` with `api_key` (none when
/// `None`), keeping its upload state in `state_dir`.
pub async fn run(
    platform: &Platform,
    api_key: Option<&str>,
    state_dir: &Path,
    args: &[&str],
) -> anyhow::Result<CliRun> {
    let mut command = tokio::process::Command::new(cli_binary()?);
    command
        .arg("--json")
        .args(args)
        .env("XTREAM_SERVER", &platform.base)
        .env("XTREAM_STATE_DIR", state_dir)
        .env_remove("XTREAM_API_KEY");
    if let Some(key) = api_key {
        command.env("XTREAM_API_KEY", key);
    }
    let output = command.output().await.context("running xtream")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(CliRun {
        code: output.status.code().unwrap_or(-1),
        json: serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
