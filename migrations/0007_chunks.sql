-- Chunked transcoding: a long source is cut at keyframes into chunks that
-- any worker encodes. One row per chunked video (its plan, and whether the
-- poster and storyboard are stored) and one per chunk (its span on the
-- source's timeline, attempts, and once done its segments). A chunk is
-- counted done once (`done_at` is set only while NULL); the video is ready
-- when every chunk and its pictures are. Rows go with their video.
CREATE TABLE chunked_videos (
    video_id uuid PRIMARY KEY REFERENCES videos (id) ON DELETE CASCADE,
    chunk_count integer NOT NULL CHECK (chunk_count > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    pictures_done_at timestamptz
);

CREATE TABLE video_chunks (
    video_id uuid NOT NULL REFERENCES chunked_videos (video_id) ON DELETE CASCADE,
    chunk integer NOT NULL CHECK (chunk >= 0),
    start_seconds double precision NOT NULL,
    end_seconds double precision,
    attempts integer NOT NULL DEFAULT 0,
    done_at timestamptz,
    -- Each rendition's segments: {"360p": [{"uri": ..., "duration": ...}]}.
    output jsonb,
    PRIMARY KEY (video_id, chunk)
);
