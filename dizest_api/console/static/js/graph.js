// The workflow DAG as one SVG (graphmodel.js: the nodes, where they are; edges.js: the edges' paths).
// Built as one markup string (every text escaped) and inserted once: 1,000 flows draw in one
// layout pass. Status changes touch one element's class; pan and zoom change only the viewBox.
// A title is cut to the room its node leaves it (textfit.js: a canvas measure per distinct
// title, none for a short ASCII one; no layout read of the graph).
import { clip, escapeHtml } from "./dom.js";
import { Router, edgePath } from "./edges.js";
import { flowName, flowNth, nthSuffix } from "./flownames.js";
import { pinch, wheelFactor } from "./gestures.js";
import { GAP_X, GAP_Y, HEAD, PORT } from "./graphmodel.js";
import { fit, setTip, textWidth, tipMarkup } from "./textfit.js";
import { bindKeys, followResize, nodeAttrs, nodeLabel, picked, reveal } from "./viewaids.js";

const PAD = 10; // px: a node's texts from its left edge
const TITLE_Y = 20; // px: a title's baseline
export const BADGE_R = 8; // px: its badge (text-anchor end) from its right edge
const BADGE_GAP = 6; // px: between a title and the badge on its line
const BADGE_MAX = 80; // px: a badge longer than this (a reason a page passed) is cut too

// What a node's badge shows of `badge`: all of a status word or an index, at most BADGE_MAX.
export const badgeText = (badge) => fit(badge || "", BADGE_MAX, "badge");

// How much of a node's line its badge takes (with the gap before it): the rest is the text's.
export const badgeRoom = (badge) => (badge ? textWidth(badgeText(badge), "badge") + BADGE_GAP : 0);

// The room of a node's title: up to the badge on its line (its status word, a run's index).
// Cut to its width (textfit.js), never to a count of letters: a long or wide one ran under it.
const titleRoom = (n, badge) => n.w - PAD - BADGE_R - badgeRoom(badge);

// A node's title where flows share it: its number after it, as the messages name the flow
// ("greet (2)", flownames.js), smaller, and never cut (the title gives it the room: measured
// once per count of digits, a digit as wide as any other). A large graph draws it with the
// node's detail, where that can be read (GraphView.nth): on dag1000, whose 999 flows share a
// title, a number on every node drew the graph 20 ms slower.
const nthMarkup = (nth) => (nth ? `<tspan class="nth">${nthSuffix(nth)}</tspan>` : "");
const nthRoom = (nth) => (nth ? textWidth(nthSuffix("0".repeat(String(nth).length)), "nth") : 0);

// Node `n`'s title in `px`, with its number `nth` (flowNth; 0: none): its tooltip (the whole
// title, when cut: the node's first child) and its <text> at `x`, as markup.
export function titleMarkup(n, x, px, nth) {
  const shown = fit(n.title, px - nthRoom(nth), "title");
  return [tipMarkup(n.title, shown), `<text class="title" x="${x}" y="${TITLE_Y}">${escapeHtml(shown)}${nthMarkup(nth)}</text>`];
}

// Node element `node` shows the title of `n` in `px` with its number `nth`, as titleMarkup
// draws it: its text, number and tooltip written only where they changed (no layout more).
export function showTitle(node, n, px, nth) {
  const el = node.querySelector("text.title");
  if (!el) return;
  const shown = fit(n.title, px - nthRoom(nth), "title");
  const text = el.firstChild?.nodeType === Node.TEXT_NODE ? el.firstChild : el.insertBefore(document.createTextNode(""), el.firstChild);
  if (text.nodeValue !== shown) text.nodeValue = shown;
  let tag = el.querySelector("tspan.nth");
  if (!nth) tag?.remove();
  else {
    tag ||= el.appendChild(document.createElementNS("http://www.w3.org/2000/svg", "tspan"));
    tag.setAttribute("class", "nth");
    if (tag.textContent !== nthSuffix(nth)) tag.textContent = nthSuffix(nth);
  }
  setTip(node, n.title, shown);
}

