//! `./x load --before`: the listing measured, in the same run, against the
//! catalog the platform kept in S3 objects before PostgreSQL (issue #10's
//! "before").
//!
//! The platform as it was at [`COMMIT`], the last commit whose metadata
//! lived in S3, is taken out of git into the cache and built there (a
//! target directory of its own, so the first run compiles it once). Its own
//! embedded host serves only its `videos` and `health` components, against
//! a Garage of its own whose catalog holds the same videos as the database,
//! in the layout that commit read: `videos/{id}/video.json` and an empty
//! `catalog/{inverted creation time}-{id}` entry per video.

use crate::load::answers_health;
use crate::say;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use xtream_core::VideoRecord;
use xtream_core::metadata::{self, ListQuery};
use xtream_tests::postgres::run_statement;
use xtream_tests::s3::Bucket;
use xtream_tests::{Garage, LogFile, Postgres, cache_dir, workspace_root};

/// The last commit whose metadata lived in S3 objects (the next one,
/// 2694cf8, moved it to PostgreSQL).
pub const COMMIT: &str = "1911322";
/// Where its host listens.
const LISTEN: &str = "127.0.0.1:3200";
/// The components the listing needs (and `/health`, to know it is up).
const COMPONENTS: [&str; 2] = ["videos", "health"];
/// Objects written at once while seeding.
const CONCURRENT_PUTS: usize = 16;
/// Tries of each write while seeding.
const PUT_ATTEMPTS: u32 = 5;

/// The S3-catalog platform, serving; killed on drop.
pub struct S3Catalog {
    /// Its URL.
    pub base: String,
    /// Videos in its catalog.
    pub videos: usize,
    host: Child,
    _garage: Garage,
}

impl S3Catalog {
    /// Builds [`COMMIT`] if needed, starts a Garage, copies every video of
    /// `db` into it and starts the old host on it.
    pub async fn start(db: &Postgres) -> anyhow::Result<Self> {
        let dir = cache_dir().join("s3-catalog");
        let (host_binary, manifest) = tokio::task::block_in_place(|| build(&dir))?;
        let garage = Garage::start().await?;
        say(&format!(
            "copying the catalog into the S3 layout of {COMMIT} (videos/{{id}}/video.json + catalog/ entries)"
        ));
        let videos = seed(&garage.bucket(), db).await?;
        say(&format!(
            "starting the S3-catalog platform ({COMMIT}) on {LISTEN} with {videos} videos"
        ));
        let log = LogFile::at(dir.join("host.log"))?;
        let host = Command::new(host_binary)
            .args(["--manifest", &manifest.display().to_string()])
            .args(["--listen", LISTEN])
            .env("SPIN_VARIABLE_S3_ENDPOINT", &garage.endpoint)
            .env("SPIN_VARIABLE_S3_BUCKET", &garage.bucket)
            .env("SPIN_VARIABLE_S3_ACCESS_KEY", &garage.access_key)
            .env("SPIN_VARIABLE_S3_SECRET_KEY", &garage.secret_key)
            .env("SPIN_VARIABLE_API_KEYS", "unused-by-the-listing")
            .stdout(log.append()?)
            .stderr(log.append()?)
            .spawn()
            .context("starting the S3-catalog host")?;
        let catalog = Self {
            base: format!("http://{LISTEN}"),
            videos,
            host,
            _garage: garage,
        };
        // Long enough for a first start to compile both components.
        if answers_health(&catalog.base, Duration::from_secs(60)).await {
            return Ok(catalog);
        }
        bail!("the S3-catalog platform did not answer: {}", log.read())
    }

    /// Its host's process id, for its memory and CPU time.
    pub fn pid(&self) -> u32 {
        self.host.id()
    }
}

impl Drop for S3Catalog {
    fn drop(&mut self) {
        let _ = self.host.kill();
        let _ = self.host.wait();
    }
}

