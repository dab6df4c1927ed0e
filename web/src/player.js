// The player view: one video, played with hls.js where the browser has
// Media Source Extensions (so the reader can pick a rendition), or with the
// browser's own HLS support (Safari on iOS) otherwise. hls.js is loaded only
// here, on first use, so the library page never pays for it.

import { getVideo } from './api.js';
import { formatBitrate, formatBytes, formatDate, formatDuration, isFinal, statusText } from './format.js';
import { cueAt, parseStoryboard } from './storyboard.js';

/** The pinned hls.js build the web component embeds (see functions/web/build.rs). */
const HLS_MODULE = '/vendor/hls.light.min.mjs';
const HLS_TYPE = 'application/vnd.apple.mpegurl';
const REFRESH_MS = 3000;

let hlsLoading = null;
function loadHls() {
  hlsLoading ??= import(HLS_MODULE)
    .then((module) => module.default)
    .catch((error) => {
      hlsLoading = null; // let a later visit try again
      throw error;
    });
  return hlsLoading;
}

export class Player {
  constructor(root) {
    this.root = root;
    this.title = root.querySelector('#watch-title');
    this.status = root.querySelector('#watch-status');
    this.video = root.querySelector('#player');
    this.screen = root.querySelector('.screen');
    this.qualityBox = root.querySelector('#quality-box');
    this.quality = root.querySelector('#quality');
    this.qualityNow = root.querySelector('#quality-now');
    this.download = root.querySelector('#download');
    this.facts = root.querySelector('#watch-facts');
    this.seek = root.querySelector('#seek');
    this.seekBar = root.querySelector('#seek-bar');
    this.preview = root.querySelector('#seek-preview');
    this.previewPicture = root.querySelector('#seek-picture');
    this.previewTime = root.querySelector('#seek-time');
    /** The storyboard's cues, once loaded; empty for videos without one. */
    this.cues = [];
    /** The record's duration, until the media element knows its own. */
    this.knownDuration = 0;
    this.session = null;
    this.hls = null;
    this.timer = 0;
    this.waited = false;
    /** Whether playback of the current video has been set up. */
    this.started = false;

    // -1 is hls.js's automatic (bandwidth-driven) choice. currentLevel
    // switches at once, dropping what was buffered at the old quality.
    this.quality.addEventListener('change', () => {
      if (this.hls) this.hls.currentLevel = Number(this.quality.value);
    });

    // The seek bar follows playback, and moves it when dragged or keyed.
    for (const event of ['timeupdate', 'durationchange', 'loadedmetadata']) {
      this.video.addEventListener(event, () => this.followPlayback());
    }
    this.seekBar.addEventListener('input', () => {
      const time = Number(this.seekBar.value);
      this.video.currentTime = time;
      this.showPreview(time);
    });
    this.seekBar.addEventListener('pointermove', (event) => {
      const bar = this.seekBar.getBoundingClientRect();
      const fraction = Math.min(1, Math.max(0, (event.clientX - bar.left) / bar.width));
      this.showPreview(fraction * this.duration());
    });
    for (const event of ['pointerleave', 'change', 'blur']) {
      this.seekBar.addEventListener(event, () => {
        this.preview.hidden = true;
      });
    }
  }

  show(id, { focus }) {
    this.stop();
    this.root.hidden = false;
    this.session = new AbortController();
    this.waited = false;
    this.started = false;
    this.title.textContent = 'Loading…';
    this.say('');
    this.facts.replaceChildren();
    this.download.hidden = true;
    this.qualityBox.hidden = true;
    // The player shows only once there is something to play.
    this.screen.hidden = true;
    this.seek.hidden = true;
    this.video.removeAttribute('poster');
    if (focus) this.title.focus();
    this.load(id, this.session.signal);
  }

  hide() {
    this.root.hidden = true;
    this.stop();
  }

  /** Stops playback and every request and timer of the current video. */
  stop() {
    if (this.session) this.session.abort();
    this.session = null;
    clearTimeout(this.timer);
    if (this.hls) this.hls.destroy();
    this.hls = null;
    this.video.pause();
    this.video.removeAttribute('src');
    this.video.load();
    this.quality.replaceChildren();
    this.qualityNow.textContent = '';
    this.cues = [];
    this.knownDuration = 0;
    this.preview.hidden = true;
    this.seekBar.max = '0';
    this.seekBar.value = '0';
  }

