//! The metadata store: every SQL statement Xtream runs against PostgreSQL,
//! with its parameters, in one place.
//!
//! The Spin components (through `spin:postgres`) and the worker (through
//! tokio-postgres) run the same statements; each only binds [`Param`]s to
//! its driver's types and reads the rows back. Every placeholder carries an
//! explicit cast (`$1::uuid`), so PostgreSQL infers the type each driver
//! binds, whatever the context of the placeholder.
//!
//! Records come back as one JSON text column in [`VideoRecord`]'s serde
//! shape, so both sides decode them with the same code
//! ([`decode_record`]). Every change that must be announced writes its
//! outbox row in the same statement (one statement is one transaction), so
//! a video is never stored without the event that gets it transcoded.

use crate::events::VideoUploaded;
use crate::resumable::UploadSession;
use crate::{ApiError, VideoId, VideoRecord, VideoStatus};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The schema migrations, oldest first: `(version, name, SQL)`. Applied by
/// `xtream-worker migrate`; a landed migration is never edited.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "metadata",
        include_str!("../../../migrations/0001_metadata.sql"),
    ),
    (
        2,
        "streamed_uploads",
        include_str!("../../../migrations/0002_streamed_uploads.sql"),
    ),
    (
        3,
        "streamed_upload_slots",
        include_str!("../../../migrations/0003_streamed_upload_slots.sql"),
    ),
    (
        4,
        "storyboards",
        include_str!("../../../migrations/0004_storyboards.sql"),
    ),
    (
        5,
        "playable",
        include_str!("../../../migrations/0005_playable.sql"),
    ),
    (
        6,
        "whole_catalog_cache",
        include_str!("../../../migrations/0006_whole_catalog_cache.sql"),
    ),
    (
        7,
        "chunks",
        include_str!("../../../migrations/0007_chunks.sql"),
    ),
    (
        8,
        "catalog_digest",
        include_str!("../../../migrations/0008_catalog_digest.sql"),
    ),
    (
        9,
        "chunk_claims",
        include_str!("../../../migrations/0009_chunk_claims.sql"),
    ),
];

/// One value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// `uuid`.
    Uuid(VideoId),
    /// `text`.
    Text(String),
    /// `text`, possibly NULL.
    NullableText(Option<String>),
    /// `bigint`.
    BigInt(i64),
    /// `bigint`, possibly NULL.
    NullableBigInt(Option<i64>),
    /// `double precision`, possibly NULL.
    NullableFloat(Option<f64>),
    /// `jsonb`.
    Jsonb(serde_json::Value),
}

impl Param {
    /// The SQL type the placeholder is cast to.
    pub fn sql_type(&self) -> &'static str {
        match self {
            Param::Uuid(_) => "uuid",
            Param::Text(_) | Param::NullableText(_) => "text",
            Param::BigInt(_) | Param::NullableBigInt(_) => "bigint",
            Param::NullableFloat(_) => "double precision",
            Param::Jsonb(_) => "jsonb",
        }
    }
}

/// A statement and its parameters, ready to run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Statement {
    /// The SQL, with `$n::type` placeholders.
    pub sql: String,
    /// `params[n - 1]` binds `$n`.
    pub params: Vec<Param>,
}

impl Statement {
    /// Adds a parameter and returns its placeholder, cast to its type.
    fn bind(&mut self, param: Param) -> String {
        let placeholder = format!("${}::{}", self.params.len() + 1, param.sql_type());
        self.params.push(param);
        placeholder
    }
}

/// The columns of `videos` as one JSON text value in [`VideoRecord`]'s
/// shape. NULLs decode as absent options. `json`, not `jsonb`: the text is
/// written straight out instead of being built as a binary document and
/// printed again, a third less of the database's time on a listing page.
const RECORD_JSON: &str = "json_build_object(\
    'id', id, 'title', title, 'filename', filename, 'size', size, \
    'content_type', content_type, 'status', status, 'playable', playable, \
    'created_at', created_at, 'updated_at', updated_at, \
    'failure_reason', failure_reason, 'status_detail', status_detail, \
    'duration_seconds', duration_seconds, 'width', width, 'height', height, \
    'video_codec', video_codec, 'audio_codec', audio_codec, \
    'renditions', renditions, 'hls_master', hls_master, 'thumbnail', thumbnail, \
    'storyboard', storyboard\
    )::text";

/// An upload session's columns as JSON text in [`UploadSession`]'s shape.
const SESSION_JSON: &str = "json_build_object(\
    'id', id, 's3_upload_id', s3_upload_id, 'filename', filename, 'title', title, \
    'content_type', content_type, 'size', size, 'part_size', part_size, \
    'created_at', created_at, 'expires_at', expires_at\
    )::text";

/// Decodes a record returned by one of these statements.
pub fn decode_record(json: &str) -> Result<VideoRecord, ApiError> {
    serde_json::from_str(json)
        .map_err(|e| ApiError::internal(format!("a video row is not a record: {e}")))
}

/// Decodes an upload session returned by one of these statements.
pub fn decode_session(json: &str) -> Result<UploadSession, ApiError> {
    serde_json::from_str(json)
        .map_err(|e| ApiError::internal(format!("an upload session row is unreadable: {e}")))
}

