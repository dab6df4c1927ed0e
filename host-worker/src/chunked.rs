//! Chunked transcoding of long sources ([`xtream_core::chunks`] plans it).
//!
//! The job of the upload event lists the keyframes and stores the plan.
//! It cuts the first chunk alone (a stream copy of its few seconds) and
//! encodes it at once, publishing its segments and growing playlists as
//! ffmpeg writes them, so the video plays after its first segment. At the
//! same time it encodes the sound once into the audio rendition (the
//! master, which names it, waits for it), and cuts the whole video at the
//! planned keyframes, uploads the later chunks' sources and announces them
//! on the chunks topic (any worker of the group takes them). Last it makes
//! the poster and the storyboard.
//!
//! A chunk job claims the first chunk of the video nobody works on, its own
//! or another (a lease in `video_chunks`, renewed while it works), so a
//! free worker takes on the chunks whose events wait behind a busy one, in
//! playing order. It downloads the chunk's source, encodes it into the
//! ladder, uploads its segments and completes it, then claims the next,
//! until none is left. A completion: with the video's plan locked
//! (one completion at a time per video), the chunk is counted done (once,
//! whatever the redeliveries), and the playlists are stored stitched from
//! every chunk done from the first without a gap (`EVENT`, growing), the
//! master with them: the video is `playable`. The completion that finds
//! every chunk and the pictures done stores the playlists `VOD` and makes
//! the video ready. A redelivered chunk that is done already only repeats
//! that completion, so a crash between counting and finishing loses
//! nothing; one that is not done is encoded again once its claim has run
//! out, and its segments, at the same keys, replace what a killed worker
//! left.

use crate::db::{self, DbError};
use crate::job::{
    JobEnd, JobError, JobEvent, PARALLEL_UPLOADS, RunningJob, Transcoder, content_type_of,
    ready_outcome, record_media, transcode_timeout,
};
use crate::media::{self, MediaError, MediaInfo, SEGMENT_SECONDS};
use crate::publish::HlsPublisher;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use tokio::sync::watch;
use xtream_core::chunks::{self, AUDIO_RENDITION, ChunkJob, ChunkOutput, ChunkRow, ChunkSpan};
use xtream_core::ladder::RenditionLadder;
use xtream_core::storyboard::Storyboard;
use xtream_core::{VideoId, VideoRecord, VideoStatus, keys};

/// Content type of every playlist.
const PLAYLIST: &str = "application/vnd.apple.mpegurl";

/// What a completion adds before it publishes.
enum Completed {
    /// Chunk `0` is encoded, its segments stored.
    Chunk(u32, ChunkOutput),
    /// The poster and the storyboard are stored.
    Pictures,
    /// Nothing new: publish (and finish) what is there, again.
    Nothing,
}

fn ladder_of(source: &MediaInfo) -> Result<RenditionLadder, JobError> {
    RenditionLadder::for_source(source.width, source.height).ok_or_else(|| {
        JobError::Media(MediaError::NotAVideo(format!(
            "{}×{} is too small to be a video",
            source.width, source.height
        )))
    })
}

/// How often a chunk job whose chunk another job holds looks again.
const CLAIM_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads a chunk's span: the first three columns of [`chunks::claim_chunk`]
/// and [`chunks::select_chunks`].
fn span_of(row: &tokio_postgres::Row) -> Result<ChunkSpan, DbError> {
    let chunk: i64 = db::column(row, 0)?;
    Ok(ChunkSpan {
        chunk: u32::try_from(chunk)
            .map_err(|_| DbError::Unreadable(format!("chunk number {chunk}")))?,
        start_seconds: db::column(row, 1)?,
        end_seconds: db::column(row, 2)?,
    })
}

/// Reads a row of [`chunks::select_chunks`].
fn chunk_row(row: &tokio_postgres::Row) -> Result<ChunkRow, DbError> {
    let output: Option<String> = db::column(row, 4)?;
    let output = output
        .map(|text| serde_json::from_str::<ChunkOutput>(&text))
        .transpose()
        .map_err(|e| DbError::Unreadable(format!("a chunk's output: {e}")))?;
    Ok(ChunkRow {
        span: span_of(row)?,
        done: db::column(row, 3)?,
        output,
    })
}