// What every node shows, at any zoom: its box, status bar and title (whole in its tooltip when
// cut), with its number where flows share its title (`nth`).
function nodeMarkup(n, detailed, nth, name) {
  const [tip, title] = titleMarkup(n, PAD, titleRoom(n, ""), detailed ? nth : 0);
  return [
    `<g class="node${n.active ? "" : " inactive"}" data-id="${escapeHtml(n.id)}" ${nodeAttrs(name)} transform="translate(${n.x},${n.y})">`,
    tip,
    `<rect class="box" width="${n.w}" height="${n.h}" rx="6"/>`,
    `<rect class="bar" width="${n.w}" height="4" rx="2"/>`,
    title,
    detailed ? detailMarkup(n) : "",
    "</g>",
  ].join("");
}

// What a node shows when it is big enough to read: app, status badge, ports and their names.
// Large graphs add it only to the nodes in view, as the user zooms in (level of detail).
function detailMarkup(n) {
  const app = escapeHtml(fit(n.appTitle, n.w - PAD - BADGE_R, "app"));
  const parts = [`<text class="app" x="${PAD}" y="35">${app}</text>`, `<text class="badge" x="${n.w - BADGE_R}" y="${TITLE_Y}"></text>`];
  n.inputs.forEach((name, i) => {
    const y = HEAD + i * PORT + PORT / 2;
    parts.push(`<circle class="port in" cx="0" cy="${y}" r="4"/><text class="port-label" x="8" y="${y + 4}">${clip(name, 14)}</text>`);
  });
  n.outputs.forEach((name, i) => {
    const y = HEAD + i * PORT + PORT / 2;
    parts.push(`<circle class="port out" cx="${n.w}" cy="${y}" r="4"/><text class="port-label out" x="${n.w - 8}" y="${y + 4}">${clip(name, 14)}</text>`);
  });
  return parts.join("");
}

// Fit zooms out no further than where a title (13 px at a scale of 1) is 9 px high: 3 flows at
// DIZEST's positions, 2,000 px apart, were fitted with titles 3 px high in a view mostly empty.
const READABLE = 9 / 13;

// The canvas (`area` px²) could show every one of `nodes` at a READABLE scale, with the room the
// layered layout leaves around each: a sparse graph's, not a large one's (dag100, dag1000).
function roomy(nodes, area) {
  let need = 0;
  for (const n of nodes) need += (n.w + GAP_X) * (n.h + GAP_Y) * READABLE * READABLE;
  return need <= area;
}

// A `w` × `h` view of the graph in `box`: centred on each axis where the box fits; where it does
// not, from the graph's start, its leftmost flow (DIZEST's flows run left to right): the box's
// left edge, and that flow's middle across (within the box). The rest is a drag, the wheel, an
// arrow key (viewaids.js: the nearest flow that way, brought into view) or − away.
function fitStart(box, nodes, w, h) {
  let first = null;
  for (const n of nodes) if (!first || n.x < first.x || (n.x === first.x && n.y < first.y)) first = n;
  const x = box.w <= w ? box.x - (w - box.w) / 2 : box.x;
  if (box.h <= h || !first) return { x, y: box.y - (h - box.h) / 2, w, h };
  return { x, y: Math.min(Math.max(first.y + first.h / 2 - h / 2, box.y), box.y + box.h - h), w, h };
}

export const EAGER_DETAIL = 300; // nodes: up to this many get their detail at once
const FAR = 0.45; // screen pixels per graph unit below which detail is not drawn

export class GraphView {
  constructor(container, graph, onSelect) {
    this.container = container;
    this.graph = graph;
    this.onSelect = onSelect;
    this.elements = new Map();
    this.selected = null;
    this.draw();
  }

