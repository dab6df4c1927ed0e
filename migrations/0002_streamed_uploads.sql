-- A streamed upload (POST /api/videos, POST /upload) while its original is
-- an S3 multipart upload: its parts take storage without being listed as
-- objects. The component writes the row when it starts the multipart upload
-- and removes it when the upload completes or is aborted; a row left behind
-- belongs to an instance that died mid-upload, and the worker's sweeper
-- aborts its multipart upload.
CREATE TABLE streamed_uploads (
    s3_upload_id text PRIMARY KEY,
    video_id uuid NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX streamed_uploads_by_age ON streamed_uploads (started_at);
