// Liveness alone: the cheapest request, to compare hosts (see baseline).
import http from 'k6/http';
import { check } from 'k6';
import { BASE, options as base } from './lib.js';

export const options = base(__ENV.P95_MS || 250);

export default function () {
  check(http.get(`${BASE}/health`), { 'health 200': (r) => r.status === 200 });
}