impl Transcoder {
    /// The job of an upload event, for a source long enough to be chunked:
    /// `record` is `transcoding`, `original` downloaded and probed (and its
    /// ladder known to exist).
    pub(crate) async fn transcode_in_chunks(
        &self,
        record: VideoRecord,
        original: &Path,
        scratch: &Path,
        media: &MediaInfo,
    ) -> Result<JobEnd, JobError> {
        let id = record.id;
        let keyframes = media::keyframes(original).await?;
        let planned = chunks::plan(
            &keyframes,
            media.duration_seconds,
            chunks::chunk_length(
                media.duration_seconds,
                self.chunking.chunk_length.as_secs_f64(),
            ),
        );
        if planned.is_empty() {
            return Err(MediaError::NotAVideo("the video has no keyframe".into()).into());
        }
        // The plan first stored holds, should this be a second run.
        self.metadata
            .execute(&chunks::insert_plan(id, &planned))
            .await?;
        let rows = self.chunk_rows(id).await?;
        if rows.is_empty() {
            return Err(JobError::MissingRecord(id));
        }
        let spans: Vec<ChunkSpan> = rows.iter().map(|row| row.span).collect();
        tracing::info!(video = %id, chunks = spans.len(), "cutting into chunks");

        let timeout = transcode_timeout(media.duration_seconds);
        let pending: Vec<ChunkSpan> = rows
            .iter()
            .filter(|row| !row.done)
            .map(|row| row.span)
            .collect();
        let later: Vec<ChunkSpan> = pending
            .iter()
            .filter(|span| span.chunk > 0)
            .copied()
            .collect();
        let first = pending.iter().find(|span| span.chunk == 0);
        // The first chunk is cut on its own (a stream copy of its seconds),
        // so that its encode starts now, not once the whole source is cut.
        let first_source = match first {
            Some(span) => Some(
                self.cut_first_chunk(original, scratch, span, &spans, timeout)
                    .await?,
            ),
            None => None,
        };
        let (audio_stored, audio_stored_rx) = watch::channel(media.audio_codec.is_none());
        // Other workers start on the later chunks while this one encodes
        // the first: the source is cut, their sources uploaded, then they
        // are announced.
        let hand_out = async {
            if later.is_empty() {
                return Ok(());
            }
            let sources = scratch.join("chunks");
            tokio::fs::create_dir_all(&sources)
                .await
                .map_err(JobError::Scratch)?;
            let cut = media::split_args(original, &sources, &chunks::cut_times(&spans), None);
            media::run_ffmpeg(&cut, timeout).await?;
            // Owned paths and keys: futures built by a closure that borrows
            // trip the compiler's proof that the job is `Send`.
            let files: Vec<(PathBuf, String)> = later
                .iter()
                .map(|span| {
                    (
                        sources.join(chunks::source_name(span.chunk)),
                        chunks::source_key(id, span.chunk),
                    )
                })
                .collect();
            let storage = &self.storage;
            let uploads = files.into_iter().map(|(path, key)| async move {
                storage
                    .upload_file(&path, &key, "application/octet-stream")
                    .await
            });
            futures::stream::iter(uploads)
                .buffer_unordered(PARALLEL_UPLOADS)
                .try_collect::<Vec<()>>()
                .await?;
            for span in &later {
                self.announce_chunk(&ChunkJob {
                    video_id: id,
                    span: *span,
                    chunks: spans.len() as u32,
                    source: media.clone(),
                })
                .await?;
            }
            Ok::<_, JobError>(())
        };
        // The sound, once for the whole source, alongside the first chunk,
        // published as it grows: the master may name it from its first
        // segment on.
        let encode_audio = async {
            if media.audio_codec.is_some() {
                let hls = scratch.join("hls");
                let audio = hls.join(AUDIO_RENDITION);
                tokio::fs::create_dir_all(&audio)
                    .await
                    .map_err(JobError::Scratch)?;
                let args = media::audio_rendition_args(original, &audio);
                let encode = media::run_ffmpeg(&args, timeout);
                let mut publisher =
                    HlsPublisher::rendition(&self.storage, id, &hls, AUDIO_RENDITION);
                let mut encoding = publisher.while_encoding(encode);
                if encoding.until_playable().await? {
                    audio_stored.send_replace(true);
                }
                encoding.until_ended().await?;
                publisher.close().await?;
                audio_stored.send_replace(true);
            }
            Ok::<_, JobError>(())
        };
        let encode_first = async {
            let (Some(span), Some(source_path)) = (first, &first_source) else {
                return Ok(false);
            };
            self.metadata.execute(&chunks::start_chunk(id, 0)).await?;
            let _in_flight = RunningJob::count(&self.metrics.chunks_in_flight);
            let output = self
                .encode_chunk(
                    id,
                    span,
                    source_path,
                    scratch,
                    media,
                    Some(audio_stored_rx.clone()),
                )
                .await?;
            // Its completion publishes a master naming the audio rendition:
            // not before that has a segment stored. (Should encoding the
            // sound fail, `try_join!` ends this wait with that error.)
            let _ = audio_stored_rx.clone().wait_for(|stored| *stored).await;
            self.complete(id, media, Completed::Chunk(0, output)).await
        };
        let ((), (), mut made_ready) = tokio::try_join!(hand_out, encode_audio, encode_first)?;

        let poster = scratch.join("thumbnail.jpg");
        let storyboard = Storyboard::plan(media.duration_seconds, media.width, media.height);
        let sprite = scratch.join(xtream_core::storyboard::SPRITE_NAME);
        let poster_args = media::thumbnail_args(original, &poster, media);
        let make_poster = media::run_ffmpeg(&poster_args, timeout);
        let make_storyboard = async {
            match &storyboard {
                Some(board) => {
                    let args = media::storyboard_args(original, &sprite, board);
                    media::run_ffmpeg(&args, timeout).await
                }
                None => Ok(()),
            }
        };
        tokio::try_join!(make_poster, make_storyboard)?;
        self.storage
            .upload_file(&poster, &keys::thumbnail(id), "image/jpeg")
            .await?;
        if let Some(board) = &storyboard {
            self.store_storyboard(id, board, &sprite, scratch).await?;
        }
        made_ready |= self.complete(id, media, Completed::Pictures).await?;
        Ok(if made_ready {
            JobEnd::Ready
        } else {
            JobEnd::Progressed
        })
    }

