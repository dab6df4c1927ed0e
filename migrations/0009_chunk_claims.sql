-- Chunk claims: a chunk job encodes the chunk of its own event, then any
-- other chunk of the video nobody works on, so an idle worker takes on
-- chunks queued behind a busy one instead of waiting for Kafka to hand
-- them out. A claim lasts until `claimed_until`, renewed while the chunk
-- is encoded; a worker that dies stops renewing, and the chunk is free
-- again soon after.
ALTER TABLE video_chunks ADD COLUMN claimed_until timestamptz;
