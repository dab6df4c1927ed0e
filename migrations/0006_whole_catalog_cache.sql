-- The original `GET /videos` answers every video in one JSON array. Built
-- from the rows on every request it costs milliseconds of the database's
-- and the component's time per call for a catalog of a thousand videos,
-- while the catalog changes far less often than it is read. So the last
-- array built is kept here with the catalog generation it shows, and served
-- as long as no video has changed since.

-- Counts changes to `videos`. A sequence, not a counter row: writers never
-- wait on each other for it (nextval takes no lock that lasts until
-- commit). Readers compare its `last_value` with the generation of the
-- cached array; how a reader makes sure an array it stores shows every
-- change counted up to its generation is in `xtream_core::metadata`
-- (`whole_catalog_rows`).
CREATE SEQUENCE catalog_changes;
-- A new sequence's first nextval leaves last_value as it is (only marks it
-- called): take it here, so that every change moves the generation.
SELECT nextval('catalog_changes');

CREATE FUNCTION count_catalog_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('catalog_changes');
    RETURN NULL;
END
$$;

-- Per row, so a compare-and-set that matched nothing counts nothing.
CREATE TRIGGER videos_count_changes
    AFTER INSERT OR UPDATE OR DELETE ON videos
    FOR EACH ROW EXECUTE FUNCTION count_catalog_change();
CREATE TRIGGER videos_count_truncation
    AFTER TRUNCATE ON videos
    FOR EACH STATEMENT EXECUTE FUNCTION count_catalog_change();

-- At most one array: the newest one stored.
CREATE TABLE whole_catalog_cache (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation bigint NOT NULL,
    body text NOT NULL
);
-- Stored uncompressed: it is read on every call and written rarely, and
-- decompressing a megabyte costs more than reading it.
ALTER TABLE whole_catalog_cache ALTER COLUMN body SET STORAGE EXTERNAL;
