// The run's timeline: one bar per flow that started, from its first `running` to its final
// status, coloured by status. Drawn as one SVG string, at most once a second while live.
import { clip, escapeHtml } from "./dom.js";

const ROW = 14;
const LABEL = 140;

export function drawGantt(container, flows, titles) {
  const rows = [...flows.entries()].filter(([, f]) => f.start).sort((a, b) => a[1].start - b[1].start);
  if (!rows.length) {
    container.innerHTML = "";
    return;
  }
  const t0 = rows[0][1].start;
  const now = Date.now() / 1000;
  const t1 = Math.max(...rows.map(([, f]) => f.end || now));
  const width = Math.max(container.clientWidth - 20, 300);
  const scale = (width - LABEL - 10) / Math.max(t1 - t0, 0.001);
  const parts = rows.map(([id, f], i) => {
    const x = LABEL + (f.start - t0) * scale;
    const w = Math.max(2, ((f.end || now) - f.start) * scale);
    const y = i * ROW;
    const label = clip(titles.get(id) || id, 23);
    const seconds = ((f.end || now) - f.start).toFixed(2);
    return `<g class="bar st-${escapeHtml(f.status)}" data-id="${escapeHtml(id)}"><text x="0" y="${y + 10}">${label}</text><rect x="${x}" y="${y + 2}" width="${w}" height="${ROW - 4}"><title>${escapeHtml(id)}: ${seconds} s</title></rect></g>`;
  });
  const axis = `<text class="axis" x="${width - 4}" y="${rows.length * ROW + 12}" text-anchor="end">${(t1 - t0).toFixed(2)} s</text>`;
  container.innerHTML = `<svg class="gantt" width="${width}" height="${rows.length * ROW + 16}">${parts.join("")}${axis}</svg>`;
}
