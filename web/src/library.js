// The library view: the upload form and the list of videos.
//
// The list keeps one card per video id and updates cards in place, so a
// refresh never moves keyboard focus or makes images reload. It refreshes
// every few seconds while any listed video is still on its way to `ready` or
// `failed`, and stops as soon as none is.

import { getVideo, listVideos, uploadVideo } from './api.js';
import { durationWords, formatBytes, formatDate, formatDuration, isFinal, statusText } from './format.js';

const PAGE_SIZE = 20;
const REFRESH_MS = 3000;

export class Library {
  constructor(root) {
    this.root = root;
    this.heading = root.querySelector('#library-heading');
    this.list = root.querySelector('#video-list');
    this.status = root.querySelector('#videos-status');
    this.empty = root.querySelector('#videos-empty');
    this.more = root.querySelector('#videos-more');
    this.retry = root.querySelector('#videos-retry');
    /** id → {video, card} */
    this.shown = new Map();
    this.cursor = null;
    this.loaded = false;
    this.timer = 0;
    this.visible = false;
    this.failing = false;

    this.more.addEventListener('click', () => this.loadMore());
    this.retry.addEventListener('click', () => this.refresh());
    // Hidden tabs need no fresh statuses; catch up when seen again.
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && this.visible) this.refresh();
    });
    this.upload = new UploadForm(root.querySelector('#upload-form'), {
      uploaded: (video) => this.added(video),
      // A failure may still have stored the video (it is then queued
      // later), so the list looks again.
      failed: () => this.refresh(),
    });
  }

  show({ focus }) {
    this.visible = true;
    this.root.hidden = false;
    document.title = 'Xtream';
    if (focus) this.heading.focus();
    this.refresh();
  }

  hide() {
    this.visible = false;
    this.root.hidden = true;
    clearTimeout(this.timer);
  }

  /** Fetches the first page and merges it: new videos go on top, known ones update. */
  async refresh() {
    clearTimeout(this.timer);
    let page;
    try {
      page = await listVideos({ limit: PAGE_SIZE });
    } catch (error) {
      this.failed(error);
      return;
    }
    this.recovered();
    if (!this.loaded) {
      this.loaded = true;
      this.setCursor(page.next_cursor);
    }
    // Oldest first, each new one prepended: the newest ends on top.
    for (const video of [...page.videos].reverse()) this.put(video, 'top');
    // Videos still in progress below the first page are asked for one by one.
    const onPage = new Set(page.videos.map((video) => video.id));
    const behind = [...this.shown.values()]
      .filter(({ video }) => !isFinal(video.status) && !onPage.has(video.id))
      .map(({ video }) => getVideo(video.id).then((fresh) => this.put(fresh, 'bottom')).catch(() => {}));
    await Promise.all(behind);
    this.settle();
  }

  async loadMore() {
    this.more.disabled = true;
    try {
      const page = await listVideos({ limit: PAGE_SIZE, cursor: this.cursor });
      for (const video of page.videos) this.put(video, 'bottom');
      this.setCursor(page.next_cursor);
      this.status.textContent = `${page.videos.length} more video${page.videos.length === 1 ? '' : 's'} loaded.`;
    } catch (error) {
      this.status.textContent = `Could not load more videos: ${error.message}`;
    } finally {
      this.more.disabled = false;
    }
    this.settle();
  }

  /** A video uploaded from this page: shown at once, before the next refresh. */
  added(video) {
    this.put(video, 'top');
    this.settle();
  }

  setCursor(cursor) {
    this.cursor = cursor || null;
    this.more.hidden = !this.cursor;
  }

  failed(error) {
    this.failing = true;
    this.status.textContent = `Could not load the videos: ${error.message}`;
    // Keep trying while videos are known to be in progress (the server may
    // be restarting); otherwise let the reader decide.
    if (this.pending()) this.schedule();
    else this.retry.hidden = false;
  }

  /** Clears the error of a failed refresh once one succeeds. */
  recovered() {
    this.retry.hidden = true;
    if (this.failing) this.status.textContent = '';
    this.failing = false;
  }

  /** Adds or updates the card of `video`; announces it finishing. */
  put(video, where) {
    const known = this.shown.get(video.id);
    if (known) {
      const before = known.video.status;
      known.video = video;
      fillCard(known.card, video);
      if (!isFinal(before) && isFinal(video.status)) {
        this.status.textContent =
          video.status === 'ready' ? `“${video.title}” is ready to play.` : `“${video.title}” failed to transcode.`;
      }
      return;
    }
    const card = makeCard();
    fillCard(card, video);
    this.shown.set(video.id, { video, card });
    if (where === 'top') this.list.prepend(card);
    else this.list.append(card);
  }

  pending() {
    for (const { video } of this.shown.values()) if (!isFinal(video.status)) return true;
    return false;
  }

  /** Shows the empty state, and refreshes again while anything is pending. */
  settle() {
    const empty = this.shown.size === 0;
    this.list.hidden = empty;
    this.empty.hidden = !empty;
    if (this.pending()) this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    if (!this.visible) return;
    this.timer = setTimeout(() => {
      if (document.hidden) return; // visibilitychange refreshes later
      this.refresh();
    }, REFRESH_MS);
  }
}

