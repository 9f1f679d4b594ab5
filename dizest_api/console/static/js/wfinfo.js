// A workflow's Info panel, as DIZEST's: its title, owner, description and version (the .dwp's own
// top-level keys, which the engine ignores), and the apps its flows use. Read-only on the workflow
// page and for a caller who may not save; in the editor the description and version are fields,
// each change one undo step, saved with the package like any other edit. The description is
// another user's text: it is shown as text (line breaks kept by the stylesheet), never as HTML.
import { $, h } from "./dom.js";

// What a stored package holds under a key, as text (a hostile one may hold an object there).
const text = (value) => (typeof value === "string" ? value : value == null ? "" : JSON.stringify(value));

// The apps the flows use, in the order flows first use them, with how many flows use each.
export function appsUsed(pkg) {
  const counts = new Map();
  for (const flow of Object.values(pkg.flow || {})) counts.set(flow.app_id, (counts.get(flow.app_id) || 0) + 1);
  return [...counts].map(([id, flows]) => ({ id: text(id), title: text((pkg.apps || {})[id]?.title) || text(id), flows }));
}

function appList(pkg) {
  const apps = appsUsed(pkg);
  if (!apps.length) return h("p", { class: "muted", id: "info-apps" }, "No flows yet.");
  return h("ul", { class: "apps-used", id: "info-apps" }, apps.map((a) =>
    h("li", { dataset: { app: a.id } }, a.title, " ", h("small", { class: "muted" }, `${a.id} · ${a.flows} flow${a.flows === 1 ? "" : "s"}`))));
}

// "v3", or "v3 of 5" when a later version exists.
const stored = (wf) => `v${wf.version}${wf.latest_version > wf.version ? ` of ${wf.latest_version}` : ""}`;

const owner = (wf) => [h("dt", {}, "Owner"), h("dd", { id: "info-owner" }, wf.owner)];

// The panel's content, read-only.
export function infoView(wf, pkg) {
  const description = text(pkg.description);
  return [
    h("h2", { id: "info-title" }, wf.title),
    h("dl", { class: "kv facts" }, ...owner(wf), h("dt", {}, "Saved"), h("dd", {}, stored(wf)),
      h("dt", {}, "Version"), h("dd", { id: "info-version" }, text(pkg.version) || "none")),
    h("h3", {}, "Description"),
    description ? h("div", { id: "info-description", class: "prose" }, description) : h("p", { id: "info-description", class: "muted" }, "No description."),
    h("h3", {}, "Apps used"),
    appList(pkg),
  ];
}

// One undo step per pause in the typing, as the editor's other fields.
const setKey = (doc, key, value) => doc.change(`info ${key}`, (pkg) => void (pkg[key] = value), { coalesce: true });

// The editor's Info tab (#info), drawn again after each change that is not typing in it (an
// undo brings back the text it had).
export function showInfo(doc, wf, readOnly) {
  const box = $("#info");
  if (readOnly) {
    box.replaceChildren(...infoView(wf, doc.pkg));
    return;
  }
  const description = h("textarea", { id: "info-description", rows: 8, "aria-label": "description" }, text(doc.pkg.description));
  description.addEventListener("input", () => setKey(doc, "description", description.value));
  const version = h("input", { id: "info-version", value: text(doc.pkg.version), placeholder: "1.0.0", "aria-label": "version" });
  version.addEventListener("input", () => setKey(doc, "version", version.value));
  const rename = h("a", { href: `/workflows/${encodeURIComponent(wf.id)}` }, "the workflow page");
  box.replaceChildren(
    h("h2", { id: "info-title" }, wf.title),
    h("p", { class: "muted" }, "Its title is renamed on ", rename, "."),
    h("dl", { class: "kv facts" }, ...owner(wf)), // (its saved version: the toolbar's)
    h("label", { class: "field" }, h("span", {}, "Description ", h("small", { class: "muted" }, "plain text")), description),
    h("label", { class: "field" }, h("span", {}, "Version"), version),
    h("h3", {}, "Apps used"),
    appList(doc.pkg),
  );
}
