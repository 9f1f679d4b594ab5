// The console's one door to the public API: JSON in and out, the session cookie, and the CSRF
// token (from the page's <meta>) on every mutating call.
import { appNamedIn } from "./flownames.js";

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

// Set from the moment the page starts to leave on purpose (log out): a call that then finds the
// session gone must not send the person back to this page after they log in again.
let leaving = false;

export async function leave(to, first) {
  leaving = true;
  try {
    if (first) await first();
  } finally {
    location.assign(to);
  }
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.details = error.details;
  }
}

// A call to this server as the session: `body` as JSON, the CSRF token on a mutating call. The
// raw answer: `api` below reads it for the console; the API panel's Test shows it as it came.
export function request(method, url, body) {
  const headers = { Accept: "application/json" };
  if (!SAFE.has(method)) headers["X-CSRF-Token"] = csrfToken();
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(url, init);
}

export async function api(method, path, body) {
  return answered(await request(method, `/api/v1${path}`, body), path);
}

// The error of a call that found the session gone: what a page that stays (the editor keeps
// unsaved work from leaving) shows, not "HTTP 401".
const ENDED = {
  error: {
    code: "unauthenticated",
    message: "Your session has ended: log in again in another tab, then try again here.",
  },
};

// What the API answered to a call of `path`: its JSON, or an ApiError; a 401 (the session is
// gone) sends the person to log in again, where the login page says why.
export async function answered(answer, path) {
  if (answer.status === 401 && !path.startsWith("/auth/login")) {
    if (leaving) throw new ApiError(401, ENDED);
    const next = encodeURIComponent(location.pathname + location.search);
    location.assign(`/login?next=${next}&ended=1`);
    throw new ApiError(401, ENDED);
  }
  const text = await answer.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (exc) {
    if (answer.ok) throw exc; // an error page not of the API (a proxy's): its status says it
  }
  if (!answer.ok) throw new ApiError(answer.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const put = (path, body) => api("PUT", path, body);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);

// `blob` as the raw body of a call of `path` (`PUT /files/<path>`), as the session, with
// `progress(sent, total)` as it goes out (fetch tells nothing of an upload's progress).
export function sendBlob(method, path, blob, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, `/api/v1${path}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.upload.addEventListener("progress", (event) => progress?.(event.loaded, event.total));
    xhr.addEventListener("load", () => resolve(answered(new Response(xhr.responseText || null, { status: xhr.status }), path)));
    const cut = () => reject(new ApiError(0, { error: { code: "cut_off", message: "the connection closed before the server answered" } }));
    xhr.addEventListener("error", cut);
    xhr.addEventListener("abort", cut);
    xhr.send(blob);
  });
}

// A problem ({message, flow, app, field}: a refusal's, a stored package's warning) as a line for
// a person, naming its flow by `name` (its id -> the name a person reads it by, flownames.js
// flowName) and its app by `appName` (flownames.js appName), where the page has them: in the
// message too, where the server quotes the app's id.
export function problemLine(p, name = (id) => id, appName = (id) => id) {
  const where = [p.flow && `flow ${name(p.flow)}`, p.app && `app ${appName(p.app)}`, p.field && `field ${p.field}`]
    .filter(Boolean)
    .join(", ");
  const message = p.app ? appNamedIn(p.message, p.app, appName) : p.message;
  return where ? `${message} (${where})` : message;
}

// An error as lines for a person: validation problems one per line (problemLine). A 422's details are its problems; another answer may hold them beside other facts (400
// unknown_input: {unknown, inputs, problems}), its headline then first (it says what they share:
// the inputs the workflow's flows declare).
export function problemLines(exc, name = (id) => id, appName = (id) => id) {
  if (!(exc instanceof ApiError)) return [String(exc.message || exc)];
  const listed = Array.isArray(exc.details) ? exc.details : exc.details?.problems;
  if (!Array.isArray(listed) || !listed.length) return [exc.message];
  const lines = listed.map((p) => problemLine(p, name, appName));
  return listed === exc.details ? lines : [exc.message, ...lines];
}
