// Seek previews: the video's storyboard is a WebVTT index whose cues each
// name a rectangle of a sprite image (`storyboard.jpg#xywh=x,y,w,h`). The
// worker writes it (crates/core/src/storyboard.rs); this reads it back and
// answers which picture to show for a point of the seek bar.

/** `HH:MM:SS.mmm` or `MM:SS.mmm` in seconds; NaN if it is neither. */
function seconds(text) {
  const match = /^(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})$/.exec(text.trim());
  if (!match) return NaN;
  const [, h = '0', m, s, ms] = match;
  return Number(h) * 3600 + Number(m) * 60 + Number(s) + Number(ms) / 1000;
}

/**
 * The cues of a storyboard index, in order: `{start, end, url, x, y, w, h}`,
 * `url` resolved against the index's own URL. Cues that do not name a
 * rectangle are left out rather than failing the whole storyboard.
 */
export function parseStoryboard(text, indexUrl) {
  const cues = [];
  for (const block of text.replace(/\r\n?/g, '\n').split(/\n{2,}/)) {
    const lines = block.split('\n').filter((line) => line.trim() !== '');
    const timing = lines.findIndex((line) => line.includes('-->'));
    if (timing < 0 || timing + 1 >= lines.length) continue;
    const [from, to] = lines[timing].split('-->');
    const start = seconds(from);
    const end = seconds(to.trim().split(/\s+/)[0]);
    const [image, fragment] = lines[timing + 1].trim().split('#xywh=');
    const rect = (fragment || '').split(',').map(Number);
    if (Number.isNaN(start) || Number.isNaN(end) || rect.length !== 4 || rect.some(Number.isNaN)) continue;
    const [x, y, w, h] = rect;
    cues.push({ start, end, url: new URL(image, indexUrl).href, x, y, w, h });
  }
  return cues;
}

/** The cue showing `time` (cues are back to back and sorted), or null. */
export function cueAt(cues, time) {
  let low = 0;
  let high = cues.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (time < cues[mid].start) high = mid - 1;
    else if (time >= cues[mid].end) low = mid + 1;
    else return cues[mid];
  }
  // Past the last cue's end (the very end of the seek bar): its last picture.
  const last = cues[cues.length - 1];
  return last && time >= last.end ? last : null;
}
