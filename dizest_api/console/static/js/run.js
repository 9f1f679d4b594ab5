// The run view, live: node colours follow flow.status, the selected flow's log grows as
// log.append events arrive, results render as they come; timeline, inputs, cancel, re-run. A run
// with more flows than the graph draws reads and follows less (bigrun.js).
import { get, post } from "./api.js";
import { appFrame, hasUI, updateResults } from "./appui.js";
import { BigRun } from "./bigrun.js";
import { $, h, keepFlowInHash, seconds, selectFlowInHash, showTab, tabs, toast, when } from "./dom.js";
import { RunStream } from "./events.js";
import { Gantt } from "./gantt.js";
import { graphOrList, tooMany } from "./flowlist.js";
import { appLabel, flowName } from "./flownames.js";
import { reasonText, statusLabel, statusShade } from "./flowstatus.js";
import { GraphView, bindZoomButtons } from "./graph.js";
import { arrangeLink, model } from "./graphmodel.js";
import { foldOlder, outputView, renderEntries } from "./render.js";

const runId = document.getElementById("main").dataset.runId;
const FINAL = new Set(["ready", "error", "cancelled"]);
// What a flow's panel shows: its newest log entries (as many as the run's report keeps) and
// results. A flow may emit 100,000 of them (an HTML one is an iframe each): all of them froze
// the tab of whoever opened the run, for 24 s at 20,000 HTML lines.
const SHOWN_LOG = 1000;
const SHOWN_RESULTS = 100;
const FRAMES = 20; // of which HTML outputs and plots unfolded (see render.js: folded)
// id -> {status, reason, log, seen, results, got, start, end, index}; seen, got: how many log
// entries and results came (the arrays keep the newest)
const flows = new Map();
let graph;
let view;
let selected = null;
let runStatus = "pending";
let rights = ["read"]; // what the caller may do with this run (the report says)
let gantt;
let big = null; // a BigRun, for a run of more flows than the graph draws

const flowState = (id) => {
  if (!flows.has(id)) flows.set(id, { status: "idle", reason: null, log: [], seen: 0, results: [], got: 0, start: null, end: null, index: null });
  return flows.get(id);
};

// What the node and the panel both say of a flow's status.
function label(f) {
  if (f.status === "pending" && f.reason) return "waiting"; // a flow slot, a retry's backoff
  return statusLabel(f.status, f.reason);
}

// A flow's node (or list row), as its state says.
const draw = (id) => view.setStatus(id, statusShade(flows.get(id).status, flows.get(id).reason), badge(flows.get(id)));

function badge(f) {
  const word = label(f);
  if (word !== f.status || f.status === "running" || f.status === "error") return word;
  if (f.reason) return f.reason; // inactive, cached, reused
  return f.index > 0 ? `#${f.index}` : "";
}

function apply(batch) {
  const touched = new Set();
  let cleared = false; // the selected flow's log was cleared (dizest.clear()): redrawn whole
  const panel = selected && $("#flow-log");
  const lines = [];
  let timed = false; // a flow started, ended or changed status: the timeline shows it
  for (const e of batch) {
    if (e.type === "workflow.status") {
      setRunStatus(e.data.status);
      continue;
    }
    if (!e.flow_id) continue;
    const f = flowState(e.flow_id);
    if (big && !big.take(f, e)) continue;
    if (e.type === "flow.status") {
      big?.moved(statusLabel(f.status, f.reason), statusLabel(e.data.status, e.data.reason ?? null));
      f.status = e.data.status;
      f.reason = e.data.reason ?? null;
      if (f.status === "running") f.start = e.ts;
      if ((f.status === "ready" || f.status === "error") && f.start) f.end = e.ts;
      touched.add(e.flow_id);
      timed = true;
    } else if (e.type === "flow.index") {
      f.index = e.data.index;
      touched.add(e.flow_id);
    } else if (e.type === "log.append") {
      f.log.push(e.data.entry);
      f.seen += 1;
      if (f.log.length > 2 * SHOWN_LOG) f.log.splice(0, f.log.length - SHOWN_LOG);
      if (panel && e.flow_id === selected) lines.push(e.data.entry);
    } else if (e.type === "log.clear") {
      f.log = [];
      f.seen = 0;
      if (panel && e.flow_id === selected) cleared = true;
    } else if (e.type === "result") {
      f.results.push(e.data);
      f.got += 1;
      if (f.results.length > 2 * SHOWN_RESULTS) f.results.splice(0, f.results.length - SHOWN_RESULTS);
      touched.add(e.flow_id);
    }
  }
  for (const id of touched) draw(id);
  if (cleared || lines.length) {
    // Only the log changes: the tab the user is on and the app's iframe stay as they are.
    const follow = panel.scrollTop + panel.clientHeight >= panel.scrollHeight - 4;
    if (cleared) panel.replaceChildren(...renderEntries(flows.get(selected).log.slice(-SHOWN_LOG), FRAMES));
    else panel.append(...renderEntries(lines.slice(-SHOWN_LOG), FRAMES));
    foldOlder(panel, FRAMES);
    for (let extra = panel.childElementCount - SHOWN_LOG; extra > 0; extra--) panel.firstElementChild.remove();
    logCut(flowState(selected));
    if (follow) panel.scrollTop = panel.scrollHeight;
  }
  if (selected && touched.has(selected)) refreshFlow();
  if (timed) gantt.changed();
  if (big?.changed) big.showCounts();
}