fn bigint(n: u64) -> Param {
    Param::BigInt(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Stores a newly uploaded video and its `video.uploaded` event on `topic`
/// in one statement, and, for a completed resumable upload, removes its
/// session in the same transaction.
///
/// Returns one row `(record json, outbox id bigint)`, or no row when a video
/// with this id already exists (a repeated completion): then read it with
/// [`select_record`]. `created_at` and `updated_at` are the database's clock.
pub fn insert_uploaded(record: &VideoRecord, topic: &str, closes_session: bool) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(record.id));
    let title = s.bind(Param::Text(record.title.clone()));
    let filename = s.bind(Param::Text(record.filename.clone()));
    let size = s.bind(bigint(record.size));
    let content_type = s.bind(Param::Text(record.content_type.clone()));
    let topic = s.bind(Param::Text(topic.to_owned()));
    let key = s.bind(Param::Text(record.id.to_string()));
    let event = VideoUploaded::of(record);
    let payload = s.bind(Param::Jsonb(
        serde_json::to_value(&event).expect("an event always serialises"),
    ));
    let close_session = if closes_session {
        format!("closed AS (DELETE FROM upload_sessions WHERE id = {id}), ")
    } else {
        String::new()
    };
    // The event's `uploaded_at` is set from the row's created_at, so both
    // carry the database's clock.
    s.sql = format!(
        "WITH {close_session}\
         video AS (\
           INSERT INTO videos (id, title, filename, size, content_type, status) \
           VALUES ({id}, {title}, {filename}, {size}, {content_type}, 'uploaded') \
           ON CONFLICT (id) DO NOTHING \
           RETURNING *), \
         event AS (\
           INSERT INTO outbox (topic, key, payload) \
           SELECT {topic}, {key}, jsonb_set({payload}, '{{uploaded_at}}', to_jsonb(video.created_at)) \
           FROM video RETURNING id) \
         SELECT {RECORD_JSON}, (SELECT id FROM event) FROM video"
    );
    s
}

/// The record of `id`: one row `(record json)`, or none.
pub fn select_record(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(id));
    s.sql = format!("SELECT {RECORD_JSON} FROM videos WHERE id = {id}");
    s
}

/// The announcement went out: outbox row `outbox_id` is sent.
pub fn mark_sent(outbox_id: i64) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::BigInt(outbox_id));
    s.sql = format!(
        "UPDATE outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL \
         WHERE id = {id} AND sent_at IS NULL"
    );
    s
}

/// The announcement failed: the outbox row keeps it for the relay, and the
/// video, if nothing has moved it on yet, says why it waits.
pub fn note_not_sent(id: VideoId, outbox_id: i64, why: &str, detail: &str) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(id));
    let outbox_id = s.bind(Param::BigInt(outbox_id));
    let why = s.bind(Param::Text(why.to_owned()));
    let detail = s.bind(Param::Text(detail.to_owned()));
    s.sql = format!(
        "WITH noted AS (\
           UPDATE outbox SET attempts = attempts + 1, last_error = {why} \
           WHERE id = {outbox_id} AND sent_at IS NULL) \
         UPDATE videos SET status_detail = {detail} \
         WHERE id = {id} AND status = 'uploaded'"
    );
    s
}

/// The relay could not publish outbox row `outbox_id`: counts the attempt
/// and keeps why, for whoever looks at a stuck event; the row stays unsent
/// for the relay's next run.
pub fn note_relay_failed(outbox_id: i64, why: &str) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::BigInt(outbox_id));
    let why = s.bind(Param::Text(why.to_owned()));
    s.sql = format!(
        "UPDATE outbox SET attempts = attempts + 1, last_error = {why} \
         WHERE id = {id} AND sent_at IS NULL"
    );
    s
}

/// Deletes the row of video `id` and records the deletion, so whoever
/// removes the objects can be repeated until they are gone. Unsent events
/// of the video go too. One row `(id)` when the video existed.
pub fn delete_video(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let uuid = s.bind(Param::Uuid(id));
    let key = s.bind(Param::Text(id.to_string()));
    s.sql = format!(
        "WITH gone AS (DELETE FROM videos WHERE id = {uuid} RETURNING id), \
         unsent AS (DELETE FROM outbox WHERE key = {key} AND sent_at IS NULL \
                    AND EXISTS (SELECT 1 FROM gone)) \
         INSERT INTO video_deletions (video_id) SELECT id FROM gone \
         ON CONFLICT (video_id) DO UPDATE SET requested_at = now() \
         RETURNING video_id::text"
    );
    s
}

/// Every object of deleted video `id` is gone.
pub fn finish_deletion(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(id));
    s.sql = format!("DELETE FROM video_deletions WHERE video_id = {id}");
    s
}

/// Writes the status and what the worker learnt (media facts, renditions,
/// detail, failure reason) of `record`, only if the row is still in
/// `expected`: a compare-and-set, so two writers can never undo each
/// other's move, and a video deleted meanwhile stays deleted. One row
/// `(record json)` when it was written; none when the row is gone or has
/// moved on (read it again to tell which).
pub fn save_transition(record: &VideoRecord, expected: VideoStatus) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(record.id));
    let expected = s.bind(Param::Text(expected.as_str().to_owned()));
    let status = s.bind(Param::Text(record.status.as_str().to_owned()));
    let detail = s.bind(Param::NullableText(record.status_detail.clone()));
    let reason = s.bind(Param::NullableText(record.failure_reason.clone()));
    let duration = s.bind(Param::NullableFloat(record.duration_seconds));
    let width = s.bind(Param::NullableBigInt(record.width.map(i64::from)));
    let height = s.bind(Param::NullableBigInt(record.height.map(i64::from)));
    let video_codec = s.bind(Param::NullableText(record.video_codec.clone()));
    let audio_codec = s.bind(Param::NullableText(record.audio_codec.clone()));
    let renditions = s.bind(Param::Jsonb(
        serde_json::to_value(&record.renditions).expect("renditions always serialise"),
    ));
    let hls_master = s.bind(Param::NullableText(record.hls_master.clone()));
    let thumbnail = s.bind(Param::NullableText(record.thumbnail.clone()));
    let storyboard = s.bind(Param::NullableText(record.storyboard.clone()));
    let predecessors = predecessors_of(record.status);
    // A literal, not a parameter: a boolean the code chose, never input.
    let playable = record.playable;
    s.sql = format!(
        "UPDATE videos SET status = {status}, playable = {playable}, status_detail = {detail}, \
         failure_reason = {reason}, duration_seconds = {duration}, width = {width}, \
         height = {height}, video_codec = {video_codec}, audio_codec = {audio_codec}, \
         renditions = {renditions}, hls_master = {hls_master}, thumbnail = {thumbnail}, \
         storyboard = {storyboard}, updated_at = now() \
         WHERE id = {id} AND status = {expected} AND status IN ({predecessors}) \
         RETURNING {RECORD_JSON}"
    );
    s
}

