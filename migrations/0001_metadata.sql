-- Xtream's metadata: videos, resumable upload sessions, the outbox of
-- events still to announce, and deletions whose objects are not gone yet.
-- S3 keeps only bytes. Applied once by `xtream-worker migrate`; never edit a
-- migration that has landed, add the next one.

CREATE TABLE videos (
    id uuid PRIMARY KEY,
    -- Insertion order, so "newest first" is a keyset on one column that
    -- never ties (timestamps can).
    position bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    title text NOT NULL,
    filename text NOT NULL,
    size bigint NOT NULL CHECK (size >= 0),
    content_type text NOT NULL,
    status text NOT NULL
        CHECK (status IN ('uploaded', 'queued', 'transcoding', 'ready', 'failed')),
    status_detail text,
    failure_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- What ffprobe said of the original, once the worker has looked.
    duration_seconds double precision,
    width bigint,
    height bigint,
    video_codec text,
    audio_codec text,
    -- The HLS ladder as the API shows it: [{name, width, height, ...}].
    renditions jsonb NOT NULL DEFAULT '[]',
    hls_master text,
    thumbnail text,
    -- Title words for `q=`: the 'simple' configuration (no stemming, no stop
    -- words) because titles come in every language. Lowercased with ICU's
    -- Unicode rules first: 'simple' lowercases by the database's locale,
    -- which in the C locale leaves "É" alone while a search for "é" is
    -- lowercased by the application.
    title_words tsvector GENERATED ALWAYS AS
        (to_tsvector('simple', lower(title COLLATE "und-x-icu"))) STORED
);

-- Listing filtered by status, newest first.
CREATE INDEX videos_by_status ON videos (status, position DESC);
CREATE INDEX videos_by_title_words ON videos USING gin (title_words);

-- A resumable upload while it is open; its id is the video's id to be.
CREATE TABLE upload_sessions (
    id uuid PRIMARY KEY,
    s3_upload_id text NOT NULL,
    filename text NOT NULL,
    title text NOT NULL,
    content_type text NOT NULL,
    size bigint NOT NULL CHECK (size > 0),
    part_size bigint NOT NULL CHECK (part_size > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX upload_sessions_by_expiry ON upload_sessions (expires_at);

-- Events written in the same statement as the change they announce, then
-- relayed to Kafka: an upload is never stored without its announcement.
CREATE TABLE outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    -- The Kafka key: the video id.
    key text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);

CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- A video whose row is deleted but whose objects may not all be: whoever
-- deletes finishes the job, and the worker's sweeper finishes what a crash
-- left.
CREATE TABLE video_deletions (
    video_id uuid PRIMARY KEY,
    requested_at timestamptz NOT NULL DEFAULT now()
);
