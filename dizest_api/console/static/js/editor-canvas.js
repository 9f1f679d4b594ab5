// The editor's canvas: the run view's SVG graph (pan, zoom, level of detail) plus editing by hand.
// Drag a node (or Shift+arrow it) to move it; drag from an output port to an input port to
// connect; the × removes a flow, the dot toggles it active, "UI" its app's UI (editor-ui.js); two
// fingers pinch the view, never drag a node (gestures.js). While a node is dragged only its
// transform and its own edges change, once per animation frame: a drag costs the same on a
// 1,000-flow graph as on a small one. Every other change redraws the whole SVG from the document.
import { hasUI } from "./appui.js";
import { escapeHtml } from "./dom.js";
import { drag, wire } from "./editor-drag.js";
import { appRoom, detailMarkup, nodeMarkup, titleRoom } from "./editor-nodes.js";
import { drawResult, placeResult } from "./editor-results.js";
import { Router, edgePath, meets, route } from "./edges.js";
import { flowName, flowNth } from "./flownames.js";
import { EAGER_DETAIL, GraphView, badgeText, showTitle } from "./graph.js";
import { refit } from "./textfit.js";
import { nodeLabel, reveal } from "./viewaids.js";

const edgeKey = (e) => `${e.from}\u0000${e.out}\u0000${e.to}\u0000${e.in}`;

export class EditorCanvas extends GraphView {
  // handlers: select(id), move(id, x, y, {nudge}), connect(from, out, to, in), remove(id), toggle(id),
  // selectEdge(edge), run(id), stop(id). Read-only: nodes are selected, never moved, wired,
  // removed or toggled; `canRun`: the node's run and stop buttons are offered.
  setup(handlers, { readOnly = false, canRun = true } = {}) {
    this.handlers = handlers;
    this.readOnly = readOnly;
    this.svg.classList.toggle("readonly", readOnly);
    this.svg.classList.toggle("norun", !canRun);
  }

  // A flow's new title, on its node (typing it must not redraw 1,000 nodes a keystroke), and on
  // the nodes whose number it changed: those of the title it left and of the one it took
  // (flowNth, told again once the graph's names are dropped).
  retitle(id, title) {
    const g = this.graph;
    const n = g.byId.get(id);
    if (!n || !this.elements.has(id)) return;
    flowNth(g, id);
    const before = g.names;
    n.title = title;
    g.names = null; // (flownames.js: told apart by title)
    for (const m of g.nodes) {
      const node = this.elements.get(m.id);
      if ((m !== n && flowNth(g, m.id) === before.get(m.id).nth) || !node) continue;
      showTitle(node, m, titleRoom(m, node.classList.contains("problem")), this.nth(m.id));
      nodeLabel(this, m.id);
      this.drawn.delete(m.id); // its markup is no longer what was drawn: the next redraw redoes it
    }
  }

  setGraph(graph, problems) {
    graph.problems = problems;
    this.graph = graph;
    this.draw();
  }

  // The first call draws everything as one markup string; later ones change only the nodes
  // and edges whose markup differs (a connection or a toggle on 1,000 flows touches a few).
  draw() {
    const g = this.graph;
    this.withUI = new Set(g.nodes.filter((n) => hasUI(n.app)).map((n) => n.appId)); // (editor-follow.js)
    const problems = new Map();
    const bad = new Set();
    for (const p of g.problems || []) {
      if (p.flow) (problems.get(p.flow) || problems.set(p.flow, []).get(p.flow)).push(p.message);
      if (p.edge) bad.add(edgeKey(p.edge));
    }
    const edges = new Map();
    this.router = new Router(g.nodes); // (the nodes an edge goes around: told of a move, reroute)
    this.spans = new Map(); // edge key -> where the nodes decide its way (edges.js route)
    for (const e of g.edges) {
      const a = g.byId.get(e.from);
      const b = g.byId.get(e.to);
      if (!a || !b) continue;
      const key = edgeKey(e);
      const cls = bad.has(key) ? "edge bad" : "edge";
      const { d, span } = route(a, b, e, this.router);
      this.spans.set(key, span);
      edges.set(key, `<path class="${cls}" data-from="${escapeHtml(e.from)}" data-out="${escapeHtml(e.out)}" data-to="${escapeHtml(e.to)}" data-in="${escapeHtml(e.in)}" d="${d}"/>`);
    }
    if (!this.svg) {
      const eager = g.nodes.length <= EAGER_DETAIL;
      this.detailed = new Set(eager ? g.nodes.map((n) => n.id) : []);
      this.drawn = new Map(g.nodes.map((n) => [n.id, nodeMarkup(n, eager, problems, flowNth(g, n.id), flowName(g, n.id))]));
      this.lines = edges;
      this.container.innerHTML = `<svg class="dag editing" xmlns="http://www.w3.org/2000/svg"><g class="edges">${[...edges.values()].join("")}</g><g class="results"></g><g class="nodes">${[...this.drawn.values()].join("")}</g><path class="wire" d=""/></svg>`;
      this.svg = this.container.firstChild;
      // Drags happen here (editor-drag.js lift); made now, as adding it later lays out the whole graph.
      this.overlay = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      this.overlay.setAttribute("class", "dag editing overlay");
      this.container.append(this.overlay);
      this.elements = new Map([...this.svg.querySelectorAll("g.node")].map((el) => [el.dataset.id, el]));
      this.paths = new Map([...this.svg.querySelectorAll("path.edge")].map((el) => [edgeKey(el.dataset), el]));
    } else {
      this.patch(g, problems, edges);
    }
    this.edgesOf = new Map();
    for (const el of this.paths.values()) {
      for (const id of [el.dataset.from, el.dataset.to]) (this.edgesOf.get(id) || this.edgesOf.set(id, []).get(id)).push(el);
    }
    this.runs ||= new Map();
    this.marks ||= new Map();
    this.big ||= new Set(); // the flows whose result box the user enlarged
    this.bounds();
    if (!this.bound) {
      this.bound = true;
      this.view = { x: 0, y: 0, w: 1, h: 1 };
      this.fit();
      this.panZoom();
      this.bind();
    } else this.apply();
    for (const id of this.runs.keys()) this.drawResult(id);
    this.ui?.drawn();
  }