  draw() {
    const g = this.graph;
    const router = new Router(g.nodes);
    const edges = g.edges
      .map((e) => `<path class="edge" data-from="${escapeHtml(e.from)}" data-to="${escapeHtml(e.to)}" d="${edgePath(g.byId.get(e.from), g.byId.get(e.to), e, router)}"/>`)
      .join("");
    const eager = g.nodes.length <= EAGER_DETAIL;
    this.detailed = new Set(eager ? g.nodes.map((n) => n.id) : []);
    const nodes = g.nodes.map((n) => nodeMarkup(n, eager, flowNth(g, n.id), flowName(g, n.id))).join("");
    this.container.innerHTML = `<svg class="dag" xmlns="http://www.w3.org/2000/svg"><g class="edges">${edges}</g><g class="nodes">${nodes}</g></svg>`;
    this.svg = this.container.firstChild;
    for (const el of this.svg.querySelectorAll("g.node")) this.elements.set(el.dataset.id, el);
    this.view = { x: 0, y: 0, w: 1, h: 1 };
    this.svg.addEventListener("click", (event) => {
      const el = event.target.closest("g.node");
      if (el && !this.dragged) this.pick(el.dataset.id);
    });
    this.bounds();
    this.fit();
    this.panZoom();
  }

  bounds() {
    let x0 = Infinity;
    let y0 = Infinity;
    let x1 = -Infinity;
    let y1 = -Infinity;
    for (const n of this.graph.nodes) {
      x0 = Math.min(x0, n.x);
      y0 = Math.min(y0, n.y);
      x1 = Math.max(x1, n.x + n.w);
      y1 = Math.max(y1, n.y + n.h);
    }
    if (!this.graph.nodes.length) [x0, y0, x1, y1] = [0, 0, 400, 300];
    this.box = { x: x0 - 30, y: y0 - 30, w: x1 - x0 + 60, h: y1 - y0 + 60 };
  }

  // The view fitted to the graph (Fit, the first draw, a resize of a fitted view): all of it,
  // unless that draws its titles too small to read. Then a graph the canvas could hold at a
  // readable size (`roomy`) keeps that size and starts at its start (fitStart); one too big for
  // it (dag1000) is fitted whole, an overview. `keep`: a node to have in view (one just added).
  // `whole`: all of it whatever the size (Fit pressed on such a readable part: `fitPressed`).
  fit(keep = null, whole = this.whole) {
    const { width, height } = this.container.getBoundingClientRect();
    const [cw, ch] = [width || 800, height || 600];
    let scale = Math.min(cw / this.box.w, ch / this.box.h, 1.5);
    this.partial = !whole && scale < READABLE && roomy(this.graph.nodes, cw * ch);
    if (this.partial) scale = READABLE;
    this.whole = whole;
    this.view = fitStart(this.box, this.graph.nodes, cw / scale, ch / scale);
    if (keep && this.graph.byId.has(keep)) reveal(this, this.graph.byId.get(keep));
    this.fitted = this.view; // (followResize: a view still this one is fitted again on a resize)
    this.apply();
  }

  // Fit, pressed: the fitted view; on a fitted view that shows a part of the graph (readable),
  // all of it; pressed again, the readable part (a person asking to fit wants all of it).
  fitPressed() {
    if (this.view === this.fitted && (this.partial || this.whole)) this.fit(null, !this.whole);
    else this.fit();
  }

  apply() {
    const v = this.view;
    this.svg.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
    const { width } = this.container.getBoundingClientRect();
    const far = (width || 800) / v.w < FAR;
    // Far out, port labels are unreadable and cost paint time: hide them.
    this.svg.classList.toggle("far", far);
    if (!far && this.detailed.size < this.graph.nodes.length) this.detailInView();
  }

  detailInView() {
    const v = this.view;
    for (const n of this.graph.nodes) {
      if (this.detailed.has(n.id) || n.x > v.x + v.w || n.x + n.w < v.x || n.y > v.y + v.h || n.y + n.h < v.y) continue;
      const el = this.elements.get(n.id);
      el.insertAdjacentHTML("beforeend", detailMarkup(n));
      el.querySelector(".badge").textContent = badgeText(el.dataset.badge);
      this.detailed.add(n.id);
      if (flowNth(this.graph, n.id)) this.badged(n.id, el); // its number, with the title's room
    }
  }

  // The number node `id` shows after its title (flowNth), once its detail is drawn; else 0.
  nth(id) {
    return this.detailed.has(id) ? flowNth(this.graph, id) : 0;
  }

