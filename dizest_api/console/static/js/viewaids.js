// What a graph view (graph.js GraphView, the editor's canvas) does for the keyboard and a screen
// reader. A node is a button of the keyboard's: Tab reaches it, Enter or Space selects it, and a
// screen reader says its title and status. Nothing here runs per node at draw time but three
// attributes in its markup: dag1000 draws as fast.
import { escapeHtml } from "./dom.js";

export const nodeAttrs = (n) => `tabindex="0" role="button" aria-label="${escapeHtml(n.title)}"`;

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