/// Every status, in lifecycle order.
const STATUSES: [VideoStatus; 5] = [
    VideoStatus::Uploaded,
    VideoStatus::Queued,
    VideoStatus::Transcoding,
    VideoStatus::Ready,
    VideoStatus::Failed,
];

/// The statuses the lifecycle lets a video leave for `next`, as SQL
/// literals: the database refuses an illegal move even from a caller that
/// skipped [`VideoRecord::move_to`].
fn predecessors_of(next: VideoStatus) -> String {
    STATUSES
        .iter()
        .filter(|from| from.can_move_to(next))
        .map(|from| format!("'{}'", from.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens a resumable upload's session.
pub fn insert_session(session: &UploadSession) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(session.id));
    let s3 = s.bind(Param::Text(session.s3_upload_id.clone()));
    let filename = s.bind(Param::Text(session.filename.clone()));
    let title = s.bind(Param::Text(session.title.clone()));
    let content_type = s.bind(Param::Text(session.content_type.clone()));
    let size = s.bind(bigint(session.size));
    let part_size = s.bind(bigint(session.part_size));
    let created = s.bind(Param::Text(session.created_at.to_string()));
    let expires = s.bind(Param::Text(session.expires_at.to_string()));
    s.sql = format!(
        "INSERT INTO upload_sessions \
         (id, s3_upload_id, filename, title, content_type, size, part_size, created_at, expires_at) \
         VALUES ({id}, {s3}, {filename}, {title}, {content_type}, {size}, {part_size}, \
                 {created}::timestamptz, {expires}::timestamptz)"
    );
    s
}

/// The session of upload `id`: one row `(session json)`, or none.
pub fn select_session(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(id));
    s.sql = format!("SELECT {SESSION_JSON} FROM upload_sessions WHERE id = {id}");
    s
}

/// Closes the session of upload `id` (aborted or swept).
pub fn delete_session(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(id));
    s.sql = format!("DELETE FROM upload_sessions WHERE id = {id}");
    s
}

/// Sessions past their expiry or opened more than `ttl_seconds` ago, at most
/// `limit`: rows `(session json)`.
pub fn select_abandoned_sessions(ttl_seconds: u64, limit: u64) -> Statement {
    let mut s = Statement::default();
    let ttl = s.bind(bigint(ttl_seconds));
    let limit = s.bind(bigint(limit));
    s.sql = format!(
        "SELECT {SESSION_JSON} FROM upload_sessions \
         WHERE expires_at < now() OR created_at < now() - {ttl} * interval '1 second' \
         ORDER BY created_at LIMIT {limit}"
    );
    s
}

/// Deletions requested more than `after_seconds` ago and not finished (the
/// deleting request died): rows `(video id text)`.
pub fn select_unfinished_deletions(after_seconds: u64, limit: u64) -> Statement {
    let mut s = Statement::default();
    let after = s.bind(bigint(after_seconds));
    let limit = s.bind(bigint(limit));
    s.sql = format!(
        "SELECT video_id::text FROM video_deletions \
         WHERE requested_at < now() - {after} * interval '1 second' \
         ORDER BY requested_at LIMIT {limit}"
    );
    s
}

/// Notes that the original of video `id` is being streamed into multipart
/// upload `s3_upload_id`, so that the sweeper can free its parts if the
/// streaming instance dies before it completes or aborts it.
pub fn track_streamed_upload(id: VideoId, s3_upload_id: &str) -> Statement {
    let mut s = Statement::default();
    let upload = s.bind(Param::Text(s3_upload_id.to_owned()));
    let id = s.bind(Param::Uuid(id));
    s.sql = format!(
        "INSERT INTO streamed_uploads (s3_upload_id, video_id) VALUES ({upload}, {id}) \
         ON CONFLICT DO NOTHING"
    );
    s
}

/// The multipart upload `s3_upload_id` was completed or aborted.
pub fn untrack_streamed_upload(s3_upload_id: &str) -> Statement {
    let mut s = Statement::default();
    let upload = s.bind(Param::Text(s3_upload_id.to_owned()));
    s.sql = format!("DELETE FROM streamed_uploads WHERE s3_upload_id = {upload}");
    s
}

/// Streamed uploads started more than `after_seconds` ago and never
/// completed nor aborted: rows `(video id text, s3 upload id)`.
pub fn select_stale_streamed_uploads(after_seconds: u64, limit: u64) -> Statement {
    let mut s = Statement::default();
    let after = s.bind(bigint(after_seconds));
    let limit = s.bind(bigint(limit));
    s.sql = format!(
        "SELECT video_id::text, s3_upload_id FROM streamed_uploads \
         WHERE started_at < now() - {after} * interval '1 second' \
         ORDER BY started_at LIMIT {limit}"
    );
    s
}