  async load(id, signal) {
    let video;
    try {
      video = await getVideo(id, signal);
    } catch (error) {
      if (signal.aborted) return;
      if (error.status === 404) {
        this.title.textContent = 'Video not found';
        document.title = 'Video not found · Xtream';
        this.say('There is no video at this address.');
      } else {
        this.say(`Could not load the video (${error.message}). Trying again…`);
        this.timer = setTimeout(() => this.load(id, signal), REFRESH_MS);
      }
      return;
    }
    if (signal.aborted) return;
    this.render(video);
    // A video plays as soon as it is playable: while it still transcodes,
    // its playlists grow and the player follows them to the end.
    const playable = video.status === 'ready' || (video.status === 'transcoding' && video.playable);
    if (playable && !this.started) {
      this.started = true;
      await this.play(video, signal);
      if (signal.aborted) return;
    }
    if (video.status === 'ready') {
      // Tell whoever waited on this page; say nothing on a direct visit.
      this.say(this.waited ? 'Ready to play.' : '');
      // Pictures come with ready: the storyboard, if playback began earlier.
      if (!this.cues.length && video.playback.storyboard) this.loadStoryboard(video.playback.storyboard, signal);
    } else if (playable) {
      this.waited = true;
      this.say('Playable while it transcodes: the rest is added as it is ready.');
      this.timer = setTimeout(() => this.load(id, signal), REFRESH_MS);
    } else if (video.status === 'failed') {
      this.say(`This video cannot be played. ${statusText(video)}`);
    } else {
      // Wait on this page: the player starts by itself once it is ready.
      this.waited = true;
      this.say(`Not ready to play yet: ${statusText(video)}. The player starts when it is ready.`);
      this.timer = setTimeout(() => this.load(id, signal), REFRESH_MS);
    }
  }

  render(video) {
    if (this.title.textContent !== video.title) this.title.textContent = video.title;
    document.title = `${video.title} · Xtream`;
    const playback = video.playback || {};
    if (playback.original) {
      this.download.href = playback.original;
      this.download.setAttribute('download', video.filename || '');
      this.download.hidden = false;
    }
    if (playback.thumbnail) this.video.poster = playback.thumbnail;

    const facts = [['Status', statusText(video)]];
    if (typeof video.duration_seconds === 'number') {
      facts.push(['Duration', formatDuration(video.duration_seconds)]);
    }
    if (video.width && video.height) facts.push(['Resolution', `${video.width} × ${video.height}`]);
    if (video.renditions && video.renditions.length) {
      facts.push(['Renditions', video.renditions.map((r) => r.name).join(', ')]);
    }
    facts.push(['Size', formatBytes(video.size)]);
    facts.push(['File', video.filename]);
    facts.push(['Uploaded', formatDate(video.created_at)]);
    this.facts.replaceChildren(
      ...facts.flatMap(([term, value]) => {
        const dt = document.createElement('dt');
        dt.textContent = term;
        const dd = document.createElement('dd');
        dd.textContent = value;
        return [dt, dd];
      }),
    );
  }

  async play(video, signal) {
    const source = video.playback && video.playback.hls;
    if (!source) {
      this.say('This video is ready but has no stream address.');
      return;
    }
    this.screen.hidden = false;
    this.knownDuration = video.duration_seconds || 0;
    this.seek.hidden = false;
    this.followPlayback();
    if (video.playback.storyboard) this.loadStoryboard(video.playback.storyboard, signal);
    if (window.MediaSource || window.ManagedMediaSource) {
      let Hls = null;
      try {
        Hls = await loadHls();
      } catch {
        // Fall through to the browser's own HLS, if any.
      }
      if (signal.aborted) return;
      if (Hls && Hls.isSupported()) {
        this.attach(Hls, source, video.renditions || []);
        return;
      }
    }
    if (this.video.canPlayType(HLS_TYPE)) {
      this.video.src = source;
      this.qualityNow.textContent = '';
      this.say('Quality is chosen automatically by your browser.');
      return;
    }
    this.screen.hidden = true;
    this.say('This browser cannot play streaming video. You can download the original instead.');
  }