    /// Handles one chunk event, retrying transient errors, until the chunk
    /// is done or `stop` turns true (then it is released for redelivery).
    pub async fn process_chunk(&self, job: &ChunkJob, mut stop: watch::Receiver<bool>) -> JobEnd {
        let id = job.video_id;
        let end = tokio::select! {
            end = self.attempt_until_stopped(JobEvent::Chunk(job), &mut stop) => end,
            never = self.keep_lease(id) => match never {},
        };
        tracing::info!(video = %id, chunk = job.span.chunk, ?end, "chunk job ended");
        end
    }

    /// The job for chunk event `job` panicked: fail the video.
    pub async fn fail_chunk_after_panic(&self, job: &ChunkJob, message: String) -> JobEnd {
        self.metrics.jobs_failed.inc();
        self.give_up(JobEvent::Chunk(job), &JobError::Panicked(message), 1)
            .await
    }

    /// One try at a chunk event: encodes the first chunk of the video
    /// nobody works on, its own or not (chunks queued behind a busy
    /// worker's other jobs go to whichever worker is free, in playing
    /// order), until none is left. The event is settled only once its own
    /// chunk is done: when another job holds it, this one waits, and takes
    /// it over if that job's claim runs out (its worker died; its event may
    /// be redelivered elsewhere).
    pub(crate) async fn attempt_chunk(&self, job: &ChunkJob) -> Result<JobEnd, JobError> {
        let id = job.video_id;
        if self.record_to_work_on(id).await?.is_none() {
            return Ok(JobEnd::Skipped);
        }
        let mut encoded_any = false;
        let mut made_ready = false;
        loop {
            let claimed = self.metadata.query(&chunks::claim_chunk(id)).await?;
            if let Some(row) = claimed.first() {
                let span = span_of(row)?;
                if span.chunk != job.span.chunk {
                    tracing::info!(video = %id, chunk = span.chunk, event_chunk = job.span.chunk, "taking on a chunk nobody works on");
                }
                made_ready |= tokio::select! {
                    done = self.encode_claimed(job, &span) => done?,
                    never = self.keep_claim(id, span.chunk) => match never {},
                };
                encoded_any = true;
                continue;
            }
            let own = self
                .metadata
                .query(&chunks::chunk_done(id, job.span.chunk))
                .await?;
            let Some(own) = own.first() else {
                // No plan any more: the video was deleted meanwhile.
                return Err(JobError::MissingRecord(id));
            };
            if db::column::<bool>(own, 0)? {
                break;
            }
            tokio::time::sleep(CLAIM_POLL).await;
        }
        // Nothing encoded here (a redelivery of a done chunk): repeat the
        // completion, in case the job that counted it died before
        // finishing the video.
        if !encoded_any {
            made_ready |= self.complete(id, &job.source, Completed::Nothing).await?;
        }
        Ok(if made_ready {
            JobEnd::Ready
        } else {
            JobEnd::Progressed
        })
    }

