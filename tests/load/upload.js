// Uploading: small raw videos through the streamed upload endpoint.
//
// The platform receives at most max_concurrent_uploads streamed uploads at
// once and answers one more with 503 `server_busy` and Retry-After: that is
// back-pressure keeping its memory bounded, not a failure. A VU told so
// waits as long as it is asked and sends the upload again; those answers
// are counted apart (upload_busy). An upload that ends in anything but 201
// (a 503 without Retry-After included) is a failure (upload_failed, which
// must stay 0). A VU told to wait once the run's time is up stops there:
// otherwise k6 cuts its next try short at the end, and that cut would
// count as a failed upload.
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import { BASE, authHeaders, options as base } from './lib.js';

export const options = base(__ENV.P95_MS || 2000);
// http_req_failed leaves out every 503 (expected below, since a busy answer
// is); what really failed is here.
options.thresholds.upload_failed = ['rate==0'];

const body = open(__ENV.XTREAM_CLIP, 'b');
const busy = new Counter('upload_busy');
const failed = new Rate('upload_failed');
const answers = { responseCallback: http.expectedStatuses(201, 503) };
// A VU still refused after this many waits gives up, and that upload fails.
const MAX_WAITS = 30;

// The seconds a busy answer asks to wait, or null when the answer is not
// back-pressure.
function retryAfter(response) {
  if (response.status !== 503) return null;
  const seconds = parseInt(response.headers['Retry-After'], 10);
  if (!(seconds > 0)) return null;
  let code = null;
  try {
    code = response.json('error.code');
  } catch (_) {
    return null;
  }
  return code === 'server_busy' ? seconds : null;
}

export default function () {
  const params = Object.assign(
    { headers: Object.assign({ 'Content-Type': 'video/mp4' }, authHeaders()) },
    answers,
  );
  for (let waits = 0; ; waits++) {
    const response = http.post(`${BASE}/api/videos?filename=load.mp4&title=load`, body, params);
    const wait = retryAfter(response);
    if (wait !== null && exec.scenario.progress >= 1) {
      busy.add(1);
      return;
    }
    if (wait !== null && waits < MAX_WAITS) {
      busy.add(1);
      sleep(wait);
      continue;
    }
    const created = check(response, { 'upload 201': (r) => r.status === 201 });
    failed.add(!created);
    if (!created) {
      // Said in the run's log, so that a failed upload tells why.
      console.warn(`upload ended ${response.status} after ${waits} waits: ${String(response.body).slice(0, 300)}`);
    }
    return;
  }
}