/// Takes [`COMMIT`] out of git into `dir/src` (once per commit), builds
/// its host and [`COMPONENTS`] and writes a manifest serving only those:
/// the host's binary and the manifest.
fn build(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let src = dir.join("src");
    let marker = src.join(".xtream-commit");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(COMMIT) {
        say(&format!(
            "taking {COMMIT} out of git into {}",
            src.display()
        ));
        if src.exists() {
            std::fs::remove_dir_all(&src)?;
        }
        std::fs::create_dir_all(&src)?;
        let mut archive = Command::new("git")
            .args(["archive", COMMIT])
            .current_dir(workspace_root())
            .stdout(Stdio::piped())
            .spawn()
            .context("running git archive")?;
        let unpacked = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(&src)
            .stdin(archive.stdout.take().expect("piped"))
            .status()?;
        if !archive.wait()?.success() || !unpacked.success() {
            bail!("cannot take {COMMIT} out of git (is the history there?)");
        }
        std::fs::write(&marker, COMMIT)?;
    }
    let target = dir.join("target");
    say(&format!(
        "building the S3-catalog platform ({COMMIT}) in {}",
        target.display()
    ));
    let packages: Vec<String> = COMPONENTS
        .iter()
        .flat_map(|c| ["-p".to_owned(), format!("xtream-{c}")])
        .collect();
    for (target_triple, packages) in [
        (None, vec!["-p".to_owned(), "xtream-host".to_owned()]),
        (Some("wasm32-wasip2"), packages),
    ] {
        let mut cargo = Command::new(crate::cargo());
        cargo
            .args(["build", "--release", "--locked"])
            .args(target_triple.map(|t| format!("--target={t}")))
            .args(&packages)
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", &target);
        if !cargo.status().context("running cargo")?.success() {
            bail!("building {COMMIT} failed");
        }
    }
    let wasm_dir = target.join("wasm32-wasip2/release");
    let manifest = std::fs::read_to_string(src.join("spin.toml"))?;
    let manifest = serving_only(&manifest, &COMPONENTS, &wasm_dir)?;
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest)?;
    Ok((target.join("release/xtream-host"), path))
}

/// `manifest` with only the routes and components named `keep`, each
/// component's `source` made absolute under `wasm_dir` and its build
/// command dropped (built already).
fn serving_only(manifest: &str, keep: &[&str], wasm_dir: &Path) -> anyhow::Result<String> {
    let mut manifest: toml::Table = toml::from_str(manifest).context("reading spin.toml")?;
    let kept = |value: &toml::Value| {
        value
            .get("component")
            .and_then(toml::Value::as_str)
            .is_some_and(|c| keep.contains(&c))
    };
    if let Some(routes) = manifest
        .get_mut("trigger")
        .and_then(|t| t.get_mut("http"))
        .and_then(toml::Value::as_array_mut)
    {
        routes.retain(kept);
    }
    let Some(components) = manifest
        .get_mut("component")
        .and_then(toml::Value::as_table_mut)
    else {
        bail!("spin.toml has no components");
    };
    components.retain(|name, _| keep.contains(&name));
    for (_, component) in components.iter_mut() {
        let Some(component) = component.as_table_mut() else {
            continue;
        };
        component.remove("build");
        let file = component
            .get("source")
            .and_then(toml::Value::as_str)
            .and_then(|s| Path::new(s).file_name())
            .context("a component without a source file")?
            .to_owned();
        component.insert(
            "source".into(),
            wasm_dir.join(file).display().to_string().into(),
        );
    }
    Ok(toml::to_string(&manifest)?)
}

/// The key of a video's catalog entry in the S3 layout: its creation time
/// in milliseconds, inverted and zero-padded so that S3's ascending order
/// lists the newest first.
fn catalog_entry(record: &VideoRecord) -> String {
    let millis = u64::try_from(record.created_at.as_millisecond()).unwrap_or(0);
    format!("catalog/{:020}-{}", u64::MAX - millis, record.id)
}

