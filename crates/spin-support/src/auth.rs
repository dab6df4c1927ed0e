//! Checking a request's API key against the Spin variables `api_keys` and
//! `read_requires_key`; the decision itself is `xtream_core::auth`.

use crate::config;
use crate::http::header;
use spin_sdk::http::IncomingRequest;
use xtream_core::ApiError;
use xtream_core::auth::{self, Access};

/// `Ok` when `request` may do `access`; a 401 or 403 otherwise. Reads
/// touch no key material unless the operator made them keyed.
pub fn authorize(request: &IncomingRequest, access: Access) -> Result<(), ApiError> {
    let read_requires_key = match access {
        Access::Read => {
            if !config::read_requires_key()? {
                return Ok(());
            }
            true
        }
        Access::Write => false,
    };
    let keys = config::api_keys()?;
    auth::authorize(
        &keys,
        read_requires_key,
        access,
        header(request, "authorization").as_deref(),
    )
}

/// What every API component does before its real work: take the routing
/// decision, check the caller may do it, and open the bucket. Any refusal
/// is the error to answer with.
pub fn admit<R>(
    request: &IncomingRequest,
    route: Result<R, ApiError>,
    access: impl FnOnce(&R) -> Access,
) -> Result<(R, crate::ObjectStore), ApiError> {
    let route = route?;
    authorize(request, access(&route))?;
    Ok((route, crate::open_store()?))
}
