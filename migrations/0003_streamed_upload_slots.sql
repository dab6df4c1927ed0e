-- How many streamed uploads (POST /api/videos, POST /upload) are received
-- at once, across every instance: each holds up to one S3 part in memory
-- while its body streams. An upload takes a numbered slot (1 to the Spin
-- variable max_concurrent_uploads) before it reads its body and gives it
-- back once its original is stored or discarded; when every slot is
-- taken, the next upload is answered 503 with Retry-After. The primary key
-- is what keeps two uploads off one slot, whatever the isolation level and
-- however many ask at once.
--
-- A slot is leased: its upload renews it while bytes arrive, so the slot
-- of an upload whose instance died is free again once the lease runs out,
-- and the next upload takes it over (the row is reused, never swept).
CREATE TABLE streamed_upload_slots (
    slot integer PRIMARY KEY,
    video_id uuid NOT NULL,
    leased_until timestamptz NOT NULL
);
