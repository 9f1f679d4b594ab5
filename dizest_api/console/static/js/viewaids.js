// What a graph view (graph.js GraphView, the editor's canvas) does for the keyboard, a screen
// reader and a canvas that changes size. A node is a button of the keyboard's: Tab reaches it,
// Enter or Space selects it, the arrow keys go to the nearest node that way, and a screen reader
// says its title and status. Nothing here runs per node at draw time but three attributes in its
// markup (dag1000 draws as fast); an arrow's neighbour is found when the key is pressed.
import { escapeHtml } from "./dom.js";
import { flowName } from "./flownames.js";

// A node's attributes of the keyboard's and a screen reader's; `name`: the flow's (flowName).
export const nodeAttrs = (name) => `tabindex="0" role="button" aria-label="${escapeHtml(name)}"`;

// A flow the user picked on a view (a click, a tap, Enter or Space; not a selection the page
// made): told to the page around it as a `flowpick` event (side.js brings its panel into view).
export const picked = (container, id) => container.dispatchEvent(new CustomEvent("flowpick", { bubbles: true, detail: id }));

// A node's name for a screen reader: its flow's name (its title, told apart as the messages tell
// it: flowName), and its status (and the word its badge shows) as `view.setStatus` marked it.
export function nodeLabel(view, id) {
  const el = view.elements.get(id);
  const n = view.graph.byId.get(id);
  if (!el || !n) return;
  const { status, badge } = el.dataset;
  const state = [status, badge && badge !== status ? badge : ""].filter(Boolean).join(", ");
  const name = flowName(view.graph, id);
  el.setAttribute("aria-label", state ? `${name}: ${state}` : name);
}

