// The Xtream HTTP API, as the pages use it. Every error the API answers is
// `{"error":{"code","message"}}`; callers get an ApiError carrying both, so
// they can show the server's own words.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** The ApiError for a failed response, from its JSON body if it has one. */
function errorFrom(status, statusText, body) {
  const error = body && body.error;
  if (error && typeof error.message === 'string') {
    return new ApiError(status, error.code, error.message);
  }
  return new ApiError(status, 'http_error', `The server answered ${status} ${statusText}`.trim());
}

async function getJson(url, signal) {
  let response;
  try {
    response = await fetch(url, { headers: { accept: 'application/json' }, signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw errorFrom(response.status, response.statusText, body);
  return body;
}

/** One page of videos, newest first: `{videos, next_cursor}`. */
export function listVideos({ limit = 20, cursor = null, signal } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (cursor) query.set('cursor', cursor);
  return getJson(`/api/videos?${query}`, signal);
}

/** One video record. */
export function getVideo(id, signal) {
  return getJson(`/api/videos/${encodeURIComponent(id)}`, signal);
}

/**
 * Uploads `file` as multipart/form-data (fields `title`, `video`) with the
 * API key `apiKey`.
 * XMLHttpRequest rather than fetch: only it reports upload progress.
 * `onProgress(sent, total)` is called as bytes leave. Returns
 * `{done, abort}`: `done` resolves to the new record or rejects with an
 * ApiError (or an Error named AbortError after `abort()`).
 */
export function uploadVideo(file, title, apiKey, onProgress) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    const form = new FormData();
    // The title goes first so the server has it before the file streams in.
    if (title) form.append('title', title);
    form.append('video', file, file.name);

    xhr.upload.addEventListener('progress', (event) => {
      onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    });
    xhr.addEventListener('load', () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON (a proxy's error page, say): reported by status below.
      }
      if (xhr.status === 201 && body) resolve(body);
      else reject(errorFrom(xhr.status, xhr.statusText, body));
    });
    xhr.addEventListener('error', () => {
      reject(new ApiError(0, 'network', 'The upload was interrupted: the server cannot be reached.'));
    });
    xhr.addEventListener('abort', () => {
      reject(new DOMException('The upload was cancelled.', 'AbortError'));
    });
    xhr.open('POST', '/api/videos');
    xhr.setRequestHeader('accept', 'application/json');
    // Writes need a key (reads are public); the server says 401/403 otherwise.
    if (apiKey) xhr.setRequestHeader('authorization', `Bearer ${apiKey}`);
    xhr.send(form);
  });
  return { done, abort: () => xhr.abort() };
}
