// The workflow as a graph a view draws: a node per flow where DIZEST's canvas put it (pos_x,
// pos_y), or a layered layout when positions are missing or overlap, with its ports and its
// box's size; an edge per connection, from an output port to an input port.
import { appTitle, flowTitle } from "./flownames.js";

export const W = 200; // px: a node's width
export const HEAD = 42; // px: a node's head, above its ports
export const PORT = 16; // px: a port's row
export const GAP_X = 80; // px: between the layered layout's columns
export const GAP_Y = 28; // px: between the nodes of a column

// `layout`: true, the stored positions unless missing or stacked; "auto", the layered layout
// whatever is stored (a view's Arrange: DIZEST's own files may keep every flow on one row, their
// edges then passing behind the cards between); false, the stored positions whatever they are
// (the editor: a node dropped on another must not move the rest).
export function model(pkg, { layout = true } = {}) {
  const apps = pkg.apps || {};
  const nodes = [];
  const byId = new Map();
  for (const [id, flow] of Object.entries(pkg.flow || {})) {
    const app = apps[flow.app_id] || {};
    const declared = Array.isArray(app.inputs) ? app.inputs : [];
    const inputs = declared.filter((i) => i.type === "output").map((i) => i.name);
    const variables = declared.filter((i) => i.type === "variable");
    const outputs = (Array.isArray(app.outputs) ? app.outputs : []).map((o) => o.name);
    const rows = Math.max(inputs.length, outputs.length, 1);
    const node = {
      id,
      flow,
      app,
      title: flowTitle(id, flow, app),
      appId: flow.app_id,
      appTitle: appTitle(flow.app_id, app),
      active: flow.active !== false,
      inputs,
      outputs,
      variables,
      x: Number(flow.pos_x),
      y: Number(flow.pos_y),
      w: W,
      h: HEAD + rows * PORT + 8,
    };
    nodes.push(node);
    byId.set(id, node);
  }
  const edges = [];
  for (const node of nodes) {
    for (const [name, spec] of Object.entries(node.flow.inputs || {})) {
      for (const c of (spec && spec.connections) || []) {
        if (byId.has(c.node)) edges.push({ from: c.node, out: c.input, to: node.id, in: name });
      }
    }
  }
  if (layout === "auto" || (layout && needsLayout(nodes))) layered(nodes, edges, byId);
  return { nodes, edges, byId, names: null };
}

// Lay out a package whose positions are missing or placeholders (two flows on the same spot, as
// a generated package puts them all at 0,0); positions a user chose are kept, even where two
// nodes overlap (a drop there), so a saved layout is the one shown again.
const STACKED = 8; // px: origins this close are one spot

function needsLayout(nodes) {
  const cells = new Set();
  for (const n of nodes) {
    if (!Number.isFinite(n.x) || !Number.isFinite(n.y)) return true;
    const cx = Math.floor(n.x / STACKED);
    const cy = Math.floor(n.y / STACKED);
    for (const dx of [-1, 0, 1]) for (const dy of [-1, 0, 1]) if (cells.has(`${cx + dx},${cy + dy}`)) return true;
    cells.add(`${cx},${cy}`);
  }
  return false;
}

function layered(nodes, edges, byId) {
  const parents = new Map(nodes.map((n) => [n.id, []]));
  const children = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    parents.get(e.to).push(e.from);
    children.get(e.from).push(e.to);
  }
  const pending = new Map(nodes.map((n) => [n.id, parents.get(n.id).length]));
  const layer = new Map();
  const queue = nodes.filter((n) => pending.get(n.id) === 0).map((n) => n.id);
  for (const id of queue) layer.set(id, 0);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i];
    for (const child of children.get(id)) {
      layer.set(child, Math.max(layer.get(child) || 0, layer.get(id) + 1));
      pending.set(child, pending.get(child) - 1);
      if (pending.get(child) === 0) queue.push(child);
    }
  }
  for (const n of nodes) if (!layer.has(n.id)) layer.set(n.id, 0); // a cycle: never valid, still drawn
  const columns = [];
  for (const n of nodes) (columns[layer.get(n.id)] ||= []).push(n);
  const order = new Map();
  columns.forEach((column, c) => {
    if (c > 0) {
      // each node's rank once (not per comparison: 100,000 flows sorted in 0.2 s less)
      const rank = new Map(column.map((n) => {
        const ps = parents.get(n.id);
        return [n.id, ps.length ? ps.reduce((s, p) => s + order.get(p), 0) / ps.length : 0];
      }));
      column.sort((a, b) => rank.get(a.id) - rank.get(b.id));
    }
    let y = 40;
    column.forEach((n, i) => {
      order.set(n.id, i);
      n.x = 40 + c * (W + GAP_X);
      n.y = y;
      y += n.h + GAP_Y;
    });
  });
  void byId;
}

// The Arrange link of a view's toolbar (#arrange): this page again with the layered layout, or
// back to the stored positions; which one `model` is asked for.
export function arrangeLink() {
  const params = new URLSearchParams(location.search);
  const auto = params.get("layout") === "auto";
  const link = document.getElementById("arrange");
  if (link) {
    if (auto) params.delete("layout");
    else params.set("layout", "auto");
    link.href = `${location.pathname}${params.size ? `?${params}` : ""}${location.hash}`;
    link.textContent = auto ? "As saved" : "Arrange";
    link.title = auto ? "the flows where the workflow keeps them" : "the flows laid out by their dependencies (not saved)";
  }
  return auto ? "auto" : true;
}
