// App UI mode on the editor's canvas, as DIZEST's node cards have it: a flow whose app has a UI
// (html or js) gets a "UI" toggle on its node; on, the app's UI shows in a box under the node
// (its log and results box, if any, moves below it). The UI is the run view's own (appui.js:
// a sandboxed frame of GET /runs/<run>/flows/<flow>/ui, its bridge, its server-side checks),
// of the editor's run of that flow: the followed run (EditorRuns.last) once the flow has run
// in it, until then the run before (as the node's log), and before any run a note. A new run
// of the flow loads the UI anew (the app may have changed); its results go to the UI as they
// come. Which flows show their UI is kept here, through redraws, zoom and runs, and in the
// browser's localStorage under `key` (a view setting of this browser, not of the workflow).
// The box has the room its result boxes have (editor-results.js): down to the next node below,
// less a status line for the flow's result box, at most UI_H (a fixed 240 px covered the next
// row of dag100, 114 px below); the UI scrolls inside its frame. Its ▾ enlarges it to UI_BIG
// whatever lies below, as a result box's does: its user asked for it.
import { get } from "./api.js";
import { appFrame, hasUI, updateResults } from "./appui.js";
import { h } from "./dom.js";
import { GAP, LINE_H, room } from "./editor-results.js";
import { statusLabel } from "./flowstatus.js";

const UI_H = 240; // px: the box under a node, at most
const UI_BIG = 480; // px: a box its user enlarged
const UI_HEAD = 18; // px: its status line alone, where there is no room for more

// The flow ids kept under `key` (nothing kept, or not a list of strings: none).
function kept(key) {
  try {
    const ids = JSON.parse(localStorage.getItem(key) || "[]");
    return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
  } catch (exc) {
    return [];
  }
}

export class EditorUI {
  // canvas: the EditorCanvas (it calls toggle, setRun, place, height and drawn);
  // lastRun(): the editor's followed run ({run_id, ...}) or null; key: where `on` is kept.
  constructor(canvas, lastRun, key) {
    Object.assign(this, { canvas, lastRun, key });
    this.on = new Set(kept(key)); // the flows whose UI is shown
    this.runOf = new Map(); // flow id -> the run it last ran in (its UI's run)
    this.boxes = new Map(); // flow id -> {fo, head, text, body, runId, sent, h}
    this.big = new Set(); // the flows whose UI box the user enlarged
    queueMicrotask(() => this.drawn()); // the kept ones, once the canvas holds this
  }

  toggle(id) {
    if (!this.on.delete(id)) this.on.add(id);
    try {
      localStorage.setItem(this.key, JSON.stringify([...this.on].filter((f) => this.canvas.graph.byId.has(f))));
    } catch (exc) {
      // storage full or refused (a private window): the toggle holds for this page
    }
    this.sync(id);
  }

  // The flow's state in the followed run changed (canvas.setRun): a state still "of the run
  // before" (stale) is not of this run yet.
  setRun(id, state) {
    const run = this.lastRun();
    if (run && !state.stale) this.runOf.set(id, run.run_id);
    this.sync(id);
  }

  // The canvas redrew (a node's markup may be new, a node gone or moved back by an undo).
  drawn() {
    for (const id of new Set([...this.on, ...this.boxes.keys()])) this.sync(id);
  }

  // How far a flow's result box goes down to leave room for its UI.
  height(id) {
    const box = this.boxes.get(id);
    return box ? box.h + GAP : 0;
  }

  // (Called by canvas.placeResult, which places the result box below this one.)
  place(id) {
    const n = this.canvas.graph.byId.get(id);
    const box = this.boxes.get(id);
    if (!n || !box) return;
    const top = n.y + n.h + GAP;
    const below = this.canvas.runs.has(id) ? LINE_H + GAP : 0; // the result box's status line
    box.h = this.big.has(id) ? UI_BIG : Math.max(UI_HEAD, Math.min(UI_H, room(this.canvas.graph, n, top) - below));
    box.fo.setAttribute("x", n.x);
    box.fo.setAttribute("y", top);
    box.fo.setAttribute("width", n.w);
    box.fo.setAttribute("height", box.h);
  }

  // Enlarge a UI box (or shrink it back) in place: its frame stays as it is.
  resize(id) {
    const big = !this.big.delete(id);
    if (big) this.big.add(id);
    const box = this.boxes.get(id);
    box.fo.firstChild.classList.toggle("big", big);
    box.grow.title = big ? "Shrink this UI" : "Enlarge this UI";
    this.canvas.placeResult(id);
  }

  sync(id) {
    if (!this.on.has(id) && !this.boxes.has(id)) return;
    const n = this.canvas.graph.byId.get(id);
    const shown = Boolean(n && this.on.has(id) && hasUI(n.app));
    this.canvas.elements.get(id)?.classList.toggle("ui-on", shown);
    let box = this.boxes.get(id);
    if (shown) box ||= this.open(id);
    else if (box) {
      box.fo.remove(); // (its frame with it: appui.js forgets a frame no longer in the page)
      this.boxes.delete(id);
    }
    this.canvas.placeResult(id); // this box, and the result box below it (or back up)
    if (!shown) return;
    const runId = this.runOf.get(id);
    const state = this.canvas.runs.get(id);
    if (!runId) return;
    if (box.runId !== runId) {
      box.runId = runId;
      box.sent = null;
      box.body.replaceChildren(appFrame(runId, id, this.results(state, null)));
    }
    const word = statusLabel(state.status, state.reason);
    box.text.textContent = `UI · run ${runId.slice(0, 8)} · ${word}${state.stale ? " · the run before" : ""}`;
    this.feed(id, box, state);
  }

  open(id) {
    const fo = document.createElementNS("http://www.w3.org/2000/svg", "foreignObject");
    fo.dataset.ui = id; // (not data-id: that names the flow's result box)
    const text = h("span", { class: "text" }, "UI");
    const grow = h("button", { type: "button", class: "node-ui-grow", title: "Enlarge this UI", onclick: () => this.resize(id) });
    const head = h("div", { class: "node-ui-status" }, text, grow);
    const body = h("div", { class: "node-ui-body" }, h("p", { class: "node-ui-note" }, "Run the flow to see its UI."));
    fo.append(h("div", { class: `node-ui${this.big.has(id) ? " big" : ""}` }, head, body));
    this.canvas.svg.querySelector("g.results").append(fo);
    const box = { fo, head, text, grow, body, runId: null, sent: null, h: UI_H };
    this.boxes.set(id, box);
    return box;
  }

  // The UI gets the flow's status and results when they change (not each log line), and its
  // outputs once it is ready (as the run view sends them). A state of the run before (a new
  // run started, this flow not yet) has nothing new for it: only a UI just opened is fed.
  async feed(id, box, state) {
    const runId = box.runId;
    const last = state.results.at(-1);
    const sent = box.sent;
    if (sent && (state.stale || (sent.status === state.status && sent.count === state.results.length && sent.last === last))) return;
    const mark = { status: state.status, count: state.results.length, last };
    box.sent = mark;
    let outputs = null;
    if (state.status === "ready" || state.stale) {
      try {
        outputs = (await get(`/runs/${encodeURIComponent(runId)}/flows/${encodeURIComponent(id)}/outputs`)).outputs;
      } catch (exc) {
        outputs = null; // not ready there: the UI gets the rest
      }
    }
    if (box.runId === runId && box.sent === mark) updateResults(id, this.results(state, outputs));
  }

  results(state, outputs) {
    return { status: state.status, outputs, results: state.results };
  }
}