function setRunStatus(status) {
  runStatus = status;
  const el = $("#run-status");
  el.textContent = status;
  el.className = `status st-${status}`;
  $("#run-cancel").disabled = FINAL.has(status);
  $("#run-cancel").hidden = !rights.includes("cancel");
}

function showFlow(id) {
  selected = id;
  keepFlowInHash(id);
  const f = flowState(id);
  if (big && f.part === undefined) {
    big.load(id, f, apply).then(() => selected === id && showFlow(id), (exc) => toast(exc.message, "error"));
  }
  const node = graph.byId.get(id);
  const log = h("div", { id: "flow-log", class: "log" }, renderEntries(f.log.slice(-SHOWN_LOG), FRAMES));
  $("#flow").replaceChildren(
    h("h2", { title: id }, flowName(graph, id)),
    h("p", { class: "muted" }, `flow ${id}`, ...(node ? [" · app ", appLabel(node.appId, node.app)] : [])),
    h("p", { id: "flow-head" }),
    ...(hasUI(node && node.app) ? [h("h3", {}, "App"), appFrame(runId, id, { status: f.status, outputs: null, results: f.results })] : []),
    h("h3", {}, "Log"),
    h("p", { class: "muted", id: "flow-log-cut", hidden: true }),
    log,
    h("p", { class: "error reason", id: "flow-reason", hidden: true }),
    h("p", { class: "muted", id: "flow-drive-hint", hidden: true }, "A file it should have found in a drive? A run reads the drive of the user who started it: put the file in yours on the ", h("a", { href: "/files" }, "Files"), " page."),
    h("p", { class: "muted", id: "flow-module-hint", hidden: true }),
    h("h3", { id: "flow-results-head", hidden: true }, "Results"),
    h("div", { class: "results", id: "flow-results" }),
    h("h3", {}, "Outputs"),
    h("div", { id: "flow-outputs" }),
    h("button", { type: "button", id: "flow-rerun", hidden: !rights.includes("rerun"), onclick: () => rerun(id) }, "Re-run this flow"),
  );
  logCut(f);
  log.scrollTop = log.scrollHeight;
  refreshFlow(true);
  showTab("flow");
}

// How many of the flow's log entries its panel no longer shows.
function logCut(f) {
  const cut = f.seen - Math.min(f.log.length, SHOWN_LOG);
  const note = $("#flow-log-cut");
  note.hidden = cut <= 0;
  note.textContent = `${cut} earlier entries not shown: the newest ${SHOWN_LOG} are.`;
}

// The selected flow's status, reason, results and outputs; the log is left as it is (it only
// grows, in apply), so a status change never re-renders thousands of lines.
// A flow that failed importing a module the workers lack: where to see what they have, and
// who adds a package (the environment serves every user's flows).
function moduleHint(f) {
  const missing = f.status === "error" && /^ModuleNotFoundError: No module named '([^']+)'/.exec(f.reason || "");
  const hint = $("#flow-module-hint");
  hint.hidden = !missing;
  if (missing) hint.textContent = `${missing[1].split(".")[0]} is not installed where flows run. A workflow's Info tab lists the workers' packages and checks its requirements.txt; a package is added by the server's operator (pip install into the workers' environment, no restart).`;
}

