//! Progressive publishing: the HLS ladder goes to the bucket while ffmpeg
//! writes it, so a video can be played long before it is ready.
//!
//! The order keeps every stored playlist playable: a segment is stored
//! before any playlist naming it, and the master playlist only once every
//! rendition's playlist names at least one stored segment, so whichever
//! variant a player picks, it finds something to play. While ffmpeg runs,
//! playlists are stored as it wrote them (`EVENT`, growing); once it has
//! ended, as `VOD` with `#EXT-X-ENDLIST` ([`hls::finalized`]).

use crate::job::{JobError, PARALLEL_UPLOADS, PUBLISH_EVERY, content_type_of};
use crate::media::MediaError;
use crate::storage::Storage;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};
use xtream_core::ladder::RenditionLadder;
use xtream_core::{VideoId, hls, keys};

/// Content type of every playlist.
const PLAYLIST: &str = "application/vnd.apple.mpegurl";
/// Each rendition's playlist, in its own folder, as `media::ladder_args`
/// names it.
const VARIANT_PLAYLIST: &str = "index.m3u8";
/// The master playlist, at the top of the HLS folder.
const MASTER_PLAYLIST: &str = "master.m3u8";

/// Publishes one job's HLS folder, step by step.
pub struct HlsPublisher<'a> {
    storage: &'a Storage,
    id: VideoId,
    dir: PathBuf,
    rungs: Vec<String>,
    /// Keys of the segments stored so far.
    segments: BTreeSet<String>,
    /// Each stored playlist's key and text, to store only what changed.
    playlists: BTreeMap<String, String>,
    master: Master,
}

/// Which master playlist a publisher stores.
enum Master {
    /// The one ffmpeg writes beside the renditions.
    Ffmpeg,
    /// This one, once the receiver turns true (what it names besides the
    /// publisher's folder is stored).
    Given(String, watch::Receiver<bool>),
    /// None: the folder is one rendition of a master stored elsewhere.
    None,
}

impl<'a> HlsPublisher<'a> {
    /// A publisher of the HLS folder `dir` that ffmpeg writes for `ladder`.
    pub fn new(storage: &'a Storage, id: VideoId, dir: &Path, ladder: &RenditionLadder) -> Self {
        let rungs = ladder.rungs.iter().map(|r| r.name.clone()).collect();
        Self::of(storage, id, dir, rungs, Master::Ffmpeg)
    }

    /// A publisher of the one rendition `name` that ffmpeg writes in
    /// `dir/name`, without a master (a chunked video's audio).
    pub fn rendition(storage: &'a Storage, id: VideoId, dir: &Path, name: &str) -> Self {
        Self::of(storage, id, dir, vec![name.to_owned()], Master::None)
    }

    fn of(
        storage: &'a Storage,
        id: VideoId,
        dir: &Path,
        rungs: Vec<String>,
        master: Master,
    ) -> Self {
        Self {
            storage,
            id,
            dir: dir.to_owned(),
            rungs,
            segments: BTreeSet::new(),
            playlists: BTreeMap::new(),
            master,
        }
    }

    /// Stores `master` as the master playlist instead of the one ffmpeg
    /// writes (a chunked video's names its audio rendition), and not before
    /// `may_go` turns true (that rendition is stored; it is encoded
    /// alongside).
    pub fn with_master(mut self, master: String, may_go: watch::Receiver<bool>) -> Self {
        self.master = Master::Given(master, may_go);
        self
    }

    /// Stores what ffmpeg has completed since the last call. Returns
    /// whether what it publishes is playable: the master playlist is
    /// stored, or, without a master, every rendition's playlist naming a
    /// stored segment.
    pub async fn publish(&mut self) -> Result<bool, JobError> {
        let every_rendition = self.store(false).await?;
        Ok(self.playable(every_rendition))
    }

    fn playable(&self, every_rendition: bool) -> bool {
        match self.master {
            Master::None => every_rendition,
            _ => self.playlists.contains_key(&keys::hls_master(self.id)),
        }
    }

    /// After ffmpeg ended well, for a publisher without a master: stores
    /// the segments not stored yet and the playlists final.
    pub async fn close(mut self) -> Result<(), JobError> {
        self.store_final().await
    }

    /// Stores the rest, every playlist final; what is published must be
    /// playable by then.
    async fn store_final(&mut self) -> Result<(), JobError> {
        let every_rendition = self.store(true).await?;
        if self.playable(every_rendition) {
            Ok(())
        } else {
            Err(JobError::Media(MediaError::TranscodeFailed(
                "ffmpeg ended without a segment in every rendition".into(),
            )))
        }
    }

