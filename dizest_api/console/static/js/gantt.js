// The run's timeline: one bar per flow that started, from its first `running` to its final
// status, coloured by status, drawn as one SVG string. It is drawn only while it is shown (its
// section open, the page visible: animation frames stop in a hidden tab), only after a flow
// started, ended or changed status, and at most once a second: it used to be redrawn every
// second while a run was live, for every log line, open or not (1,000 flows: every bar, every
// second). A running bar reaches the right edge: it runs until now.
import { escapeHtml } from "./dom.js";
import { statusShade } from "./graph.js";
import { fit } from "./textfit.js";

const ROW = 14;
const LABEL = 140;
const EVERY = 1000; // ms: at most one drawing in this time

export class Gantt {
  // `section`: the <details> that shows it; `box`: where the chart goes; `flows`: id ->
  // {status, reason, start, end}, as the run view keeps them; `titles`: id -> what a bar is labelled.
  constructor(section, box, flows, titles) {
    Object.assign(this, { section, box, flows, titles });
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
  const axis = `<text class="axis" x="${width - 4}" y="${rows.length * ROW + 12}" text-anchor="end">${(t1 - t0).toFixed(2)} s</text>`;
  container.innerHTML = `<svg class="gantt" width="${width}" height="${rows.length * ROW + 16}">${parts.join("")}${axis}</svg>`;
}