  patch(g, problems, edges) {
    for (const el of this.svg.querySelectorAll(".cycle")) el.classList.remove("cycle"); // a refused cycle, shown until the next change
    const layer = this.svg.querySelector("g.nodes");
    for (const [id, el] of this.elements) {
      if (!g.byId.has(id)) {
        el.remove();
        this.elements.delete(id);
        this.drawn.delete(id);
        this.detailed.delete(id);
      }
    }
    const small = g.nodes.length <= EAGER_DETAIL;
    for (const n of g.nodes) {
      const markup = nodeMarkup(n, small || this.detailed.has(n.id), problems, flowNth(g, n.id), flowName(g, n.id));
      if (this.drawn.get(n.id) === markup) continue;
      const old = this.elements.get(n.id);
      const focused = old && old === document.activeElement; // (an undo, say: the keyboard's place is kept)
      if (old) old.insertAdjacentHTML("afterend", markup);
      else layer.insertAdjacentHTML("beforeend", markup);
      const el = old ? old.nextElementSibling : layer.lastElementChild;
      old?.remove();
      this.elements.set(n.id, el);
      this.drawn.set(n.id, markup);
      if (small) this.detailed.add(n.id);
      const mark = this.marks.get(n.id);
      if (mark) super.setStatus(n.id, ...mark);
      if (this.selected === n.id) el.classList.add("selected");
      if (focused) el.focus({ preventScroll: true });
    }
    const lines = this.svg.querySelector("g.edges");
    for (const [key, el] of this.paths) {
      if (edges.get(key) !== this.lines.get(key)) {
        el.remove();
        this.paths.delete(key);
      }
    }
    for (const [key, markup] of edges) {
      if (this.paths.has(key)) continue;
      lines.insertAdjacentHTML("beforeend", markup);
      this.paths.set(key, lines.lastElementChild);
    }
    this.lines = edges;
  }

  detailInView() {
    const v = this.view;
    for (const n of this.graph.nodes) {
      if (this.detailed.has(n.id) || n.x > v.x + v.w || n.x + n.w < v.x || n.y > v.y + v.h || n.y + n.h < v.y) continue;
      const el = this.elements.get(n.id);
      el.insertAdjacentHTML("beforeend", detailMarkup(n));
      el.querySelector(".badge").textContent = badgeText(el.dataset.badge);
      this.badged(n.id, el);
      this.detailed.add(n.id);
      if (this.nth(n.id)) showTitle(el, n, titleRoom(n, el.classList.contains("problem")), this.nth(n.id)); // (graph.js nthMarkup)
    }
  }

  // A node's badge changed: here it shares the line of the app's title, which has that much
  // less room (or more).
  badged(id, el) {
    const n = this.graph.byId.get(id);
    const app = el.querySelector("text.app");
    if (n && app) refit(app, n.appTitle, appRoom(n, el.dataset.badge));
  }

  setStatus(id, status, badge) {
    this.marks.set(id, [status, badge]);
    super.setStatus(id, status, badge);
  }

  // The graph coordinates under a pointer event.
  // (`m`: a matrix kept from the start of a drag, which asks no layout of the page per move.)
  point(event, m = this.svg.getScreenCTM().inverse()) {
    const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(m);
    return { x: p.x, y: p.y };
  }

