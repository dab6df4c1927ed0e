//! Xtream's domain, in plain Rust.
//!
//! Everything here is a decision, never I/O: what a video record is and how
//! its status may move, where objects live in the bucket, how listing pages
//! are cut, what an acceptable upload looks like, how a multipart body is
//! split, and how each failure is told to a client. The Spin components, the
//! worker and the tests all use these types, so the rules live in one place
//! and are unit-tested natively in milliseconds.

pub mod auth;
pub mod catalog;
pub mod chunks;
pub mod config;
pub mod error;
pub mod events;
pub mod hls;
pub mod id;
pub mod keys;
pub mod ladder;
pub mod media;
pub mod metadata;
pub mod multipart;
pub mod playback;
pub mod range;
pub mod record;
pub mod resumable;
pub mod route;
pub mod storyboard;
pub mod upload;

pub use error::ApiError;
pub use id::VideoId;
pub use record::{VideoRecord, VideoStatus};