  attach(Hls, source, renditions) {
    // From the start even while the playlists grow (hls.js would begin an
    // EVENT playlist near its live edge).
    const hls = new Hls({ startPosition: 0 });
    this.hls = hls;
    let recoveredMedia = false;
    hls.on(Hls.Events.MANIFEST_PARSED, () => this.offerQualities(hls.levels, renditions));
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
      const level = hls.levels[data.level];
      if (level) this.qualityNow.textContent = `Playing ${levelName(level, renditions)}`;
    });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return; // hls.js retries those itself
      // A decoding hiccup is worth one recovery; anything else is final.
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !recoveredMedia) {
        recoveredMedia = true;
        hls.recoverMediaError();
        return;
      }
      this.say(`Playback failed (${data.details}). Reload the page to try again.`);
      hls.destroy();
      if (this.hls === hls) this.hls = null;
    });
    hls.loadSource(source);
    hls.attachMedia(this.video);
  }

  /** Auto, then each rendition from the best down. */
  offerQualities(levels, renditions) {
    const options = [new Option('Auto', '-1')];
    const order = levels.map((level, index) => ({ level, index })).sort((a, b) => b.level.bitrate - a.level.bitrate);
    for (const { level, index } of order) {
      options.push(new Option(`${levelName(level, renditions)} (${formatBitrate(level.bitrate)})`, String(index)));
    }
    this.quality.replaceChildren(...options);
    this.quality.value = '-1';
    this.qualityBox.hidden = levels.length < 2;
  }

  /** Fetches the storyboard's index; without it the bar just seeks. */
  async loadStoryboard(url, signal) {
    try {
      const response = await fetch(url, { signal });
      if (!response.ok) return;
      const cues = parseStoryboard(await response.text(), response.url);
      if (signal.aborted) return;
      this.cues = cues;
      // Fetch the sprite now, so the first hover shows a picture at once.
      if (cues.length) new Image().src = cues[0].url;
    } catch {
      // No previews; seeking still works.
    }
  }

  /** The length to scale the bar to: the media's own once it knows it. */
  duration() {
    const own = this.video.duration;
    return Number.isFinite(own) && own > 0 ? own : this.knownDuration;
  }

  followPlayback() {
    const duration = this.duration();
    if (String(duration) !== this.seekBar.max) this.seekBar.max = String(duration);
    // Leave the thumb alone while the reader drags it.
    if (document.activeElement !== this.seekBar) this.seekBar.value = String(this.video.currentTime);
  }

  /** Shows the time `time` and, if the storyboard has it, its picture, above that point of the bar. */
  showPreview(time) {
    const cue = cueAt(this.cues, time);
    const picture = this.previewPicture;
    picture.hidden = !cue;
    if (cue) {
      picture.style.width = `${cue.w}px`;
      picture.style.height = `${cue.h}px`;
      picture.style.backgroundImage = `url("${cue.url}")`;
      picture.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    }
    this.previewTime.textContent = formatDuration(time);
    this.preview.hidden = false;
    // Centred over the point, kept inside the bar.
    const bar = this.seekBar.getBoundingClientRect();
    const width = this.preview.offsetWidth;
    const duration = this.duration();
    const at = duration > 0 ? (time / duration) * bar.width : 0;
    this.preview.style.left = `${Math.min(Math.max(0, at - width / 2), Math.max(0, bar.width - width))}px`;
  }

  say(text) {
    if (this.status.textContent !== text) this.status.textContent = text;
  }
}

/**
 * A level's name as the record names its rendition (`720p`), matched by
 * picture size; else its short side, the way the ladder names rungs.
 */
function levelName(level, renditions) {
  const rendition = renditions.find((r) => r.width === level.width && r.height === level.height);
  if (rendition) return rendition.name;
  if (level.width && level.height) return `${Math.min(level.width, level.height)}p`;
  return formatBitrate(level.bitrate);
}
