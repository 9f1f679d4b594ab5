// App UI mode: an app's own UI (html, js, css) for one flow, in an iframe of its own origin.
// The document comes from GET /runs/<run>/flows/<flow>/ui (sandboxed by its own CSP too, see
// dizest_api/console/appui.py); this module is the console's end of its bridge: it answers
// only messages from that iframe's window (an opaque origin: "null"), forwards only `api`
// calls of that flow to POST /api/v1/runs/<run>/flows/<flow>/api/<name>, and sends the
// flow's latest results when the UI is ready and whenever they change. The UI's own errors
// (the bridge reports them) show as text in a red note above its frame: a UI whose script
// failed was a blank box, and its author had no way to know why.
import { csrfToken } from "./api.js";
import { h } from "./dom.js";

const NAME = /^[A-Za-z][A-Za-z0-9_]{0,99}$/;
const frames = new Map(); // flow id -> {iframe, runId, results, note, errors, more, drawing}
const ERRORS_SHOWN = 5; // the newest; older ones are counted
const MESSAGE_MAX = 500; // characters of an error's message (the bridge cuts it too: a frame need not)

export function hasUI(app) {
  return !!app && ["html", "js"].some((k) => typeof app[k] === "string" && app[k].trim());
}

// The iframe showing `flowId`'s app UI, under the note of its errors (hidden until one comes);
// `results` is the flow's latest {status, outputs, results}.
export function appFrame(runId, flowId, results) {
  // the key this session's run page was given: over plain http, the UI is served only with it
  const key = document.getElementById("main").dataset.frameKey || "";
  const src = `/runs/${encodeURIComponent(runId)}/flows/${encodeURIComponent(flowId)}/ui?frame=${encodeURIComponent(key)}`;
  const iframe = h("iframe", { class: "result-html app-ui", sandbox: "allow-scripts", src, title: `UI of flow ${flowId}`, referrerpolicy: "same-origin" });
  const note = h("div", { class: "app-ui-errors", role: "status", hidden: true });
  frames.set(flowId, { iframe, runId, results, note, errors: [], more: 0, drawing: false });
  return h("div", { class: "app-ui-frame" }, note, iframe);
}

// New results for a flow: the UI showing it (if any) gets them.
export function updateResults(flowId, results) {
  const entry = frames.get(flowId);
  if (!entry) return;
  entry.results = results;
  send(entry, { dizest: "results", data: results });
}

function send(entry, message) {
  if (!entry.iframe.isConnected || !entry.iframe.contentWindow) return;
  // an opaque origin cannot be named as a target: the window itself is the address
  entry.iframe.contentWindow.postMessage(message, "*");
}

function sourceOf(event) {
  for (const [flowId, entry] of frames) {
    if (!entry.iframe.isConnected) frames.delete(flowId);
    else if (entry.iframe.contentWindow === event.source) return [flowId, entry];
  }
  return [null, null];
}

async function forward(flowId, entry, msg) {
  const url = `/api/v1/runs/${encodeURIComponent(entry.runId)}/flows/${encodeURIComponent(flowId)}/api/${msg.name}`;
  let answer;
  try {
    answer = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(msg.body ?? null),
    });
  } catch (exc) {
    send(entry, { dizest: "answer", id: msg.id, ok: false, status: 0, data: String(exc.message || exc) });
    return;
  }
  const type = answer.headers.get("Content-Type") || "";
  let data;
  if (type.startsWith("application/json")) data = await answer.json().catch(() => null);
  else if (type.startsWith("text/")) data = await answer.text();
  else data = await answer.blob();
  send(entry, { dizest: "answer", id: msg.id, ok: answer.ok, status: answer.status, data });
}

// An error the UI reported: kept as text ({message, line, part} of any other shape is
// dropped), and drawn at most once a frame, however fast a frame sends them.
function reported(entry, msg) {
  if (typeof msg.message !== "string") return;
  const part = msg.part === "js" || msg.part === "html" ? `${msg.part} ` : "";
  const where = Number.isInteger(msg.line) && msg.line > 0 ? ` (${part}line ${msg.line})` : "";
  const text = `UI error: ${msg.message.slice(0, MESSAGE_MAX)}${where}`;
  const last = entry.errors.at(-1);
  if (last?.text === text) last.times += 1;
  else entry.errors.push({ text, times: 1 });
  if (entry.errors.length > ERRORS_SHOWN) entry.more += entry.errors.shift().times;
  if (entry.drawing) return;
  entry.drawing = true;
  requestAnimationFrame(() => {
    entry.drawing = false;
    const lines = entry.errors.map((e) => h("div", {}, e.times > 1 ? `${e.text} ×${e.times}` : e.text));
    const more = entry.more ? [h("div", { class: "more" }, `and ${entry.more} earlier`)] : [];
    entry.note.replaceChildren(...more, ...lines);
    entry.note.hidden = false;
  });
}

window.addEventListener("message", (event) => {
  const [flowId, entry] = sourceOf(event);
  if (!entry || event.origin !== "null") return; // only our sandboxed frames speak here
  const msg = event.data;
  if (!msg || typeof msg !== "object") return;
  if (msg.dizest === "ready") send(entry, { dizest: "results", data: entry.results });
  else if (msg.dizest === "error") reported(entry, msg);
  else if (msg.dizest === "api" && (typeof msg.id === "number" || typeof msg.id === "string") && typeof msg.name === "string" && NAME.test(msg.name)) forward(flowId, entry, msg);
});
