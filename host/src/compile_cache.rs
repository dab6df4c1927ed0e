//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes from seconds to minutes (more
//! in debug builds), and the integration tests start a host many times, so
//! the output of [`Engine::precompile_component`] is kept on disk. The key is
//! the SHA-256 of the `.wasm` plus the Wasmtime version, the target and the
//! engine's compatibility hash, so a changed component, Wasmtime upgrade or
//! engine setting simply misses the cache.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The Wasmtime version the workspace pins; part of the cache key.
const WASMTIME_VERSION: &str = "48.0.8";

/// A directory of `<key>.cwasm` files.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `$XDG_CACHE_HOME/xtream/compiled`, else `$HOME/.cache/xtream/compiled`,
    /// else the same under the system temp dir. Read from the process
    /// environment: where to cache is a property of the machine, not of the
    /// application being served.
    pub fn default_dir() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|home| PathBuf::from(home).join(".cache"))
            })
            .unwrap_or_else(std::env::temp_dir);
        base.join("xtream").join("compiled")
    }

    /// Loads the compiled form of the component at `wasm_path`, compiling and
    /// storing it on a miss. A cache that cannot be read or written only costs
    /// time: the component is then compiled in memory.
    pub fn load(&self, engine: &Engine, wasm_path: &Path) -> Result<Component> {
        let wasm = std::fs::read(wasm_path)
            .with_context(|| format!("cannot read component {}", wasm_path.display()))?;
        let path = self.dir.join(format!("{}.cwasm", cache_key(engine, &wasm)));

        if path.exists() {
            // SAFETY: `deserialize_file` trusts the file to be Wasmtime output
            // for a compatible engine. This cache directory only ever receives
            // files written whole (temp file + rename) by `store` below from
            // `Engine::precompile_component`, under a key that includes the
            // engine's compatibility hash; Wasmtime still checks the header
            // and engine settings and we recompile if it refuses.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    tracing::debug!(path = %path.display(), "compiled component loaded from cache");
                    return Ok(component);
                }
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    "ignoring unusable cached component: {e:#}"
                ),
            }
        }

        let started = std::time::Instant::now();
        let compiled = engine
            .precompile_component(&wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot compile {}", wasm_path.display()))?;
        tracing::info!(
            component = %wasm_path.display(),
            seconds = started.elapsed().as_secs_f32(),
            "compiled component"
        );
        match self.store(&path, &compiled) {
            // SAFETY: as above; the file was just written by `store` from
            // this engine's own `precompile_component` output.
            Ok(()) => match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!("cannot load freshly cached component: {e:#}"),
            },
            Err(e) => tracing::warn!(
                dir = %self.dir.display(),
                "cannot write the compile cache: {e:#}"
            ),
        }
        // SAFETY: `compiled` is this engine's own output from just above.
        let component =
            unsafe { Component::deserialize(engine, &compiled) }.map_err(anyhow::Error::from)?;
        Ok(component)
    }

    /// Writes `bytes` to `path` atomically: readers (other hosts started in
    /// parallel by tests) see either no file or the complete file.
    fn store(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = self
            .dir
            .join(format!(".tmp-{}-{nanos}.cwasm", std::process::id()));
        std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::Error::from(e).context(format!("cannot rename to {}", path.display()))
        })
    }
}

/// Hex digest over the wasm bytes, Wasmtime version, target and the engine's
/// compatibility hash.
fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.0.update(wasm);
    hasher.0.update(WASMTIME_VERSION.as_bytes());
    hasher.0.update(std::env::consts::ARCH.as_bytes());
    hasher.0.update(std::env::consts::OS.as_bytes());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher
        .0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Feeds `Hash` output into SHA-256, so the engine's compatibility hash
/// becomes part of a stable file name (std's `DefaultHasher` makes no
/// stability promise across Rust versions).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Never used: the digest is read from `self.0` directly.
        0
    }
}
