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

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the loopback interface has free ports")
}

/// The workspace root (where spin.toml lives).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}