  bind() {
    const c = this.container;
    c.addEventListener("pointerdown", (event) => this.down(event), { capture: true });
    c.addEventListener("click", (event) => {
      const edge = event.target.closest("path.edge");
      for (const el of this.svg.querySelectorAll("path.edge.selected")) el.classList.remove("selected");
      const onNode = this.pressedNode; // (a node's drag captures the pointer: its click's target is the container)
      this.pressedNode = false;
      if (!edge) {
        const nodeEl = event.target.closest("g.node");
        if (this.readOnly && nodeEl && !this.dragged) this.pick(nodeEl.dataset.id); // (no drag selects it)
        // a click on the background (not the end of a pan) selects nothing: Delete then removes nothing
        else if (!onNode && !nodeEl && !event.target.closest("foreignObject") && !this.dragged) this.select(null);
        return;
      }
      edge.classList.add("selected");
      this.handlers.selectEdge({ ...edge.dataset });
    });
  }

  down(event) {
    if (event.button !== 0 || this.pinch) return; // a second finger: the view's pinch (gestures.js)
    const target = event.target;
    const nodeEl = target.closest("g.node");
    this.pressedNode = Boolean(nodeEl);
    const action = target.dataset.action;
    if (nodeEl && (action === "run" || action === "stop" || action === "ui")) {
      event.stopPropagation();
      event.preventDefault();
      if (action === "ui") this.ui?.toggle(nodeEl.dataset.id);
      else if (!this.svg.classList.contains("norun")) this.handlers[action](nodeEl.dataset.id);
      return;
    }
    if (!nodeEl || this.readOnly) return; // the background: GraphView pans (and selects on click)
    event.stopPropagation();
    event.preventDefault(); // no text selection or focus change: nothing else repaints
    const id = nodeEl.dataset.id;
    if (action) {
      if (action === "remove") this.handlers.remove(id);
      else this.handlers.toggle(id);
      return;
    }
    if (target.classList.contains("port") && target.classList.contains("out")) wire(this, event, id, target.dataset.name);
    else drag(this, event, id, nodeEl);
  }

  // Node `node` drawn where it now is: its element `el` and its edges' paths `edges`.
  place(node, el, edges) {
    el.setAttribute("transform", `translate(${node.x},${node.y})`);
    for (const path of edges) {
      const e = path.dataset;
      path.setAttribute("d", edgePath(this.graph.byId.get(e.from), this.graph.byId.get(e.to), e, this.router));
    }
  }

  // Node `id` and its `edges` moved on screen (from `from`), not by a redraw: their markup as
  // drawn is forgotten, so the next redraw writes them again (an undo of the move put them back
  // nowhere but in the document: the markup it made was the one drawn before the move).
  stale(id, edges, from) {
    this.drawn.delete(id);
    for (const path of edges) this.lines.delete(edgeKey(path.dataset));
    this.reroute(this.graph.byId.get(id), from);
  }

  // Node `n` moved from `from`: the router has it where it is now, and the edges whose way it
  // may have left or come into (their span meets its box, before or after) are routed again;
  // the paths that changed are written (a few of dag1000's 2,000: no redraw).
  reroute(n, from) {
    if (!n) return;
    this.router.move(n, from);
    const boxes = [{ x: from.x, y: from.y, w: n.w, h: n.h }, n];
    for (const [key, span] of this.spans) {
      const path = this.paths.get(key);
      if (!span || !path || !boxes.some((box) => meets(span, box))) continue;
      const e = path.dataset;
      const { d, span: now } = route(this.graph.byId.get(e.from), this.graph.byId.get(e.to), e, this.router);
      this.spans.set(key, now);
      if (path.getAttribute("d") === d) continue;
      path.setAttribute("d", d);
      this.lines.delete(key);
    }
  }

  // Shift+arrow on a node (viewaids.js): the node `dx`, `dy` further, as a drag would leave it
  // (its edges and the result boxes follow, the view follows it out of view); the document's
  // `move` makes a run of them on one node one undo step (editor-doc.js).
  nudge(id, dx, dy) {
    const node = this.graph.byId.get(id);
    const el = this.elements.get(id);
    if (this.readOnly || !node || !el) return;
    node.x += dx;
    node.y += dy;
    const edges = this.edgesOf.get(id) || [];
    this.place(node, el, edges);
    this.stale(id, edges, { x: node.x - dx, y: node.y - dy });
    for (const one of this.runs.keys()) this.placeResult(one);
    reveal(this, node);
    this.handlers.move(id, node.x, node.y, { nudge: true });
  }

  // Mark the flows and edges of a refused cycle, until the next change.
  highlight(path) {
    for (const el of this.svg.querySelectorAll(".cycle")) el.classList.remove("cycle");
    for (const id of path) this.elements.get(id)?.classList.add("cycle");
    for (let i = 0; i + 1 < path.length; i++) {
      for (const el of this.edgesOf.get(path[i]) || []) if (el.dataset.from === path[i] && el.dataset.to === path[i + 1]) el.classList.add("cycle");
    }
  }

  // A flow's status, log and results, under its node (editor-results.js).
  setRun(id, state) {
    this.runs.set(id, state);
    this.drawResult(id);
    this.ui?.setRun(id, state);
  }

  drawResult(id) {
    drawResult(this, id);
  }

  placeResult(id) {
    placeResult(this, id);
  }
}