/// Takes a slot for a streamed upload of video `id`: one of the slots 1 to
/// `limit` that nobody holds or whose lease ran out, leased for
/// `lease_seconds`. One row, `(free slots seen, slot taken or NULL)`.
///
/// The slot is picked at random among the free ones, so that uploads
/// asking at once rarely pick the same. When two do, the primary key makes
/// the second wait for the first and then find the slot leased: it takes
/// nothing although slots were free, which `free slots seen > 0` tells the
/// caller (who may ask again). No free slot seen means the limit is reached.
pub fn take_upload_slot(id: VideoId, limit: u32, lease_seconds: u64) -> Statement {
    let mut s = Statement::default();
    let limit = s.bind(Param::BigInt(i64::from(limit)));
    let id = s.bind(Param::Uuid(id));
    let lease = s.bind(bigint(lease_seconds));
    s.sql = format!(
        "WITH free AS (\
             SELECT n FROM generate_series(1, {limit}) AS n \
             WHERE NOT EXISTS (SELECT 1 FROM streamed_upload_slots s \
                               WHERE s.slot = n AND s.leased_until > now())\
         ), pick AS (SELECT n FROM free ORDER BY random() LIMIT 1), \
         taken AS (\
             INSERT INTO streamed_upload_slots (slot, video_id, leased_until) \
             SELECT n, {id}, now() + {lease} * interval '1 second' FROM pick \
             ON CONFLICT (slot) DO UPDATE \
                 SET video_id = excluded.video_id, leased_until = excluded.leased_until \
                 WHERE streamed_upload_slots.leased_until <= now() \
             RETURNING slot\
         ) \
         SELECT (SELECT count(*) FROM free), (SELECT slot::bigint FROM taken)"
    );
    s
}

/// Extends the lease of `slot`, held by the upload of video `id`, to
/// `lease_seconds` from now. Rows `(slot)`: none when the lease had run out
/// and another upload took the slot over.
pub fn renew_upload_slot(id: VideoId, slot: i64, lease_seconds: u64) -> Statement {
    let mut s = Statement::default();
    let lease = s.bind(bigint(lease_seconds));
    let slot = s.bind(Param::BigInt(slot));
    let id = s.bind(Param::Uuid(id));
    s.sql = format!(
        "UPDATE streamed_upload_slots SET leased_until = now() + {lease} * interval '1 second' \
         WHERE slot = {slot} AND video_id = {id} RETURNING slot::bigint"
    );
    s
}

/// Gives back `slot`, held by the upload of video `id` (if it still is).
pub fn release_upload_slot(id: VideoId, slot: i64) -> Statement {
    let mut s = Statement::default();
    let slot = s.bind(Param::BigInt(slot));
    let id = s.bind(Param::Uuid(id));
    s.sql = format!("DELETE FROM streamed_upload_slots WHERE slot = {slot} AND video_id = {id}");
    s
}

/// Keeps the lease of the job working on video `id`: a job in progress
/// touches its row's `updated_at` every so often, so that a row in `queued`
/// or `transcoding` that nobody touched for a lease's length belongs to a
/// job that is gone ([`select_abandoned_jobs`]).
pub fn renew_job_lease(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(id));
    s.sql = format!(
        "UPDATE videos SET updated_at = now() \
         WHERE id = {id} AND status IN ('queued', 'transcoding')"
    );
    s
}

/// Videos a job took (`queued`, `transcoding`) whose lease ran out
/// `lease_seconds` ago: the job died without its event coming back (its
/// offset was committed, or it was dead-lettered by mistake). Rows
/// `(record json)`, longest forgotten first.
pub fn select_abandoned_jobs(lease_seconds: u64, limit: u64) -> Statement {
    let mut s = Statement::default();
    let lease = s.bind(bigint(lease_seconds));
    let limit = s.bind(bigint(limit));
    s.sql = format!(
        "SELECT {RECORD_JSON} FROM videos \
         WHERE status IN ('queued', 'transcoding') \
           AND updated_at < now() - {lease} * interval '1 second' \
         ORDER BY updated_at LIMIT {limit}"
    );
    s
}

/// Queues video `record` again, with its `video.uploaded` event in the
/// outbox (the relay sends it), in one statement, and only if its lease is
/// still out: a job that renewed it since [`select_abandoned_jobs`] read it
/// keeps it. One row `(outbox id)` when it was queued again.
pub fn requeue_abandoned_job(record: &VideoRecord, topic: &str, lease_seconds: u64) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(record.id));
    let lease = s.bind(bigint(lease_seconds));
    let detail = s.bind(Param::Text(
        "queued again: the worker transcoding it stopped reporting".into(),
    ));
    let topic = s.bind(Param::Text(topic.to_owned()));
    let key = s.bind(Param::Text(record.id.to_string()));
    let payload = s.bind(Param::Jsonb(
        serde_json::to_value(VideoUploaded::of(record)).expect("an event always serialises"),
    ));
    s.sql = format!(
        "WITH moved AS (\
           UPDATE videos SET status = 'queued', playable = false, status_detail = {detail}, \
             updated_at = now() \
           WHERE id = {id} AND status IN ('queued', 'transcoding') \
             AND updated_at < now() - {lease} * interval '1 second' \
           RETURNING created_at) \
         INSERT INTO outbox (topic, key, payload) \
         SELECT {topic}, {key}, jsonb_set({payload}, '{{uploaded_at}}', to_jsonb(moved.created_at)) \
         FROM moved RETURNING id"
    );
    s
}

/// Whether video `id` has a row: one row `(bigint)` when it does.
pub fn video_exists(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let id = s.bind(Param::Uuid(id));
    s.sql = format!("SELECT 1::bigint FROM videos WHERE id = {id}");
    s
}

/// Answers once the database is up and has the `videos` table (readiness).
pub fn ping() -> Statement {
    Statement {
        sql: "SELECT 1::bigint FROM videos LIMIT 1".into(),
        params: Vec::new(),
    }
}

