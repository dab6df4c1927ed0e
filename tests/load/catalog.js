// Browsing the catalog: pages by cursor and single videos.
import http from 'k6/http';
import { check } from 'k6';
import { BASE, options as base, videoIds } from './lib.js';

export const options = base(__ENV.P95_MS || 1000);

export function setup() {
  return { ids: videoIds(false) };
}

export default function (data) {
  const first = http.get(`${BASE}/api/videos?limit=5`);
  check(first, { 'page 200': (r) => r.status === 200 });
  const cursor = first.status === 200 ? first.json().next_cursor : null;
  if (cursor) {
    check(http.get(`${BASE}/api/videos?limit=5&cursor=${cursor}`), {
      'next page 200': (r) => r.status === 200,
    });
  }
  const id = data.ids[Math.floor(Math.random() * data.ids.length)];
  check(http.get(`${BASE}/api/videos/${id}`), { 'video 200': (r) => r.status === 200 });
}
