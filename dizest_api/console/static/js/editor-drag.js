// How the editor's canvas (editor-canvas.js) takes a pointer on a node: a drag moves it (its
// edges following once per animation frame, in an overlay: lift), a drag from an output port
// draws a wire that, dropped on an input port, asks to connect the two.
import { portY } from "./edges.js";

// Move a node with the pointer; its edges follow, once per animation frame. Once it moves, a
// copy of the node and its edges (a preview, as draw.io shows) moves in an overlay SVG with the
// same viewBox while the original stays put: the frames of a drag lay out and paint that small
// SVG, never the one holding the other 999 flows, which changes once, at the drop. (Hiding
// the original costs a layout of the whole graph in Chromium: 60-300 ms on dag1000.)
export function drag(canvas, event, id, el) {
  const node = canvas.graph.byId.get(id);
  const matrix = canvas.svg.getScreenCTM().inverse();
  const start = canvas.point(event, matrix);
  const origin = { x: node.x, y: node.y };
  const edges = canvas.edgesOf.get(id) || [];
  let frame = 0;
  let moved = false;
  let lifted = null; // {el, edges, drop}: the copies in the overlay
  canvas.container.setPointerCapture?.(event.pointerId); // no hit tests of thousands of paths meanwhile
  const paint = (target = lifted || { el, edges }) => {
    frame = 0;
    canvas.place(node, target.el, target.edges);
  };
  const move = (ev) => {
    if (canvas.pinch) return cancel(); // a second finger came: the gesture is a pinch, not a move
    const p = canvas.point(ev, matrix);
    node.x = origin.x + p.x - start.x;
    node.y = origin.y + p.y - start.y;
    moved ||= Math.abs(p.x - start.x) + Math.abs(p.y - start.y) > 2;
    if (moved && !lifted) lifted = lift(canvas, el, edges);
    if (!frame) frame = requestAnimationFrame(() => paint());
  };
  const stop = () => {
    window.removeEventListener("pointermove", move);
    window.removeEventListener("pointerup", up);
    if (frame) cancelAnimationFrame(frame);
  };
  const cancel = () => {
    stop();
    Object.assign(node, origin);
    if (!lifted) canvas.place(node, el, edges); // (before the lift, the original itself followed)
    lifted?.drop();
  };
  const up = () => {
    stop();
    if (!moved) {
      Object.assign(node, origin); // a click redraws nothing: rewriting the node and its edges
      return canvas.pick(id); // laid out all of dag1000 with the panel it opens (85-100 ms)
    }
    paint({ el, edges });
    canvas.stale(id, edges, origin);
    lifted?.drop();
    // the boxes above it (results, UIs) may have less room now
    for (const one of new Set([...canvas.runs.keys(), ...(canvas.ui?.boxes.keys() || [])])) canvas.placeResult(one);
    canvas.handlers.move(id, node.x, node.y);
  };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
}

// Copies of `el` and `edges` in the overlay SVG; `drop` removes them.
function lift(canvas, el, edges) {
  const overlay = canvas.overlay;
  overlay.setAttribute("class", `${canvas.svg.getAttribute("class")} overlay`);
  overlay.setAttribute("viewBox", canvas.svg.getAttribute("viewBox"));
  const copies = { el: el.cloneNode(true), edges: edges.map((path) => path.cloneNode(true)) };
  const lines = document.createElementNS("http://www.w3.org/2000/svg", "g");
  lines.append(...copies.edges);
  overlay.append(lines, copies.el);
  copies.drop = () => overlay.replaceChildren();
  return copies;
}

// Draw a wire from an output port; dropped on an input port, it asks to connect the two.
export function wire(canvas, event, from, out) {
  const a = canvas.graph.byId.get(from);
  const x1 = a.x + a.w;
  const y1 = portY(a, a.outputs.indexOf(out));
  const line = canvas.svg.querySelector("path.wire");
  canvas.svg.classList.add("wiring");
  const move = (ev) => {
    if (canvas.pinch) return stop(); // a second finger: a pinch, no connection
    const p = canvas.point(ev);
    line.setAttribute("d", `M${x1},${y1} C${x1 + 60},${y1} ${p.x - 60},${p.y} ${p.x},${p.y}`);
  };
  const stop = () => {
    window.removeEventListener("pointermove", move);
    window.removeEventListener("pointerup", up);
    line.setAttribute("d", "");
    canvas.svg.classList.remove("wiring");
  };
  const up = (ev) => {
    stop();
    const port = document.elementFromPoint(ev.clientX, ev.clientY)?.closest?.("circle.port.in");
    if (port) canvas.handlers.connect(from, out, port.closest("g.node").dataset.id, port.dataset.name);
  };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
}
