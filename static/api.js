// The REST API. Errors come back as `{"error":{"code","message"}}`; a 401 means the
// server wants its token, which the page asks for (and never keeps itself: the server
// sets a cookie).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};

/** Called on every 401 answer. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

async function api(method, path, body, { timeoutMs = 20000 } = {}) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  init.signal = controller.signal;
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    clearTimeout(timer);
    const why = err && err.name === 'AbortError' ? 'the server did not answer in time' : 'cannot reach the server';
    throw new ApiError(0, 'network', why);
  }
  let text;
  try {
    text = await resp.text();
  } catch {
    clearTimeout(timer);
    throw new ApiError(0, 'network', 'the answer was cut off');
  }
  clearTimeout(timer);
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    if (resp.status === 401) onUnauthorized();
    const error = new ApiError(resp.status, err.code || `http_${resp.status}`, err.message || `${resp.status} ${resp.statusText}`);
    if (Array.isArray(err.paths)) error.paths = err.paths; // a merge's conflicting files
    throw error;
  }
  return data;
}

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body === undefined ? {} : body, opts);
export const del = (path, opts) => api('DELETE', path, undefined, opts);

/** A path segment or query value. */
export const enc = encodeURIComponent;
