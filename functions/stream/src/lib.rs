//! Playback: `GET /api/videos/{id}/hls/...` (playlists and segments),
//! `/thumbnail.jpg`, the storyboard (`/storyboard.vtt` and the sprite
//! `/storyboard.jpg` its cues name) and `/original`, streamed from the private bucket so
//! clients never need S3 credentials or its address. Public unless
//! `read_requires_key` is set.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use xtream_core::auth::Access;
use xtream_core::route::stream_route;
use xtream_spin::auth::admit;
use xtream_spin::http::{method, path_and_query, respond_error};
use xtream_spin::stream;

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let (path, _) = path_and_query(&request);
    match admit(&request, stream_route(&method(&request), &path), |_| {
        Access::Read
    }) {
        Ok((object, store)) => stream::serve(&store, &request, out, object).await,
        Err(error) => respond_error(out, &error).await,
    }
}
