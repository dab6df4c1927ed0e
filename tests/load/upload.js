// Uploading: small raw videos through the streamed upload endpoint.
import http from 'k6/http';
import { check } from 'k6';
import { BASE, authHeaders, options as base } from './lib.js';

export const options = base(__ENV.P95_MS || 2000);
const body = open(__ENV.XTREAM_CLIP, 'b');

export default function () {
  const headers = Object.assign({ 'Content-Type': 'video/mp4' }, authHeaders());
  const response = http.post(`${BASE}/api/videos?filename=load.mp4&title=load`, body, { headers });
  check(response, { 'upload 201': (r) => r.status === 201 });
}