function refreshFlow(full = false) {
  const id = selected;
  const f = flowState(id);
  const took = f.start && f.end ? ` ${seconds(f.end - f.start)}` : f.duration != null ? ` ${seconds(f.duration)}` : "";
  const shade = statusShade(f.status, f.reason);
  $("#flow-head").replaceChildren(h("span", { class: `status st-${shade}`, id: "flow-status" }, label(f)), took);
  const reason = $("#flow-reason");
  reason.hidden = !(f.reason && f.status !== "ready");
  reason.classList.toggle("error", f.status !== "pending" && shade !== "cancelled"); // a wait, a cancel: no failure
  reason.textContent = reasonText(f.status, f.reason, (flow) => flowName(graph, flow));
  $("#flow-drive-hint").hidden = !(f.status === "error" && /^FileNotFoundError\b/.test(f.reason || ""));
  moduleHint(f);
  const results = $("#flow-results");
  const shown = f.results.slice(-SHOWN_RESULTS);
  if (full || results.dataset.got !== String(f.got)) {
    results.dataset.got = f.got;
    const values = renderEntries(shown.map((r) => r.value), FRAMES);
    results.replaceChildren(...shown.map((r, i) => h("figure", {}, h("figcaption", {}, r.name), values[i])));
    $("#flow-results-head").hidden = !f.results.length;
  }
  $("#flow-rerun").disabled = !FINAL.has(runStatus);
  const box = $("#flow-outputs");
  if (f.status !== "ready") box.replaceChildren(h("p", { class: "muted" }, "none yet"));
  else if (full || box.dataset.loaded !== id) {
    box.dataset.loaded = id;
    outputs(id);
  }
}

async function outputs(id) {
  if (big && flowState(id).part === "loading") return; // they come with its part (showFlow again)
  let answer = big && flowState(id).outputs ? { outputs: flowState(id).outputs } : null; // its part's
  try {
    answer ??= await get(`/runs/${encodeURIComponent(runId)}/flows/${encodeURIComponent(id)}/outputs`);
  } catch (exc) {
    return;
  }
  updateResults(id, { status: flowState(id).status, outputs: answer.outputs, results: flowState(id).results });
  const box = $("#flow-outputs");
  if (!box || selected !== id) return;
  const items = Object.entries(answer.outputs).map(([name, preview]) =>
    h(
      "li",
      {},
      h("strong", {}, name),
      " ",
      h("a", { href: `/api/v1/runs/${encodeURIComponent(runId)}/flows/${encodeURIComponent(id)}/outputs/${encodeURIComponent(name)}`, download: "" }, "download"),
      outputView(preview),
    ),
  );
  box.replaceChildren(items.length ? h("ul", { class: "outputs" }, items) : h("p", { class: "muted" }, "no outputs"));
}

// A re-run is the caller's run: it reads the caller's drive and counts against the caller's
// runs, whoever's run it repeats; another user's code is not run so without asking.
let runOwner = "";

async function rerun(id) {
  const me = $("#me-name")?.textContent || "";
  const ask = `This run is ${runOwner}'s. Re-running flow ${id} runs its code as you: it reads your drive and counts among your runs. Re-run it?`;
  if (runOwner && me && runOwner !== me && !confirm(ask)) return;
  try {
    const run = await post(`/runs/${encodeURIComponent(runId)}/flows/${encodeURIComponent(id)}/rerun`);
    location.assign(`/runs/${encodeURIComponent(run.run_id)}`);
  } catch (exc) {
    toast(exc.message, "error");
  }
}

