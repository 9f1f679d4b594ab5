// Where a graph view draws its edges: from a node's output port to another's input port.
import { HEAD, PORT } from "./graphmodel.js";

export const portY = (node, i) => node.y + HEAD + i * PORT + PORT / 2;

const LOOP = 60; // px: how far an edge to a node on its left goes out before it turns back

// The edge `e` from node `a`'s output port to node `b`'s input port. To a node on its left, it
// leaves rightwards, passes under both nodes and comes in from the left (it went straight into
// the empty space on the right, as a stub that seemed to lead nowhere).
export function edgePath(a, b, e) {
  const x1 = a.x + a.w;
  const y1 = portY(a, Math.max(0, a.outputs.indexOf(e.out)));
  const x2 = b.x;
  const y2 = portY(b, Math.max(0, b.inputs.indexOf(e.in)));
  if (x2 < x1 + LOOP / 2) {
    const yb = Math.max(a.y + a.h, b.y + b.h) + 24;
    return `M${x1},${y1} C${x1 + LOOP},${y1} ${x1 + LOOP},${yb} ${x1},${yb} L${x2},${yb} C${x2 - LOOP},${yb} ${x2 - LOOP},${y2} ${x2},${y2}`;
  }
  const dx = Math.max(40, Math.abs(x2 - x1) / 2);
  return `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
}
