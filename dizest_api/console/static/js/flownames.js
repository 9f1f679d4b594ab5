// What a person reads a flow and its app by, one rule for every view (the workflow and run views,
// the editor, their panels and messages): a flow's title, else its app's; an app's title, else its
// id. Ids, DIZEST's generated ones (`<app id>-<ms>`, 16-character apps) among them, stay where
// programs read them (data-*, event data) and in a tooltip.

import { h } from "./dom.js";

// The title a flow is shown by: its own, else its app's, else its app's id, else its id.
export const flowTitle = (id, flow, app) => flow.title || app.title || flow.app_id || id;
// The app a flow's node names under its title: the app's title, else its id (every view alike).
export const appTitle = (appId, app) => app.title || appId || "";

// The name a person reads for app `id` of `apps` (a package's) in a text: its title (appTitle); an
// app the package lacks (a plugin's, one unknown) by its id.
export const appName = (apps, id) => appTitle(id, (apps || {})[id] || {});

// App `appId` (`app`: its spec) named in a panel: its title, its id in the tooltip and data-app.
export const appLabel = (appId, app) => h("span", { class: "app-name", title: appId, dataset: { app: appId } }, appTitle(appId, app || {}));

// `text` (a server's message) with app `id`, where it names it as the server quotes it ("app
// 'x'"), named as `name` names it (appName).
export const appNamedIn = (text, id, name) => String(text).split(`app '${id}'`).join(`app ${name(id)}`);

// The name a person reads for a flow in a text (a problem, a connection, a reason, a form): its
// title (flowTitle), told apart where flows share one, "greet (1)", "greet (2)" in the graph's
// order; an id the graph lacks stays as it is. Ids stay where programs read them (data-*, a
// tooltip). A node on a canvas shows the same number after its title (flowNth), so the flow a
// message names is found there. Computed once per graph; a node retitled in place drops them
// (graph.names = null).
export function flowName(graph, id) {
  return told(graph).get(id)?.name ?? id;
}

// The number that tells flow `id` apart from the others of its title (1, 2, ... as flowName
// counts them); 0 when no other flow has its title.
export const flowNth = (graph, id) => told(graph).get(id)?.nth ?? 0;

// What follows a title to tell it apart: " (2)" for `nth` 2, nothing for 0.
export const nthSuffix = (nth) => (nth ? ` (${nth})` : "");

// id -> {name, nth} for every node of `graph`, made once (see flowName).
function told(graph) {
  if (!graph.names) {
    const count = new Map();
    for (const n of graph.nodes) count.set(n.title, (count.get(n.title) || 0) + 1);
    const seen = new Map();
    graph.names = new Map(graph.nodes.map((n) => {
      if (count.get(n.title) === 1) return [n.id, { name: n.title, nth: 0 }];
      const nth = (seen.get(n.title) || 0) + 1;
      seen.set(n.title, nth);
      return [n.id, { name: n.title + nthSuffix(nth), nth }];
    }));
  }
  return graph.names;
}

// `text` (a server's answer) with each of `ids` in it, bare or quoted ("unknown flow(s): a",
// "flow 'a'"), named as `name` names it (flowName): the flows a page asked about, which the
// answer repeats by their ids. Other ids are left alone (a queue, a run may read the same).
export function namedIn(text, ids, name) {
  let out = text;
  for (const id of ids) {
    const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    out = out.replace(new RegExp(`(^|[^\\w-])'?${escaped}'?(?![\\w-])`, "g"), (_, before) => before + name(id));
  }
  return out;
}
