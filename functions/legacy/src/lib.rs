//! The original Xtream routes, kept for existing clients:
//! `POST /upload` (multipart field `video`), `GET /videos` (a JSON array of
//! every video, newest first; `limit`/`cursor` ask for one page) and
//! `GET /video/{id}`. Uploads need an API key, like
//! `POST /api/videos`.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use xtream_core::ApiError;
use xtream_core::metadata::ListQuery;
use xtream_core::playback::VideoView;
use xtream_core::route::{LegacyRoute, legacy_route};
use xtream_spin::auth::admit;
use xtream_spin::http::{method, path_and_query, respond, respond_error, respond_json};
use xtream_spin::{catalog, db, upload};

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let (path, query) = path_and_query(&request);
    let (route, store) = match admit(&request, legacy_route(&method(&request), &path), |route| {
        route.access()
    }) {
        Ok(admitted) => admitted,
        Err(error) => return respond_error(out, &error).await,
    };
    match route {
        // The original answered every video; asked for a page, the cursor of
        // the next one rides in a header so the body keeps its shape.
        LegacyRoute::List if !ListQuery::asks_for_a_page(&query) => {
            match ListQuery::from_query(&query) {
                Ok(mut everything) => {
                    everything.limit = xtream_core::catalog::MAX_PAGE_SIZE;
                    catalog::respond_all(out, everything).await
                }
                Err(error) => respond_error(out, &error).await,
            }
        }
        LegacyRoute::List => match list(&query) {
            Ok(page) => {
                let headers: Vec<(&str, String)> = page
                    .next_cursor
                    .map(|cursor| ("x-next-cursor", cursor))
                    .into_iter()
                    .collect();
                respond_json(out, 200, &page.videos, &headers).await
            }
            Err(error) => respond_error(out, &error).await,
        },
        LegacyRoute::Get(id) => {
            let video = db::open()
                .and_then(|db| catalog::get(&db, id))
                .map(VideoView::from);
            respond(out, 200, video).await
        }
        LegacyRoute::Upload => {
            let video = upload::receive(&store, request).await.map(VideoView::from);
            respond(out, 201, video).await
        }
    }
}

fn list(query: &str) -> Result<xtream_core::catalog::Page, ApiError> {
    catalog::page(&db::open()?, &ListQuery::from_query(query)?)
}
