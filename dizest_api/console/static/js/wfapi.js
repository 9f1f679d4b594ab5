// The workflow's API panel, as DIZEST's "external API": the inputs it takes from outside (the
// server's own mapping, GET /workflows/<id>/spec: each name with the flow inputs it fills), the
// calls that run it from another program with the values typed here (cURL for DIZEST's run and
// stream routes and for POST /api/v1/runs, the CLI, the Python client), and Test, which runs it
// through this session and shows the answer as it came. A snippet holds no credential: it reads
// $DIZEST_TOKEN, a token the person makes on the admin page; the base URL is this server's.
import { get, request } from "./api.js";
import { $, copyText, h } from "./dom.js";

const enc = encodeURIComponent;

// One shell word, whatever it holds (quoted only when it must be).
const sh = (word) => (/^[\w.,:/@%+=-]+$/.test(word) ? word : `'${String(word).replace(/'/g, "'\\''")}'`);

// A command on several lines, each continued by a backslash.
const lines = (...parts) => parts.join(" \\\n  ");

// A typed value as the server reads a form or command-line value (dizest_core.workflow.
// parse_value): JSON when it parses as JSON, else the text itself.
function asValue(typed) {
  try {
    return JSON.parse(typed);
  } catch (exc) {
    return typed;
  }
}

// A JSON value as a Python literal (a JSON string or number already is one).
function py(value) {
  if (value === null) return "None";
  if (typeof value === "boolean") return value ? "True" : "False";
  if (Array.isArray(value)) return `[${value.map(py).join(", ")}]`;
  if (typeof value === "object") return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${py(v)}`).join(", ")}}`;
  return JSON.stringify(value);
}

const BEARER = '-H "Authorization: Bearer $DIZEST_TOKEN"';
const JSON_BODY = "-H 'Content-Type: application/json'";

// The snippets for `values` ({name: typed text}, the empty ones left out: they keep their
// defaults) and `spec` (what /spec answered).
export function snippets(origin, wfId, spec, values) {
  const given = Object.entries(values).filter(([name, typed]) => typed !== "" && spec.inputs[name]);
  const body = Object.fromEntries(given.map(([name, typed]) => [name, asValue(typed)]));
  const runInputs = {};
  const flags = [];
  for (const [name, typed] of given) {
    for (const key of spec.inputs[name]) {
      runInputs[key] = asValue(typed);
      flags.push(`-i ${sh(`${key}=${typed}`)}`);
    }
  }
  const post = (url, sent, more = "") => lines(`curl ${more}-X POST ${sh(url)}`, BEARER, JSON_BODY, `-d ${sh(JSON.stringify(sent))}`);
  const compat = (kind, more) => post(`${origin}/dizest/api/${kind}/${enc(wfId)}`, body, more);
  const file = `${wfId}.dwp`;
  return {
    run: compat("run", ""),
    stream: compat("stream", "-N "),
    runs: [
      post(`${origin}/api/v1/runs`, { workflow_id: wfId, inputs: runInputs }),
      `# answers {"run_id": ...}; the run's report, outputs included, once it ended:`,
      `# curl ${BEARER} ${sh(`${origin}/api/v1/runs/`)}RUN_ID`,
    ].join("\n"),
    cli: [
      "# with DIZEST_TOKEN set, or once logged in (it asks for your user name and password):",
      `# dizest login --server ${sh(origin)}`,
      lines(`dizest workflows run ${sh(wfId)}`, `--server ${sh(origin)}`, ...flags, "--wait"),
    ].join("\n"),
    submit: [
      `dizest workflows pull ${sh(wfId)} --server ${sh(origin)} -o ${sh(file)}`,
      lines(`dizest submit ${sh(file)}`, `--server ${sh(origin)}`, ...flags, "--wait"),
    ].join("\n"),
    python: [
      "from dizest_api.client import Client",
      "",
      `client = Client(${JSON.stringify(origin)})  # its token: $DIZEST_TOKEN`,
      `run_id = client.submit_workflow(${JSON.stringify(wfId)}, inputs=${py(runInputs)})`,
      "report = client.wait(run_id)",
      'print(report["status"], {flow: f["outputs"] for flow, f in report["flows"].items()})',
    ].join("\n"),
  };
}

const TITLES = [
  ["run", "cURL: run, wait, final outputs"],
  ["stream", "cURL: run, stream its events"],
  ["runs", "cURL: start a run (/api/v1/runs)"],
  ["cli", "CLI: dizest workflows run"],
  ["submit", "CLI: dizest submit (its .dwp)"],
  ["python", "Python client"],
];