/** An empty card; `fillCard` gives it its content. */
function makeCard() {
  const card = document.createElement('li');
  card.className = 'video';
  card.innerHTML = `
    <div class="poster">
      <img alt="" decoding="async" loading="lazy" hidden>
      <span class="duration" hidden><span aria-hidden="true"></span><span class="visually-hidden"></span></span>
    </div>
    <h3 class="video-title"><a></a></h3>
    <p class="video-status"></p>
    <p class="video-meta hint"></p>`;
  // A poster that cannot be fetched leaves the placeholder showing. (It is
  // not hidden while loading: a lazy image that is not displayed never loads.)
  const img = card.querySelector('img');
  img.addEventListener('error', () => { img.hidden = true; });
  return card;
}

function fillCard(card, video) {
  card.dataset.id = video.id;
  card.dataset.status = video.status;
  const link = card.querySelector('a');
  link.href = `#/watch/${encodeURIComponent(video.id)}`;
  setText(link, video.title);

  const status = card.querySelector('.video-status');
  status.dataset.status = video.status;
  setText(status, statusText(video));

  const thumbnail = video.playback && video.playback.thumbnail;
  const img = card.querySelector('img');
  if (thumbnail && img.getAttribute('src') !== thumbnail) {
    img.hidden = false;
    img.src = thumbnail;
  }

  const duration = card.querySelector('.duration');
  const hasDuration = typeof video.duration_seconds === 'number' && video.status === 'ready';
  duration.hidden = !hasDuration;
  if (hasDuration) {
    // "0:06" on screen, "Duration: 6 seconds" to a screen reader.
    const [shown, spoken] = duration.children;
    setText(shown, formatDuration(video.duration_seconds));
    setText(spoken, `Duration: ${durationWords(video.duration_seconds)}`);
  }

  setText(card.querySelector('.video-meta'), `${formatBytes(video.size)} · ${formatDate(video.created_at)}`);
}

/** Sets text only when it changed, so live regions and layout stay calm. */
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

/** Where the upload form remembers the API key. */
const API_KEY_STORAGE = 'xtream.apiKey';

/** The upload form: XMLHttpRequest with a progress bar, cancel, and the server's error message on failure. */
class UploadForm {
  constructor(form, on) {
    this.form = form;
    this.on = on;
    this.file = form.querySelector('#upload-file');
    this.title = form.querySelector('#upload-title');
    this.key = form.querySelector('#upload-key');
    // The key is typed once per browser, not once per upload.
    this.key.value = localStorage.getItem(API_KEY_STORAGE) || '';
    this.submit = form.querySelector('#upload-submit');
    this.cancel = form.querySelector('#upload-cancel');
    this.box = form.querySelector('#upload-progress-box');
    this.bar = form.querySelector('#upload-progress');
    this.barLabel = form.querySelector('#upload-progress-label');
    this.status = form.querySelector('#upload-status');
    this.current = null;

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.start();
    });
    this.cancel.addEventListener('click', () => this.current && this.current.abort());
  }

  async start() {
    const file = this.file.files[0];
    if (!file) {
      this.say('Choose a video file first.', 'error');
      this.file.focus();
      return;
    }
    const title = this.title.value.trim();
    const apiKey = this.key.value.trim();
    if (!apiKey) {
      this.say('Enter your API key first: uploads need one.', 'error');
      this.key.focus();
      return;
    }
    localStorage.setItem(API_KEY_STORAGE, apiKey);
    this.busy(true);
    this.progress(0, file.size);
    this.say(`Uploading ${file.name}…`);
    // Announce progress in quarters: every byte count would flood a screen
    // reader, the bar itself shows the detail.
    let announced = 0;
    this.current = uploadVideo(file, title, apiKey, (sent, total) => {
      this.progress(sent, total);
      const quarter = Math.floor((sent / total) * 4);
      if (quarter > announced && quarter < 4) {
        announced = quarter;
        this.say(`Uploading ${file.name}: ${quarter * 25}% sent.`);
      }
    });
    try {
      const video = await this.current.done;
      this.progress(file.size, file.size);
      this.say(`Uploaded “${video.title}”. It can be played once it is transcoded.`, 'ok');
      this.form.reset();
      this.key.value = apiKey;
      this.on.uploaded(video);
    } catch (error) {
      if (error.name === 'AbortError') this.say('Upload cancelled.');
      else {
        this.say(`Upload failed: ${error.message}`, 'error');
        this.on.failed();
      }
      this.box.hidden = true;
    } finally {
      this.current = null;
      this.busy(false);
    }
  }

  busy(on) {
    this.submit.disabled = on;
    this.file.disabled = on;
    this.title.disabled = on;
    this.cancel.hidden = !on;
    // Keep focus on the form when the focused control goes away.
    if (on) this.cancel.focus();
    else if (document.activeElement === this.cancel || document.activeElement === document.body) this.submit.focus();
  }

  progress(sent, total) {
    const percent = total > 0 ? Math.min(100, Math.floor((sent / total) * 100)) : 0;
    this.box.hidden = false;
    this.bar.value = percent;
    this.barLabel.textContent = total > 1 ? `${formatBytes(sent)} of ${formatBytes(total)} (${percent}%)` : `${percent}%`;
  }

  say(text, tone = '') {
    this.status.textContent = text;
    this.status.dataset.tone = tone;
  }
}
