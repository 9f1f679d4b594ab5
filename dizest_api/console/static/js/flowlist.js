// A workflow too large to draw: its flows as a searchable, paged table (id, title, app: by its
// title, its id in the tooltip; in the run view the live status), a flow selected there opens
// its panel as a node click would, and "Draw anyway" draws the graph after all. Drawing took
// 19 s for 100,000 flows (50 s in the editor) and every zoom seconds more, for anyone the
// workflow is shared with; up to TOO_MANY flows it stays under ~1 s here (3,000: 0.75 s, the
// editor 1.3 s; 5,000: 1.4 s, 4.2 s).
// Once drawn, the list hands every call (select, setStatus, zoom, fit) to the drawn view.
import { h, scrollCues } from "./dom.js";
import { appLabel } from "./flownames.js";
import { picked } from "./viewaids.js";

export const TOO_MANY = 3000; // flows: above this the graph views list them instead of drawing
const PAGE = 100; // rows of the table at a time

export const tooMany = (graph) => graph.nodes.length > TOO_MANY;

const zoomButtons = (shown) => {
  for (const id of ["zoom-in", "zoom-out", "zoom-fit"]) document.getElementById(id)?.toggleAttribute("hidden", !shown);
};

export class FlowList {
  // `draw(container)`: the graph view, drawn (on "Draw anyway"); `status`: a status column.
  constructor(container, graph, onSelect, { draw, status = false, note = "" } = {}) {
    Object.assign(this, { container, graph, onSelect, draw, status, note });
    this.marks = new Map(); // id -> [status, badge]
    this.rows = new Map(); // id -> the <tr> of a flow on the page shown
    this.picked = null; // the flow selected in the list
    this.drawn = null;
    this.page = 0;
    this.build();
  }

