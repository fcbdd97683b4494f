// Thin client for the gridwatch JSON API. Every failure becomes an ApiError
// whose message is fit to show a person: the server's error.message when it
// sent the standard {"error":{"code","message","details"}} body.

/** ApiError is a failed API call; message is the text to show. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = '', details = null, path = '' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.path = path;
  }
}

/** getJSON fetches path and returns its parsed JSON body, or throws ApiError. */
export async function getJSON(path, { signal } = {}) {
  let res;
  try {
    res = await fetch(path, { headers: { Accept: 'application/json' }, signal });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(`Cannot reach the server (${path})`, { code: 'network', path });
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: handled below, with the HTTP status for context.
  }
  if (!res.ok) {
    const e = body?.error;
    const message = e?.message || `${res.status} ${res.statusText || 'error'}`;
    throw new ApiError(message, { status: res.status, code: e?.code ?? '', details: e?.details ?? null, path });
  }
  if (body === null) {
    throw new ApiError(`The server sent an invalid response for ${path}`, { status: res.status, code: 'bad_response', path });
  }
  return body;
}