    /// Encodes chunk `span` (claimed) of `job`'s video and completes it;
    /// returns whether that made the video ready.
    async fn encode_claimed(&self, job: &ChunkJob, span: &ChunkSpan) -> Result<bool, JobError> {
        let id = job.video_id;
        let _in_flight = RunningJob::count(&self.metrics.chunks_in_flight);
        let scratch = tempfile::Builder::new()
            .prefix(&format!("xtream-chunk-{id}-{}-", span.chunk))
            .tempdir_in(&self.work_dir)
            .map_err(JobError::Scratch)?;
        let source_path = scratch.path().join(chunks::source_name(span.chunk));
        self.storage
            .download(&chunks::source_key(id, span.chunk), &source_path)
            .await?;
        let output = self
            .encode_chunk(id, span, &source_path, scratch.path(), &job.source, None)
            .await?;
        self.complete(id, &job.source, Completed::Chunk(span.chunk, output))
            .await
    }

    /// Renews the claim on chunk `chunk` of video `id` every third of it,
    /// until dropped.
    async fn keep_claim(&self, id: VideoId, chunk: u32) -> std::convert::Infallible {
        let every = std::time::Duration::from_secs(chunks::CLAIM_SECONDS as u64 / 3);
        let renew = chunks::renew_claim(id, chunk);
        self.keep_renewing(every, &renew, id, &format!("the claim on chunk {chunk}"))
            .await
    }

    /// Cuts the first chunk of `original` (planned as `spans`, `first`
    /// the first) into a source of its own in `scratch`, reading the
    /// original only a second past the cut, within `timeout`; returns its
    /// path. The segment muxer cuts it as it cuts the whole source, at the
    /// same time.
    async fn cut_first_chunk(
        &self,
        original: &Path,
        scratch: &Path,
        first: &ChunkSpan,
        spans: &[ChunkSpan],
        timeout: std::time::Duration,
    ) -> Result<PathBuf, JobError> {
        let dir = scratch.join("first-chunk");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(JobError::Scratch)?;
        let cut = chunks::cut_times(&spans[..spans.len().min(2)]);
        let read_seconds = first.end_seconds.map(|end| end + 1.0);
        media::run_ffmpeg(
            &media::split_args(original, &dir, &cut, read_seconds),
            timeout,
        )
        .await?;
        Ok(dir.join(chunks::source_name(0)))
    }

    /// Encodes chunk `span` from its source at `source_path` into the
    /// ladder and stores its segments; returns them, by rendition. With
    /// `progressive` (the first chunk), its segments and growing playlists
    /// are published while ffmpeg writes them, with the master once
    /// `progressive` turns true (the audio rendition it names is stored),
    /// so the video plays after its first segment rather than its first
    /// chunk: no other chunk's completion publishes anything before the
    /// first one's (only chunks done from the first are), so nothing else
    /// writes the playlists meanwhile.
    async fn encode_chunk(
        &self,
        id: VideoId,
        span: &ChunkSpan,
        source_path: &Path,
        scratch: &Path,
        source: &MediaInfo,
        progressive: Option<watch::Receiver<bool>>,
    ) -> Result<ChunkOutput, JobError> {
        let ladder = &ladder_of(source)?;
        let hls = scratch.join(format!("hls-{:04}", span.chunk));
        for rung in &ladder.rungs {
            tokio::fs::create_dir_all(hls.join(&rung.name))
                .await
                .map_err(JobError::Scratch)?;
        }
        let length = span
            .end_seconds
            .map_or(source.duration_seconds, |end| end - span.start_seconds);
        let args = media::with_threads(
            media::chunk_ladder_args(
                source_path,
                &hls,
                ladder,
                source,
                &self.x264_preset,
                span,
                progressive.is_some(),
            ),
            self.ffmpeg_threads,
        );
        let encode = media::run_ffmpeg(&args, transcode_timeout(length));
        if let Some(master_may_go) = progressive {
            let master = chunks::master_playlist(ladder, source.audio_codec.is_some());
            let mut publisher = HlsPublisher::new(&self.storage, id, &hls, ladder)
                .with_master(master, master_may_go);
            let mut encoding = publisher.while_encoding(encode);
            if encoding.until_playable().await? {
                self.mark_playable(id, source).await?;
            }
            encoding.until_ended().await?;
        } else {
            encode.await?;
        }
        let mut output = ChunkOutput::new();
        for rung in &ladder.rungs {
            let segments = self
                .store_rendition_segments(id, &rung.name, &hls.join(&rung.name))
                .await?;
            if segments.is_empty() {
                return Err(MediaError::TranscodeFailed(format!(
                    "chunk {} gave no segment of {}",
                    span.chunk, rung.name
                ))
                .into());
            }
            output.insert(rung.name.clone(), segments);
        }
        Ok(output)
    }

