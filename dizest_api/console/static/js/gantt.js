// The run's timeline: one bar per flow that started, from its first `running` to its final
// status, coloured by status, drawn as one SVG string. It is drawn only while it is shown (its
// section open, the page visible: animation frames stop in a hidden tab), only after a flow
// started, ended or changed status, and at most once a second: it used to be redrawn every
// second while a run was live, for every log line, open or not (1,000 flows: every bar, every
// second). A running bar reaches the right edge: it runs until now. A time axis above the bars
// (it stays in view as they scroll) has a tick every round step, light lines down through the
// bars, and the total at its end: a few elements whatever the number of flows.
import { escapeHtml, seconds } from "./dom.js";
import { statusShade } from "./flowstatus.js";
import { fit } from "./textfit.js";

const ROW = 14;
const LABEL = 140;
const EVERY = 1000; // ms: at most one drawing in this time
const AXIS = 16; // px: the axis's height
const MAX_PX = 180; // px: the box's max-height, and FRAME_PX its padding and border (console.css .timeline)
const FRAME_PX = 14;
const TICK_PX = 70; // px: at least this between two ticks (a label's room)
const TOTAL_PX = 60; // px: the total's room at the axis's end, where no tick is labelled
// s: the round steps a tick may take (the first at least TICK_PX long at the chart's scale)
const STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];

export class Gantt {
  // `section`: the <details> that shows it; `box`: where the chart goes; `flows`: id ->
  // {status, reason, start, end}, as the run view keeps them; `titles`: id -> what a bar is labelled.
  constructor(section, box, flows, titles) {
    Object.assign(this, { section, box, flows, titles });
    // Room for a bar a flow from the start (up to the box's own bound, .timeline's max-height):
    // drawn a second later, the bars took it from the graph above, which jumped as they came.
    box.style.minHeight = `${Math.min(MAX_PX, FRAME_PX + AXIS + titles.size * ROW + 4)}px`;
    box.classList.add("reserved");
    this.dirty = true;
    this.due = 0; // performance.now() before which it is not drawn again
    this.timer = null;
    this.width = 0;
    new ResizeObserver(([entry]) => {
      // (read here, never in draw: reading it there would lay the page out a second time; the
      // section's, as the box is not laid out while it is empty)
      if (Math.round(entry.contentRect.width) === this.width) return;
      this.width = Math.round(entry.contentRect.width);
      this.changed();
    }).observe(section);
    section.addEventListener("toggle", () => this.schedule());
  }

  // A flow started, ended or changed its status.
  changed() {
    this.dirty = true;
    this.schedule();
  }

  schedule() {
    if (!this.dirty || !this.section.open || this.timer !== null) return;
    const wait = Math.max(0, this.due - performance.now());
    this.timer = setTimeout(() => requestAnimationFrame(() => this.draw()), wait);
  }

  draw() {
    this.timer = null;
    if (!this.section.open || !this.dirty || !this.width) return; // (no width yet: the observer calls again)
    this.dirty = false;
    this.due = performance.now() + EVERY;
    drawGantt(this.box, this.flows, this.titles, Math.max(this.width - 22, 300)); // (its border and padding)
  }
}

function drawGantt(container, flows, titles, width) {
  const rows = [...flows.entries()].filter(([, f]) => f.start).sort((a, b) => a[1].start - b[1].start);
  if (!rows.length) {
    container.innerHTML = "";
    return;
  }
  const t0 = rows[0][1].start;
  const now = Date.now() / 1000;
  const t1 = rows.reduce((last, [, f]) => Math.max(last, f.end || now), t0); // (no spread: 100,000 rows)
  const scale = (width - LABEL - 10) / Math.max(t1 - t0, 0.001);
  const parts = rows.map(([id, f], i) => {
    const x = LABEL + (f.start - t0) * scale;
    const w = Math.max(2, ((f.end || now) - f.start) * scale);
    const y = i * ROW;
    const label = escapeHtml(fit(titles.get(id) || id, LABEL - 6, "", "gantt")); // not under its bar
    const seconds = ((f.end || now) - f.start).toFixed(2);
    return `<g class="bar st-${escapeHtml(statusShade(f.status, f.reason))}" data-id="${escapeHtml(id)}"><text x="0" y="${y + 10}">${label}</text><rect x="${x}" y="${y + 2}" width="${w}" height="${ROW - 4}"><title>${escapeHtml(id)}: ${seconds} s${f.end ? "" : " so far"}</title></rect></g>`;
  });
  const axis = timeAxis(t1 - t0, scale, width, rows.length * ROW);
  container.innerHTML = `${axis.head}<svg class="gantt" width="${width}" height="${rows.length * ROW + 4}">${axis.lines}${parts.join("")}</svg>`;
}

// The axis over `span` seconds drawn at `scale` px a second: its own SVG (`head`: ticks, their
// labels, the total) and the light lines (`lines`) down through `height` px of bars.
function timeAxis(span, scale, width, height) {
  const step = STEPS.find((s) => s * scale >= TICK_PX) || STEPS[STEPS.length - 1];
  const ticks = [];
  const lines = [];
  for (let k = 0; k * step <= span; k++) {
    const x = LABEL + k * step * scale;
    lines.push(`<line class="tick" x1="${x}" x2="${x}" y1="0" y2="${height}"/>`);
    if (x <= width - TOTAL_PX) ticks.push(`<line class="tick" x1="${x}" x2="${x}" y1="${AXIS - 4}" y2="${AXIS}"/><text x="${x + 2}" y="${AXIS - 6}">${tickLabel(k * step, step)}</text>`);
  }
  const total = `<text class="total" x="${width - 4}" y="${AXIS - 6}" text-anchor="end">total ${seconds(span)}</text>`;
  const base = `<line class="base" x1="${LABEL}" x2="${width}" y1="${AXIS - 0.5}" y2="${AXIS - 0.5}"/>`;
  return { head: `<svg class="gantt-axis" width="${width}" height="${AXIS}">${base}${ticks.join("")}${total}</svg>`, lines: lines.join("") };
}

// A tick's time `t` (s) in the unit its step reads best in: 250 ms, 1.5 s, 30 s, 2 min, 1 h.
function tickLabel(t, step) {
  if (t === 0) return "0";
  if (step < 1) return t < 1 ? `${Math.round(t * 1000)} ms` : `${+t.toFixed(3)} s`;
  if (step < 60) return `${t} s`;
  return step < 3600 ? `${t / 60} min` : `${t / 3600} h`;
}
