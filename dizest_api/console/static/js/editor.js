// The workflow editor (a mode of the workflow view): add flows from any app, connect ports by
// dragging, edit variables, apps and code, validate as you type, save a new version (409 when
// someone saved since: reload or save as a copy: editor-save.js), undo/redo, and run all or one
// flow with the status, log and results under each node.
import { get, post } from "./api.js";
import { $, h, keepFlowInHash, selectFlowInHash, showTab, tabs, toast } from "./dom.js";
import { editableVariable, lockPanel, markSyntax, onAddToCanvas, openApp, showApp } from "./editor-app.js";
import { EditorCanvas } from "./editor-canvas.js";
import { Doc } from "./editor-doc.js";
import { NodeFollow } from "./editor-follow.js";
import { localProblems } from "./editor-problems.js";
import { EditorRuns } from "./editor-run.js";
import { EditorSave } from "./editor-save.js";
import { EditorUI } from "./editor-ui.js";
import { FlowList, tooMany } from "./flowlist.js";
import { appLabel, appName, flowName } from "./flownames.js";
import { bindZoomButtons } from "./graph.js";
import { model } from "./graphmodel.js";
import { showInfo } from "./wfinfo.js";

const wfId = document.getElementById("main").dataset.workflowId;
const TYPING = /^(var |title |code |source |app title |input |info )/; // labels of changes made by typing in a panel
const MOVED = /^(move$|nudge )/; // labels of a node's move: the canvas has drawn it already
let wf;
let doc;
let canvas;
let plugins = [];
let selected = null;
let selectedEdge = null; // {from, out, to, in}: the Delete key removes it
let syntax = []; // the API's syntax_error problems, per app
let problems = [];
let auto = new Map(); // positions the first layout gave flows whose own overlapped or were missing
let readOnly = false; // the caller's grant does not allow saving, or the workflow is too large
let readOnlyWhy = "your grant does not allow saving";
let canRun = false; // runs from the editor are offered (not on a workflow too large to draw)
let runs = null; // EditorRuns
let saver = null; // EditorSave
let follow; // NodeFollow: a node's title and UI toggle as the panels are typed in
const HINT = [...$("#flow").children]; // the Flow panel with no flow: the page's hint (its keys too)

const name = (id) => flowName(canvas.graph, id); // a flow as a person reads it (its id in a tooltip)
const appNamed = (id) => appName(doc.pkg.apps, id); // an app, likewise

function buildGraph() {
  const g = model(doc.pkg, { layout: false });
  for (const n of g.nodes) {
    const a = auto.get(n.id);
    if (a && n.flow.pos_x === a.px && n.flow.pos_y === a.py) Object.assign(n, { x: a.x, y: a.y });
    else if (!Number.isFinite(n.x) || !Number.isFinite(n.y)) Object.assign(n, { x: 40, y: 40 });
  }
  return g;
}

function allProblems() {
  const withFlows = [];
  for (const p of syntax) {
    if (!doc.app(p.app)) continue;
    const flows = doc.flowsOf(p.app);
    if (!flows.length) withFlows.push({ ...p, flow: null });
    for (const f of flows) withFlows.push({ ...p, flow: f.id });
  }
  return [...localProblems(doc.pkg), ...withFlows];
}

function changed(label) {
  if (!/^(title |info )/.test(label)) problems = allProblems(); // (a title or info makes no problem)
  // A move is already on screen (the canvas dragged or nudged the node there), a variable is not
  // drawn, a title is one node's, a source only shows as its app's UI toggle: no redraw of the
  // whole graph (editor-follow.js).
  if (label.startsWith("title ")) follow.title(label.slice(6));
  else if (label.startsWith("source ")) follow.source(label.slice(7));
  else if (!/^(code |var |info )/.test(label) && !MOVED.test(label)) canvas.setGraph(buildGraph(), problems);
  $("#cycle-msg").hidden ||= true;
  if (label.startsWith("code ")) queueCheck(label.slice(5));
  if (label === "undo" || label === "redo") for (const id of Object.keys(doc.pkg.apps)) queueCheck(id);
  if (!TYPING.test(label)) {
    if (selected && !doc.pkg.flow[selected]) selected = null;
    showFlow(selected, false);
    if (openApp() && !MOVED.test(label) && label !== "connect" && label !== "disconnect") showApp(doc, openApp(), problems);
    appList();
    showInfo(doc, wf, readOnly);
  } else if (label.startsWith("app title ")) appList();
  refreshState();
}

