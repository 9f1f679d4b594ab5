// How a graph view's canvas (graph.js GraphView, the editor's) takes a wheel, a trackpad's pinch
// and two fingers on a touch screen. Nothing here runs per node: a gesture changes the view
// (`view.view`, applied as the SVG's viewBox), as a pan does.

const STEP = 1.2; // a mouse wheel's notch

// A wheel event's zoom. A notch of a mouse wheel is a step; a trackpad's pinch, which Chrome (and
// Edge, Firefox) send as wheel events with ctrlKey, a small deltaY each, follows the fingers:
// Chromium makes deltaY = 100·ln(1/scale) (touchpad_pinch_event_queue.cc), so the pinch's scale is
// exp(-deltaY/100). (A step an event, as before, zoomed ~1.2^60 a second of pinching.) Ctrl with a
// mouse wheel (deltaY 100 or more) is kept to a step too.
export function wheelFactor(event) {
  if (!event.ctrlKey || event.deltaMode !== WheelEvent.DOM_DELTA_PIXEL) return event.deltaY < 0 ? STEP : 1 / STEP;
  return Math.min(Math.max(Math.exp(-event.deltaY / 100), 1 / STEP), STEP);
}

// Two fingers on a touch screen: the view zooms by how far they spread or close, about their
// midpoint, and pans as the midpoint moves, so the graph under the fingers stays under them. The
// canvas is `touch-action: none` (console.css): the page neither zooms nor scrolls under them.
// `view.pinch` is set while two fingers are down (the editor drags no node meanwhile); when one
// is lifted, `resume` is told where the one left is (it pans on). Returns how many are down.
export function pinch(view, resume) {
  const c = view.container;
  const touches = new Map(); // pointerId -> {x, y}: the fingers on the canvas
  const two = () => [...touches.values()].slice(0, 2);
  const spread = ([a, b]) => ({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2, d: Math.hypot(a.x - b.x, a.y - b.y) || 1 });
  c.addEventListener(
    "pointerdown",
    (event) => {
      if (event.pointerType !== "touch") return;
      if (event.isPrimary) touches.clear(); // a new gesture: forget a finger whose lift was never told
      touches.set(event.pointerId, { x: event.clientX, y: event.clientY });
      if (touches.size !== 2) return;
      const r = c.getBoundingClientRect();
      view.pinch = { at: spread(two()), view: { ...view.view }, r };
      view.dragged = true; // no tap, no pick, at the end
    },
    { capture: true }, // before the editor's own, which takes a node's press for a drag
  );
  c.addEventListener("pointermove", (event) => {
    if (!touches.has(event.pointerId)) return;
    touches.set(event.pointerId, { x: event.clientX, y: event.clientY });
    const p = view.pinch;
    if (!p) return;
    const now = spread(two());
    const v = view.scaled(p.view, now.d / p.at.d, (p.at.x - p.r.left) / p.r.width, (p.at.y - p.r.top) / p.r.height);
    v.x -= ((now.x - p.at.x) * v.w) / p.r.width;
    v.y -= ((now.y - p.at.y) * v.h) / p.r.height;
    view.view = v;
    view.apply();
  });
  const lift = (event) => {
    if (!touches.delete(event.pointerId)) return;
    if (touches.size === 1 && view.pinch) {
      view.pinch = null;
      resume([...touches.values()][0]);
    } else if (!touches.size) view.pinch = null;
  };
  c.addEventListener("pointerup", lift, { capture: true });
  c.addEventListener("pointercancel", lift, { capture: true });
  return () => touches.size;
}
