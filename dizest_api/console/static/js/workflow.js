// The workflow view: its graph, a flow's code and variables, the run form, its info (wfinfo.js),
// how to call it from another program (wfapi.js), and sharing.
import { get, post, problemLines, put } from "./api.js";
import { $, h, keepFlowInHash, selectFlowInHash, showTab, tabs, toast, when } from "./dom.js";
import { graphOrList, tooMany } from "./flowlist.js";
import { appLabel, appName, flowName } from "./flownames.js";
import { statusLabel, statusShade, statusText } from "./flowstatus.js";
import { GraphView, bindZoomButtons } from "./graph.js";
import { arrangeLink, model } from "./graphmodel.js";
import { highlightPython } from "./highlight.js";
import { outputView } from "./render.js";
import { changed, typed, variableField, variableInput } from "./varfield.js";
import { apiPanel } from "./wfapi.js";
import { infoView } from "./wfinfo.js";

const wfId = document.getElementById("main").dataset.workflowId;
let graph;
let view;
let lastRun = null; // the report of this workflow's newest run, if any
let apps = {}; // the apps of the version shown (what its problems name)

// A workflow shared with the caller (not an admin, who lists everyone's runs): its owner's runs
// of it are listed only when asked for by name (GET /runs?workflow_id=&owner=).
const sharedBy = (wf) => (wf.owner !== $("#me-name")?.textContent && $("#me-role")?.textContent !== "admin" ? wf.owner : null);

async function loadLastRun(wf) {
  const query = `/runs?workflow_id=${encodeURIComponent(wfId)}&limit=1`;
  const owner = sharedBy(wf);
  const lists = await Promise.all([get(query), ...(owner ? [get(`${query}&owner=${encodeURIComponent(owner)}`)] : [])]);
  const newest = lists.flatMap((listed) => listed.items || []).sort((a, b) => (b.created_at || 0) - (a.created_at || 0))[0];
  if (!newest) return;
  // its flows' states alone: the whole report of a 100,000-flow run is tens of MB; a flow's
  // outputs are read when it is shown (lastOutputs)
  lastRun = await get(`/runs/${encodeURIComponent(newest.run_id)}?flows=states`);
  for (const [id, flow] of Object.entries(lastRun.flows || {})) {
    const word = statusLabel(flow.status, flow.reason);
    const told = flow.status === "error" || (flow.status === "idle" && flow.reason); // not a pending flow's wait
    view.setStatus(id, statusShade(flow.status, flow.reason), told ? (word === "idle" ? flow.reason : word) : "");
  }
  if (view.selected) flowPanel(graph.byId.get(view.selected));
}

function lastOutputs(node) {
  if (!lastRun) return [h("h3", {}, "Last outputs"), h("p", { class: "muted" }, "This workflow has not run yet.")];
  const flow = (lastRun.flows || {})[node.id];
  const link = h("a", { href: `/runs/${encodeURIComponent(lastRun.run_id)}` }, lastRun.run_id);
  const head = h("p", { class: "muted" }, "From run ", link, ` (${lastRun.status})`);
  if (!flow) return [h("h3", {}, "Last outputs"), head, h("p", { class: "muted" }, "This flow was not part of it.")];
  const status = h("p", {}, h("strong", {}, "Status: "), h("span", { class: `status st-${statusShade(flow.status, flow.reason)}`, id: "last-status" }, statusText(flow.status, flow.reason, (id) => flowName(graph, id))));
  const box = h("div", { class: "last-outputs" }, h("p", { class: "muted" }, "Reading its outputs…"));
  fillOutputs(box, lastRun.run_id, node.id);
  return [h("h3", {}, "Last outputs"), head, status, box];
}

async function fillOutputs(box, runId, flowId) {
  let outputs;
  try {
    outputs = (await get(`/runs/${encodeURIComponent(runId)}/flows/${encodeURIComponent(flowId)}/outputs`)).outputs;
  } catch (exc) {
    box.replaceChildren(h("p", { class: "muted" }, `Its outputs could not be read: ${exc.message}`));
    return;
  }
  const rows = Object.entries(outputs || {}).map(([name, value]) => h("div", { class: "output" }, h("strong", {}, name), outputView(value)));
  box.replaceChildren(...(rows.length ? rows : [h("p", { class: "muted" }, "No outputs.")]));
}

