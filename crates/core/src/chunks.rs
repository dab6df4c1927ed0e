//! Chunked transcoding of long sources: where a source is cut, the job of
//! each chunk, how chunk outputs are named, stitched into the published
//! playlists, and tracked in PostgreSQL.
//!
//! A source longer than the worker's threshold is cut at keyframes of its
//! video ([`plan`]) by a stream copy; each chunk is then encoded on its own
//! (any worker replica may take its [`ChunkJob`]) into the same HLS ladder
//! as the one-pass path. Chunks keep the source's timeline (ffmpeg
//! `-copyts`), so the segments of consecutive chunks follow each other
//! without a gap or an overlap, and stitching is concatenating their
//! segment lists ([`stitched_playlist`]).
//!
//! Audio is encoded once for the whole source, into an audio rendition of
//! its own that every variant names ([`master_playlist`]): encoding it per
//! chunk would put the AAC encoder's priming samples (1024 of them) at the
//! start of every chunk, a click and a small drift at each boundary, and
//! cutting AAC at video keyframes would never land on an audio frame
//! boundary. One audio encode has neither problem, and costs little.
//!
//! ```text
//! videos/{id}/chunks/{chunk:04}.nut   a chunk's source (stream copy), until ready
//! videos/{id}/hls/audio/...           the audio rendition, encoded once
//! videos/{id}/hls/{rung}/chunk{chunk:04}_{n:03}.ts   segments of each chunk
//! ```

use crate::ladder::RenditionLadder;
use crate::media::MediaInfo;
use crate::metadata::{Param, Statement};
use crate::{VideoId, keys};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default topic of [`ChunkJob`]s: its own topic, so that chunk jobs
/// spread over partitions (and so over workers) one by one, while upload
/// events stay keyed by video, and so that the uploads topic carries one
/// kind of event that older workers understand.
pub const CHUNKS_TOPIC: &str = "xtream.chunks";
/// Folder (under `hls/`) of the audio rendition every variant shares.
pub const AUDIO_RENDITION: &str = "audio";
/// Group id of that rendition in the master playlist.
const AUDIO_GROUP: &str = "audio";
/// Length the first chunk aims at, whatever the chunk length: the video
/// becomes playable once its first chunk is published, so it is short.
pub const FIRST_CHUNK_SECONDS: f64 = 8.0;
/// A last chunk shorter than this fraction of the chunk length joins the
/// one before it: a job of its own would cost more to start than to encode.
const SHORTEST_TAIL: f64 = 0.25;
/// Chunk boundaries are given to ffmpeg's segment muxer this much before
/// the keyframe they name, so rounding never moves the cut to the next
/// keyframe (frames are more than a millisecond apart).
pub const CUT_MARGIN_SECONDS: f64 = 0.001;

/// One chunk of a source: its video from the keyframe at `start_seconds`
/// up to (not including) the one at `end_seconds`, on the source's
/// timeline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChunkSpan {
    /// Position of the chunk, from 0.
    pub chunk: u32,
    /// Presentation time of its first keyframe.
    pub start_seconds: f64,
    /// Presentation time of the next chunk's first keyframe; `None` for
    /// the last chunk (to the end of the source).
    pub end_seconds: Option<f64>,
}

/// The Kafka event of one chunk to encode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "video.chunk")]
pub struct ChunkJob {
    /// The video.
    pub video_id: VideoId,
    /// Which part of it.
    pub span: ChunkSpan,
    /// How many chunks the video has.
    pub chunks: u32,
    /// The source as probed.
    pub source: MediaInfo,
}

/// A source is cut into at least this many chunks when chunks this short
/// are allowed ([`SHORTEST_SHARED_CHUNK_SECONDS`]): enough for the workers
/// to share them out evenly, where a few long chunks leave the last worker
/// alone with the last one.
pub const SHARED_CHUNKS: f64 = 12.0;
/// Chunks are never made shorter than this to reach [`SHARED_CHUNKS`]:
/// each chunk costs a job, an encoder start and a completion.
pub const SHORTEST_SHARED_CHUNK_SECONDS: f64 = 15.0;

/// The chunk length to plan a source lasting `duration_seconds` with:
/// `configured`, or shorter so that the source makes [`SHARED_CHUNKS`]
/// chunks, but not below [`SHORTEST_SHARED_CHUNK_SECONDS`] (nor ever
/// longer than configured).
pub fn chunk_length(duration_seconds: f64, configured: f64) -> f64 {
    let shared = (duration_seconds / SHARED_CHUNKS).max(SHORTEST_SHARED_CHUNK_SECONDS);
    configured.min(shared)
}