// The flow of a spec's key "<flow>.<input>" (a flow id may hold dots, an input name not): each
// key of a request name ends with that name, so a person reads the flows it fills by name.
const flowOf = (key) => key.slice(0, key.lastIndexOf("."));

function inputRows(spec, onInput, name) {
  const names = Object.keys(spec.inputs);
  if (!names.length) return [h("p", { class: "muted", id: "api-no-inputs" }, "It takes no inputs from outside (no flow has an unconnected output-type input).")];
  return names.map((input) => {
    const field = h("input", { name: input, id: `api-in-${input}`, placeholder: "its default", "aria-label": input, oninput: onInput });
    const fills = h("small", { class: "muted", title: spec.inputs[input].join(", ") }, ` fills ${spec.inputs[input].map((key) => name(flowOf(key))).join(", ")}`);
    return h("label", { class: "field api-input", dataset: { input } }, h("span", {}, h("strong", {}, input), fills), field);
  });
}

function outputList(spec, name) {
  const rows = Object.entries(spec.outputs).map(([flow, names]) => h("li", { dataset: { flow } }, h("span", { class: "flow-name", title: flow }, name(flow)), `: ${names.join(", ")}`));
  return rows.length ? h("ul", { class: "outputs", id: "api-outputs" }, rows) : h("p", { class: "muted", id: "api-outputs" }, "No final outputs.");
}

// Run it as the session (POST, with the CSRF token) and show the status and the JSON answer.
async function test(wfId, values, button) {
  const status = $("#api-status");
  const shown = $("#api-answer");
  button.disabled = true;
  status.textContent = "running…";
  shown.hidden = true;
  try {
    const answer = await request("POST", `/dizest/api/run/${enc(wfId)}`, values);
    const text = await answer.text();
    let pretty = text;
    try {
      pretty = JSON.stringify(JSON.parse(text), null, 2);
    } catch (exc) { /* shown as it came */ }
    status.textContent = `HTTP ${answer.status}`;
    status.dataset.status = answer.status;
    shown.textContent = pretty;
    shown.hidden = false;
  } catch (exc) {
    status.textContent = `not sent: ${exc.message}`;
  } finally {
    button.disabled = false;
  }
}

// `name`: a flow id -> the name a person reads (graph.js flowName).
export async function apiPanel(box, wf, name) {
  const spec = await get(`/workflows/${enc(wf.id)}/spec`);
  const pres = Object.fromEntries(TITLES.map(([key]) => [key, h("pre", { class: "snippet", id: `api-${key}` })]));
  const typed = () => Object.fromEntries([...box.querySelectorAll(".api-input input")].map((i) => [i.name, i.value]));
  const redraw = () => {
    const made = snippets(location.origin, wf.id, spec, typed());
    for (const [key, pre] of Object.entries(pres)) pre.textContent = made[key];
  };
  const canRun = wf.rights.includes("run");
  const button = h("button", { type: "button", id: "api-test", hidden: !canRun }, "Test");
  button.addEventListener("click", () => {
    const values = Object.fromEntries(Object.entries(typed()).filter(([, v]) => v !== "").map(([k, v]) => [k, asValue(v)]));
    test(wf.id, values, button);
  });
  box.replaceChildren(
    h("h2", {}, "External API"),
    h("p", { class: "muted" }, `Programs run it by these calls, in its latest version (v${spec.version}).`),
    h("h3", {}, "Inputs"),
    ...inputRows(spec, redraw, name),
    h("h3", {}, "Final outputs"),
    outputList(spec, name),
    h("p", { class: "api-test" }, button, h("span", { id: "api-status", class: "muted" }, canRun ? "" : `Your grant does not let you run it (ask ${wf.owner}).`)),
    h("pre", { class: "snippet", id: "api-answer", hidden: true }),
    h("p", { class: "muted" }, "Each call needs an API token with the run scope in $DIZEST_TOKEN: ", h("a", { href: "/admin#tokens", id: "api-token-link" }, "make one"), "."),
    ...TITLES.flatMap(([key, title]) => [
      h("div", { class: "snippet-head" }, h("h3", {}, title), h("button", { type: "button", class: "copy", dataset: { copy: key }, onclick: () => copyText(pres[key]) }, "Copy")),
      pres[key],
    ]),
  );
  redraw();
}
