// What a node of the editor's canvas shows: the run view's box, title and badge (graph.js), with
// the editor's marks (▶ run, ■ stop, ⚠ a problem, ● active, × remove, its app's UI toggle) and
// ports a wire is drawn from and dropped on.
import { hasUI } from "./appui.js";
import { clip, escapeHtml } from "./dom.js";
import { BADGE_R, badgeRoom, titleMarkup } from "./graph.js";
import { HEAD, PORT } from "./graphmodel.js";
import { fit } from "./textfit.js";
import { nodeAttrs } from "./viewaids.js";

const TITLE_X = 24; // px: a title's start, after the run button
const GAP = 4; // px: between a title and the marks after it

// The room of a node's title (textfit.js): up to the marks after it, ⚠ (a problem) or ●.
export const titleRoom = (n, problem) => (problem ? n.w - 52 : n.w - 34) - GAP - TITLE_X;
// The x of a node's app title (after its "UI" toggle, if any), and its room: up to the badge.
const appX = (n) => (hasUI(n.app) ? 30 : 10);
export const appRoom = (n, badge) => n.w - BADGE_R - appX(n) - badgeRoom(badge);

// Node `n` (`nth`, `name`: its number where flows share its title, and its name: flownames.js).
export function nodeMarkup(n, detailed, problems, nth, name) {
  const problem = problems.get(n.id);
  const [tip, title] = titleMarkup(n, TITLE_X, titleRoom(n, problem), detailed ? nth : 0); // (graph.js nthMarkup)
  return [
    `<g class="node${n.active ? "" : " inactive"}${problem ? " problem" : ""}" data-id="${escapeHtml(n.id)}" ${nodeAttrs(name)} transform="translate(${n.x},${n.y})">`,
    tip,
    `<rect class="box" width="${n.w}" height="${n.h}" rx="6"/><rect class="bar" width="${n.w}" height="4" rx="2"/>`,
    title,
    problem ? `<text class="warn" x="${n.w - 52}" y="20"><title>${escapeHtml(problem.join("\n"))}</title>⚠</text>` : "",
    `<text class="toggle" data-action="active" x="${n.w - 34}" y="20">${n.active ? "●" : "○"}</text>`,
    `<text class="del" data-action="remove" x="${n.w - 16}" y="20">×</text>`,
    detailed ? detailMarkup(n) : "",
    "</g>",
  ].join("");
}

export function detailMarkup(n) {
  // ▶ runs the flow; ■ (shown instead while the node is running, by CSS) stops its run.
  const ui = hasUI(n.app); // its "UI" toggle, before the app's title
  const parts = [
    `<text class="run" data-action="run" x="7" y="20"><title>Run this flow</title>▶</text>`,
    `<text class="stop" data-action="stop" x="7" y="20"><title>Stop the run</title>■</text>`,
    `<text class="app" x="${appX(n)}" y="35">${escapeHtml(fit(n.appTitle, appRoom(n, ""), "app"))}</text>`, `<text class="badge" x="${n.w - BADGE_R}" y="35"></text>`,
    ui ? `<g class="ui-toggle"><title>App UI: show it under this flow</title><rect data-action="ui" x="6" y="25" width="20" height="13" rx="3"/><text data-action="ui" x="16" y="35">UI</text></g>` : ""];
  n.inputs.forEach((name, i) => {
    const y = HEAD + i * PORT + PORT / 2;
    parts.push(`<circle class="port in" data-name="${escapeHtml(name)}" cx="0" cy="${y}" r="6"/><text class="port-label" x="10" y="${y + 4}">${clip(name, 14)}</text>`);
  });
  n.outputs.forEach((name, i) => {
    const y = HEAD + i * PORT + PORT / 2;
    parts.push(`<circle class="port out" data-name="${escapeHtml(name)}" cx="${n.w}" cy="${y}" r="6"/><text class="port-label out" x="${n.w - 10}" y="${y + 4}">${clip(name, 14)}</text>`);
  });
  return parts.join("");
}
