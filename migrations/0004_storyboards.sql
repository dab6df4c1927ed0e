-- Seek previews: the key of a video's WebVTT storyboard index (its sprite
-- sits beside it). NULL until the worker has made one, and for videos
-- transcoded before storyboards existed: the API then offers no previews.
ALTER TABLE videos ADD COLUMN storyboard text;