function flowPanel(node) {
  keepFlowInHash(node.id);
  const code = h("pre", { class: "code" });
  code.innerHTML = highlightPython(String(node.app.code || ""));
  const variables = node.variables.map((v) => {
    const value = (node.flow.data || {})[v.name];
    return h("tr", {}, h("td", {}, v.name), h("td", {}, v.inputtype || "text"), h("td", {}, value === undefined ? "" : JSON.stringify(value)));
  });
  $("#node").replaceChildren(
    h("h2", { title: node.id }, flowName(graph, node.id)),
    h("p", { class: "muted" }, `flow ${node.id} · app `, appLabel(node.appId, node.app), node.active ? "" : " · inactive"),
    h("p", {}, h("strong", {}, "Inputs: "), node.inputs.join(", ") || "none", h("br"), h("strong", {}, "Outputs: "), node.outputs.join(", ") || "none"),
    variables.length ? h("table", { class: "list vars" }, h("thead", {}, h("tr", {}, h("th", {}, "Variable"), h("th", {}, "Type"), h("th", {}, "Value"))), h("tbody", {}, variables)) : "",
    h("h3", {}, "Code"),
    code,
    ...lastOutputs(node),
  );
  showTab("node");
}

function runForm() {
  const form = $("#runform");
  const groups = [];
  for (const node of graph.nodes) {
    if (!node.variables.length || !node.active) continue;
    const stored = node.flow.data || {};
    const fields = node.variables.map((v) => variableField(v, variableInput(`${node.id}.${v.name}`, v, stored[v.name])));
    groups.push(h("fieldset", {}, h("legend", { title: node.id }, flowName(graph, node.id)), fields));
  }
  // a list of 100,000 options took seconds to lay out: a graph too large to draw names its ids
  const targets = tooMany(graph)
    ? h("input", { name: "flows", id: "run-targets", placeholder: "flow ids, separated by spaces or commas" })
    : h("select", { name: "flows", multiple: true, size: Math.min(8, graph.nodes.length), id: "run-targets" }, graph.nodes.map((n) => h("option", { value: n.id, title: n.id }, flowName(graph, n.id))));
  form.replaceChildren(
    h("h2", {}, "Start a run"),
    ...(groups.length ? [h("p", { class: "muted", id: "run-note" }, "A field left as it is sends nothing: the flow reads the workflow's own value, as dizest run does."), ...groups] : [h("p", { class: "muted" }, "This workflow has no variables.")]),
    h("label", { class: "field" }, h("span", {}, "Target flows ", h("small", { class: "muted" }, "none selected: all")), targets),
    h("label", { class: "field" }, h("span", {}, "Flow timeout (s) "), h("input", { type: "number", name: "flow_timeout", min: "0", step: "any", id: "run-timeout" })),
    h("pre", { id: "run-problems", class: "problems", role: "alert", hidden: true }),
    h("button", { type: "submit", id: "run-start" }, "Run"),
  );
}

function readForm(form) {
  // only what the user changed, as DIZEST's UI would store it: the engine converts it as it
  // converts the stored value (a "2.5" of a number is the float 2.5), and a field left as it
  // is leaves the workflow's own value to the engine, so such a run is the one `dizest run` makes
  const inputs = {};
  for (const el of form.querySelectorAll("[data-inputtype]")) if (changed(el)) inputs[el.name] = typed(el);
  const targets = form.querySelector("#run-targets");
  const flows = targets.selectedOptions ? [...targets.selectedOptions].map((o) => o.value) : targets.value.split(/[\s,]+/).filter(Boolean);
  const timeout = form.querySelector("#run-timeout").value;
  const body = { workflow_id: wfId, version: Number($("#wf-version").value), inputs };
  if (flows.length) body.flows = flows;
  if (timeout) body.options = { flow_timeout: Number(timeout) };
  return body;
}

async function start(event) {
  event.preventDefault();
  const problems = $("#run-problems");
  problems.hidden = true;
  try {
    const run = await post("/runs", readForm(event.target));
    location.assign(`/runs/${encodeURIComponent(run.run_id)}`);
  } catch (exc) {
    problems.textContent = problemLines(exc, (id) => flowName(graph, id), (id) => appName(apps, id)).join("\n");
    problems.hidden = false;
    problems.scrollIntoView({ block: "nearest" }); // drawn above the button pressed at the form's foot: whole, in view
  }
}

// What a grant gives, said before it is given (a walkthrough's grantee found every past run of
// the owner's, tracebacks and all, under "shared with me").
const SHARING_NOTE = "Whoever you share it with also sees its runs, yours included: their inputs, logs and outputs (passwords as ********). A viewer reads; a runner also runs it, with their own drive; an editor also changes it.";

