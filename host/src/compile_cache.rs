//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes from seconds to minutes (more
//! in debug builds), and the integration tests start a host many times, so
//! the output of [`Engine::precompile_component`] is kept on disk. The key is
//! the SHA-256 of the `.wasm` plus the Wasmtime version, the target and the
//! engine's compatibility hash, so a changed component, Wasmtime upgrade or
//! engine setting simply misses the cache.
//!
//! Why ours and not Wasmtime's `cache` feature: a hit here is one `mmap` of
//! the file as Wasmtime wrote it, where Wasmtime's cache decompresses each
//! entry into memory and runs a background worker to evict; clearing ours
//! is deleting the directory.
//!
//! A cached file is machine code the host runs, so whoever can write the
//! directory can run code as the host. The cache is therefore used only in
//! a directory owned by this user that nobody else can write (created
//! `0700`), only files owned by this user and writable by nobody else are
//! loaded, and there is no shared fallback: without `XDG_CACHE_HOME` or
//! `HOME` components are compiled in memory.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The Wasmtime version the workspace pins; part of the cache key.
const WASMTIME_VERSION: &str = "48.0.8";

/// A directory of `<key>.cwasm` files, or none (compile in memory).
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// A cache in `dir` (created `0700` on first write); `None` compiles
    /// in memory every time.
    pub fn new(dir: Option<PathBuf>) -> CompileCache {
        CompileCache { dir }
    }

    /// The cache directory, if there is one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// `$XDG_CACHE_HOME/xtream/compiled`, else `$HOME/.cache/xtream/compiled`;
    /// `None` without either (never a shared directory such as `/tmp`). Read
    /// from the process environment: where to cache is a property of the
    /// machine, not of the application being served.
    pub fn default_dir() -> Option<PathBuf> {
        dir_from(|name| std::env::var_os(name))
    }

    /// Loads the compiled form of the component at `wasm_path`, compiling and
    /// storing it on a miss. A cache that cannot be read or written, or that
    /// others could write, only costs time: the component is then compiled in
    /// memory.
    pub fn load(&self, engine: &Engine, wasm_path: &Path) -> Result<Component> {
        let wasm = std::fs::read(wasm_path)
            .with_context(|| format!("cannot read component {}", wasm_path.display()))?;
        let dir = match self.dir.as_deref().map(private_dir) {
            Some(Ok(dir)) => dir,
            Some(Err(why)) => {
                tracing::warn!("not using the compile cache: {why:#}");
                return compile_in_memory(engine, &wasm, wasm_path);
            }
            None => return compile_in_memory(engine, &wasm, wasm_path),
        };
        let path = dir.join(format!("{}.cwasm", cache_key(engine, &wasm)));

        if let Err(why) = only_ours(&path) {
            tracing::warn!(path = %path.display(), "ignoring a cached component: {why:#}");
        } else if path.exists() {
            // SAFETY: `deserialize_file` trusts the file to be Wasmtime output
            // for a compatible engine. The directory and the file belong to
            // this user and nobody else can write them (checked above), and
            // this user's hosts only write files whole (temp file + rename)
            // from `Engine::precompile_component`, under a key that includes
            // the engine's compatibility hash; Wasmtime still checks the
            // header and engine settings and we recompile if it refuses.
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
        match store(dir, &path, &compiled) {
            // SAFETY: as above; the file was just written by `store` from
            // this engine's own `precompile_component` output.
            Ok(()) => match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!("cannot load freshly cached component: {e:#}"),
            },
            Err(e) => tracing::warn!(
                dir = %dir.display(),
                "cannot write the compile cache: {e:#}"
            ),
        }
        from_own_output(engine, &compiled)
    }
}

/// [`CompileCache::default_dir`] with the environment read through `var`.
fn dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    let base = set("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("xtream").join("compiled"))
}

fn compile_in_memory(engine: &Engine, wasm: &[u8], wasm_path: &Path) -> Result<Component> {
    let compiled = engine
        .precompile_component(wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", wasm_path.display()))?;
    from_own_output(engine, &compiled)
}

fn from_own_output(engine: &Engine, compiled: &[u8]) -> Result<Component> {
    // SAFETY: `compiled` is this engine's own `precompile_component` output,
    // held in memory since.
    unsafe { Component::deserialize(engine, compiled) }.map_err(anyhow::Error::from)
}

/// `dir`, created `0700` if missing, once it is known to be this user's
/// and writable by nobody else.
fn private_dir(dir: &Path) -> Result<&Path> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    only_ours(dir)?;
    Ok(dir)
}

/// Fails unless `path` is absent, or owned by this user and not writable by
/// group or others.
fn only_ours(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if metadata.uid() != me {
        anyhow::bail!(
            "{} belongs to uid {}, not to this user ({me})",
            path.display(),
            metadata.uid()
        );
    }
    if metadata.mode() & 0o022 != 0 {
        anyhow::bail!(
            "{} can be written by others (mode {:o})",
            path.display(),
            metadata.mode() & 0o777
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` in `dir` atomically: readers (other hosts
/// started in parallel by tests) see either no file or the complete file.
fn store(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".tmp-{}-{nanos}.cwasm", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| file.write_all(bytes))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::from(e).context(format!("cannot rename to {}", path.display()))
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_private_directories_and_files_are_trusted() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("compiled");
        assert_eq!(private_dir(&dir).unwrap(), dir);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "created for this user alone");

        // A directory others may write is refused: a file planted there
        // would be run as machine code.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = private_dir(&dir).unwrap_err().to_string();
        assert!(refused.contains("can be written by others"), "{refused}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

        let planted = dir.join("entry.cwasm");
        std::fs::write(&planted, b"not machine code").unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(only_ours(&planted).is_err());
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(only_ours(&planted).is_ok());
        assert!(only_ours(&dir.join("absent.cwasm")).is_ok());
    }

    #[test]
    fn there_is_no_shared_fallback_directory() {
        let env = |pairs: &'static [(&str, &str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        assert_eq!(dir_from(env(&[])), None);
        assert_eq!(dir_from(env(&[("HOME", "")])), None);
        assert_eq!(
            dir_from(env(&[("HOME", "/home/someone")])),
            Some(PathBuf::from("/home/someone/.cache/xtream/compiled"))
        );
        assert_eq!(
            dir_from(env(&[
                ("HOME", "/home/someone"),
                ("XDG_CACHE_HOME", "/cache")
            ])),
            Some(PathBuf::from("/cache/xtream/compiled"))
        );
    }
}
