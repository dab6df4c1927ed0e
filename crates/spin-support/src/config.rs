//! Settings from Spin variables (see `[variables]` in spin.toml).

use spin_sdk::variables;
use xtream_core::ApiError;
use xtream_core::config::{InvalidSetting, StorageSettings, UploadLimits};

/// A Spin variable of this component; a missing one is a misconfiguration.
pub fn variable(name: &str) -> Result<String, ApiError> {
    variables::get(name).map_err(|e| {
        ApiError::internal(format!(
            "the platform is misconfigured: variable {name}: {e}"
        ))
    })
}

fn misconfigured(err: InvalidSetting) -> ApiError {
    ApiError::internal(format!("the platform is misconfigured: {err}"))
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
