// Title search: a word that a fifth of the seeded catalog's titles start
// with, plus a status filter, first page. Compared with the same query done
// natively (see baseline). The target: p95 under 50 ms at 100 VUs.
import http from 'k6/http';
import { check } from 'k6';
import { BASE, options as base } from './lib.js';

export const options = base(__ENV.P95_MS || 1000);

const WORDS = ['holi', 'concert', 'lect', 'match', 'garden'];

export default function () {
  const word = WORDS[Math.floor(Math.random() * WORDS.length)];
  check(http.get(`${BASE}/api/videos?limit=20&status=ready&q=${word}`), {
    'page 200': (r) => r.status === 200,
    'matches found': (r) => r.status === 200 && r.json().videos.length > 0,
  });
}
