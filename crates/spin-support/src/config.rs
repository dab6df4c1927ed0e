//! Settings from Spin variables (see `[variables]` in spin.toml).

use spin_sdk::variables;
use xtream_core::ApiError;
use xtream_core::auth::{ApiKeys, parse_read_requires_key};
use xtream_core::config::{
    InvalidSetting, StorageSettings, UploadLimits, parse_max_concurrent_uploads,
};

/// A Spin variable of this component; a missing one is a misconfiguration.
pub fn variable(name: &str) -> Result<String, ApiError> {
    variables::get(name).map_err(|e| {
        ApiError::misconfigured(format!(
            "the platform is misconfigured: variable {name}: {e}"
        ))
    })
}

fn misconfigured(err: InvalidSetting) -> ApiError {
    ApiError::misconfigured(format!("the platform is misconfigured: {err}"))
}

/// Reads and checks the settings the components share, so that readiness
/// names the first one that is wrong (and what to fix) before a request
/// meets it. `api_keys` is left out: it is a secret the health component
/// has no other use for, and the write routes name it when it is wrong.
pub fn check_settings() -> Result<(), ApiError> {
    storage_settings()?;
    public_endpoint()?;
    upload_limits()?;
    max_concurrent_uploads()?;
    read_requires_key()?;
    for name in ["kafka_bridge_url", "uploads_topic"] {
        variable(name)?;
    }
    crate::db::address().map(drop)
}

/// Where the object store is and how to sign for it.
pub fn storage_settings() -> Result<StorageSettings, ApiError> {
    StorageSettings::new(
        &variable("s3_endpoint")?,
        &variable("s3_bucket")?,
        &variable("s3_region")?,
        &variable("s3_access_key")?,
        &variable("s3_secret_key")?,
    )
    .map_err(misconfigured)
}

/// The upload size limit.
pub fn upload_limits() -> Result<UploadLimits, ApiError> {
    UploadLimits::parse(&variable("max_upload_bytes")?).map_err(misconfigured)
}

/// How many streamed uploads the platform receives at once.
pub fn max_concurrent_uploads() -> Result<u32, ApiError> {
    parse_max_concurrent_uploads(&variable("max_concurrent_uploads")?).map_err(misconfigured)
}

/// Where clients reach S3 (for presigned part URLs).
pub fn public_endpoint() -> Result<String, ApiError> {
    xtream_core::config::public_endpoint(
        &variable("s3_public_endpoint")?,
        &variable("s3_endpoint")?,
    )
    .map_err(misconfigured)
}

/// The API keys writes must present.
pub fn api_keys() -> Result<ApiKeys, ApiError> {
    ApiKeys::parse(&variable("api_keys")?).map_err(misconfigured)
}

/// Whether reads need an API key too.
pub fn read_requires_key() -> Result<bool, ApiError> {
    parse_read_requires_key(&variable("read_requires_key")?).map_err(misconfigured)
}
