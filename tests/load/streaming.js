// Watching: master and variant playlists, then segments by byte range, as
// players seek.
import http from 'k6/http';
import { check } from 'k6';
import { BASE, options as base, videoIds } from './lib.js';

export const options = base(__ENV.P95_MS || 1000);

export function setup() {
  const ids = videoIds(true);
  if (ids.length === 0) throw new Error('no ready video to stream: seed some first');
  return { ids };
}

export default function (data) {
  const id = data.ids[Math.floor(Math.random() * data.ids.length)];
  const base = `${BASE}/api/videos/${id}/hls`;
  const master = http.get(`${base}/master.m3u8`);
  check(master, { 'master 200': (r) => r.status === 200 });
  const variant = master.body.split('\n').find((line) => line.endsWith('.m3u8'));
  const playlist = http.get(`${base}/${variant}`);
  check(playlist, { 'variant 200': (r) => r.status === 200 });
  const dir = variant.substring(0, variant.lastIndexOf('/') + 1);
  const segment = playlist.body.split('\n').find((line) => line && !line.startsWith('#'));
  const ranged = http.get(`${base}/${dir}${segment}`, { headers: { Range: 'bytes=0-65535' } });
  check(ranged, { 'segment 206': (r) => r.status === 206 });
}
