-- Progressive publishing: a video can be played while it is still
-- transcoding, once the first segment of every rendition is stored (its
-- playlists then grow until it is ready). Every ready video is playable.
ALTER TABLE videos ADD COLUMN playable boolean NOT NULL DEFAULT false;
UPDATE videos SET playable = true WHERE status = 'ready';
