// The first catalog page alone, to compare the component with the same
// listing done natively (see baseline).
import http from 'k6/http';
import { check } from 'k6';
import { BASE, options as base } from './lib.js';

export const options = base(__ENV.P95_MS || 1000);

export default function () {
  check(http.get(`${BASE}/api/videos?limit=20`), { 'page 200': (r) => r.status === 200 });
}