// Each keystroke calls this: what did not change is not written (the same text written again
// laid out the page and its 1,000-flow graph: 80 ms a keystroke on dag1000).
let shownProblems = null;
function refreshState() {
  if ($("#undo").disabled !== !doc.undoStack.length) $("#undo").disabled = !doc.undoStack.length;
  if ($("#redo").disabled !== !doc.redoStack.length) $("#redo").disabled = !doc.redoStack.length;
  const state = versionState();
  const text = readOnly ? `read-only: ${readOnlyWhy} · ${state}` : state;
  if ($("#ed-state").textContent !== text) $("#ed-state").textContent = text;
  if ($("#ed-state").dataset.dirty !== (doc.dirty ? "1" : "")) $("#ed-state").dataset.dirty = doc.dirty ? "1" : "";
  if (shownProblems === problems) return;
  shownProblems = problems;
  // a problem of a flow names it; one of an app no flow uses (its code), the app
  const whose = (p) => (p.flow ? `${name(p.flow)}: ` : p.app ? `${appNamed(p.app)}: ` : "");
  $("#problems").replaceChildren(...problems.map((p) => h("li", { dataset: { flow: p.flow || "", app: p.app || "", code: p.code }, title: p.flow || p.app || "" }, whose(p) + p.message)));
}

// The version on the canvas, as the toolbar says it: an older one is named as such (its runs run
// it; a save makes it, changes and all, the next version: editor-save.js asks first).
function versionState() {
  const { version, latest_version: latest } = wf;
  if (version >= latest) return doc.dirty ? "unsaved changes" : `saved · v${version}`;
  return `${doc.dirty ? "unsaved changes to " : ""}v${version} (older; latest v${latest})`;
}

// An older version is named in the address and the View link (a reload, or View, shows it
// again); the latest is the plain address.
function showVersion() {
  const query = wf.version < wf.latest_version ? `?version=${wf.version}` : "";
  $("#wf-view").setAttribute("href", `/workflows/${encodeURIComponent(wfId)}${query}`);
  if (location.search !== query) history.replaceState(history.state, "", `${location.pathname}${query}${location.hash}`);
}

// Syntax errors come from the API (POST /workflows/validate): the apps changed since the last
// check, in one request, debounced; the canvas is redrawn only when the answer differs.
const pendingChecks = new Set();
let checkTimer = 0;

// What the server finds in an app's code as it is typed: a syntax error, and an import no live
// worker can satisfy (a warning: dizest_api/import_check.py).
const CODE_PROBLEMS = new Set(["syntax_error", "missing_module"]);

function queueCheck(appId) {
  pendingChecks.add(appId);
  clearTimeout(checkTimer);
  checkTimer = setTimeout(check, 400);
}

async function check() {
  const ids = [...pendingChecks];
  pendingChecks.clear();
  const apps = Object.fromEntries(ids.filter((id) => doc.app(id)).map((id) => [id, doc.app(id)]));
  let found = [];
  try {
    const own = doc.pkg.executable ? { executable: doc.pkg.executable } : {}; // its imports: not the workers' to satisfy
    found = (await post("/workflows/validate", { package: { apps, flow: {}, ...own } })).problems.filter((p) => CODE_PROBLEMS.has(p.code));
  } catch (exc) {
    toast(exc.message, "error");
    return;
  }
  const next = [...syntax.filter((p) => !ids.includes(p.app)), ...found];
  if (JSON.stringify(next) === JSON.stringify(syntax)) return;
  syntax = next;
  problems = allProblems();
  canvas.setGraph(buildGraph(), problems);
  markSyntax(problems);
  refreshState();
}

