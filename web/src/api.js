// The REST side of the server contract (docs/api.md). URLs are resolved against the page, so the dashboard works
// wherever the server mounts web/dist (normally `/`, giving `/api/v1/...`).
//
// Every call sends the session cookie; state-changing calls send the CSRF token the server handed out
// (`X-CSRFToken`). A 401 answer means "not signed in": the registered handler (main.js) shows the sign-in view.

const API = new URL("api/v1/", document.baseURI);

export class ApiError extends Error {
  constructor(message, status = 0, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let csrfToken = "";
let onUnauthorized = () => {};

/** The CSRF token for state-changing requests (set from /auth/me and /auth/login answers). */
export function setCsrfToken(token) {
  csrfToken = token || "";
}

/** `fn()` is called when any request answers 401 (the session ended). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** The absolute URL of an API path with query parameters (empty values left out). */
export function apiUrl(path, params = {}) {
  const url = new URL(path, API);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  return url;
}

/**
 * One JSON request. `body` (an object) is sent as JSON. Resolves with the parsed answer (null for 204);
 * rejects with ApiError carrying the server's one-line `error` and the HTTP status.
 */
export async function request(method, path, { params = {}, body } = {}) {
  const url = apiUrl(path, params);
  const headers = { Accept: "application/json" };
  const init = { method, headers, cache: "no-store", credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") {
    headers["X-CSRFToken"] = csrfToken;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new ApiError(`server unreachable (${e.message})`);
  }
  if (res.status === 204) return null;
  let parsed = null;
  try {
    parsed = await res.json();
  } catch {
    /* not JSON: reported below */
  }
  if (res.status === 401 && !path.startsWith("auth/")) onUnauthorized();
  if (!res.ok) throw new ApiError(parsed?.error ?? `HTTP ${res.status} for ${url.pathname}`, res.status, parsed);
  if (parsed === null) throw new ApiError(`not JSON from ${url.pathname}`, res.status);
  return parsed;
}

export const getJSON = (path, params = {}) => request("GET", path, { params });

export const fetchDevices = async () => (await getJSON("devices")).devices;
export const fetchDevice = (name) => getJSON(`devices/${encodeURIComponent(name)}`);
export const fetchSegments = async ({ device, start, end, limit = 10000 }) =>
  (await getJSON("segments", { device, start, end, limit })).segments;
export const fetchFirings = async ({ device, start, end, limit = 10000 }) =>
  (await getJSON("rules/firings", { device, start, end, limit })).firings;
export const fetchRecordings = async () => (await getJSON("recordings")).recordings;