/// Writes every video of `db` into `bucket` as the S3 catalog kept it; the
/// number of videos.
async fn seed(bucket: &Bucket, db: &Postgres) -> anyhow::Result<usize> {
    let client = db.connect().await?;
    let mut query = ListQuery {
        limit: xtream_core::catalog::MAX_PAGE_SIZE,
        ..ListQuery::default()
    };
    let mut records = Vec::new();
    loop {
        let rows = run_statement(&client, &query.statement()).await?;
        let more = rows.len() > query.limit;
        for row in rows.iter().take(query.limit) {
            let json: String = row.try_get(0)?;
            records.push(metadata::decode_record(&json).map_err(|e| anyhow::anyhow!(e.message))?);
            query.before_position = Some(row.try_get(1)?);
        }
        if !more {
            break;
        }
    }
    let mut puts = tokio::task::JoinSet::new();
    for record in &records {
        if puts.len() >= CONCURRENT_PUTS {
            puts.join_next().await.expect("puts running")??;
        }
        let (bucket, entry) = (bucket.clone(), catalog_entry(record));
        let (key, body) = (
            format!("videos/{}/video.json", record.id),
            serde_json::to_vec(record)?,
        );
        puts.spawn(async move {
            put_retried(&bucket, &key, body, "application/json").await?;
            put_retried(&bucket, &entry, Vec::new(), "application/octet-stream").await
        });
    }
    while let Some(put) = puts.join_next().await {
        put??;
    }
    Ok(records.len())
}

/// Stores an object, trying again a few times: Garage answers 503 now
/// and then while thousands of writes arrive at once.
async fn put_retried(
    bucket: &Bucket,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        match bucket.put(key, body.clone(), content_type).await {
            Err(_) if attempt < PUT_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_keeps_only_the_named_components_and_their_routes() {
        let manifest = r#"
spin_manifest_version = 2
[application]
name = "x"
[[trigger.http]]
route = "/api/videos/..."
component = "videos"
[[trigger.http]]
route = "/..."
component = "web"
[component.videos]
source = "target/wasm32-wasip2/release/xtream_videos.wasm"
allowed_outbound_hosts = ["{{ s3_endpoint }}"]
[component.videos.build]
command = "cargo build"
[component.web]
source = "target/wasm32-wasip2/release/xtream_web.wasm"
"#;
        let trimmed = serving_only(manifest, &["videos"], Path::new("/built")).unwrap();
        let trimmed: toml::Table = toml::from_str(&trimmed).unwrap();
        let routes = trimmed["trigger"]["http"].as_array().unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0]["component"].as_str(), Some("videos"));
        let components = trimmed["component"].as_table().unwrap();
        assert_eq!(components.keys().collect::<Vec<_>>(), ["videos"]);
        let videos = &components["videos"];
        assert_eq!(videos["source"].as_str(), Some("/built/xtream_videos.wasm"));
        assert!(videos.get("build").is_none());
        assert_eq!(
            videos["allowed_outbound_hosts"][0].as_str(),
            Some("{{ s3_endpoint }}")
        );
    }

    #[test]
    fn newer_videos_have_catalog_entries_that_sort_first() {
        let json = |at: &str| {
            format!(
                r#"{{"id":"0b6f4a8e-9d1c-4c2e-8f3a-5e6d7c8b9a01","title":"t","filename":"f.mp4",
                "size":1,"content_type":"video/mp4","status":"ready",
                "created_at":"{at}","updated_at":"{at}"}}"#
            )
        };
        let older = metadata::decode_record(&json("2026-11-01T00:00:00Z")).unwrap();
        let newer = metadata::decode_record(&json("2026-11-02T00:00:00Z")).unwrap();
        let (older, newer) = (catalog_entry(&older), catalog_entry(&newer));
        assert!(newer < older);
        assert!(newer.ends_with("-0b6f4a8e-9d1c-4c2e-8f3a-5e6d7c8b9a01"));
        assert_eq!(newer.len(), "catalog/".len() + 20 + 1 + 36);
    }
}