// --- the flow panel ----------------------------------------------------------------------------
function showFlow(id, show = true) {
  selected = id;
  keepFlowInHash(id && Object.hasOwn(doc.pkg.flow, id) ? id : null);
  const box = $("#flow");
  const flow = id && doc.pkg.flow[id];
  if (!flow) {
    box.replaceChildren(...HINT.map((el) => el.cloneNode(true)));
    return;
  }
  const app = doc.app(flow.app_id) || {};
  const vars = (Array.isArray(app.inputs) ? app.inputs : []).filter((i) => i.type === "variable");
  const title = h("input", { id: "flow-title", value: flow.title || "", placeholder: app.title || flow.app_id, "aria-label": "flow title" });
  title.addEventListener("input", () => doc.setFlowTitle(id, title.value));
  const active = h("input", { type: "checkbox", id: "flow-active", checked: flow.active !== false });
  active.addEventListener("change", () => doc.setActive(id, active.checked));
  const conns = doc.edges().filter((e) => e.to === id || e.from === id).map((e) =>
    h("li", { dataset: { from: e.from, out: e.out, to: e.to, in: e.in }, title: `${e.from}.${e.out} → ${e.to}.${e.in}` }, `${name(e.from)}.${e.out} → ${name(e.to)}.${e.in} `,
      h("button", { type: "button", class: "danger conn-remove", onclick: () => doc.disconnect(e.from, e.out, e.to, e.in) }, "Remove")));
  box.replaceChildren(
    h("h2", {}, name(id)),
    h("p", { class: "muted" }, `flow ${id} · app `, appLabel(flow.app_id, doc.app(flow.app_id))),
    h("label", { class: "field" }, h("span", {}, "Title"), title),
    h("label", { class: "inline" }, active, "active"),
    h("div", { id: "flow-vars" }, vars.map((v) => editableVariable(doc, id, v, (flow.data || {})[v.name]))),
    h("h3", {}, "Connections"),
    conns.length ? h("ul", { class: "conns", id: "flow-conns" }, conns) : h("p", { class: "muted" }, "none"),
    h("p", { class: "inline" },
      h("button", { type: "button", id: "flow-edit-app", "data-keep": "", disabled: !doc.app(flow.app_id), onclick: () => editApp(flow.app_id) }, readOnly ? "Show app" : "Edit app"),
      h("button", { type: "button", id: "flow-run", "data-keep": "", hidden: !canRun, onclick: () => runs.flow(id) }, "Run this flow"),
      h("button", { type: "button", class: "danger", id: "flow-remove", hidden: readOnly, onclick: () => doc.removeFlow(id) }, "Remove flow")),
  );
  if (readOnly) lockPanel(box);
  if (show) showTab("flow");
}

function editApp(appId) {
  showApp(doc, appId, problems);
  showTab("app");
}

// --- apps: the workflow's own and the plugins', searchable -------------------------------------
function appList() {
  const query = $("#app-search").value.trim().toLowerCase();
  const own = Object.entries(doc.pkg.apps).map(([id, a]) => ({ id, title: a.title || id, source: "workflow" }));
  const ids = new Set(own.map((a) => a.id));
  const theirs = plugins.filter((p) => !ids.has(p.id)).map((p) => ({ id: p.id, title: p.title || p.id, source: p.plugin }));
  const items = [...own, ...theirs].filter((a) => !query || `${a.title} ${a.id} ${a.source}`.toLowerCase().includes(query));
  $("#app-list").replaceChildren(...items.map((a) =>
    h("li", { dataset: { app: a.id } },
      h("span", { class: "name", title: a.id }, a.title, " ", h("small", { class: "muted" }, a.source)),
      h("button", { type: "button", class: "app-add", hidden: readOnly, onclick: () => addFlow(a.id) }, "Add"),
      a.source === "workflow" ? h("button", { type: "button", class: "app-edit", onclick: () => editApp(a.id) }, readOnly ? "Show" : "Edit") : null,
      a.source === "workflow" && !readOnly ? h("button", { type: "button", class: "app-dup", onclick: () => editApp(doc.duplicateApp(a.id)) }, "Duplicate") : null)));
}

