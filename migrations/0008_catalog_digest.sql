-- Each replica of the functions keeps its own copy of the whole catalog's
-- array in its Spin key-value store, so that the original `GET /videos`
-- no longer carries the array out of the database on every call, only
-- this digest of it. A replica serves its copy only while the copy's
-- digest is the one kept here: the same digest, the same bytes, whichever
-- database the copy came from (`spin up` keeps its store on disk, across
-- restarts and fresh databases whose generations start over).
--
-- The arrays kept so far have no digest: dropped, to be built again.
DELETE FROM whole_catalog_cache;
ALTER TABLE whole_catalog_cache ADD COLUMN digest text NOT NULL;