/// The chunks of a source lasting `duration_seconds` whose video has
/// keyframes at `keyframes` (presentation times, any order), each about
/// `chunk_seconds` long, the first at most [`FIRST_CHUNK_SECONDS`]. Every
/// chunk starts at a keyframe; a short tail joins the chunk before it.
/// Empty when there is no keyframe.
pub fn plan(keyframes: &[f64], duration_seconds: f64, chunk_seconds: f64) -> Vec<ChunkSpan> {
    let mut times: Vec<f64> = keyframes
        .iter()
        .copied()
        .filter(|t| t.is_finite())
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let Some(&first) = times.first() else {
        return Vec::new();
    };
    let chunk_seconds = chunk_seconds.max(1.0);
    let end = first + duration_seconds.max(0.0);
    let mut starts = vec![first];
    let mut target = first + chunk_seconds.min(FIRST_CHUNK_SECONDS);
    for &time in &times[1..] {
        if time >= target {
            starts.push(time);
            target = time + chunk_seconds;
        }
    }
    if starts.len() > 1 && end - starts[starts.len() - 1] < chunk_seconds * SHORTEST_TAIL {
        starts.pop();
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| ChunkSpan {
            chunk: i as u32,
            start_seconds: start,
            end_seconds: starts.get(i + 1).copied(),
        })
        .collect()
}

/// The times at which ffmpeg's segment muxer (`-segment_times`) cuts the
/// source into `spans`: each chunk's first keyframe but the first one's,
/// a hair early ([`CUT_MARGIN_SECONDS`]).
pub fn cut_times(spans: &[ChunkSpan]) -> Vec<f64> {
    spans
        .iter()
        .skip(1)
        .map(|span| span.start_seconds - CUT_MARGIN_SECONDS)
        .collect()
}

/// Prefix of a video's chunk sources.
pub fn sources_prefix(id: VideoId) -> String {
    format!("{}chunks/", keys::video_prefix(id))
}

/// Key of chunk `chunk`'s source.
pub fn source_key(id: VideoId, chunk: u32) -> String {
    format!("{}{}", sources_prefix(id), source_name(chunk))
}

/// File name of chunk `chunk`'s source, as the segment muxer writes it
/// (`%04d.nut`). NUT keeps every timestamp exactly as the source has it.
pub fn source_name(chunk: u32) -> String {
    format!("{chunk:04}.nut")
}

/// The ffmpeg `-hls_segment_filename` pattern of chunk `chunk`'s segments:
/// named by chunk first, so the names of every chunk differ and sort in
/// playing order.
pub fn segment_pattern(chunk: u32) -> String {
    format!("chunk{chunk:04}_%03d.ts")
}

/// One media segment of a chunk's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// File name, beside the rendition's playlist.
    pub uri: String,
    /// `#EXTINF` duration, seconds.
    pub duration: f64,
}

/// Each rendition's segments of one chunk, by rendition name.
pub type ChunkOutput = BTreeMap<String, Vec<Segment>>;

/// The segments a media playlist names, with their durations.
pub fn segments_of(playlist: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut duration = None;
    for line in playlist.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            let value = rest.split(',').next().unwrap_or("");
            duration = value.trim().parse::<f64>().ok();
        } else if !line.is_empty() && !line.starts_with('#') {
            segments.push(Segment {
                uri: line.to_owned(),
                duration: duration.take().unwrap_or(0.0),
            });
        }
    }
    segments
}

/// How many chunks from the first are done without a gap: those are
/// published, in order, while later ones may still be running.
pub fn done_prefix(done: &[bool]) -> usize {
    done.iter().take_while(|done| **done).count()
}