/// A libpq `key='value'` connection string; values are quoted so that a
/// password may hold any character.
pub fn connection_string(settings: &[(&str, String)]) -> String {
    settings
        .iter()
        .map(|(key, value)| {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            format!("{key}='{quoted}'")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a PostgreSQL error code (SQLSTATE) means to whoever ran the
/// statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlStateMeaning {
    /// It may pass: the server is shutting down, starting, overloaded, or
    /// the transaction lost a race (serialization failure, deadlock).
    Transient,
    /// The schema is not there yet: migrations have not run.
    SchemaMissing,
    /// Anything else: the statement or the data is wrong, a bug.
    Bug,
}

/// Classifies a SQLSTATE code.
pub fn sqlstate_meaning(code: &str) -> SqlStateMeaning {
    match code {
        // undefined_table, undefined_column, undefined_function
        "42P01" | "42703" | "42883" => SqlStateMeaning::SchemaMissing,
        // serialization_failure, deadlock_detected
        "40001" | "40P01" => SqlStateMeaning::Transient,
        // connection exception, insufficient resources, operator intervention
        // (admin shutdown, cannot connect now), system error
        _ if ["08", "53", "57", "58"]
            .iter()
            .any(|class| code.starts_with(class)) =>
        {
            SqlStateMeaning::Transient
        }
        _ => SqlStateMeaning::Bug,
    }
}

/// Locks and returns up to `limit` events not sent within `after_seconds`
/// of being written, oldest first: rows `(outbox id bigint, topic text, key
/// text, payload text)`. Run inside a transaction that then marks them
/// sent; other relays skip the locked rows instead of sending them twice.
pub fn claim_unsent(after_seconds: u64, limit: u64) -> Statement {
    let mut s = Statement::default();
    let after = s.bind(bigint(after_seconds));
    let limit = s.bind(bigint(limit));
    s.sql = format!(
        "SELECT id, topic, key, payload::text FROM outbox \
         WHERE sent_at IS NULL AND created_at < now() - {after} * interval '1 second' \
         ORDER BY id LIMIT {limit} FOR UPDATE SKIP LOCKED"
    );
    s
}

// ---------------------------------------------------------------------------
// Listing

/// Page size when the client does not ask for one.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// The largest page a client may ask for; bounds the work of one request.
pub const MAX_PAGE_SIZE: usize = 100;
/// The longest search text accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// At most this many words of a search are used.
const MAX_SEARCH_WORDS: usize = 16;

/// What one listing request asks for: `limit`, `cursor`, `status`, `q`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// How many videos at most.
    pub limit: usize,
    /// Only videos listed after this position (from the cursor).
    pub before_position: Option<i64>,
    /// Only videos in this status.
    pub status: Option<VideoStatus>,
    /// Only videos whose title has words starting with each of these.
    pub words: Vec<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            limit: DEFAULT_PAGE_SIZE,
            before_position: None,
            status: None,
            words: Vec::new(),
        }
    }
}

impl ListQuery {
    /// Whether a query string asks for one page (names `limit` or
    /// `cursor`) rather than, on the original `GET /videos`, everything.
    pub fn asks_for_a_page(query: &str) -> bool {
        form_urlencoded::parse(query.as_bytes())
            .any(|(name, _)| name == "limit" || name == "cursor")
    }

