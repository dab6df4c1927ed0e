//! The video API: `GET /api/videos` (pages, newest first),
//! `POST /api/videos` (streamed upload), `GET /api/videos/{id}` and
//! `DELETE /api/videos/{id}`. Writes need an API key.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use xtream_core::metadata::ListQuery;
use xtream_core::playback::VideoView;
use xtream_core::route::{ApiRoute, api_route};
use xtream_core::{ApiError, VideoId};
use xtream_spin::auth::admit;
use xtream_spin::http::{
    method, path_and_query, respond, respond_created_video, respond_error, respond_no_content,
};
use xtream_spin::{ObjectStore, catalog, db, upload};

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let (path, query) = path_and_query(&request);
    let (route, store) = match admit(&request, api_route(&method(&request), &path), |route| {
        route.access()
    }) {
        Ok(admitted) => admitted,
        Err(error) => return respond_error(out, &error).await,
    };
    match route {
        ApiRoute::ListVideos => {
            let page =
                ListQuery::from_query(&query).and_then(|list| catalog::page(&db::open()?, &list));
            respond(out, 200, page).await
        }
        ApiRoute::GetVideo(id) => {
            let video = db::open()
                .and_then(|db| catalog::get(&db, id))
                .map(VideoView::from);
            respond(out, 200, video).await
        }
        ApiRoute::DeleteVideo(id) => match delete(&store, id).await {
            Ok(()) => respond_no_content(out).await,
            Err(error) => respond_error(out, &error).await,
        },
        ApiRoute::UploadVideo => {
            respond_created_video(out, upload::receive(&store, request).await).await
        }
    }
}

async fn delete(store: &ObjectStore, id: VideoId) -> Result<(), ApiError> {
    catalog::delete(store, &db::open()?, id).await
}
