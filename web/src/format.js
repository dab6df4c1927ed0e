// How video facts read on screen.

/** Statuses after which a video no longer changes by itself. */
export function isFinal(status) {
  return status === 'ready' || status === 'failed';
}

const STATUS_LABELS = {
  uploaded: 'Uploaded, waiting for a worker',
  queued: 'Queued for transcoding',
  transcoding: 'Transcoding…',
  ready: 'Ready',
  failed: 'Failed',
};

/** One line saying where a video is in its life, with the reason if it failed. */
export function statusText(video) {
  const label = STATUS_LABELS[video.status] || video.status;
  if (video.status === 'failed' && video.failure_reason) return `${label}: ${video.failure_reason}`;
  if (video.status === 'transcoding' && video.playable) return `${label} (playable now)`;
  if (video.status_detail) return `${label} (${video.status_detail})`;
  return label;
}

/** `0:06`, `12:04`, `1:02:03`. */
export function formatDuration(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** A duration as words, for screen readers: `6 seconds`, `1 minute 2 seconds`. */
export function durationWords(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const parts = [
    [Math.floor(total / 3600), 'hour'],
    [Math.floor((total % 3600) / 60), 'minute'],
    [total % 60, 'second'],
  ].filter(([n]) => n > 0);
  if (parts.length === 0) return '0 seconds';
  return parts.map(([n, unit]) => `${n} ${unit}${n === 1 ? '' : 's'}`).join(' ');
}

/** Bytes in decimal units, as file managers show them: `1.2 MB`. */
export function formatBytes(bytes) {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} ${units[0]}` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** `2.8 Mbit/s`. */
export function formatBitrate(bitsPerSecond) {
  return bitsPerSecond >= 1e6
    ? `${(bitsPerSecond / 1e6).toFixed(1)} Mbit/s`
    : `${Math.round(bitsPerSecond / 1e3)} kbit/s`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A timestamp in the reader's locale. */
export function formatDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
}
