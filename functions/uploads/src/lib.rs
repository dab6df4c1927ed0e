//! Resumable uploads: `POST /api/uploads` (open: presigned S3 part URLs),
//! `GET /api/uploads/{id}` (what S3 holds, fresh URLs for the rest),
//! `POST /api/uploads/{id}/complete` and `DELETE /api/uploads/{id}`.
//! Every route needs an API key.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use xtream_core::auth::Access;
use xtream_core::route::{UploadsRoute, uploads_route};
use xtream_spin::auth::admit;
use xtream_spin::http::{
    method, path_and_query, respond, respond_created_video, respond_error, respond_json,
    respond_no_content,
};
use xtream_spin::resumable;

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let (path, _) = path_and_query(&request);
    let (route, store) = match admit(&request, uploads_route(&method(&request), &path), |_| {
        Access::Write
    }) {
        Ok(admitted) => admitted,
        Err(error) => return respond_error(out, &error).await,
    };
    match route {
        UploadsRoute::Create => match resumable::create(&store, request).await {
            Ok(created) => {
                let location = format!("/api/uploads/{}", created.id);
                respond_json(out, 201, &created, &[("location", location)]).await
            }
            Err(error) => respond_error(out, &error).await,
        },
        UploadsRoute::Status(id) => respond(out, 200, resumable::status(&store, id).await).await,
        UploadsRoute::Complete(id) => {
            respond_created_video(out, resumable::complete(&store, id).await).await
        }
        UploadsRoute::Abort(id) => match resumable::abort(&store, id).await {
            Ok(()) => respond_no_content(out).await,
            Err(error) => respond_error(out, &error).await,
        },
    }
}