async function grants(wf) {
  const box = $("#grants");
  if (!wf.rights.includes("share")) {  // only its owner shares it
    box.replaceChildren(h("p", { class: "muted" }, `Shared with you by ${wf.owner}; only they can share it.`));
    return;
  }
  let current = {};
  try {
    current = (await get(`/workflows/${encodeURIComponent(wfId)}/grants`)).grants;
  } catch (exc) {
    box.replaceChildren(h("p", { class: "muted" }, exc.message));
    return;
  }
  const save = async (next) => {
    try {
      await put(`/workflows/${encodeURIComponent(wfId)}/grants`, { grants: next });
      grants(wf);
    } catch (exc) {
      toast(exc.message, "error");
    }
  };
  const rows = Object.entries(current).map(([user, level]) =>
    h("tr", {}, h("td", {}, user), h("td", {}, level), h("td", {}, h("button", { type: "button", onclick: () => {
      const next = { ...current };
      delete next[user];
      save(next);
    } }, "Remove"))),
  );
  const form = h(
    "form",
    { class: "inline", onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      save({ ...current, [data.get("user")]: data.get("level") });
    } },
    h("input", { name: "user", placeholder: "user name", required: true }),
    h("select", { name: "level" }, ["viewer", "runner", "editor"].map((l) => h("option", {}, l))),
    h("button", { type: "submit" }, "Share"),
  );
  box.replaceChildren(h("h2", {}, "Sharing"), h("table", { class: "list" }, h("tbody", {}, rows)), form,
    h("p", { class: "muted", id: "grants-note" }, SHARING_NOTE));
}

// A new title renames the workflow: sent with the latest package, unchanged, so no version is
// added (the API stores none for the latest version's package; a title is not a version's).
function rename(wf) {
  const input = h("input", { id: "wf-title-input", value: wf.title, maxlength: 200, "aria-label": "workflow title", required: true });
  const form = h("form", { class: "inline", id: "wf-rename-form" }, input, h("button", { type: "submit" }, "Save"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const latest = await get(`/workflows/${encodeURIComponent(wfId)}`);
      const saved = await put(`/workflows/${encodeURIComponent(wfId)}`, { package: latest.package, title: input.value.trim(), base_version: latest.version });
      location.assign(`/workflows/${encodeURIComponent(wfId)}?version=${saved.version}`);
    } catch (exc) {
      toast(problemLines(exc).join("\n"), "error");
    }
  });
  $("#wf-title").replaceChildren(form);
  input.focus();
  input.select();
}

async function main() {
  tabs(); // before anything is fetched: a tab clicked while the page loads is the one shown
  const asked = new URLSearchParams(location.search).get("version");
  const wf = await get(`/workflows/${encodeURIComponent(wfId)}${asked ? `?version=${encodeURIComponent(asked)}` : ""}`);
  const versions = $("#wf-version");
  for (let v = wf.latest_version; v >= 1; v--) versions.append(h("option", { value: v, selected: v === wf.version }, `v${v}`));
  versions.addEventListener("change", () => location.assign(`?version=${versions.value}${location.hash}`));
  document.title = `${wf.title} · dizest`;
  $("#wf-title").textContent = wf.title;
  $("#wf-title").title = wf.title; // whole, where the toolbar cuts it short
  $("#wf-meta").textContent = `${wf.owner} · v${wf.version} of ${wf.latest_version} · ${when(wf.updated_at)}`;
  $("#wf-download").href = `/api/v1/workflows/${encodeURIComponent(wfId)}/dwp?version=${wf.version}`;
  const owner = sharedBy(wf);
  $("#wf-runs").href = `/runs?workflow_id=${encodeURIComponent(wfId)}${owner ? `&owner=${encodeURIComponent(owner)}` : ""}`;
  if (owner) $("#wf-runs").title = `${owner}'s runs of it (yours: Runs at the top)`;
  graph = model(wf.package, { layout: arrangeLink() });
  apps = wf.package.apps || {};
  const select = (id) => flowPanel(graph.byId.get(id));
  view = graphOrList($("#graph"), graph, select, (box) => new GraphView(box, graph, select));
  bindZoomButtons(view);
  if (wf.rights.includes("run")) {
    runForm();
    $("#runform").addEventListener("submit", start);
  } else {  // a viewer: no form whose every run the API would refuse
    $("#runform").replaceChildren(h("p", { class: "muted" }, `Your grant lets you view this workflow, not run it (ask ${wf.owner}).`));
  }
  $("#wf-edit").hidden = !wf.rights.includes("write");
  if (wf.version < wf.latest_version) $("#wf-edit").search = `?version=${wf.version}`; // that version is the one edited
  $("#wf-rename").hidden = !wf.rights.includes("write");
  $("#wf-rename").addEventListener("click", () => rename(wf));
  grants(wf);
  $("#info").replaceChildren(...infoView(wf, wf.package));
  const api = () => apiPanel($("#api"), wf, (id) => flowName(graph, id)).catch((exc) => $("#api").replaceChildren(h("p", { class: "problems" }, exc.message)));
  const apiTab = $('.tabs button[data-tab="api"]'); // (a large package's spec costs: made when asked for)
  if (apiTab.classList.contains("active")) api(); // asked for while the page loaded
  else apiTab.addEventListener("click", api, { once: true });
  selectFlowInHash((id) => graph.byId.has(id), (id) => view.select(id));
  loadLastRun(wf).catch((exc) => toast(exc.message, "error"));
}

main().catch((exc) => toast(exc.message, "error"));
