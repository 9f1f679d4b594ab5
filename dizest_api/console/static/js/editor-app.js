// The app panel of the editor: title, inputs (variable or output, with a default), outputs, and
// the code in CodeMirror 6 (Python mode, indentation, find/replace, syntax errors from the API
// shown at their line). CodeMirror loads on first use, so opening a large workflow does not
// pay for it.
import { $, h } from "./dom.js";
import { typed, variableField, variableInput } from "./varfield.js";

const INPUTTYPES = ["text", "textarea", "number", "password", "date", "time", "list", "check", "file"];
let cm = null;
let current = null; // {appId, field, view}: the code editor, once loaded
// An app's sources, one tab each as in DIZEST's editor: its flow code, its `api` functions, and
// the html, js and css of its UI (UI mode: docs/compatibility.md). Python is highlighted.
const SOURCES = [["code", "Code"], ["api", "API"], ["html", "HTML"], ["js", "JS"], ["css", "CSS"]];
const PYTHON = new Set(["code", "api"]);
let shown = null; // the app the panel shows
let asked = 0; // counts the sources asked for: only the last one asked is drawn (see showSource)
let addToCanvas = null; // (appId) => a flow of it added to the canvas (editor.js)
export const onAddToCanvas = (fn) => void (addToCanvas = fn);

async function codemirror() {
  cm ||= await import("../vendor/codemirror.js");
  return cm;
}

function portRow(doc, appId, spec, index, count) {
  const name = h("input", { name: "name", value: spec.name, "aria-label": "input name" });
  name.addEventListener("change", () => {
    if (!doc.renameInput(appId, spec.name, name.value.trim())) name.value = spec.name;
  });
  const type = h("select", { name: "type", "aria-label": "input type" }, ["output", "variable"].map((t) => h("option", { value: t, selected: spec.type === t }, t)));
  type.addEventListener("change", () => doc.setInputType(appId, index, type.value));
  const kind = h("select", { name: "inputtype", "aria-label": "input kind", hidden: spec.type !== "variable" }, INPUTTYPES.map((t) => h("option", { value: t, selected: (spec.inputtype || "text") === t }, t)));
  kind.addEventListener("change", () => doc.updateInput(appId, index, { inputtype: kind.value }));
  const dflt = h("input", { name: "default", value: spec.default ?? "", placeholder: "default", "aria-label": "default" });
  dflt.addEventListener("input", () => doc.updateInput(appId, index, { default: dflt.value }));
  return h(
    "tr",
    { dataset: { input: spec.name } },
    h("td", {}, name),
    h("td", {}, type),
    h("td", {}, kind),
    h("td", {}, dflt),
    h("td", { class: "inline" },
      h("button", { type: "button", title: "up", disabled: index === 0, onclick: () => doc.moveInput(appId, index, -1) }, "↑"),
      h("button", { type: "button", title: "down", disabled: index === count - 1, onclick: () => doc.moveInput(appId, index, 1) }, "↓"),
      h("button", { type: "button", class: "danger", title: "remove", onclick: () => doc.removeInput(appId, spec.name) }, "×")),
  );
}

function outputRow(doc, appId, spec, index, count) {
  const name = h("input", { name: "name", value: spec.name, "aria-label": "output name" });
  name.addEventListener("change", () => {
    if (!doc.renameOutput(appId, spec.name, name.value.trim())) name.value = spec.name;
  });
  return h(
    "tr",
    { dataset: { output: spec.name } },
    h("td", {}, name),
    h("td", { class: "inline" },
      h("button", { type: "button", title: "up", disabled: index === 0, onclick: () => doc.moveOutput(appId, index, -1) }, "↑"),
      h("button", { type: "button", title: "down", disabled: index === count - 1, onclick: () => doc.moveOutput(appId, index, 1) }, "↓"),
      h("button", { type: "button", class: "danger", title: "remove", onclick: () => doc.removeOutput(appId, spec.name) }, "×")),
  );
}

function adder(label, id, withType, add) {
  const name = h("input", { id: `${id}-name`, placeholder: "name", "aria-label": `new ${label} name` });
  const type = withType ? h("select", { id: `${id}-type`, "aria-label": "new input type" }, h("option", { value: "output" }, "output"), h("option", { value: "variable" }, "variable")) : null;
  const form = h("form", { class: "inline", id }, name, type, h("button", { type: "submit" }, `Add ${label}`));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (name.value.trim()) add(name.value.trim(), type ? type.value : null);
  });
  return form;
}

