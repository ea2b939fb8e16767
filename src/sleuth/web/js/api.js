// The API client of the page: the key lives in sessionStorage (this tab's session), never in a URL.
const KEY = "sleuth.key";
const ME = "sleuth.me";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  get me() {
    try { return JSON.parse(sessionStorage.getItem(ME) || "null"); } catch { return null; }
  },
  set(key, me) { sessionStorage.setItem(KEY, key); sessionStorage.setItem(ME, JSON.stringify(me)); },
  clear() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(ME); },
};

export const prefs = {
  get reviewer() { return localStorage.getItem("sleuth.reviewer") || ""; },
  set reviewer(v) { localStorage.setItem("sleuth.reviewer", v || ""); },
};

export class ApiError extends Error {
  constructor(status, body, text) {
    const msg = (body && (body.error?.message || body.message)) || text || `HTTP ${status}`;
    super(msg);
    this.status = status;
    this.body = body;
    this.code = body?.error?.code;
    this.field = body?.error?.field;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export async function api(path, { method = "GET", json, body, headers = {}, raw = false, key } = {}) {
  const hdrs = { ...headers };
  const k = key ?? session.key;
  if (k) hdrs.Authorization = `Bearer ${k}`;
  if (json !== undefined) {
    hdrs["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let r;
  try {
    r = await fetch(path, { method, headers: hdrs, body });
  } catch (e) {
    throw new ApiError(0, null, `The server did not answer (${e.message})`);
  }
  if (!r.ok) {
    const text = await r.text();
    let data = null;
    try { data = JSON.parse(text); } catch { /* not JSON */ }
    const err = new ApiError(r.status, data, text);
    if (r.status === 401 && key === undefined) onUnauthorized(err);
    throw err;
  }
  if (raw) return r;
  if (r.status === 204) return null;
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
    else u.append(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : "";
}

// fetch every page of a paged list (offset/limit)
export async function allPages(path, params = {}, limit = 200) {
  const out = [];
  let first = null;
  for (let offset = 0; ; offset += limit) {
    const page = await api(path + qs({ ...params, limit, offset }));
    first = first || page;
    out.push(...page.items);
    if (out.length >= page.total || page.items.length === 0) break;
  }
  return { ...first, items: out };
}