/// The media playlist of rendition `rendition` stitched from the outputs
/// of consecutive chunks from the first: `EVENT` while chunks are still
/// missing, `VOD` with `#EXT-X-ENDLIST` once `complete`. The target
/// duration never changes as the playlist grows (players require it), so
/// it is the segment length unless a segment is longer.
pub fn stitched_playlist(
    outputs: &[ChunkOutput],
    rendition: &str,
    segment_seconds: u32,
    complete: bool,
) -> String {
    let segments: Vec<&Segment> = outputs
        .iter()
        .filter_map(|output| output.get(rendition))
        .flatten()
        .collect();
    let longest = segments
        .iter()
        .map(|s| s.duration.round() as u32)
        .max()
        .unwrap_or(0);
    let kind = if complete { "VOD" } else { "EVENT" };
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-PLAYLIST-TYPE:{kind}\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        longest.max(segment_seconds)
    );
    for segment in segments {
        text.push_str(&format!(
            "#EXTINF:{:.6},\n{}\n",
            segment.duration, segment.uri
        ));
    }
    if complete {
        text.push_str(crate::hls::END_LIST);
        text.push('\n');
    }
    text
}

/// The master playlist of a chunked video: one variant per rung, each
/// naming the shared audio rendition when the source has sound.
pub fn master_playlist(ladder: &RenditionLadder, with_audio: bool) -> String {
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if with_audio {
        text.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{AUDIO_GROUP}\",NAME=\"audio\",DEFAULT=YES,\
             AUTOSELECT=YES,URI=\"{AUDIO_RENDITION}/index.m3u8\"\n"
        ));
    }
    for rung in &ladder.rungs {
        let audio = if with_audio {
            format!(",AUDIO=\"{AUDIO_GROUP}\"")
        } else {
            String::new()
        };
        text.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},RESOLUTION={}x{}{audio}\n{}/index.m3u8\n",
            rung.bandwidth(with_audio),
            rung.width,
            rung.height,
            rung.name
        ));
    }
    text
}

/// One chunk's row as [`select_chunks`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    /// The span.
    pub span: ChunkSpan,
    /// Whether its output is stored and counted.
    pub done: bool,
    /// Its output, once done.
    pub output: Option<ChunkOutput>,
}

fn placeholder(statement: &mut Statement, param: Param) -> String {
    let text = format!("${}::{}", statement.params.len() + 1, param.sql_type());
    statement.params.push(param);
    text
}

/// Stores the plan of video `id` unless it has one already (a job that
/// cut it before crashed, or the video was queued again): chunks are
/// counted by the plan first stored, whatever a later run would plan. Then
/// [`select_chunks`] reads the plan that holds.
pub fn insert_plan(id: VideoId, spans: &[ChunkSpan]) -> Statement {
    let mut s = Statement::default();
    let video = placeholder(&mut s, Param::Uuid(id));
    let count = placeholder(&mut s, Param::BigInt(spans.len() as i64));
    let rows = placeholder(
        &mut s,
        Param::Jsonb(serde_json::to_value(spans).expect("spans always serialise")),
    );
    s.sql = format!(
        "WITH planned AS (\
           INSERT INTO chunked_videos (video_id, chunk_count) VALUES ({video}, {count}) \
           ON CONFLICT (video_id) DO NOTHING RETURNING video_id) \
         INSERT INTO video_chunks (video_id, chunk, start_seconds, end_seconds) \
         SELECT planned.video_id, span.chunk, span.start_seconds, span.end_seconds \
         FROM planned, jsonb_to_recordset({rows}) \
           AS span(chunk integer, start_seconds double precision, end_seconds double precision)"
    );
    s
}

/// Locks the plan of video `id` until the transaction ends: the jobs that
/// complete chunks of one video take turns, and each, reading the chunks
/// after it holds the lock (a statement of its own, so its snapshot
/// includes what the job before it committed), publishes at least what
/// the one before it did. One row while the video has a plan.
pub fn lock_plan(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let video = placeholder(&mut s, Param::Uuid(id));
    s.sql = format!(
        "SELECT (pictures_done_at IS NOT NULL) FROM chunked_videos \
         WHERE video_id = {video} FOR UPDATE"
    );
    s
}

/// Every chunk of video `id`, in order: rows `(chunk bigint, start
/// float8, end float8 NULL, done bool, output text NULL)`.
pub fn select_chunks(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let video = placeholder(&mut s, Param::Uuid(id));
    s.sql = format!(
        "SELECT chunk::bigint, start_seconds, end_seconds, done_at IS NOT NULL, output::text \
         FROM video_chunks WHERE video_id = {video} ORDER BY chunk"
    );
    s
}

/// How long a claim on a chunk holds unless renewed: long enough to ride
/// out a slow database round trip, short enough that the chunk of a worker
/// that died is taken back soon after its event is redelivered.
pub const CLAIM_SECONDS: i64 = 30;

