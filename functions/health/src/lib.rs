//! `GET /health` (liveness: no I/O) and `GET /health/ready` (readiness:
//! every setting is well-formed, the bucket and the metadata database
//! answer).

use serde_json::json;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use xtream_core::ApiError;
use xtream_core::route::{HealthRoute, health_route};
use xtream_spin::http::{method, path_and_query, respond, respond_error};
use xtream_spin::open_store;

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let (path, _) = path_and_query(&request);
    match health_route(&method(&request), &path) {
        Ok(HealthRoute::Live) => respond(out, 200, Ok(json!({"status": "ok"}))).await,
        Ok(HealthRoute::Ready) => respond(out, 200, ready().await).await,
        Err(error) => respond_error(out, &error).await,
    }
}

async fn ready() -> Result<serde_json::Value, ApiError> {
    xtream_spin::config::check_settings()?;
    open_store()?.check_bucket().await?;
    xtream_spin::db::open()?.check()?;
    Ok(json!({"status": "ready"}))
}
