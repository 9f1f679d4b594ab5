// A flow's status, log and results in a box under its node on the editor's canvas (as DIZEST
// shows them). Their layer lies beneath the nodes', and a box stops short of the next node below
// (a box of a fixed 150 px covered the next row of dag100, 114 px below, whose flows print
// nothing): a flow with nothing to show gets its status line alone, one with a log or results
// the room down to that node (at most RESULT_H; scrolled inside), its dark box as tall as what it
// holds within that (CSS: a one-line log is two lines tall, not the whole room; nothing is
// measured at draw time). The box follows its log's end, but a flow's error is read from its
// traceback's first line, under the status line. A box its user enlarged is
// RESULT_BIG whatever lies below: they asked for it. `canvas` is the EditorCanvas: its graph,
// its runs (flow id -> state), `big` (the enlarged ones) and its UI boxes (editor-ui.js).
import { h } from "./dom.js";
import { flowName } from "./flownames.js";
import { statusShade, statusText } from "./flowstatus.js";
import { renderEntries } from "./render.js";

const RESULT_H = 150;
const RESULT_BIG = 460; // px: a box its user enlarged (a table, a plot)
export const LINE_H = 24; // px: the status line alone
export const GAP = 4; // px: between a node (or its UI) and its box, and between a box and a node below

const quiet = (state) => !state.log.length && !state.results.length;
const boxOf = (canvas, id) => canvas.svg.querySelector(`g.results foreignObject[data-id="${CSS.escape(id)}"]`);

export function drawResult(canvas, id) {
  const n = canvas.graph.byId.get(id);
  const state = canvas.runs.get(id);
  let fo = boxOf(canvas, id);
  if (!n) return fo?.remove();
  if (!fo) {
    fo = document.createElementNS("http://www.w3.org/2000/svg", "foreignObject");
    fo.dataset.id = id;
    fo.setAttribute("width", n.w);
    fo.append(document.createElement("div"));
    canvas.svg.querySelector("g.results").append(fo);
  }
  const box = fo.firstChild;
  const big = canvas.big.has(id) && !quiet(state);
  box.className = `node-result st-${statusShade(state.status, state.reason)}${state.stale ? " stale" : ""}${big ? " big" : ""}${quiet(state) ? " quiet" : ""}`;
  placeResult(canvas, id, fo);
  const text = statusText(state.status, state.reason, (flow) => flowName(canvas.graph, flow)) + (state.stale ? " · output of the run before" : "");
  const grow = h("button", { type: "button", class: "node-result-grow", hidden: quiet(state), title: big ? "Shrink this result" : "Enlarge this result", onclick: () => resize(canvas, id, fo, grow) });
  const head = h("div", { class: "node-result-status" }, h("span", { class: "text" }, text), grow);
  // a few HTML outputs and plots unfolded a node (a 1,000-flow graph shows 1,000 of these)
  box.replaceChildren(head, ...renderEntries(state.log.slice(-50), 2), ...renderEntries(state.results.slice(-20).map((r) => r.value), 2));
  if (!quiet(state)) scrollLater(box, state.status === "error" ? head : null);
}

// The box scrolled to its last traceback's first line (the error's, in its log), just under the
// status line that stays on top: a long one showed only its end. (Laid out for error boxes only.)
function showTraceback(box, head) {
  const start = [...box.children].findLast((el) => el.textContent.startsWith("Traceback (most recent call last)"));
  if (start) box.scrollTop = start.offsetTop - head.offsetHeight;
}

// Boxes scrolled to their end (an error's to its traceback) once a frame's writes are done: the
// scrollHeight read after each box's write laid the whole graph out again, 1,000 times for the
// 1,000 boxes of a dag1000 run shown at once when the editor opened (one task of 4-11 s).
const toScroll = new Map(); // box -> its status line when it shows an error, else null
function scrollLater(box, errorHead) {
  if (!toScroll.size) requestAnimationFrame(() => {
    for (const [one, head] of toScroll) {
      one.scrollTop = one.scrollHeight;
      if (head) showTraceback(one, head);
    }
    toScroll.clear();
  });
  toScroll.set(box, errorHead);
}

// Enlarge a result box (or shrink it back) in place: its content (an iframe, a plot) stays.
function resize(canvas, id, fo, grow) {
  const big = !canvas.big.delete(id);
  if (big) canvas.big.add(id);
  fo.firstChild.classList.toggle("big", big);
  grow.title = big ? "Shrink this result" : "Enlarge this result";
  placeResult(canvas, id, fo);
}

// The box under its node (and under the node's UI, if shown), as tall as it may be there.
export function placeResult(canvas, id, fo = boxOf(canvas, id)) {
  canvas.ui?.place(id);
  const n = canvas.graph.byId.get(id);
  const state = canvas.runs.get(id);
  if (!fo || !n || !state) return;
  const top = n.y + n.h + GAP + (canvas.ui?.height(id) || 0);
  let height = Math.max(LINE_H, Math.min(RESULT_H, room(canvas.graph, n, top)));
  if (quiet(state)) height = LINE_H;
  else if (canvas.big.has(id)) height = RESULT_BIG;
  fo.setAttribute("x", n.x);
  fo.setAttribute("y", top);
  fo.setAttribute("height", height);
}

// The free height from `top` down to the nearest other node across `n`'s width, less a gap
// (the UI box under a node has the same room: editor-ui.js).
export function room(graph, n, top) {
  let free = Infinity;
  for (const m of graph.nodes) {
    if (m === n || m.x >= n.x + n.w || m.x + m.w <= n.x || m.y + m.h <= top) continue;
    free = Math.min(free, m.y - top - GAP);
  }
  return free;
}