async function addFlow(appId) {
  let plugin = null;
  if (!doc.app(appId)) {
    const detail = await get(`/apps/${encodeURIComponent(appId)}`);
    const { plugin: _, ...raw } = detail;
    plugin = { ...raw, outputs: (detail.outputs || []).map((name) => ({ name })) };
  }
  const { x, y } = freeSpot();
  const id = doc.addFlow(appId, x, y, plugin);
  if (canvas.graph.nodes.length <= 20) canvas.fit(id); // a small graph: keep all of it in view (or the new flow, at least)
  canvas.select(id);
}

// Where a new node goes: the centre of the view, moved right and down until it covers no node.
function freeSpot() {
  const v = canvas.view;
  const nodes = canvas.graph.nodes;
  if (!nodes.length) return { x: 40, y: 40 };
  let x = v.x + v.w / 2 - 100;
  let y = v.y + v.h / 3;
  const hits = (px, py) => nodes.some((n) => px < n.x + n.w + 40 && n.x < px + 240 && py < n.y + n.h + 40 && n.y < py + 120);
  for (let i = 0; i < 200 && hits(x, y); i++) x += 60;
  return { x, y };
}

// --- wiring --------------------------------------------------------------------------------------
function keys(event) {
  const mod = event.ctrlKey || event.metaKey;
  const typing = event.target.closest("input, textarea, select, .cm-editor");
  if (mod && event.key.toLowerCase() === "s") {
    event.preventDefault();
    if (!readOnly) saver.save();
  } else if (mod && !typing && ["z", "y"].includes(event.key.toLowerCase())) {
    event.preventDefault(); // Ctrl+Z undoes, Ctrl+Shift+Z and Ctrl+Y redo
    event.shiftKey || event.key.toLowerCase() === "y" ? doc.redo() : doc.undo();
  } else if ((event.key === "Delete" || event.key === "Backspace") && onCanvas(event) && (selectedEdge || selected || focused(event))) {
    if (focused(event)) doc.removeFlow(focused(event)); // the flow the keyboard is on (its ring), as Shift+arrow moves it
    else if (selectedEdge) doc.disconnect(selectedEdge.from, selectedEdge.out, selectedEdge.to, selectedEdge.in);
    else doc.removeFlow(selected);
    selectedEdge = null;
  }
}

// A key meant for the graph: pressed with the focus on it, or on nothing (not a button or a field).
const onCanvas = (event) => event.target === document.body || Boolean(event.target.closest("#graph"));
// The flow whose node has the keyboard's focus (Tab or an arrow took it there), if any.
const focused = (event) => event.target.closest("g.node")?.dataset.id;

function drawCanvas(box, graph) {
  canvas = new EditorCanvas(box, graph, null); // draws once
  canvas.ui = new EditorUI(canvas, () => runs?.last, `dizest.ui.${wfId}`); // App UI mode: the last run's
  canvas.setup({
    select: (id) => showFlow(id),
    move: (id, x, y, how) => doc.move(id, x, y, how),
    remove: (id) => doc.removeFlow(id),
    toggle: (id) => doc.setActive(id, doc.pkg.flow[id].active === false),
    connect: (from, out, to, input) => {
      const answer = doc.connect(from, out, to, input);
      if (answer.cycle) {
        canvas.highlight(answer.cycle);
        const box = $("#cycle-msg");
        box.textContent = `Refused: this connection would make a cycle: ${answer.cycle.join(" → ")}`;
        box.hidden = false;
      }
    },
    run: (id) => runs.flow(id), // as the Flow panel's "Run this flow"
    stop: () => runs.cancel(),
    selectEdge: (edge) => {
      showFlow(edge.to); // its connections, each with Remove; or the Delete key
      selectedEdge = edge;
      $("#graph").focus();
    },
  }, { readOnly, canRun });
  canvas.onSelect = (id) => {
    selectedEdge = null;
    showFlow(id);
    if (id && !$("#graph").contains(document.activeElement)) $("#graph").focus({ preventScroll: true }); // Delete is for the graph now (not a button; a node keeps its focus)
  };
  return canvas;
}