  build() {
    const count = this.graph.nodes.length.toLocaleString("en");
    this.search = h("input", { type: "search", id: "flow-search", placeholder: "search flows: id, title, app" + (this.status ? ", status" : ""), "aria-label": "Search flows" });
    this.search.addEventListener("input", () => this.filter());
    this.count = h("span", { id: "flow-count", class: "muted" });
    this.prev = h("button", { type: "button", id: "flow-prev", onclick: () => this.show(this.page - 1) }, "‹ Previous");
    this.next = h("button", { type: "button", id: "flow-next", onclick: () => this.show(this.page + 1) }, "Next ›");
    this.body = h("tbody", {});
    this.body.addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-id]");
      if (!row) return;
      this.select(row.dataset.id);
      picked(this.container, row.dataset.id);
    });
    const heads = ["Flow", "Title", "App", ...(this.status ? ["Status"] : [])].map((t) => h("th", {}, t));
    const scrolled = h("div", { class: "scroll-x" }, h("table", { class: "list flows" }, h("thead", {}, h("tr", {}, heads)), this.body));
    this.container.classList.add("listing");
    zoomButtons(false); // nothing to zoom
    this.container.replaceChildren(h(
      "div",
      { class: "flow-list" },
      h("p", { class: "too-many", id: "too-many" },
        h("strong", {}, `${count} flows: too many to draw here.`),
        ` Select one below to see its panel${this.note}. `,
        h("button", { type: "button", id: "draw-anyway", title: "Drawing may keep this tab busy for many seconds", onclick: (event) => {
          event.stopPropagation(); // (the graph drawn now would take this click for one on its background)
          this.drawAnyway();
        } }, "Draw anyway")),
      h("p", { class: "inline" }, this.search, this.prev, this.next, this.count),
      scrolled,
    ));
    scrollCues(scrolled);
    this.filter();
  }

  // The flows whose id, title, app (or status) contain what the search box says.
  filter(page = 0) {
    const query = this.search.value.trim().toLowerCase();
    const text = (n) => `${n.id}\u0000${n.title}\u0000${n.appTitle}\u0000${n.appId}\u0000${this.status ? this.word(n.id) : ""}`.toLowerCase();
    this.shown = query ? this.graph.nodes.filter((n) => text(n).includes(query)) : this.graph.nodes;
    this.show(page);
  }

  word(id) {
    const [status, badge] = this.marks.get(id) || ["idle", ""];
    return badge && badge !== status ? `${status}: ${badge}` : status;
  }

  show(page) {
    const pages = Math.max(1, Math.ceil(this.shown.length / PAGE));
    this.page = Math.min(Math.max(page, 0), pages - 1);
    const first = this.page * PAGE;
    const nodes = this.shown.slice(first, first + PAGE);
    this.rows = new Map(nodes.map((n) => [n.id, this.row(n)]));
    this.body.replaceChildren(...this.rows.values());
    this.prev.disabled = this.page === 0;
    this.next.disabled = this.page >= pages - 1;
    const all = this.graph.nodes.length.toLocaleString("en");
    this.count.textContent = this.shown.length
      ? `${(first + 1).toLocaleString("en")}–${(first + nodes.length).toLocaleString("en")} of ${this.shown.length.toLocaleString("en")}${this.shown.length === this.graph.nodes.length ? "" : ` matching (of ${all})`}`
      : `none of ${all} matches`;
  }

  row(n) {
    // the flow's id is a button: Tab reaches each row, Enter or Space selects it (its click does)
    const cells = [h("td", {}, h("button", { type: "button", class: "flow-pick" }, h("code", {}, n.id))), h("td", {}, String(n.title)), h("td", {}, appLabel(n.appId, n.app))];
    if (this.status) cells.push(h("td", { class: "flow-status" }, this.statusCell(n.id)));
    return h("tr", { dataset: { id: n.id }, class: n.id === this.picked ? "selected" : null }, cells);
  }

  statusCell(id) {
    const [status] = this.marks.get(id) || ["idle"];
    return h("span", { class: `status st-${status}` }, this.word(id));
  }

  get selected() {
    return this.drawn ? this.drawn.selected : this.picked;
  }

  select(id) {
    if (this.drawn) return this.drawn.select(id);
    this.rows.get(this.picked)?.classList.remove("selected");
    this.picked = id;
    if (id !== null && !this.rows.has(id)) {
      // a flow named by the URL: its page (of the flows the search shows) comes up
      const at = this.shown.findIndex((n) => n.id === id);
      if (at >= 0) this.show(Math.floor(at / PAGE));
    }
    this.rows.get(id)?.classList.add("selected");
    this.onSelect?.(id);
  }

  setStatus(id, status, badge) {
    if (this.drawn) return this.drawn.setStatus(id, status, badge);
    this.marks.set(id, [status, badge ?? this.marks.get(id)?.[1] ?? ""]);
    const cell = this.status && this.rows.get(id)?.querySelector(".flow-status");
    if (cell) cell.replaceChildren(this.statusCell(id));
  }

  // The editor's document changed (a syntax check's answer): the page shows the new titles.
  setGraph(graph, problems) {
    if (this.drawn) return this.drawn.setGraph(graph, problems);
    graph.problems = problems;
    this.graph = graph;
    this.filter(this.page); // the search and the page shown stay
  }

  zoom(...args) {
    this.drawn?.zoom(...args);
  }

  fit() {
    this.drawn?.fit();
  }

  drawAnyway() {
    this.container.classList.remove("listing");
    zoomButtons(true);
    this.container.replaceChildren();
    this.drawn = this.draw(this.container);
    for (const [id, [status, badge]] of this.marks) this.drawn.setStatus(id, status, badge);
    if (this.picked !== null) this.drawn.select(this.picked);
  }
}

// The graph view `make(container)` draws, or, for a graph too large, the list of its flows.
export function graphOrList(container, graph, onSelect, make, options = {}) {
  return tooMany(graph) ? new FlowList(container, graph, onSelect, { ...options, draw: make }) : make(container);
}
