// What a graph view (graph.js GraphView, the editor's canvas) does for the keyboard, a screen
// reader and a canvas that changes size. A node is a button of the keyboard's: Tab reaches it,
// Enter or Space selects it, and a screen reader says its title and status. Nothing here runs
// per node at draw time but three attributes in its markup: dag1000 draws as fast.
import { escapeHtml } from "./dom.js";

export const nodeAttrs = (n) => `tabindex="0" role="button" aria-label="${escapeHtml(n.title)}"`;

// A flow the user picked on a view (a click, a tap, Enter or Space; not a selection the page
// made): told to the page around it as a `flowpick` event (side.js brings its panel into view).
export const picked = (container, id) => container.dispatchEvent(new CustomEvent("flowpick", { bubbles: true, detail: id }));

// A node's name for a screen reader: its title, and its status (and the word its badge shows)
// as `view.setStatus` marked it.
export function nodeLabel(view, id) {
  const el = view.elements.get(id);
  const n = view.graph.byId.get(id);
  if (!el || !n) return;
  const { status, badge } = el.dataset;
  const state = [status, badge && badge !== status ? badge : ""].filter(Boolean).join(", ");
  el.setAttribute("aria-label", state ? `${n.title}: ${state}` : n.title);
}

// Enter or Space on a focused node picks it (`view.pick`); a node Tab focuses out of view is
// brought into view (not one a click focused: it is in view, and must not move under the pointer).
export function bindKeys(view) {
  view.container.addEventListener("keydown", (event) => {
    const el = event.target.closest?.("g.node");
    if (!el || (event.key !== "Enter" && event.key !== " ") || event.ctrlKey || event.metaKey || event.altKey) return;
    event.preventDefault(); // (Space: no scroll of the page)
    view.pick(el.dataset.id);
  });
  view.container.addEventListener("focusin", (event) => {
    const n = view.graph.byId.get(event.target.closest?.("g.node")?.dataset.id);
    const v = view.view;
    if (!n || !event.target.matches(":focus-visible")) return;
    if (n.x >= v.x && n.y >= v.y && n.x + n.w <= v.x + v.w && n.y + n.h <= v.y + v.h) return;
    view.view = { ...v, x: n.x + n.w / 2 - v.w / 2, y: n.y + n.h / 2 - v.h / 2 };
    view.apply();
  });
}

// The canvas resized (the side panel folded, the window, a phone turned): the view keeps its
// scale and centre and takes the canvas's new shape, so the drawing is not stretched and a
// pan moves it as far as the pointer. (The sizes are the observer's: reading them here would
// lay out the page, and its whole graph, once more.)
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
    const w = (v.w * width) / was.width;
    const h = (v.h * height) / was.height;
    view.view = { x: v.x + (v.w - w) / 2, y: v.y + (v.h - h) / 2, w, h };
    view.apply();
  }).observe(view.container);
}