/// Claims a chunk of video `id` for [`CLAIM_SECONDS`] and counts the
/// attempt: the first chunk that is not done and that nobody holds,
/// whichever job asks, so the playlists grow without a hole a viewer
/// would stall at (the first chunk is never claimed: the job that cut the
/// source encodes it). One row `(chunk bigint, start float8, end float8
/// NULL)`, none when every chunk is done or held. Two jobs claiming at
/// once get different chunks (`SKIP LOCKED`), and neither waits for the
/// other.
pub fn claim_chunk(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let video = placeholder(&mut s, Param::Uuid(id));
    let lease = placeholder(&mut s, Param::BigInt(CLAIM_SECONDS));
    s.sql = format!(
        "UPDATE video_chunks AS claimed \
         SET attempts = claimed.attempts + 1, \
             claimed_until = now() + {lease} * interval '1 second' \
         FROM (SELECT chunk FROM video_chunks \
               WHERE video_id = {video} AND chunk > 0 AND done_at IS NULL \
                 AND (claimed_until IS NULL OR claimed_until < now()) \
               ORDER BY chunk LIMIT 1 \
               FOR UPDATE SKIP LOCKED) AS free \
         WHERE claimed.video_id = {video} AND claimed.chunk = free.chunk \
         RETURNING claimed.chunk::bigint, claimed.start_seconds, claimed.end_seconds"
    );
    s
}

/// Keeps the claim on chunk `chunk` of video `id` for another
/// [`CLAIM_SECONDS`] while it is encoded.
pub fn renew_claim(id: VideoId, chunk: u32) -> Statement {
    let mut s = Statement::default();
    let video = placeholder(&mut s, Param::Uuid(id));
    let chunk = placeholder(&mut s, Param::BigInt(i64::from(chunk)));
    let lease = placeholder(&mut s, Param::BigInt(CLAIM_SECONDS));
    s.sql = format!(
        "UPDATE video_chunks SET claimed_until = now() + {lease} * interval '1 second' \
         WHERE video_id = {video} AND chunk = {chunk} AND done_at IS NULL"
    );
    s
}

/// Whether chunk `chunk` of video `id` is done: one row `(done bool)`
/// while the video has a plan, none after it was deleted.
pub fn chunk_done(id: VideoId, chunk: u32) -> Statement {
    let mut s = Statement::default();
    let video = placeholder(&mut s, Param::Uuid(id));
    let chunk = placeholder(&mut s, Param::BigInt(i64::from(chunk)));
    s.sql = format!(
        "SELECT done_at IS NOT NULL FROM video_chunks \
         WHERE video_id = {video} AND chunk = {chunk}"
    );
    s
}

/// Counts an attempt at chunk `chunk` of video `id`, which the job that
/// cut the source encodes unclaimed (no other job takes the first chunk):
/// one row `(done bool)` when the chunk exists (done: a rerun, nothing to
/// encode).
pub fn start_chunk(id: VideoId, chunk: u32) -> Statement {
    let mut s = Statement::default();
    let video = placeholder(&mut s, Param::Uuid(id));
    let chunk = placeholder(&mut s, Param::BigInt(i64::from(chunk)));
    s.sql = format!(
        "UPDATE video_chunks SET attempts = attempts + 1 \
         WHERE video_id = {video} AND chunk = {chunk} RETURNING done_at IS NOT NULL"
    );
    s
}

/// Marks chunk `chunk` of video `id` done with its `output`, only if it is
/// not done yet: a chunk is counted once, however often it is delivered.
/// Changes one row the first time, none after.
pub fn finish_chunk(id: VideoId, chunk: u32, output: &ChunkOutput) -> Statement {
    let mut s = Statement::default();
    let video = placeholder(&mut s, Param::Uuid(id));
    let chunk = placeholder(&mut s, Param::BigInt(i64::from(chunk)));
    let output = placeholder(
        &mut s,
        Param::Jsonb(serde_json::to_value(output).expect("outputs always serialise")),
    );
    s.sql = format!(
        "UPDATE video_chunks SET done_at = now(), output = {output} \
         WHERE video_id = {video} AND chunk = {chunk} AND done_at IS NULL"
    );
    s
}