    /// Uploads the segments of the rendition ffmpeg wrote in `dir`
    /// (`index.m3u8` names them) under `hls/{rendition}/`; returns them.
    async fn store_rendition_segments(
        &self,
        id: VideoId,
        rendition: &str,
        dir: &Path,
    ) -> Result<Vec<chunks::Segment>, JobError> {
        let playlist = tokio::fs::read_to_string(dir.join("index.m3u8"))
            .await
            .map_err(JobError::Scratch)?;
        let segments = chunks::segments_of(&playlist);
        let prefix = format!("{}{rendition}/", keys::hls_prefix(id));
        if let Some(odd) = segments
            .iter()
            .find(|segment| segment.uri.contains(['/', '\\']) || segment.uri.starts_with('.'))
        {
            return Err(JobError::Media(MediaError::TranscodeFailed(format!(
                "unexpected segment name {}",
                odd.uri
            ))));
        }
        let files: Vec<(PathBuf, String)> = segments
            .iter()
            .map(|segment| (dir.join(&segment.uri), format!("{prefix}{}", segment.uri)))
            .collect();
        let storage = &self.storage;
        let uploads = files.into_iter().map(|(path, key)| async move {
            storage
                .upload_file(&path, &key, content_type_of(&path))
                .await
                .map_err(JobError::from)
        });
        futures::stream::iter(uploads)
            .buffer_unordered(PARALLEL_UPLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(segments)
    }

    /// Every chunk of video `id`, in order.
    async fn chunk_rows(&self, id: VideoId) -> Result<Vec<ChunkRow>, JobError> {
        let rows = self.metadata.query(&chunks::select_chunks(id)).await?;
        Ok(rows.iter().map(chunk_row).collect::<Result<_, _>>()?)
    }

    /// Sends a chunk job to the chunks topic, on partition `chunk` modulo
    /// the partitions: consecutive chunks land on different partitions,
    /// and so, with the round-robin assignment, on different workers.
    async fn announce_chunk(&self, job: &ChunkJob) -> Result<(), JobError> {
        let value = serde_json::to_vec(job).expect("a chunk job always serialises");
        let key = format!("{}/{}", job.video_id, job.span.chunk);
        let partitions = self.chunk_partitions().await;
        let record = crate::kafka::Record {
            key: Some(key.as_bytes()),
            value: Some(&value),
            partition: partitions.map(|count| (job.span.chunk as i32 - 1).rem_euclid(count)),
            ..crate::kafka::Record::default()
        };
        self.publisher.publish(&self.topics.chunks, record).await?;
        Ok(())
    }

    /// How many partitions the chunks topic has, asked once; `None` while
    /// the broker does not say (then the key picks the partition).
    async fn chunk_partitions(&self) -> Option<i32> {
        if let Some(count) = self.chunk_partitions.get() {
            return Some(*count);
        }
        let brokers = self.brokers.clone();
        let topic = self.topics.chunks.clone();
        let asked = tokio::task::spawn_blocking(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            let consumer: BaseConsumer = crate::kafka::base_config(&brokers).create().ok()?;
            let metadata = consumer
                .fetch_metadata(Some(&topic), std::time::Duration::from_secs(5))
                .ok()?;
            let count = metadata.topics().first()?.partitions().len();
            i32::try_from(count).ok().filter(|count| *count > 0)
        })
        .await
        .ok()
        .flatten();
        if let Some(count) = asked {
            let _ = self.chunk_partitions.set(count);
        }
        asked
    }