    /// Reads `limit`, `cursor`, `status` and `q` from a URL query string;
    /// anything malformed is a 400 that says what is wrong.
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        let mut list = ListQuery::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "limit" => {
                    list.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "limit must be a whole number from 1 to {MAX_PAGE_SIZE}, not {value:?}"
                            ))
                        })?;
                }
                "cursor" if !value.is_empty() => {
                    list.before_position = Some(decode_cursor(&value)?)
                }
                "status" if !value.is_empty() => list.status = Some(parse_status(&value)?),
                "q" => list.words = search_words(&value)?,
                _ => {}
            }
        }
        Ok(list)
    }

    /// The statement of this page: rows `(record json, position bigint)`,
    /// newest first, one more than `limit` so the caller knows whether a
    /// next page exists.
    pub fn statement(&self) -> Statement {
        let mut s = Statement::default();
        let mut conditions = Vec::new();
        if let Some(status) = self.status {
            let status = s.bind(Param::Text(status.as_str().to_owned()));
            conditions.push(format!("status = {status}"));
        }
        if !self.words.is_empty() {
            let query: Vec<String> = self.words.iter().map(|w| format!("{w}:*")).collect();
            let query = s.bind(Param::Text(query.join(" & ")));
            conditions.push(format!("title_words @@ to_tsquery('simple', {query})"));
        }
        if let Some(position) = self.before_position {
            let position = s.bind(Param::BigInt(position));
            conditions.push(format!("position < {position}"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let limit = s.bind(bigint(self.limit as u64 + 1));
        s.sql = format!(
            "SELECT {RECORD_JSON}, position FROM videos{filter} \
             ORDER BY position DESC LIMIT {limit}"
        );
        s
    }
}

impl ListQuery {
    /// Whether this asks for the whole catalog as it is: no filter, no
    /// cursor. Only that answer is cached ([`whole_catalog_digest`]).
    pub fn is_whole_catalog(&self) -> bool {
        self.before_position.is_none() && self.status.is_none() && self.words.is_empty()
    }
}

/// The largest catalog whose whole array is kept in
/// `whole_catalog_cache` (about 0.8 KiB a video, so a few MiB held by the
/// component that builds it). A bigger one is streamed page by page on
/// every call instead.
pub const WHOLE_CATALOG_CACHE_MAX_VIDEOS: usize = 4000;

/// The catalog's generation now and, if no video changed since the
/// cached array was built, that array's digest: one row `(generation
/// bigint, digest text or NULL)`. A replica whose own copy has that digest
/// answers it; otherwise it takes the array with [`cached_whole_catalog`].
///
/// The generation is `catalog_changes`' value, which a trigger advances on
/// every change to `videos` as it happens, whether or not the change is
/// committed yet (sequences ignore transactions). That is why a reader
/// that builds the array reads the generation here, in a statement of its
/// own, before [`whole_catalog_rows`].
pub fn whole_catalog_digest() -> Statement {
    Statement {
        sql: "SELECT changes.last_value, cache.digest FROM catalog_changes AS changes \
              LEFT JOIN whole_catalog_cache AS cache ON cache.generation = changes.last_value"
            .into(),
        params: Vec::new(),
    }
}

/// The cached array whose digest is `digest`: one row `(body text)`, or
/// none once a newer array has replaced it.
pub fn cached_whole_catalog(digest: &str) -> Statement {
    let mut s = Statement::default();
    let digest = s.bind(Param::Text(digest.to_owned()));
    s.sql = format!("SELECT body FROM whole_catalog_cache WHERE digest = {digest}");
    s
}

/// Every video, newest first, at most `limit` and one more to tell that
/// there are more: rows `(builder boolean, settled boolean, record json,
/// position bigint)`, the first two the same on every row, and one row of
/// NULL record and position when there is no video.
///
/// `settled` says whether the array built from these rows may be stored
/// under the generation read just before ([`whole_catalog_digest`]). A
/// change counted up to that generation was written before this statement
/// began, by a transaction that had its id by then. Settled means that no
/// transaction was in progress as this statement's snapshot was taken:
/// none is listed in it (`xip`), and none had an id at or above its
/// `xmax` (which is only one past the last transaction completed): the id
/// this statement takes is the first after them. So such a change is
/// committed (and in these rows) or rolled back. A change counted later
/// carries a higher generation, and an array stored under an older one is
/// never served once the generation has moved on.
///
/// Taking an id would make concurrent builders see each other in progress
/// and never settle, so only one at a time checks: the `builder`, who got
/// the session lock that [`release_whole_catalog_builder`] gives back. The
/// others build their answer without checking, and store nothing.
pub fn whole_catalog_rows(limit: usize) -> Statement {
    let mut s = Statement::default();
    let limit = s.bind(bigint(limit as u64 + 1));
    s.sql = format!(
        "SELECT lock.builder, settled.yes, listed.record, listed.position \
         FROM (SELECT pg_try_advisory_lock({WHOLE_CATALOG_BUILDER}) AS builder) AS lock \
         CROSS JOIN LATERAL (SELECT CASE WHEN lock.builder THEN \
             NOT EXISTS (SELECT FROM pg_snapshot_xip(pg_current_snapshot())) \
             AND pg_snapshot_xmax(pg_current_snapshot()) = pg_current_xact_id() \
           ELSE false END AS yes) AS settled \
         LEFT JOIN LATERAL (SELECT {RECORD_JSON} AS record, position FROM videos \
           ORDER BY position DESC LIMIT {limit}) AS listed ON true \
         ORDER BY listed.position DESC"
    );
    s
}

/// The advisory lock of the one builder that may store the whole catalog.
const WHOLE_CATALOG_BUILDER: &str = "hashtext('xtream.whole_catalog_builder')";

/// Gives back the lock [`whole_catalog_rows`]' builder took. (Should a
/// component fail before, the pool's reset of the connection releases it.)
pub fn release_whole_catalog_builder() -> Statement {
    Statement {
        sql: format!("SELECT pg_advisory_unlock({WHOLE_CATALOG_BUILDER})"),
        params: Vec::new(),
    }
}

/// Keeps `body`, the array of every video at `generation`, with its
/// SHA-256 digest, unless a newer one is kept already.
pub fn store_whole_catalog(generation: i64, body: String) -> Statement {
    let mut s = Statement::default();
    let generation = s.bind(Param::BigInt(generation));
    let body = s.bind(Param::Text(body));
    s.sql = format!(
        "INSERT INTO whole_catalog_cache (generation, body, digest) \
         VALUES ({generation}, {body}, encode(sha256(convert_to({body}, 'UTF8')), 'hex')) \
         ON CONFLICT (only_row) DO UPDATE \
           SET generation = excluded.generation, body = excluded.body, \
               digest = excluded.digest \
           WHERE whole_catalog_cache.generation < excluded.generation"
    );
    s
}

fn parse_status(value: &str) -> Result<VideoStatus, ApiError> {
    serde_json::from_value(serde_json::Value::String(value.to_owned())).map_err(|_| {
        ApiError::bad_request(format!(
            "status must be one of uploaded, queued, transcoding, ready, failed, not {value:?}"
        ))
    })
}

/// The words of a search, lowercased: letters and digits only, so the text
/// can never be tsquery syntax. Each matches title words it starts.
fn search_words(q: &str) -> Result<Vec<String>, ApiError> {
    if q.chars().count() > MAX_SEARCH_CHARS {
        return Err(ApiError::bad_request(format!(
            "q must be at most {MAX_SEARCH_CHARS} characters"
        )));
    }
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_SEARCH_WORDS)
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() && !q.trim().is_empty() {
        return Err(ApiError::bad_request(
            "q must contain at least one letter or digit",
        ));
    }
    Ok(words)
}

const CURSOR_PREFIX: &str = "p";

/// The opaque cursor a client sends back to get the page after the video at
/// `position`. Opaque so that clients cannot come to depend on it.
pub fn encode_cursor(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{position}"))
}

/// The position inside a cursor; a cursor we did not make is a 400.
pub fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    let invalid = || ApiError::bad_request("cursor is not one this server handed out");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(CURSOR_PREFIX)
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::record;
    use jiff::Timestamp;

    /// Every `$n` is bound, in order, and cast to its parameter's type.
    fn assert_well_bound(s: &Statement) {
        for (i, param) in s.params.iter().enumerate() {
            let placeholder = format!("${}::{}", i + 1, param.sql_type());
            assert!(s.sql.contains(&placeholder), "{placeholder} in {}", s.sql);
        }
        let next = format!("${}", s.params.len() + 1);
        assert!(!s.sql.contains(&next), "unbound {next} in {}", s.sql);
    }

    #[test]
    fn every_statement_binds_each_placeholder_with_its_type() {
        let r = record();
        let session_json = serde_json::json!({
            "id": r.id, "s3_upload_id": "u", "filename": "a.mp4", "title": "a",
            "content_type": "video/mp4", "size": 9, "part_size": 8,
            "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-02T00:00:00Z"
        });
        let session: UploadSession = serde_json::from_value(session_json).unwrap();
        for s in [
            insert_uploaded(&r, "xtream.uploads", false),
            insert_uploaded(&r, "xtream.uploads", true),
            select_record(r.id),
            mark_sent(7),
            note_not_sent(r.id, 7, "down", "waiting"),
            note_relay_failed(7, "broker down"),
            delete_video(r.id),
            finish_deletion(r.id),
            save_transition(&r, VideoStatus::Queued),
            insert_session(&session),
            select_session(r.id),
            delete_session(r.id),
            select_abandoned_sessions(60, 10),
            select_unfinished_deletions(60, 10),
            renew_job_lease(r.id),
            track_streamed_upload(r.id, "upload-1"),
            untrack_streamed_upload("upload-1"),
            select_stale_streamed_uploads(86400, 10),
            take_upload_slot(r.id, 64, 60),
            renew_upload_slot(r.id, 3, 60),
            release_upload_slot(r.id, 3),
            select_abandoned_jobs(600, 10),
            requeue_abandoned_job(&r, "xtream.uploads", 600),
            video_exists(r.id),
            claim_unsent(5, 100),
            ping(),
            whole_catalog_digest(),
            cached_whole_catalog("00ff"),
            whole_catalog_rows(WHOLE_CATALOG_CACHE_MAX_VIDEOS),
            store_whole_catalog(9, "[]".into()),
            release_whole_catalog_builder(),
            ListQuery::default().statement(),
            ListQuery::from_query("status=ready&q=red+cat&cursor=".to_owned().as_str())
                .unwrap()
                .statement(),
        ] {
            assert_well_bound(&s);
        }
    }

    #[test]
    fn a_transition_the_lifecycle_forbids_matches_no_row() {
        let mut ready = record();
        ready.status = VideoStatus::Ready;
        let sql = save_transition(&ready, VideoStatus::Queued).sql;
        assert!(sql.contains("status IN ('transcoding', 'ready')"), "{sql}");
        let mut queued = record();
        queued.status = VideoStatus::Queued;
        let sql = save_transition(&queued, VideoStatus::Ready).sql;
        assert!(
            sql.contains("status IN ('uploaded', 'queued', 'transcoding')"),
            "{sql}"
        );
    }

    #[test]
    fn playable_is_written_with_the_status_and_cleared_by_a_requeue() {
        let mut transcoding = record();
        transcoding.status = VideoStatus::Transcoding;
        transcoding.playable = true;
        let sql = save_transition(&transcoding, VideoStatus::Transcoding).sql;
        assert!(sql.contains("playable = true"), "{sql}");
        assert!(
            sql.contains("AND status = $2::text"),
            "compare-and-set: {sql}"
        );
        transcoding.playable = false;
        let sql = save_transition(&transcoding, VideoStatus::Transcoding).sql;
        assert!(sql.contains("playable = false"), "{sql}");
        let sql = requeue_abandoned_job(&transcoding, "xtream.uploads", 600).sql;
        assert!(sql.contains("playable = false"), "{sql}");
    }

    #[test]
    fn a_resumable_completion_closes_its_session_in_the_same_statement() {
        let r = record();
        assert!(
            insert_uploaded(&r, "t", true)
                .sql
                .contains("DELETE FROM upload_sessions")
        );
        assert!(
            !insert_uploaded(&r, "t", false)
                .sql
                .contains("upload_sessions")
        );
    }

    #[test]
    fn an_upload_takes_one_of_the_first_limit_slots_or_one_whose_lease_ran_out() {
        let r = record();
        let take = take_upload_slot(r.id, 64, 60);
        assert_eq!(
            take.params,
            vec![Param::BigInt(64), Param::Uuid(r.id), Param::BigInt(60)]
        );
        let sql = &take.sql;
        assert!(sql.contains("generate_series(1, $1::bigint)"), "{sql}");
        // Free: nobody holds it, or its holder's lease ran out.
        assert!(sql.contains("s.leased_until > now()"), "{sql}");
        // Two uploads on one slot are kept apart by the primary key, not by
        // what each statement's snapshot saw; a live lease is never taken.
        assert!(sql.contains("ON CONFLICT (slot) DO UPDATE"), "{sql}");
        assert!(
            sql.contains("WHERE streamed_upload_slots.leased_until <= now()"),
            "{sql}"
        );
        assert!(sql.contains("SELECT (SELECT count(*) FROM free)"), "{sql}");
    }

    #[test]
    fn only_an_upload_holding_a_slot_renews_or_releases_it() {
        let r = record();
        for s in [renew_upload_slot(r.id, 3, 60), release_upload_slot(r.id, 3)] {
            assert!(
                s.sql.contains("WHERE slot = ") && s.sql.contains("AND video_id = "),
                "{}",
                s.sql
            );
            assert!(s.params.contains(&Param::Uuid(r.id)));
            assert!(s.params.contains(&Param::BigInt(3)));
        }
    }

    #[test]
    fn a_failed_relay_keeps_the_event_unsent() {
        let s = note_relay_failed(7, "broker down");
        assert!(!s.sql.contains("sent_at = now()"), "{}", s.sql);
        assert!(s.sql.contains("attempts = attempts + 1"), "{}", s.sql);
        assert!(s.sql.contains("AND sent_at IS NULL"), "{}", s.sql);
        assert_eq!(
            s.params,
            vec![Param::BigInt(7), Param::Text("broker down".into())]
        );
    }

    #[test]
    fn records_decode_from_the_json_postgres_builds() {
        let r = record();
        let json = format!(
            r#"{{"id": "{}", "title": "Cat", "filename": "cat.mp4", "size": 42,
                "content_type": "video/mp4", "status": "uploaded", "playable": false,
                "created_at": "2023-11-14T22:13:20.123456+00:00",
                "updated_at": "2023-11-14T22:13:20.123456+00:00",
                "failure_reason": null, "status_detail": null, "duration_seconds": null,
                "width": null, "height": null, "video_codec": null, "audio_codec": null,
                "renditions": [], "hls_master": null, "thumbnail": null,
                "storyboard": null}}"#,
            r.id
        );
        let decoded = decode_record(&json).unwrap();
        assert_eq!(decoded.id, r.id);
        assert_eq!(decoded.status, VideoStatus::Uploaded);
        assert_eq!(decoded.width, None);
        assert_eq!(
            decoded.created_at,
            "2023-11-14T22:13:20.123456Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(decode_record("{}").unwrap_err().status, 500);
    }

    #[test]
    fn listing_defaults_when_nothing_is_asked() {
        let list = ListQuery::from_query("").unwrap();
        assert_eq!(list, ListQuery::default());
        let s = list.statement();
        assert!(!s.sql.contains("WHERE"));
        assert_eq!(s.params, vec![Param::BigInt(DEFAULT_PAGE_SIZE as i64 + 1)]);
    }

    #[test]
    fn listing_bounds_the_page_size() {
        assert_eq!(ListQuery::from_query("limit=100").unwrap().limit, 100);
        assert!(ListQuery::asks_for_a_page("status=ready&limit=5"));
        assert!(ListQuery::asks_for_a_page("cursor="));
        // A word that merely contains "limit=" is not the parameter.
        assert!(!ListQuery::asks_for_a_page(
            "q=speed%20limit%3D30&nolimit=1"
        ));
        assert!(!ListQuery::asks_for_a_page(""));
        for bad in ["limit=0", "limit=101", "limit=-1", "limit=ten", "limit="] {
            assert_eq!(ListQuery::from_query(bad).unwrap_err().status, 400, "{bad}");
        }
    }

    #[test]
    fn only_the_unfiltered_whole_catalog_is_cached() {
        assert!(ListQuery::from_query("").unwrap().is_whole_catalog());
        // An empty filter filters nothing.
        assert!(
            ListQuery::from_query("status=&q=")
                .unwrap()
                .is_whole_catalog()
        );
        for filtered in ["status=ready", "q=cat", "cursor=cDk"] {
            let list = ListQuery::from_query(filtered).unwrap();
            assert!(!list.is_whole_catalog(), "{filtered}");
        }
        // Newest first, one more than is kept, so a bigger catalog shows.
        assert_eq!(whole_catalog_rows(10).params, vec![Param::BigInt(11)],);
        assert!(
            whole_catalog_rows(10)
                .sql
                .contains("ORDER BY position DESC")
        );
    }

    #[test]
    fn listing_filters_by_status() {
        let list = ListQuery::from_query("status=ready").unwrap();
        assert_eq!(list.status, Some(VideoStatus::Ready));
        assert!(list.statement().sql.contains("status = $1::text"));
        let err = ListQuery::from_query("status=deleted").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("uploaded, queued"), "{}", err.message);
    }

    #[test]
    fn search_words_are_prefixes_and_never_tsquery_syntax() {
        let list = ListQuery::from_query("q=Holi%27day+%21%26%7C+Été:*").unwrap();
        assert_eq!(list.words, ["holi", "day", "été"]);
        let s = list.statement();
        assert!(
            s.params
                .contains(&Param::Text("holi:* & day:* & été:*".into()))
        );
        assert_eq!(ListQuery::from_query("q=%26%26").unwrap_err().status, 400);
        assert!(ListQuery::from_query("q=").unwrap().words.is_empty());
        let long = format!("q={}", "a".repeat(MAX_SEARCH_CHARS + 1));
        assert_eq!(ListQuery::from_query(&long).unwrap_err().status, 400);
    }

    #[test]
    fn cursors_round_trip_and_forged_ones_are_refused() {
        let list = ListQuery::from_query(&format!("cursor={}", encode_cursor(41))).unwrap();
        assert_eq!(list.before_position, Some(41));
        assert!(list.statement().sql.contains("position < $1::bigint"));
        for bad in [
            "!!!".to_owned(),
            URL_SAFE_NO_PAD.encode("p-1"),
            URL_SAFE_NO_PAD.encode("x5"),
            URL_SAFE_NO_PAD.encode("catalog/123"),
        ] {
            let err = ListQuery::from_query(&format!("cursor={bad}")).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
        }
    }

    #[test]
    fn connection_strings_quote_every_value() {
        let text = connection_string(&[("host", "db".into()), ("password", r"it's \ x".into())]);
        assert_eq!(text, r"host='db' password='it\'s \\ x'");
    }

    #[test]
    fn sqlstates_tell_outages_from_bugs() {
        assert_eq!(sqlstate_meaning("57P01"), SqlStateMeaning::Transient);
        assert_eq!(sqlstate_meaning("08006"), SqlStateMeaning::Transient);
        assert_eq!(sqlstate_meaning("53300"), SqlStateMeaning::Transient);
        assert_eq!(sqlstate_meaning("40001"), SqlStateMeaning::Transient);
        assert_eq!(sqlstate_meaning("42P01"), SqlStateMeaning::SchemaMissing);
        assert_eq!(sqlstate_meaning("23505"), SqlStateMeaning::Bug);
        assert_eq!(sqlstate_meaning("22P02"), SqlStateMeaning::Bug);
    }

    #[test]
    fn every_migration_has_a_distinct_increasing_version() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert!(MIGRATIONS.iter().all(|(_, _, sql)| !sql.trim().is_empty()));
    }
}
