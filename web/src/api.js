// The REST side of the server contract (docs/api.md). URLs are resolved against the page, so the dashboard works
// wherever the server mounts web/dist (normally `/`, giving `/api/v1/...`).

const API = new URL("api/v1/", document.baseURI);

export class ApiError extends Error {}

async function getJSON(path, params = {}) {
  const url = new URL(path, API);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  let res;
  try {
    res = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (e) {
    throw new ApiError(`server unreachable (${e.message})`);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON: reported below */
  }
  if (!res.ok) throw new ApiError(body?.error ?? `HTTP ${res.status} for ${url.pathname}`);
  if (body === null) throw new ApiError(`not JSON from ${url.pathname}`);
  return body;
}

export const fetchDevices = async () => (await getJSON("devices")).devices;
export const fetchDevice = (name) => getJSON(`devices/${encodeURIComponent(name)}`);
export const fetchSegments = async ({ device, start, end, limit = 10000 }) =>
  (await getJSON("segments", { device, start, end, limit })).segments;
export const fetchFirings = async ({ device, start, end, limit = 10000 }) =>
  (await getJSON("rules/firings", { device, start, end, limit })).firings;
