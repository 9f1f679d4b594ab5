// A workflow's Info panel, as DIZEST's: its title, owner, version and category, its README (the
// .dwp's `description`, Markdown) and requirements.txt (`requirementstxt`): the package's own
// top-level keys, which the engine ignores. Read-only on the workflow page and for a caller who
// may not save; in the editor they are fields, each change one undo step, saved with the package
// like any other edit. The README is another user's text: shown as Markdown with raw HTML off and
// sanitized (vendor/markdown.js), as plain text until that is loaded, never as the caller's HTML.
import { $, h } from "./dom.js";
import { checkRequirements, checkWhileTyping, packagesList } from "./packages.js";

// What a stored package holds under a key, as text (a hostile one may hold an object there).
const text = (value) => (typeof value === "string" ? value : value == null ? "" : JSON.stringify(value));

let markdown; // the vendored renderer, loaded on first use

// The images of rendered Markdown (nodes of the sanitizer's inert document: nothing fetched yet)
// drawn from a data: address only; any other is a link named by its alt text. Another user's
// README chose it: one of this origin was a GET of the viewer's session (any path and query),
// one elsewhere was refused by the CSP only (a tracking image wherever a proxy drops it).
function linkImages(fragment) {
  for (const img of fragment.querySelectorAll("img")) {
    const src = img.getAttribute("src") || "";
    if (/^data:image\//i.test(src)) continue;
    img.replaceWith(h("a", { href: src, target: "_blank", rel: "noopener noreferrer nofollow" }, img.getAttribute("alt") || src));
  }
  return fragment;
}

// `source` as Markdown in `box`: its plain text at once, the rendered nodes once loaded.
function showMarkdown(box, source) {
  box.textContent = source;
  markdown ||= import("../vendor/markdown.js");
  markdown.then(({ renderMarkdown }) => {
    if (box.dataset.source === source) box.replaceChildren(linkImages(renderMarkdown(source)));
  }, () => {}); // not loaded: the text stays
  box.dataset.source = source;
  return box;
}

const readme = (id, source) => (source
  ? showMarkdown(h("div", { id, class: "markdown" }), source)
  : h("p", { id, class: "muted" }, "No README."));

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

const REQUIREMENTS_NOTE = "Kept with the package, as DIZEST keeps it; nothing installs it: flows use the packages of the workers' environment, checked below.";

// requirements.txt checked against the workers: once checked, the table of its lines is what
// shows (the file as written folded under it); the file alone when it could not be checked.
function requirementsChecked(text) {
  const raw = h("pre", { id: "info-requirements", class: "code" }, text);
  const box = h("div", { id: "info-requirements-check" }, raw);
  checkRequirements(box, text).then(() => {
    if (box.querySelector("table")) box.append(h("details", { class: "as-written" }, h("summary", {}, "As written"), raw));
    else box.prepend(raw);
  });
  return box;
}

// The panel's content, read-only.
export function infoView(wf, pkg) {
  const requirements = text(pkg.requirementstxt);
  return [
    h("h2", { id: "info-title" }, wf.title),
    h("dl", { class: "kv facts" }, ...owner(wf), h("dt", {}, "Saved"), h("dd", {}, stored(wf)),
      h("dt", {}, "Version"), h("dd", { id: "info-version" }, text(pkg.version) || "none"),
      h("dt", {}, "Category"), h("dd", { id: "info-category" }, text(pkg.category) || "none")),
    h("h3", {}, "README"),
    readme("info-description", text(pkg.description)),
    ...(requirements ? [h("h3", {}, "requirements.txt"), h("p", { class: "muted" }, REQUIREMENTS_NOTE), requirementsChecked(requirements)] : []),
    packagesList(),
    h("h3", {}, "Apps used"),
    appList(pkg),
  ];
}

// One undo step per pause in the typing, as the editor's other fields.
const setKey = (doc, key, value) => doc.change(`info ${key}`, (pkg) => void (pkg[key] = value), { coalesce: true });

// A field of the package's `key`, saved as typed.
function keyField(doc, key, label, attrs, multiline = false) {
  const field = h(multiline ? "textarea" : "input", { ...attrs, "aria-label": label }, ...(multiline ? [text(doc.pkg[key])] : []));
  if (!multiline) field.value = text(doc.pkg[key]);
  field.addEventListener("input", () => setKey(doc, key, field.value));
  return field;
}

// The README's field, with a Preview button that shows it as the workflow page will.
function readmeField(doc) {
  const field = keyField(doc, "description", "README", { id: "info-description", rows: 10 }, true);
  const preview = h("div", { id: "info-preview", class: "markdown", hidden: true });
  const toggle = h("button", { type: "button", id: "info-preview-toggle" }, "Preview");
  toggle.addEventListener("click", () => {
    const showing = preview.hidden;
    if (showing) preview.replaceChildren(readme("info-preview-body", field.value));
    [preview.hidden, field.hidden, toggle.textContent] = [!showing, showing, showing ? "Edit" : "Preview"];
  });
  return h("div", { class: "field" }, h("span", {}, "README ", h("small", { class: "muted" }, "Markdown"), " ", toggle), field, preview);
}

// requirements.txt as a field, checked against the workers again after each pause in the typing.
function requirementsField(doc) {
  const field = keyField(doc, "requirementstxt", "requirements.txt", { id: "info-requirements", rows: 4 }, true);
  return h("div", { class: "field" }, h("label", { for: "info-requirements" }, "requirements.txt ",
    h("small", { class: "muted" }, REQUIREMENTS_NOTE)), field, checkWhileTyping(field));
}

// The editor's Info tab (#info), drawn again after each change that is not typing in it (an
// undo brings back the text it had).
export function showInfo(doc, wf, readOnly) {
  const box = $("#info");
  if (readOnly) {
    box.replaceChildren(...infoView(wf, doc.pkg));
    return;
  }
  const rename = h("a", { href: `/workflows/${encodeURIComponent(wf.id)}` }, "the workflow page");
  box.replaceChildren(
    h("h2", { id: "info-title" }, wf.title),
    h("p", { class: "muted" }, "Its title is renamed on ", rename, "."),
    h("dl", { class: "kv facts" }, ...owner(wf)), // (its saved version: the toolbar's)
    h("label", { class: "field" }, h("span", {}, "Version"), keyField(doc, "version", "version", { id: "info-version", placeholder: "1.0.0" })),
    h("label", { class: "field" }, h("span", {}, "Category"), keyField(doc, "category", "category", { id: "info-category", placeholder: "data analysis" })),
    readmeField(doc),
    requirementsField(doc),
    packagesList(),
    h("h3", {}, "Apps used"),
    appList(doc.pkg),
  );
}