/// Marks the poster and storyboard of video `id` stored (the job that cut
/// it makes them): the video is ready once they and every chunk are.
pub fn finish_pictures(id: VideoId) -> Statement {
    let mut s = Statement::default();
    let video = placeholder(&mut s, Param::Uuid(id));
    s.sql = format!(
        "UPDATE chunked_videos SET pictures_done_at = now() \
         WHERE video_id = {video} AND pictures_done_at IS NULL"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(seconds: f64, until: f64) -> Vec<f64> {
        (0..)
            .map(|i| f64::from(i) * seconds)
            .take_while(|t| *t < until)
            .collect()
    }

    #[test]
    fn chunks_start_at_keyframes_the_first_one_short() {
        let spans = plan(&every(2.0, 100.0), 100.0, 30.0);
        let starts: Vec<f64> = spans.iter().map(|s| s.start_seconds).collect();
        assert_eq!(starts, [0.0, 8.0, 38.0, 68.0]);
        assert_eq!(spans[0].end_seconds, Some(8.0));
        assert_eq!(spans[2].end_seconds, Some(68.0));
        assert_eq!(spans[3].end_seconds, None);
        let numbers: Vec<u32> = spans.iter().map(|s| s.chunk).collect();
        assert_eq!(numbers, [0, 1, 2, 3]);
    }

    #[test]
    fn shorter_sources_get_shorter_chunks_to_share() {
        // Ten minutes: 50 s would make 12; the configured 30 s holds.
        assert_eq!(chunk_length(600.0, 30.0), 30.0);
        // Three minutes: 15 s chunks, twelve of them.
        assert_eq!(chunk_length(180.0, 30.0), 15.0);
        // Never below 15 s to share, nor above what is configured.
        assert_eq!(chunk_length(60.0, 30.0), 15.0);
        assert_eq!(chunk_length(60.0, 10.0), 10.0);
    }

    #[test]
    fn a_cut_waits_for_the_next_keyframe() {
        // Keyframes every 5 s: a 12 s chunk ends at the first one after 12 s.
        let spans = plan(&every(5.0, 60.0), 60.0, 12.0);
        let starts: Vec<f64> = spans.iter().map(|s| s.start_seconds).collect();
        assert_eq!(starts, [0.0, 10.0, 25.0, 40.0, 55.0]);
    }

    #[test]
    fn a_short_tail_joins_the_chunk_before() {
        // 0, 8, 38 and a tail of 2 s from 68: joined.
        let spans = plan(&every(2.0, 70.0), 70.0, 30.0);
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[2].start_seconds, 38.0);
        assert_eq!(spans[2].end_seconds, None);
    }

    #[test]
    fn sources_keep_their_timeline_and_odd_inputs_give_sensible_plans() {
        // A source whose first frame is at 1.4 s (MPEG-TS), keyframes unsorted.
        let spans = plan(&[11.4, 1.4, 9.4, 5.4, 1.4], 12.0, 4.0);
        let starts: Vec<f64> = spans.iter().map(|s| s.start_seconds).collect();
        assert_eq!(starts, [1.4, 5.4, 9.4]);
        assert!(plan(&[], 10.0, 4.0).is_empty());
        // One keyframe: one chunk, the whole source.
        assert_eq!(plan(&[0.0], 300.0, 30.0).len(), 1);
        // Cut a hair before each chunk's keyframe but the first's.
        let cuts: Vec<f64> = cut_times(&spans)
            .iter()
            .map(|t| (t * 1e6).round() / 1e6)
            .collect();
        assert_eq!(cuts, [5.399, 9.399]);
    }

    #[test]
    fn names_sort_in_playing_order() {
        let id = VideoId::random();
        assert_eq!(source_key(id, 3), format!("videos/{id}/chunks/0003.nut"));
        assert!(source_key(id, 3).starts_with(&sources_prefix(id)));
        assert_eq!(segment_pattern(12), "chunk0012_%03d.ts");
    }

    const CHUNK_PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n\
        #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4.000000,\n\
        chunk0001_000.ts\n#EXTINF:2.520000,\nchunk0001_001.ts\n#EXT-X-ENDLIST\n";

    fn output(rung: &str, segments: &[(&str, f64)]) -> ChunkOutput {
        let mut output = ChunkOutput::new();
        output.insert(
            rung.to_owned(),
            segments
                .iter()
                .map(|(uri, duration)| Segment {
                    uri: (*uri).to_owned(),
                    duration: *duration,
                })
                .collect(),
        );
        output
    }

    #[test]
    fn reads_segments_and_their_durations() {
        let segments = segments_of(CHUNK_PLAYLIST);
        assert_eq!(
            segments,
            output(
                "r",
                &[("chunk0001_000.ts", 4.0), ("chunk0001_001.ts", 2.52)]
            )["r"]
        );
    }

    #[test]
    fn only_chunks_done_from_the_first_are_published() {
        assert_eq!(done_prefix(&[true, true, false, true]), 2);
        assert_eq!(done_prefix(&[false, true]), 0);
        assert_eq!(done_prefix(&[true, true]), 2);
    }

    #[test]
    fn stitched_playlists_grow_then_close() {
        let first = output(
            "360p",
            &[("chunk0000_000.ts", 4.0), ("chunk0000_001.ts", 4.0)],
        );
        let second = output("360p", &[("chunk0001_000.ts", 3.96)]);
        let growing = stitched_playlist(std::slice::from_ref(&first), "360p", 4, false);
        assert!(
            growing.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            "{growing}"
        );
        assert!(!crate::hls::is_complete(&growing));
        let done = stitched_playlist(&[first, second], "360p", 4, true);
        assert!(done.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{done}");
        assert!(done.contains("#EXT-X-TARGETDURATION:4\n"));
        assert_eq!(
            crate::hls::segment_uris(&done),
            ["chunk0000_000.ts", "chunk0000_001.ts", "chunk0001_000.ts"]
        );
        assert!(done.ends_with("#EXTINF:3.960000,\nchunk0001_000.ts\n#EXT-X-ENDLIST\n"));
        // The playlists differ from a one-pass run's only by names:
        // finalizing keeps them as they are.
        assert_eq!(crate::hls::finalized(&done), done);
    }

    #[test]
    fn the_master_names_every_rung_and_the_shared_audio() {
        let ladder = RenditionLadder::for_source(1280, 720).unwrap();
        let master = master_playlist(&ladder, true);
        assert!(master.contains(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"audio/index.m3u8\"\n"
        ));
        assert!(master.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=984000,RESOLUTION=640x360,AUDIO=\"audio\"\n360p/index.m3u8\n"
        ));
        assert!(master.contains("720p/index.m3u8\n"));
        let silent = master_playlist(&ladder, false);
        assert!(!silent.contains("AUDIO"), "{silent}");
    }

    #[test]
    fn statements_bind_what_they_name() {
        let id = VideoId::random();
        let spans = plan(&every(2.0, 40.0), 40.0, 10.0);
        let insert = insert_plan(id, &spans);
        assert_eq!(insert.params.len(), 3);
        assert!(insert.sql.contains("ON CONFLICT (video_id) DO NOTHING"));
        let mut finished = ChunkOutput::new();
        finished.insert("360p".into(), Vec::new());
        let finish = finish_chunk(id, 1, &finished);
        assert!(finish.sql.contains("done_at IS NULL"), "counted once");
        assert!(lock_plan(id).sql.contains("FOR UPDATE"));
        assert!(!select_chunks(id).sql.contains("FOR UPDATE"));
        let claim = claim_chunk(id);
        assert!(
            claim.sql.contains("SKIP LOCKED"),
            "never waits on another claimer"
        );
        assert!(
            claim.sql.contains("chunk > 0"),
            "the first chunk is the cutter's"
        );
        assert!(claim.sql.contains("ORDER BY chunk LIMIT 1"), "lowest first");
        assert_eq!(claim.params[1], Param::BigInt(CLAIM_SECONDS));
        for statement in [
            start_chunk(id, 0),
            claim,
            renew_claim(id, 1),
            chunk_done(id, 1),
            finish_pictures(id),
            select_chunks(id),
        ] {
            assert!(statement.sql.contains("$1::uuid"), "{}", statement.sql);
        }
    }

    #[test]
    fn chunk_jobs_travel_as_json() {
        let job = ChunkJob {
            video_id: VideoId::random(),
            span: ChunkSpan {
                chunk: 2,
                start_seconds: 38.0,
                end_seconds: None,
            },
            chunks: 3,
            source: MediaInfo {
                duration_seconds: 70.0,
                width: 1920,
                height: 1080,
                video_codec: "h264".into(),
                audio_codec: Some("aac".into()),
                frame_rate: Some(25.0),
            },
        };
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["type"], "video.chunk");
        assert_eq!(serde_json::from_value::<ChunkJob>(json).unwrap(), job);
    }
}