    /// Publishes the folder every [`PUBLISH_EVERY`] while `encode`, the
    /// ffmpeg run writing it, goes on.
    pub fn while_encoding<F>(&mut self, encode: F) -> PublishedEncode<'_, 'a, F>
    where
        F: Future<Output = Result<(), MediaError>>,
    {
        let mut tick = tokio::time::interval(PUBLISH_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        PublishedEncode {
            publisher: self,
            encode: Box::pin(encode),
            tick,
            ended: false,
        }
    }

    /// After ffmpeg ended well: stores the rest, every playlist final, then
    /// deletes keys under `hls/` this run did not write (left by an earlier
    /// run with other settings).
    pub async fn finish(mut self) -> Result<(), JobError> {
        self.store_final().await?;
        let prefix = keys::hls_prefix(self.id);
        for stale in self.storage.list(&prefix).await? {
            if !self.segments.contains(&stale) && !self.playlists.contains_key(&stale) {
                self.storage.delete(&stale).await?;
            }
        }
        Ok(())
    }

    /// One pass over the folder; `last`: ffmpeg has ended, so every
    /// playlist must exist and is stored final. Returns whether every
    /// rendition's playlist names a stored segment.
    async fn store(&mut self, last: bool) -> Result<bool, JobError> {
        let prefix = keys::hls_prefix(self.id);
        let mut started = 0;
        for rung in self.rungs.clone() {
            let folder = self.dir.join(&rung);
            let Some(text) = read(&folder.join(VARIANT_PLAYLIST), last).await? else {
                continue;
            };
            let names = hls::segment_uris(&text);
            let fresh: Vec<(PathBuf, String)> = names
                .iter()
                // ffmpeg names plain files beside the playlist; anything
                // else is not ours to upload.
                .filter(|name| is_plain_name(name))
                .map(|name| (folder.join(name), format!("{prefix}{rung}/{name}")))
                .filter(|(_, key)| !self.segments.contains(key))
                .collect();
            let storage = self.storage;
            let stored: Vec<String> =
                futures::stream::iter(fresh.into_iter().map(|(path, key)| async move {
                    storage
                        .upload_file(&path, &key, content_type_of(&path))
                        .await
                        .map(|()| key)
                }))
                .buffer_unordered(PARALLEL_UPLOADS)
                .try_collect()
                .await?;
            self.segments.extend(stored);
            if !names.is_empty() {
                started += 1;
            }
            let text = if last { hls::finalized(&text) } else { text };
            self.store_playlist(format!("{prefix}{rung}/{VARIANT_PLAYLIST}"), text)
                .await?;
        }
        let every_rendition = started == self.rungs.len();
        let master = match &self.master {
            _ if !every_rendition => None,
            Master::Ffmpeg => read(&self.dir.join(MASTER_PLAYLIST), last).await?,
            Master::Given(master, may_go) => (*may_go.borrow()).then(|| master.clone()),
            Master::None => None,
        };
        if let Some(master) = master {
            self.store_playlist(keys::hls_master(self.id), master)
                .await?;
        }
        Ok(every_rendition)
    }

    async fn store_playlist(&mut self, key: String, text: String) -> Result<(), JobError> {
        if self.playlists.get(&key) == Some(&text) {
            return Ok(());
        }
        self.storage
            .upload_text(text.clone(), &key, PLAYLIST)
            .await?;
        self.playlists.insert(key, text);
        Ok(())
    }
}

/// A playlist's text; `None` if ffmpeg has not written it yet, unless it
/// must exist (`required`).
async fn read(path: &Path, required: bool) -> Result<Option<String>, JobError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == ErrorKind::NotFound && !required => Ok(None),
        Err(err) => Err(JobError::Scratch(err)),
    }
}

/// A file name with no folder in it.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.')
}

/// An ffmpeg run writing a publisher's folder, published as it goes
/// ([`HlsPublisher::while_encoding`]).
pub struct PublishedEncode<'p, 'a, F> {
    publisher: &'p mut HlsPublisher<'a>,
    encode: Pin<Box<F>>,
    tick: Interval,
    ended: bool,
}

impl<F: Future<Output = Result<(), MediaError>>> PublishedEncode<'_, '_, F> {
    /// Publishes until a publish finds the video playable (`true`) or the
    /// run ends first (`false`).
    pub async fn until_playable(&mut self) -> Result<bool, JobError> {
        self.publish(true).await
    }

    /// Publishes until the run ends.
    pub async fn until_ended(mut self) -> Result<(), JobError> {
        self.publish(false).await.map(drop)
    }

    async fn publish(&mut self, stop_when_playable: bool) -> Result<bool, JobError> {
        while !self.ended {
            tokio::select! {
                ended = &mut self.encode => {
                    ended?;
                    self.ended = true;
                }
                _ = self.tick.tick() => {
                    if self.publisher.publish().await? && stop_when_playable {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_beside_the_playlist_are_uploaded() {
        assert!(is_plain_name("segment_000.ts"));
        for name in ["../original", "/etc/passwd", ".hidden", "a/b.ts", ""] {
            assert!(!is_plain_name(name), "{name}");
        }
    }
}