async function main() {
  tabs(); // before anything is fetched: a tab clicked while the page loads is the one shown
  const asked = new URLSearchParams(location.search).get("version");
  const [loaded, apps] = await Promise.all([
    get(`/workflows/${encodeURIComponent(wfId)}${asked ? `?version=${encodeURIComponent(asked)}` : ""}`),
    get("/apps").catch(() => ({ items: [] })),
  ]);
  wf = loaded; // (version: the one asked for, on the canvas; latest_version: what a save is based on)
  plugins = apps.items;
  document.title = `Edit ${wf.title} · dizest`;
  $("#wf-title").textContent = wf.title;
  $("#wf-title").title = wf.title; // whole, where the toolbar cuts it short
  // what the caller's grant does not allow is not offered (the API would refuse it)
  readOnly = !loaded.rights.includes("write");
  doc = new Doc(loaded.package, changed);
  follow = new NodeFollow(doc, () => canvas, () => canvas.setGraph(buildGraph(), problems));
  doc.readOnly = readOnly;
  const first = model(doc.pkg);
  for (const n of first.nodes) {
    if (n.x !== Number(n.flow.pos_x) || n.y !== Number(n.flow.pos_y)) auto.set(n.id, { x: n.x, y: n.y, px: n.flow.pos_x, py: n.flow.pos_y });
  }
  problems = allProblems();
  const graph = auto.size ? buildGraph() : first;
  graph.problems = problems;
  // A workflow too large to draw (or to edit by hand) opens read-only, its flows listed.
  const listed = tooMany(graph);
  if (listed) [readOnly, doc.readOnly, readOnlyWhy] = [true, true, `${graph.nodes.length.toLocaleString("en")} flows, too many to edit here`];
  canRun = loaded.rights.includes("run") && !listed;
  const saved = (fields) => {
    wf = { ...wf, ...fields, latest_version: fields.version };
    showVersion();
    refreshState();
  };
  showVersion();
  saver = new EditorSave({ wfId, doc, workflow: () => wf, readOnly, auto, name, appName: appNamed, saved });
  showInfo(doc, wf, readOnly);
  const list = { draw: (box) => drawCanvas(box, canvas.graph), note: " (read-only: run it from the workflow view)" };
  canvas = listed ? new FlowList($("#graph"), graph, (id) => showFlow(id), list) : drawCanvas($("#graph"), graph);
  performance.mark("dizest:editor"); // bench/bench_console.py reads it
  bindZoomButtons(canvas);
  appList();
  refreshState();
  for (const id of Object.keys(doc.pkg.apps)) if (doc.pkg.apps[id].code) queueCheck(id);
  $("#app-search").addEventListener("input", appList);
  // a new app on an empty canvas comes with its flow (one undo step): nothing else could run it
  $("#app-new").addEventListener("click", () => editApp(doc.createApp("New app", canvas.graph.nodes.length ? null : freeSpot())));
  onAddToCanvas(addFlow);
  $("#undo").addEventListener("click", () => doc.undo());
  $("#redo").addEventListener("click", () => doc.redo());
  $("#save").addEventListener("click", () => saver.save());
  runs = new EditorRuns({ wfId, canvas, version: () => wf.version, save: () => saver.save(), dirty: () => doc.dirty, pkg: () => doc.pkg, appName: appNamed });
  $("#run-all").addEventListener("click", () => runs.all());
  // (after the graph's first paint: a replay of dag1000's last run drew its 1,000 boxes first)
  const painted = new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
  runs.resumed = canRun ? painted.then(() => runs.resume($("#me-name")?.textContent || "")) : null;
  $("#save").disabled = readOnly;
  $("#app-new").hidden = readOnly;
  $("#run-all").disabled = !canRun;
  refreshState();
  saver.bind();
  document.addEventListener("keydown", keys);
  selectFlowInHash((id) => Object.hasOwn(doc.pkg.flow, id), (id) => canvas.select(id));
  window.dizestEditor = { doc, canvas, runs };
}

main().catch((exc) => {
  // nothing to edit (a version that does not exist, a workflow gone): say so where the state
  // is shown, and offer no Save or Run that would do nothing
  $("#ed-state").textContent = `not loaded: ${exc.message}`;
  for (const id of ["#save", "#run-all", "#undo", "#redo"]) $(id).disabled = true;
  toast(exc.message, "error");
});