// The keys of a focused node (or of the canvas itself, #graph): Enter or Space picks the node
// (`view.pick`); an arrow goes to the nearest node that way (`nearest`), Home and End to the first
// and last flow in the graph's order (Tab's); Shift+arrow moves the node a step where the view can
// (`view.nudge`: the editor), and is an arrow elsewhere. A key pressed in a field, a button or a
// result box on the canvas is that element's own. A node Tab focuses out of view is brought into
// view (not one a click focused: it is in view, and must not move under the pointer).
export function bindKeys(view) {
  view.container.addEventListener("keydown", (event) => {
    const el = event.target.closest?.("g.node");
    if ((el !== event.target && event.target !== view.container) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (el && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault(); // (Space: no scroll of the page)
      view.pick(el.dataset.id);
      return;
    }
    const step = ARROWS[event.key];
    const nodes = view.graph.nodes;
    const from = view.graph.byId.get(el?.dataset.id || view.selected);
    let to = null;
    if (step && event.shiftKey && view.nudge && !view.readOnly && from) {
      event.preventDefault();
      view.nudge(from.id, step[0] * NUDGE, step[1] * NUDGE);
      return;
    }
    if (step) to = nearest(nodes, from || middle(view.view), step);
    else if (event.key === "Home" || event.key === "End") to = nodes[event.key === "Home" ? 0 : nodes.length - 1];
    else return;
    event.preventDefault(); // the page does not scroll, even when no node lies that way
    if (to) goTo(view, to);
  });
  view.container.addEventListener("focusin", (event) => {
    const n = view.graph.byId.get(event.target.closest?.("g.node")?.dataset.id);
    if (n && event.target.matches(":focus-visible")) reveal(view, n);
  });
}

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
const NUDGE = 20; // graph px a Shift+arrow moves a node (Node-RED's grid step)
const DRIFT = 2; // a px off the arrow's axis counts as this many along it

// The node an arrow pressed on `from` (a node, or a point: a box of no size) goes to, computed at
// the key press from the nodes' positions (nothing is kept per node). Candidates lie ahead: their
// centre past `from`'s, and from a node both their edges across the axis past its own (Android's
// FocusFinder: a taller node beside it is not "above" it for being a few px higher). Those in its
// beam (their box across the axis overlaps `from`'s: its row for Left/Right, its column for
// Up/Down) come first, so a column is walked down even when a node of the next one is nearer;
// among them the nearest, with off-axis drift weighing DRIFT times a step along the axis (a node
// straight ahead is the next one before a nearer one off to the side). Null: no node that way.
export function nearest(nodes, from, [dx, dy]) {
  const ox = from.x + from.w / 2;
  const oy = from.y + from.h / 2;
  const sign = dx + dy; // +1 right or down, -1 left or up
  let best = null;
  let bestBeam = false;
  let bestScore = Infinity;
  for (const n of nodes) {
    const cx = n.x + n.w / 2 - ox;
    const cy = n.y + n.h / 2 - oy;
    const along = cx * dx + cy * dy;
    if (n === from || along <= 0 || (from.w && !edgesAhead(n, from, dx, sign))) continue;
    const beam = dx ? n.y < from.y + from.h && from.y < n.y + n.h : n.x < from.x + from.w && from.x < n.x + n.w;
    const score = along + DRIFT * Math.abs(dx ? cy : cx);
    if ((beam && !bestBeam) || (beam === bestBeam && score < bestScore)) [best, bestBeam, bestScore] = [n, beam, score];
  }
  return best;
}

// Both of `n`'s edges across the axis lie further that way than `from`'s.
function edgesAhead(n, from, dx, sign) {
  const [lo, size, fromLo, fromSize] = dx ? [n.x, n.w, from.x, from.w] : [n.y, n.h, from.y, from.h];
  return sign * (lo - fromLo) > 0 && sign * (lo + size - fromLo - fromSize) > 0;
}

// The middle of the view, where the arrows start on a canvas with no node focused or selected.
const middle = (v) => ({ x: v.x + v.w / 2, y: v.y + v.h / 2, w: 0, h: 0 });

// Focus node `n` and bring it into view: the page does not scroll to it (a node out of the view
// lies outside the canvas's box: focus() would scroll the page towards it), the view follows.
function goTo(view, n) {
  view.elements.get(n.id)?.focus({ preventScroll: true });
  reveal(view, n);
}

// Node `n` in view: the view is centred on it unless all of it is in view already.
export function reveal(view, n) {
  const v = view.view;
  if (n.x >= v.x && n.y >= v.y && n.x + n.w <= v.x + v.w && n.y + n.h <= v.y + v.h) return;
  view.view = { ...v, x: n.x + n.w / 2 - v.w / 2, y: n.y + n.h / 2 - v.h / 2 };
  view.apply();
}

// The canvas resized (the side panel folded, the window, a phone turned, the run's timeline
// opened under it): a view the user has not zoomed or panned since it was fitted (`view.fitted`
// is still the view: every move makes a new one) is fitted again, as the whole graph was in view
// and should stay so (it kept its scale, and a timeline opening clipped its top and bottom rows);
// otherwise the view keeps its scale and centre and takes the canvas's new shape, so the
// drawing is not stretched and a pan moves it as far as the pointer. (The sizes are the
// observer's: reading them here would lay out the page, and its whole graph, once more.)
export function followResize(view) {
  let size = null;
  new ResizeObserver(([entry]) => {
    const [{ inlineSize: width, blockSize: height }] = entry.borderBoxSize;
    const was = size;
    size = { width, height };
    const v = view.view;
    if (!width || !height) return;
    if (!was || !was.width || !was.height) {
      // the first size seen (or the first since the canvas was hidden): the view fitted to another one is fitted again
      if (Math.abs(v.w / v.h - width / height) > 0.01) view.fit();
      return;
    }
    if (width === was.width && height === was.height) return;
    if (view.fitted === v) return view.fit(); // (laid out already: the observer's turn comes after layout)
    const w = (v.w * width) / was.width;
    const h = (v.h * height) / was.height;
    view.view = { x: v.x + (v.w - w) / 2, y: v.y + (v.h - h) / 2, w, h };
    view.apply();
  }).observe(view.container);
}