function params(report) {
  runOwner = report.owner || "";
  const rows = (obj) => Object.entries(obj || {}).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, h("code", {}, JSON.stringify(v)))));
  const perFlow = Object.entries(report.flow_inputs || {}).flatMap(([flow, values]) => rows(Object.fromEntries(Object.entries(values).map(([k, v]) => [`${flowName(graph, flow)}.${k}`, v]))));
  $("#params").replaceChildren(
    h("h2", {}, "Run"),
    h("dl", { class: "kv" }, h("dt", {}, "User"), h("dd", {}, report.owner || ""), h("dt", {}, "Started"), h("dd", {}, when(report.started_at)), h("dt", {}, "Finished"), h("dd", { id: "run-finished" }, when(report.finished_at))),
    h("h3", {}, "Inputs"),
    h("table", { class: "list" }, h("tbody", {}, rows(report.inputs), perFlow)),
    h("h3", {}, "Options"),
    h("table", { class: "list" }, h("tbody", {}, rows(report.options))),
  );
}

async function main() {
  tabs(); // before anything is fetched: a tab clicked while the page loads is the one shown
  const pkg = await get(`/runs/${encodeURIComponent(runId)}/dwp`);
  performance.mark("dizest:dwp");
  graph = model(pkg, { layout: arrangeLink() });
  if (tooMany(graph)) big = new BigRun(runId); // (only the package tells: it is read first)
  const reportLoaded = big ? big.states() : get(`/runs/${encodeURIComponent(runId)}`); // built from the events
  view = graphOrList($("#graph"), graph, showFlow, (box) => new GraphView(box, graph, showFlow), { status: true });
  performance.mark("dizest:graph"); // bench/bench_console.py reads it
  $("#timeline-box").open = !tooMany(graph); // a bar a flow: opened on demand past the list's threshold
  gantt = new Gantt($("#timeline-box"), $("#timeline"), flows, new Map(graph.nodes.map((n) => [n.id, flowName(graph, n.id)])));
  const report = await reportLoaded;
  bindZoomButtons(view);
  params(report);
  rights = report.rights || rights;
  setRunStatus(report.status);
  if (report.workflow_id) {
    const link = $("#run-workflow");
    link.href = `/workflows/${encodeURIComponent(report.workflow_id)}`;
    if (report.workflow_title != null) {
      link.textContent = report.workflow_title;
      link.title = `its workflow: ${report.workflow_title}`;
      document.title = `${report.workflow_title} · run ${runId.slice(0, 12)} · dizest`;
    }
    link.classList.remove("later"); // (its place was kept: see console.css)
    link.removeAttribute("aria-hidden");
    link.removeAttribute("tabindex");
  }
  $("#run-cancel").addEventListener("click", async () => {
    try {
      await post(`/runs/${encodeURIComponent(runId)}/cancel`);
      toast("Cancel requested");
    } catch (exc) {
      toast(exc.message, "error");
    }
  });
  // Statuses start from the report (authoritative); logs, results and times come from the events.
  setStatuses(report);
  selectFlowInHash((id) => graph.byId.has(id), (id) => view.select(id));
  showFailure(report);
  const live = $("#run-live");
  // a big run's page follows from the state it read (nothing to follow once the run ended)
  const stream = big && FINAL.has(report.status) ? null : new RunStream(runId, apply, (state) => {
    live.textContent = state === "live" ? "● live" : state === "reconnecting" ? "reconnecting…" : "";
    live.dataset.state = state;
    if (state === "ended") reconcile();
  }, big ? report.last_event_id : null);
  window.dizestRun = { stream, flows, view }; // for the benchmark and tests: read-only use
}

// Statuses from a report (authoritative); a big run's durations too (its events are not read).
function setStatuses(report) {
  big?.counted(report);
  for (const [id, f] of Object.entries(report.flows)) {
    Object.assign(flowState(id), { status: f.status, reason: f.reason, index: f.index }, big ? { duration: f.duration_s } : {});
    draw(id);
  }
}

// A failed run, with no flow chosen, opens on the first of its flows (in package order) that
// failed: where its user has to look, without a search through the graph.
function showFailure(report) {
  if (selected || report.status !== "error") return;
  const failed = graph.nodes.find((n) => report.flows[n.id]?.status === "error");
  if (failed) view.select(failed.id);
}

async function reconcile() {
  const report = await (big ? big.states() : get(`/runs/${encodeURIComponent(runId)}`));
  setStatuses(report);
  showFailure(report);
  setRunStatus(report.status);
  $("#run-finished") && ($("#run-finished").textContent = when(report.finished_at));
  if (selected) refreshFlow();
}

main().catch((exc) => toast(exc.message, "error"));
