//! The test harness: real servers, started per test and cleaned up on drop.
//!
//! - [`Garage`]: a real S3 server (Garage, single node) on free loopback ports.
//! - [`Platform`]: the real `.wasm` components from spin.toml, served by the
//!   embedded host (`xtream-host`) against a Garage.
//! - [`Stack`]: all of the above plus Kafka and its HTTP bridge: what a
//!   test of the API starts.
//! - [`Bucket`]: direct S3 access, to check what the platform really stored.
//! - [`Tansu`]: a real Kafka-compatible broker (tansu, in memory).
//! - [`Postgres`]: a real PostgreSQL server (one per test binary, a
//!   database per test).
//! - [`Worker`]: the real `xtream-worker` binary (run or maintain mode) or
//!   the local Kafka bridge, `xtream-kafka-bridge`.
//! - [`bridge_contract`]: Strimzi's bridge API document, and the proxy that
//!   checks the local bridge's every answer against it.
//! - [`Prometheus`]: a real Prometheus with the local configuration and the
//!   cluster's alerting rules; [`monitoring`] reads the dashboards' queries.
//! - [`cli`]: the real `xtream` CLI binary, run as a child process.
//! - [`report`]: the machine a report was measured on, and its section
//!   written into a Markdown file.
//! - [`bodies`]: generated request bodies, streamed so that large ones are
//!   never held in memory by the test either.

pub mod bodies;
pub mod bridge_contract;
pub mod cli;
pub mod clips;
pub mod garage;
pub mod kafka;
pub mod monitoring;
pub mod platform;
pub mod postgres;
pub mod prometheus;
pub mod report;
pub mod s3;
pub mod stack;
pub mod worker;

pub use garage::Garage;
pub use kafka::Tansu;
pub use platform::Platform;
pub use postgres::Postgres;
pub use prometheus::Prometheus;
pub use s3::Bucket;
pub use stack::Stack;
pub use worker::Worker;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Resident memory of this process, in bytes (Linux).
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// Runs `command` to its end and returns what it printed on stdout; when
/// it cannot start or does not succeed, fails with what it wrote on stderr.
pub fn stdout_of(command: &mut std::process::Command) -> anyhow::Result<Vec<u8>> {
    let program = command.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let output = command
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {program} ({e}); run `./x setup`"))?;
    if !output.status.success() {
        anyhow::bail!(
            "{program} {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// What ffprobe says of `input` (a file, or a URL the test's own platform
/// may serve), as JSON: `-v error -of json` and then `show`, the entries to
/// print. Run with tokio's `Command`, so that a platform serving ffprobe
/// from the test's thread keeps answering; a failure panics with ffprobe's
/// message.
pub async fn ffprobe_json(show: &[&str], input: impl AsRef<std::ffi::OsStr>) -> serde_json::Value {
    let probe = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(show)
        .arg(input)
        .output()
        .await
        .expect("ffprobe runs");
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    serde_json::from_slice(&probe.stdout).expect("ffprobe prints JSON")
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the loopback interface has free ports")
}

/// Xtream's cache: `$XDG_CACHE_HOME/xtream`, else `~/.cache/xtream`. The
/// installed tools, the dev stack's data and logs, and the tests' clusters
/// live there.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("xtream")
}

/// Where `./x setup` installs the tools no package manager pins (Garage,
/// tansu, kubectl, schemathesis); its `bin/` comes first on `./x`'s PATH.
pub fn tools_dir() -> PathBuf {
    cache_dir().join("tools")
}

/// The program `name`: the one `./x setup` installed into [`tools_dir`]
/// if there is one, else `name` as the PATH finds it; `override_variable`
/// (`XTREAM_GARAGE`) names another.
pub fn tool(name: &str, override_variable: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_variable) {
        return path.into();
    }
    let installed = tools_dir().join("bin").join(name);
    if installed.exists() {
        installed
    } else {
        PathBuf::from(name)
    }
}

/// A directory a server keeps its files in.
#[derive(Debug)]
pub enum DataDir {
    /// Removed with the server: what a test starts from.
    Temporary(tempfile::TempDir),
    /// Kept between runs: the dev stack's data.
    Kept(PathBuf),
}

impl DataDir {
    /// A fresh temporary directory.
    pub fn temporary() -> std::io::Result<Self> {
        tempfile::tempdir().map(Self::Temporary)
    }

    /// `path`, created if missing.
    pub fn kept(path: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&path)?;
        Ok(Self::Kept(path))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        match self {
            Self::Temporary(dir) => dir.path(),
            Self::Kept(path) => path,
        }
    }

    /// Whether the data outlives the server, which then deserves a clean
    /// shutdown rather than a kill.
    pub fn is_kept(&self) -> bool {
        matches!(self, Self::Kept(_))
    }
}

/// A server's log (its stderr, sometimes stdout too), emptied when made:
/// a temporary file for a test, or a chosen path (the dev stack's
/// `~/.cache/xtream/dev-*.log`). Every start of the server appends to it.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    _temporary: Option<tempfile::TempPath>,
}

impl LogFile {
    /// A temporary file, removed on drop.
    pub fn temporary() -> std::io::Result<Self> {
        let path = tempfile::NamedTempFile::new()?.into_temp_path();
        Ok(Self {
            path: path.to_path_buf(),
            _temporary: Some(path),
        })
    }

    /// The file at `path`, emptied.
    pub fn at(path: PathBuf) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::File::create(&path)?;
        Ok(Self {
            path,
            _temporary: None,
        })
    }

    /// `at(path)` if a path is given, else a temporary file.
    pub fn at_or_temporary(path: Option<PathBuf>) -> std::io::Result<Self> {
        path.map_or_else(Self::temporary, Self::at)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file opened for appending, to hand to a child process.
    pub fn append(&self) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
    }

    /// Everything logged so far.
    pub fn read(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

/// Whether servers leave this process's process group (see
/// [`detach_servers_from_terminal`]).
static DETACHED: AtomicBool = AtomicBool::new(false);

/// Makes every server started from now on a process group of its own, out
/// of reach of the terminal's Ctrl-C. `./x up` calls it: it stops its
/// servers itself, in order and the database last, which it could not if
/// Ctrl-C reached them all at once. Tests leave their servers in their
/// group, so that an interrupted test run takes them with it.
pub fn detach_servers_from_terminal() {
    DETACHED.store(true, Ordering::SeqCst);
}

/// A command that starts a server's `program`.
pub(crate) fn server_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    if DETACHED.load(Ordering::SeqCst) {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
    }
    command
}

/// Sends `signal` to `child` and waits up to `patience` for it to exit,
/// then kills it.
pub fn stop_child(child: &mut Child, signal: i32, patience: Duration) {
    // SAFETY: kill(2) on our own child's pid, which it keeps until waited.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `target/` in the
/// workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The workspace root (where spin.toml lives).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}
