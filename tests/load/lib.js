// Shared by every scenario: where the platform is, how hard to push, and
// the pass/fail thresholds (0 failed requests, bounded p95).
import http from 'k6/http';

export const BASE = __ENV.XTREAM_BASE || 'http://127.0.0.1:3000';
export const API_KEY = __ENV.XTREAM_API_KEY || '';
const VUS = parseInt(__ENV.VUS || '100', 10);
const DURATION = __ENV.DURATION || '20s';

// RATE set: requests arrive at that many a second whatever the answers'
// latency (at most VUS in flight), so p95 measures the service rather than
// the queue a closed loop of VUS clients builds once the server saturates.
const RATE = parseInt(__ENV.RATE || '0', 10);

export function options(p95Ms) {
  const steady = RATE > 0
    ? {
      executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: VUS, maxVUs: VUS, gracefulStop: '10s',
    }
    : { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: '10s' };
  return {
    scenarios: { steady },
    thresholds: {
      http_req_failed: ['rate==0'],
      http_req_duration: [`p(95)<${p95Ms}`],
    },
    summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
  };
}

export function authHeaders() {
  return API_KEY ? { Authorization: `Bearer ${API_KEY}` } : {};
}

// Ids of the catalog's videos, or of the transcoded seeds (titled "Seed N"
// by ./x load) when they must be playable: the thousands of rows ./x load
// adds to the database for listing have no renditions in the bucket.
export function videoIds(playable) {
  const query = playable ? 'limit=100&status=ready&q=seed' : 'limit=100';
  return http.get(`${BASE}/api/videos?${query}`).json().videos.map((v) => v.id);
}