    /// Completes a part of video `id`, then publishes every chunk done from
    /// the first, in order, with the plan locked; finishes the video when
    /// nothing is missing. Returns whether this call made it ready.
    async fn complete(
        &self,
        id: VideoId,
        source: &MediaInfo,
        completed: Completed,
    ) -> Result<bool, JobError> {
        let ladder = ladder_of(source)?;
        let with_audio = source.audio_codec.is_some();
        let mut client = self.metadata.client().await?;
        let transaction = client.transaction().await.map_err(DbError::from)?;
        let locked = db::query_on(&transaction, &chunks::lock_plan(id)).await?;
        let Some(lock) = locked.first() else {
            return Err(JobError::MissingRecord(id));
        };
        let mut pictures_done: bool = db::column(lock, 0)?;
        match &completed {
            Completed::Chunk(chunk, output) => {
                let counted =
                    db::execute_on(&transaction, &chunks::finish_chunk(id, *chunk, output)).await?;
                if counted == 1 {
                    self.metrics.chunks_done.inc();
                }
            }
            Completed::Pictures => {
                db::execute_on(&transaction, &chunks::finish_pictures(id)).await?;
                pictures_done = true;
            }
            Completed::Nothing => {}
        }
        let rows: Vec<ChunkRow> = db::query_on(&transaction, &chunks::select_chunks(id))
            .await?
            .iter()
            .map(chunk_row)
            .collect::<Result<_, _>>()?;
        let done: Vec<bool> = rows.iter().map(|row| row.done).collect();
        let published = chunks::done_prefix(&done);
        let every_chunk = published == rows.len();
        if published > 0 {
            let outputs: Vec<ChunkOutput> = rows[..published]
                .iter()
                .map(|row| row.output.clone().unwrap_or_default())
                .collect();
            let prefix = keys::hls_prefix(id);
            for rung in &ladder.rungs {
                let text =
                    chunks::stitched_playlist(&outputs, &rung.name, SEGMENT_SECONDS, every_chunk);
                self.storage
                    .upload_text(text, &format!("{prefix}{}/index.m3u8", rung.name), PLAYLIST)
                    .await?;
            }
            self.storage
                .upload_text(
                    chunks::master_playlist(&ladder, with_audio),
                    &keys::hls_master(id),
                    PLAYLIST,
                )
                .await?;
        }
        transaction.commit().await.map_err(DbError::from)?;
        drop(client);

        let Some(mut record) = self.metadata.record(id).await? else {
            return Err(JobError::MissingRecord(id));
        };
        // Queued again meanwhile (its lease ran out): the job cutting it
        // again finishes it.
        if record.status != VideoStatus::Transcoding {
            return Ok(false);
        }
        if every_chunk && pictures_done {
            record_media(&mut record, source, &ladder);
            record.playable = true;
            record.thumbnail = Some(keys::thumbnail(id));
            record.storyboard =
                Storyboard::plan(source.duration_seconds, source.width, source.height)
                    .map(|_| keys::storyboard_index(id));
            let record = self.advance(record, VideoStatus::Ready).await?;
            self.metrics.job_duration.observe(since_upload(&record));
            self.announce(&ready_outcome(&record))
                .await
                .map_err(JobError::ReadyUnannounced)?;
            tracing::info!(video = %id, chunks = rows.len(), "chunked video ready");
            if let Err(err) = self
                .storage
                .delete_prefix(&chunks::sources_prefix(id))
                .await
            {
                tracing::warn!(video = %id, error = %err, "cannot remove the chunk sources");
            }
            return Ok(true);
        }
        if published > 0 && !record.playable {
            self.mark_playable(id, source).await?;
        }
        Ok(false)
    }

    /// Marks video `id` playable (its master and a segment of every
    /// rendition are stored), compare-and-set on `transcoding`: a deleted
    /// video ends the job here; one queued again meanwhile is left alone.
    async fn mark_playable(&self, id: VideoId, source: &MediaInfo) -> Result<(), JobError> {
        let Some(mut record) = self.metadata.record(id).await? else {
            return Err(JobError::MissingRecord(id));
        };
        if record.status != VideoStatus::Transcoding || record.playable {
            return Ok(());
        }
        record_media(&mut record, source, &ladder_of(source)?);
        record.playable = true;
        let record = self.advance(record, VideoStatus::Transcoding).await?;
        self.metrics.time_to_playable.observe(since_upload(&record));
        tracing::info!(video = %id, "chunked video playable");
        Ok(())
    }
}

/// Seconds since the video's upload: a chunked video has no one job whose
/// start to measure from.
fn since_upload(record: &VideoRecord) -> f64 {
    (Timestamp::now().as_millisecond() - record.created_at.as_millisecond()).max(0) as f64 / 1000.0
}