  // Zoom by `factor` about the point at (cx, cy) of the canvas (fractions of its width, height).
  zoom(factor, cx = 0.5, cy = 0.5) {
    this.view = this.scaled(this.view, factor, cx, cy);
    this.apply();
  }

  // `v` zoomed by `factor` about its point at (cx, cy), within the zoom's bounds.
  scaled(v, factor, cx, cy) {
    const w = Math.min(Math.max(v.w / factor, 50), this.box.w * 20 + 2000);
    const h = (w * v.h) / v.w;
    return { x: v.x + (v.w - w) * cx, y: v.y + (v.h - h) * cy, w, h };
  }

  // The wheel zooms about the pointer; one pointer pans (a press and a move of more than 4 px:
  // no click follows); two fingers pinch (pinch).
  panZoom() {
    const c = this.container;
    c.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault(); // (with Ctrl, or a trackpad's pinch: the page's own zoom)
        const r = c.getBoundingClientRect();
        this.zoom(wheelFactor(event), (event.clientX - r.left) / r.width, (event.clientY - r.top) / r.height);
      },
      { passive: false },
    );
    let start = null;
    const grab = (x, y) => (start = { x, y, view: { ...this.view } });
    c.addEventListener("pointerdown", (event) => {
      if (this.pinch) return; // a second finger: the pinch's (a node's drag in the editor stops it reaching here)
      grab(event.clientX, event.clientY);
      this.dragged = false;
    });
    c.addEventListener("pointermove", (event) => {
      if (!start || this.pinch) return;
      const r = c.getBoundingClientRect();
      const dx = ((event.clientX - start.x) * this.view.w) / r.width;
      const dy = ((event.clientY - start.y) * this.view.h) / r.height;
      if (Math.abs(event.clientX - start.x) + Math.abs(event.clientY - start.y) > 4) this.dragged = true;
      if (this.dragged) {
        this.view = { ...this.view, x: start.view.x - dx, y: start.view.y - dy };
        this.apply();
      }
    });
    const end = () => {
      if (fingers()) return; // a finger still down pans on (see pinch)
      start = null;
      setTimeout(() => (this.dragged = false), 0);
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointerleave", end);
    c.addEventListener("pointercancel", end);
    const fingers = pinch(this, (left) => grab(left.x, left.y));
    bindKeys(this);
    followResize(this);
  }

  // The user picked a flow (a click, a tap, Enter or Space): selected, and told to the page.
  pick(id) {
    this.select(id);
    picked(this.container, id);
  }

  select(id) {
    if (this.selected) this.elements.get(this.selected)?.classList.remove("selected");
    this.selected = id;
    this.elements.get(id)?.classList.add("selected");
    this.onSelect?.(id);
  }

  // A node's badge changed (`el.dataset.badge`): the title on its line has that much less room
  // (or more). Only the title's text changes, in the frame the badge's did: no layout more.
  badged(id, el) {
    const n = this.graph.byId.get(id);
    if (n) showTitle(el, n, titleRoom(n, el.dataset.badge), this.nth(id));
  }

  setStatus(id, status, badge) {
    const el = this.elements.get(id);
    if (!el) return;
    const was = `${el.dataset.status}\u0000${el.dataset.badge}`;
    if (el.dataset.status !== status) {
      if (el.dataset.status) el.classList.remove(`st-${el.dataset.status}`);
      el.classList.add(`st-${status}`);
      el.dataset.status = status;
    }
    if (badge !== undefined && el.dataset.badge !== badge) {
      el.dataset.badge = badge;
      const text = el.querySelector(".badge");
      if (text) text.textContent = badgeText(badge);
      this.badged(id, el);
    }
    if (`${el.dataset.status}\u0000${el.dataset.badge}` !== was) nodeLabel(this, id);
  }
}

export function bindZoomButtons(view) {
  document.getElementById("zoom-in")?.addEventListener("click", () => view.zoom(1.3));
  document.getElementById("zoom-out")?.addEventListener("click", () => view.zoom(1 / 1.3));
  const fit = document.getElementById("zoom-fit");
  fit?.addEventListener("click", () => view.fitPressed());
  if (fit) fit.title = "Fit the graph in view; again: all of it, or back to a readable size";
}
