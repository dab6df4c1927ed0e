//! Remembering unfinished uploads, so running `xtream upload FILE` again
//! resumes instead of starting over.
//!
//! One small JSON file per (server, file), named by a hash of the server,
//! the file's absolute path, its size and its modification time: a file that
//! changed gets a fresh upload rather than a mix of old and new parts.

use crate::api::CliError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// What is remembered of an upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedUpload {
    /// The server it was opened on.
    pub server: String,
    /// The upload's id (the video's id once complete).
    pub upload_id: String,
    /// The file, for people reading the state directory.
    pub path: PathBuf,
    /// The file's size when the upload was opened.
    pub size: u64,
}

/// Where one file's upload state lives.
pub struct StateFile {
    path: PathBuf,
}

/// `XTREAM_STATE_DIR`, else `$XDG_CACHE_HOME/xtream/uploads`, else
/// `~/.cache/xtream/uploads`.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XTREAM_STATE_DIR") {
        return dir.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("xtream").join("uploads")
}

impl StateFile {
    /// The state file of uploading `file` (of `size` bytes) to `server`.
    pub fn for_file(server: &str, file: &Path, size: u64) -> Result<Self, CliError> {
        let absolute = std::fs::canonicalize(file)
            .map_err(|e| CliError::Local(format!("{}: {e}", file.display())))?;
        let modified = std::fs::metadata(&absolute)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut hasher = Sha256::new();
        for part in [
            server.as_bytes(),
            absolute.as_os_str().as_encoded_bytes(),
            &size.to_le_bytes(),
            &modified.to_le_bytes(),
        ] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let name: String = hasher.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            path: state_dir().join(format!("{name}.json")),
        })
    }

    /// The remembered upload, if any (an unreadable file counts as none).
    pub fn load(&self) -> Option<SavedUpload> {
        let bytes = std::fs::read(&self.path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Remembers `upload` (written whole, then renamed into place, so a
    /// crash never leaves half a file).
    pub fn save(&self, upload: &SavedUpload) -> Result<(), CliError> {
        let local = |e: std::io::Error| {
            CliError::Local(format!("cannot write {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(local)?;
        }
        let partial = self.path.with_extension("json.partial");
        let json = serde_json::to_vec_pretty(upload).expect("a saved upload serialises");
        std::fs::write(&partial, json).map_err(local)?;
        std::fs::rename(&partial, &self.path).map_err(local)
    }

    /// Forgets the upload (done, or no longer resumable).
    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
