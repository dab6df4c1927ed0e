//! A real Garage S3 server for one test.

use crate::DataDir;
use crate::s3::Bucket;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Garage's access key format: `GK` and 24 hex digits.
const ACCESS_KEY: &str = "GK5e0e5e0e5e0e5e0e5e0e5e0e";
/// 64 hex digits.
const SECRET_KEY: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";
/// The bucket the platform uses.
pub const BUCKET: &str = "xtream";
/// The bucket's lifecycle rules (abort multipart uploads unfinished after a
/// day), given to every Garage, the dev stack's included.
pub const BUCKET_LIFECYCLE: &str = include_str!("../data/s3/bucket-lifecycle.xml");

/// A running single-node Garage with a default bucket and key. Killed on
/// drop; stopped cleanly instead when its data is kept.
pub struct Garage {
    /// `http://127.0.0.1:PORT`, the S3 API.
    pub endpoint: String,
    /// The S3 access key id.
    pub access_key: String,
    /// The S3 secret key.
    pub secret_key: String,
    /// The bucket name.
    pub bucket: String,
    dir: DataDir,
    child: Option<Child>,
}

/// How a Garage is set up: [`GarageSettings::for_tests`], or the dev
/// stack's (fixed ports, data kept, a development key).
pub struct GarageSettings {
    /// The S3 API's port.
    pub s3_port: u16,
    /// The RPC port (single node: only Garage itself uses it).
    pub rpc_port: u16,
    /// The default key's id: `GK` and 24 hex digits.
    pub access_key: String,
    /// The default key's secret (64 hex digits), also the RPC secret.
    pub secret_key: String,
    /// Where `garage.toml`, the metadata, the data and `garage.log` go.
    pub dir: DataDir,
}

impl GarageSettings {
    /// Free ports, a temporary directory and the tests' key.
    pub fn for_tests() -> anyhow::Result<Self> {
        Ok(Self {
            s3_port: crate::free_port(),
            rpc_port: crate::free_port(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            dir: DataDir::temporary()?,
        })
    }
}

/// The metadata engine for a Garage keeping its data in `dir`: LMDB,
/// Garage's default, unless `dir` already holds an SQLite database (a data
/// directory `./x up` kept from before, which LMDB would not see). Under
/// concurrent uploads SQLite refused writes now and then ("database is
/// locked"), and Garage answered those uploads 503.
fn metadata_engine(dir: &Path) -> &'static str {
    if dir.join("meta/db.sqlite").exists() {
        "sqlite"
    } else {
        "lmdb"
    }
}

/// Where the project's setup installs Garage (see `./x setup`), unless
/// `XTREAM_GARAGE` names the binary.
pub fn garage_binary() -> PathBuf {
    crate::tool("garage", "XTREAM_GARAGE")
}

impl Garage {
    /// Starts a fresh Garage for a test ([`GarageSettings::for_tests`]).
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(GarageSettings::for_tests()?).await
    }

    /// Starts Garage as `settings` say, waits until its bucket answers and
    /// gives the bucket its lifecycle rules ([`BUCKET_LIFECYCLE`]).
    pub async fn start_with(settings: GarageSettings) -> anyhow::Result<Self> {
        let GarageSettings {
            s3_port,
            rpc_port,
            access_key,
            secret_key,
            dir,
        } = settings;
        let db_engine = metadata_engine(dir.path());
        // Blocks are stored uncompressed, as MinIO stores objects by
        // default: Garage otherwise runs zstd over every block, and video
        // does not compress, so it only spent CPU (a quarter of Garage's
        // time on each upload under load).
        let config = format!(
            r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "{db_engine}"
compression_level = "none"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret_key}"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"
"#,
            dir = dir.path().display(),
        );
        std::fs::write(dir.path().join("garage.toml"), config)?;
        let mut garage = Self {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            access_key,
            secret_key,
            bucket: BUCKET.into(),
            dir,
            child: None,
        };
        std::fs::File::create(garage.log_path())?;
        garage.resume().await?;
        garage
            .bucket()
            .put_lifecycle(BUCKET_LIFECYCLE)
            .await
            .context("setting the bucket's lifecycle rules")?;
        Ok(garage)
    }

    /// Direct access to the bucket.
    pub fn bucket(&self) -> Bucket {
        Bucket::new(
            &self.endpoint,
            &self.bucket,
            &self.access_key,
            &self.secret_key,
        )
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (its data stays), as an outage would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.log_path())?;
        let child = crate::server_command(garage_binary())
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &self.access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &self.secret_key)
            .env("GARAGE_DEFAULT_BUCKET", &self.bucket)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start Garage ({}); run `./x setup` to install it",
                    garage_binary().display()
                )
            })?;
        self.child = Some(child);
        let bucket = self.bucket();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if bucket.exists().await {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("Garage exited with {status}: {}", self.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "Garage did not serve its bucket within 30 s: {}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        match self.child.as_mut() {
            Some(child) if self.dir.is_kept() => {
                crate::stop_child(child, libc::SIGTERM, Duration::from_secs(10));
                self.child = None;
            }
            _ => self.stop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_directory_gets_lmdb_and_a_kept_sqlite_one_keeps_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(metadata_engine(dir.path()), "lmdb");
        std::fs::create_dir(dir.path().join("meta")).unwrap();
        std::fs::write(dir.path().join("meta/db.sqlite"), b"").unwrap();
        assert_eq!(metadata_engine(dir.path()), "sqlite");
    }
}
