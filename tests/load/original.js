// The original Xtream stress mix: liveness and the legacy listing.
import http from 'k6/http';
import { check } from 'k6';
import { BASE, options as base } from './lib.js';

export const options = base(__ENV.P95_MS || 500);

export default function () {
  check(http.get(`${BASE}/health`), { 'health 200': (r) => r.status === 200 });
  check(http.get(`${BASE}/videos`), { 'videos 200': (r) => r.status === 200 });
}