// Draw the panel for `appId` (again: after a structural change or an undo).
export async function showApp(doc, appId, problems) {
  const app = doc.app(appId);
  const box = $("#app");
  shown = appId;
  current?.view.destroy(); // (else it lived on, its listeners on the page, writing into the doc)
  current = null;
  if (!app) {
    box.replaceChildren(h("p", { class: "muted" }, "This app is no longer in the workflow."));
    return;
  }
  const title = h("input", { id: "app-title", value: app.title || "", "aria-label": "app title" });
  title.addEventListener("input", () => doc.renameApp(appId, title.value));
  const inputs = Array.isArray(app.inputs) ? app.inputs : [];
  const outputs = Array.isArray(app.outputs) ? app.outputs : [];
  const code = h("div", { id: "app-code", class: "code-editor" });
  const sources = h("div", { class: "tabs source-tabs", role: "tablist", id: "app-sources" }, SOURCES.map(([field, label]) =>
    h("button", { type: "button", "data-source": field, "data-keep": "", class: field === "code" ? "active" : null, onclick: () => showSource(doc, appId, field, problems) }, label)));
  // An app no flow uses yet (a new one): how to put it on the canvas, where it runs.
  const unused = !doc.readOnly && addToCanvas && !doc.flowsOf(appId).length;
  box.replaceChildren(
    h("label", { class: "field" }, h("span", {}, "App title ", h("small", { class: "muted" }, appId)), title),
    ...(unused ? [h("p", { class: "app-unused", id: "app-unused" }, "This app is not on the canvas yet: a run runs the flows there.",
      h("button", { type: "button", id: "app-add-canvas", onclick: () => addToCanvas(appId) }, "Add to canvas"))] : []),
    h("h3", {}, "Inputs"),
    h("table", { class: "list ports", id: "app-inputs" }, h("tbody", {}, inputs.map((s, i) => portRow(doc, appId, s, i, inputs.length)))),
    adder("input", "add-input", true, (name, type) => doc.addInput(appId, type === "variable" ? { type, name, inputtype: "text", description: "" } : { type, name })),
    h("h3", {}, "Outputs"),
    h("table", { class: "list ports", id: "app-outputs" }, h("tbody", {}, outputs.map((s, i) => outputRow(doc, appId, s, i, outputs.length)))),
    adder("output", "add-output", false, (name) => doc.addOutput(appId, name)),
    h("h3", {}, "Sources"),
    sources,
    code,
  );
  if (doc.readOnly) lockPanel(box);
  await showSource(doc, appId, "code", problems);
}

// Show the app's source `field` in the code editor (a new CodeMirror view on that text). Each
// call waits for CodeMirror (loaded on first use), and those waits end in no set order: one
// asked before another drew over it (the tab clicked last lost); it now draws nothing.
async function showSource(doc, appId, field, problems) {
  const code = $("#app-code");
  const mine = ++asked;
  const mod = await codemirror();
  if (mine !== asked || $("#app-code") !== code || shown !== appId) return; // another asked, or drawn again meanwhile
  for (const tab of $("#app-sources").children) tab.classList.toggle("active", tab.dataset.source === field);
  current?.view.destroy();
  const app = doc.app(appId) || {};
  const view = new mod.EditorView({
    parent: code,
    doc: String(app[field] || ""),
    extensions: [
      mod.lineNumbers(), mod.highlightActiveLineGutter(), mod.highlightSpecialChars(), mod.history(), mod.foldGutter(),
      mod.drawSelection(), mod.indentOnInput(), mod.indentUnit.of("    "), mod.bracketMatching(), mod.closeBrackets(),
      mod.highlightActiveLine(), mod.highlightSelectionMatches(), mod.search({ top: true }), mod.lintGutter(),
      mod.syntaxHighlighting(mod.defaultHighlightStyle, { fallback: true }), PYTHON.has(field) ? mod.python() : [],
      mod.keymap.of([...mod.closeBracketsKeymap, ...mod.defaultKeymap, ...mod.searchKeymap, ...mod.historyKeymap, ...mod.foldKeymap, mod.indentWithTab]),
      mod.EditorState.readOnly.of(doc.readOnly), mod.EditorView.editable.of(!doc.readOnly),
      mod.EditorView.updateListener.of((update) => {
        if (!update.docChanged) return;
        const text = update.state.doc.toString();
        field === "code" ? doc.setCode(appId, text) : doc.setSource(appId, field, text);
      }),
    ],
  });
  current = { appId, field, view };
  window.dizestEditor && (window.dizestEditor.code = view); // tests type into it through the page
  markSyntax(problems);
}

// Show the API's syntax errors for the open app at their line in the code editor.
export function markSyntax(problems) {
  if (!current || !cm || current.field !== "code") return;
  const { view, appId } = current;
  const diagnostics = [];
  for (const p of problems) {
    if ((p.code !== "syntax_error" && p.code !== "missing_module") || p.app !== appId) continue;
    const line = Math.min(Number((/line (\d+)/.exec(p.message) || [])[1] || 1), view.state.doc.lines);
    const at = view.state.doc.line(line);
    diagnostics.push({ from: at.from, to: at.to, severity: p.code === "syntax_error" || p.severity !== "warning" ? "error" : "warning", message: p.message });
  }
  view.dispatch(cm.setDiagnostics(view.state, diagnostics));
}

export const openApp = () => shown;

// A panel for a caller who may not save: its fields show, none changes (but `data-keep` buttons).
export function lockPanel(box) {
  for (const el of box.querySelectorAll("input, select, textarea, button:not([data-keep])")) el.disabled = true;
  for (const form of box.querySelectorAll("form")) form.hidden = true; // the adders
}

// A flow variable's field in the flow panel: what it gives (DIZEST stores a check as a JSON bool
// and every other type as a string, numbers too) is stored as the flow's value.
export function editableVariable(doc, flowId, spec, value) {
  const input = variableInput(`${flowId}.${spec.name}`, spec, value);
  const type = input.dataset.inputtype;
  input.addEventListener(type === "check" || type === "list" ? "change" : "input", () => doc.setVariable(flowId, spec.name, typed(input)));
  return variableField(spec, input);
}
