// Where a graph view draws its edges: from a node's output port to another's input port, as a
// curve, around the nodes between where a simple rule finds a way (Router). DIZEST's files keep
// flows on one row, 300 px apart: an edge from the first to the fourth was a straight line
// through the two between, read as a chain through them.
import { HEAD, PORT } from "./graphmodel.js";

export const portY = (node, i) => node.y + HEAD + i * PORT + PORT / 2;

const LOOP = 60; // px: how far an edge to a node on its left goes out before it turns back
const BEND = 30; // px: half the run a detour takes to turn down (or up) to its lane, and back

// The ends of edge `e`: node `a`'s output port, node `b`'s input port.
function ends(a, b, e) {
  return [a.x + a.w, portY(a, Math.max(0, a.outputs.indexOf(e.out))), b.x, portY(b, Math.max(0, b.inputs.indexOf(e.in)))];
}

// The edge `e` from node `a`'s output port to node `b`'s input port (`router`: the nodes it goes
// around, none without): its path `d`, and `span` (x0, y0, x1, y1), the box where the nodes
// decide its way (null: none do), so a node moved out of it or into it has it routed again.
// To a node on its left, it leaves rightwards, passes under both nodes and comes in from the
// left (it went straight into the empty space on the right, as a stub that seemed to lead
// nowhere). To a node on its right, a curve; where that crosses a node, a detour along a lane
// under or over the nodes in its way (first the side the node it meets leaves more room on),
// if one is clear; through them, as before, if not.
export function route(a, b, e, router = null) {
  const [x1, y1, x2, y2] = ends(a, b, e);
  if (x2 < x1 + LOOP / 2) {
    const yb = Math.max(a.y + a.h, b.y + b.h) + 24;
    return { d: `M${x1},${y1} C${x1 + LOOP},${y1} ${x1 + LOOP},${yb} ${x1},${yb} L${x2},${yb} C${x2 - LOOP},${yb} ${x2 - LOOP},${y2} ${x2},${y2}`, span: null };
  }
  const dx = Math.max(40, Math.abs(x2 - x1) / 2);
  const plain = { d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`, span: [x1, Math.min(y1, y2), x2, Math.max(y1, y2)] };
  if (!router || x2 - x1 < 4 * BEND) return plain;
  const skip = [router.index.get(a), router.index.get(b)];
  const hit = router.cubic(x1, y1, x1 + dx, y1, x2 - dx, y2, x2, y2, skip);
  if (!hit) return plain;
  const side = hit.y + hit.h / 2 < (y1 + y2) / 2 ? 1 : -1; // the node's middle above the edge's: under it
  const yl = router.lane(x1, y1, x2, y2, skip, hit, side) ?? router.lane(x1, y1, x2, y2, skip, hit, -side);
  if (yl === null) return plain;
  const d = `M${x1},${y1} C${x1 + BEND},${y1} ${x1 + BEND},${yl} ${x1 + 2 * BEND},${yl} L${x2 - 2 * BEND},${yl} C${x2 - BEND},${yl} ${x2 - BEND},${y2} ${x2},${y2}`;
  return { d, span: [x1, Math.min(y1, y2, yl), x2, Math.max(y1, y2, yl)] };
}

// The path of edge `e` from node `a` to node `b` (route).
export const edgePath = (a, b, e, router = null) => route(a, b, e, router).d;

// Span `s` (route's) meets the box of `n` (x, y, w, h), edges included.
export const meets = (s, n) => s[0] <= n.x + n.w && n.x <= s[2] && s[1] <= n.y + n.h && n.y <= s[3];

const CELLS = 1 << 16; // the most cells a router's raster has (256 kB: dag1000's are 33 px)
const MIN_CELL = 16; // px: its finest cell
const MARGIN = 400; // px: the raster's room around the nodes, for one the editor moves out past them
const STEP = 40; // px: between the points a path is checked at (a node is 200 x 66 px or more)
const SAMPLES = 100; // the most points a curve or a line is checked at
const TRIES = 3; // lanes tried on each side of the nodes in an edge's way

// The nodes' boxes as a raster (a cell holds the index + 1 of a node over it, else 0), which
// tells in one read whether a point is on a node. Built once a draw, in time linear in the
// nodes' area; an edge is checked at up to SAMPLES points a candidate path (its curve, then at
// most TRIES lanes a side), each check ending at the first node it meets: the routing of a
// 1,000-flow graph stays linear in its edges. A path is checked at points STEP apart (further
// on a long one): a node it only grazes between two may be missed.
export class Router {
  constructor(nodes) {
    this.nodes = nodes;
    this.index = new Map(nodes.map((n, i) => [n, i + 1]));
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const n of nodes) {
      if (!Number.isFinite(n.x) || !Number.isFinite(n.y)) continue;
      x0 = Math.min(x0, n.x);
      y0 = Math.min(y0, n.y);
      x1 = Math.max(x1, n.x + n.w);
      y1 = Math.max(y1, n.y + n.h);
    }
    if (x0 > x1) [x0, y0, x1, y1] = [0, 0, 0, 0];
    this.x0 = x0 - MARGIN;
    this.y0 = y0 - MARGIN;
    const [w, h] = [x1 - x0 + 2 * MARGIN, y1 - y0 + 2 * MARGIN];
    this.cell = Math.max(MIN_CELL, Math.ceil(Math.sqrt((w * h) / CELLS)));
    this.clear = Math.max(24, this.cell + 4); // px: a lane from the nodes it passes (never in their cells)
    this.cols = Math.ceil(w / this.cell);
    this.rows = Math.ceil(h / this.cell);
    this.grid = new Uint32Array(this.cols * this.rows);
    for (const n of nodes) this.mark(n, n, 0, this.index.get(n));
  }

  // The cells of `box` (x, y; `n`'s size) holding `was` now hold `value` (was = -1: any cell).
  mark(n, box, was, value) {
    if (!Number.isFinite(box.x) || !Number.isFinite(box.y)) return;
    const c = this.cell;
    const [c0, r0] = [Math.max(0, Math.floor((box.x - this.x0) / c)), Math.max(0, Math.floor((box.y - this.y0) / c))];
    const [c1, r1] = [Math.min(this.cols - 1, Math.floor((box.x + n.w - this.x0) / c)), Math.min(this.rows - 1, Math.floor((box.y + n.h - this.y0) / c))];
    for (let r = r0; r <= r1; r++) {
      for (let col = c0, i = r * this.cols + c0; col <= c1; col++, i++) if (was < 0 || this.grid[i] === was) this.grid[i] = value;
    }
  }

  // Node `n` moved from `from` (x, y): the raster has it where it is now.
  move(n, from) {
    const i = this.index.get(n);
    if (!i) return;
    this.mark(n, from, i, 0);
    this.mark(n, n, -1, i);
  }

  // The index + 1 of the node at (x, y), 0 where there is none.
  at(x, y) {
    const col = Math.floor((x - this.x0) / this.cell);
    const row = Math.floor((y - this.y0) / this.cell);
    return col < 0 || row < 0 || col >= this.cols || row >= this.rows ? 0 : this.grid[row * this.cols + col];
  }

  // The first node that the cubic from (x0, y0) to (x3, y3) passes over, or null; not those of
  // `skip` (the indexes + 1 of the edge's own nodes).
  cubic(x0, y0, x1, y1, x2, y2, x3, y3, skip) {
    const length = Math.hypot(x1 - x0, y1 - y0) + Math.hypot(x2 - x1, y2 - y1) + Math.hypot(x3 - x2, y3 - y2);
    const steps = Math.min(SAMPLES, Math.ceil(length / STEP) + 1);
    for (let s = 1; s < steps; s++) {
      const t = s / steps;
      const u = 1 - t;
      const k0 = u * u * u;
      const k1 = 3 * u * u * t;
      const k2 = 3 * u * t * t;
      const k3 = t * t * t;
      const hit = this.at(k0 * x0 + k1 * x1 + k2 * x2 + k3 * x3, k0 * y0 + k1 * y1 + k2 * y2 + k3 * y3);
      if (hit && hit !== skip[0] && hit !== skip[1]) return this.nodes[hit - 1];
    }
    return null;
  }

  // A lane (its y) below (`side` 1) or above (-1) node `hit`, in the way of the edge between
  // the ports (x1, y1) and (x2, y2), that its detour can take without passing over a node
  // (`skip`: as cubic's); null if TRIES lanes each meet one.
  lane(x1, y1, x2, y2, skip, hit, side) {
    let y = side > 0 ? hit.y + hit.h + this.clear : hit.y - this.clear;
    const [xa, xb] = [x1 + 2 * BEND, x2 - 2 * BEND]; // the lane's ends (a straight line, as a cubic)
    for (let i = 0; i < TRIES; i++) {
      const m =
        this.cubic(x1, y1, x1 + BEND, y1, x1 + BEND, y, xa, y, skip) ||
        this.cubic(xa, y, (2 * xa + xb) / 3, y, (xa + 2 * xb) / 3, y, xb, y, skip) ||
        this.cubic(xb, y, x2 - BEND, y, x2 - BEND, y2, x2, y2, skip);
      if (!m) return y;
      const next = side > 0 ? Math.max(y, m.y + m.h + this.clear) : Math.min(y, m.y - this.clear);
      if (next === y) return null; // met where the lane turns, not on it: no lane further out helps
      y = next;
    }
    return null;
  }
}
