// The one way the UI talks to the backend: call(method, params) → Promise<envelope>.
// Desktop window: pywebview's js_api (window.pywebview.api[method]).
// Browser (--serve): POST /api/<method> with the per-run secret from the page URL.
// Either way the promise always resolves to {ok: true, ...} or {ok: false, error: {code, message}};
// transport failures become envelopes too, so callers handle one shape.

const SECRET_KEY = "sinkvis-secret";

// The secret arrives as ?secret=...; keep it for reloads in sessionStorage and take it
// out of the address bar so it does not end up in screenshots or history.
function readSecret() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("secret");
  if (fromUrl) {
    try { sessionStorage.setItem(SECRET_KEY, fromUrl); } catch { /* storage may be off */ }
    url.searchParams.delete("secret");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    return fromUrl;
  }
  try { return sessionStorage.getItem(SECRET_KEY); } catch { return null; }
}

const secret = readSecret();
export const mode = secret ? "browser" : "window";

const listeners = new Set();
/** Subscribe to every finished call: fn({method, params, envelope, ms}). Used by the status line. */
export function onCall(fn) { listeners.add(fn); return () => listeners.delete(fn); }

// pywebview injects window.pywebview early but fills .api later, then fires `pywebviewready`.
const ready = mode === "browser" ? Promise.resolve() : new Promise((resolve) => {
  if (window.pywebview && window.pywebview.api && Object.keys(window.pywebview.api).length) resolve();
  else window.addEventListener("pywebviewready", () => resolve(), { once: true });
});

function fail(code, message) { return { ok: false, error: { code, message } }; }

async function viaPywebview(method, params) {
  const fn = window.pywebview.api[method];
  if (typeof fn !== "function") return fail("not_available", `The backend has no method "${method}" yet.`);
  return fn(params);
}

async function viaHttp(method, params) {
  const resp = await fetch("/api/" + encodeURIComponent(method), {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-SinkVis-Secret": secret },
    body: JSON.stringify(params),
  });
  const text = await resp.text();
  try { return JSON.parse(text); } catch { return fail("http_" + resp.status, text.slice(0, 200) || resp.statusText); }
}

export async function call(method, params = {}) {
  const t0 = performance.now();
  let envelope;
  try {
    await ready;
    envelope = await (mode === "browser" ? viaHttp : viaPywebview)(method, params || {});
    if (!envelope || typeof envelope !== "object") envelope = fail("bad_response", `${method} returned nothing.`);
  } catch (exc) {
    envelope = fail("bridge", `${method}: ${exc && exc.message ? exc.message : exc}`);
  }
  const ms = performance.now() - t0;
  for (const fn of listeners) fn({ method, params, envelope, ms });
  return envelope;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Poll job_status until the job ends. onProgress(status) sees every running status.
 * Resolves to {ok: true, result, status} when done, else an error envelope (code "cancelled" when cancelled).
 */
export async function pollJob(jobId, onProgress, intervalMs = 200) {
  for (;;) {
    const st = await call("job_status", { job_id: jobId });
    if (!st.ok) return st;
    if (onProgress) onProgress(st);
    if (st.state === "done") return { ok: true, result: st.result, status: st };
    if (st.state === "error" || st.state === "cancelled") {
      return { ok: false, error: st.error || { code: st.state, message: st.stage || st.state }, status: st };
    }
    await sleep(intervalMs);
  }
}

/** Start a long job (a method returning {job_id}) and poll it to the end. */
export async function runJob(method, params, onProgress, onStarted) {
  const started = await call(method, params);
  if (!started.ok) return started;
  if (!started.job_id) return { ok: true, result: started };  // a method that finished at once
  if (onStarted) onStarted(started.job_id);
  return pollJob(started.job_id, onProgress);
}
