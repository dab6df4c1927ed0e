//! What every Xtream Spin component shares.
//!
//! The decisions live in `xtream-core`; this crate does the I/O around them
//! inside a Spin component: it reads Spin variables, talks S3 over
//! `wasi:http` (signed with rusty-s3) and PostgreSQL over `spin:postgres`,
//! streams uploads into multipart S3 uploads, opens and completes
//! resumable uploads, lists, reads and deletes videos, checks API keys, and
//! writes JSON responses.

pub mod announce;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod db;
pub mod http;
pub mod resumable;
pub mod storage;
pub mod stream;
pub mod upload;

pub use storage::ObjectStore;

/// The platform's bucket, as the Spin variables configure it.
pub fn open_store() -> Result<ObjectStore, xtream_core::ApiError> {
    ObjectStore::new(&config::storage_settings()?)
}
