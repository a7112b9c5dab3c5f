// The API client of the app. Authentication is the HttpOnly session cookie the server set at
// sign-in (the key itself is never stored by the page); every state-changing call carries the
// session's CSRF token, which lives only in this module's memory and is fetched again from
// GET /api/v1/session after a reload.

let session = null;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function currentSession() {
  return session;
}

export function isAdmin() {
  return session && session.role === "admin";
}

function headers(method, body) {
  const out = {};
  if (body !== undefined) out["Content-Type"] = "application/json";
  if (method !== "GET" && session) out["X-Strata-CSRF"] = session.csrf;
  return out;
}

/** Calls the API; resolves to the JSON answer, or throws ApiError with the server's message. */
export async function api(method, path, body, { signal } = {}) {
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers: headers(method, body),
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) {
    if (res.status === 401 && path !== "/session") onSignedOut();
    throw new ApiError(res.status, (json && json.error) || `${res.status} ${res.statusText}`);
  }
  if (json && json.error) throw new ApiError(500, json.error); // a streamed answer that failed late
  return json;
}

let signedOutHandler = () => {};
export function setSignedOutHandler(fn) { signedOutHandler = fn; }
function onSignedOut() {
  session = null;
  signedOutHandler();
}

export async function loadSession() {
  try {
    session = await api("GET", "/session");
  } catch {
    session = null;
  }
  return session;
}

export async function signIn(key) {
  session = await api("POST", "/session", { key });
  return session;
}

export async function signOut() {
  try { await api("DELETE", "/session"); } finally { session = null; }
}

/** Runs SQL; the answer is {columns:[{name,type}], rows:[[...]]}. */
export function sql(text, opts) {
  return api("POST", "/sql", { sql: text }, opts);
}

/**
 * A live query over Server-Sent Events read from a streaming fetch (EventSource cannot POST or
 * send the CSRF header). onEvent(name, data) gets each event; returns a stop function.
 */
export function live(text, onEvent) {
  const ctl = new AbortController();
  (async () => {
    const res = await fetch("/api/v1/sql/live", {
      method: "POST",
      headers: headers("POST", {}),
      body: JSON.stringify({ sql: text }),
      credentials: "same-origin",
      signal: ctl.signal,
    });
    if (!res.ok) {
      const json = await res.json().catch(() => ({}));
      onEvent("error", { error: json.error || `${res.status}` });
      return;
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        dispatch(buf.slice(0, end), onEvent);
        buf = buf.slice(end + 2);
      }
    }
    onEvent("end", {});
  })().catch((e) => {
    if (e.name !== "AbortError") onEvent("error", { error: String(e.message || e) });
  });
  return () => ctl.abort();
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (!data.length) return; // keep-alive comment
  let parsed;
  try { parsed = JSON.parse(data.join("\n")); } catch { parsed = { error: data.join("\n") }; }
  onEvent(name, parsed);
}
