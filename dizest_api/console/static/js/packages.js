// What flows can import: a workflow's requirements.txt checked against the live workers'
// environments, and the packages of those environments (routes/packages.py). DIZEST's packages
// panel installs with pip; here it is read-only, since one environment serves every user's
// flows: what it holds is the operator's to change. Nothing is fetched until it is shown.
import { api } from "./api.js";
import { h } from "./dom.js";

const CHECK_PAUSE_MS = 600; // a check after a pause in the typing, not at every key

// One requirement on one environment: met (or not needed there), not met, or not known.
function cell(installed, satisfied) {
  if (satisfied === true) return h("td", { class: "req-ok" }, `✓ ${installed ?? "not needed here"}`);
  if (satisfied === false) return h("td", { class: "req-missing" }, `✗ ${installed ? `${installed} installed` : "not installed"}`);
  return h("td", { class: "req-unknown" }, `? ${installed ?? ""}`);
}

function checkTable({ environments, requirements }) {
  if (!environments.length) return h("p", { class: "muted" }, "No worker is running: nothing to check against.");
  const named = (env) => (environments.length > 1 ? `${env.workers.join(", ")}: ` : "On the workers: ");
  const head = h("tr", {}, h("th", {}, "Requirement"), ...environments.map((env) => h("th", {}, `${named(env)}Python ${env.python}`)));
  const rows = requirements.map((r) => h("tr", {},
    h("td", {}, h("code", {}, r.line.trim())),
    ...(r.name == null
      ? [h("td", { class: "req-unknown", colSpan: environments.length }, `not checked: ${r.problem}`)]
      : r.installed.map((installed, i) => cell(installed, r.satisfied[i])))));
  return h("table", { class: "requirements-check" }, h("thead", {}, head), h("tbody", {}, ...rows));
}

// `box` shows how `text` (a requirements.txt) fares on the workers; the answer to an older
// text (typing went on meanwhile) is dropped.
export async function checkRequirements(box, text) {
  box.dataset.text = text;
  if (!text.trim()) return void box.replaceChildren();
  let found;
  try {
    found = await api("POST", "/packages/check", { requirements: text });
  } catch (exc) {
    found = { error: exc.message };
  }
  if (box.dataset.text !== text) return;
  box.replaceChildren(found.error ? h("p", { class: "muted" }, `Not checked: ${found.error}`) : checkTable(found));
}

// A box under a requirements.txt field that checks it again after each pause in the typing.
export function checkWhileTyping(field) {
  const box = h("div", { id: "info-requirements-check" });
  let timer = 0;
  field.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => checkRequirements(box, field.value), CHECK_PAUSE_MS);
  });
  checkRequirements(box, field.value);
  return box;
}

function environmentTable(env, several) {
  const title = `${several ? `${env.workers.join(", ")}: ` : ""}Python ${env.python}, ${env.packages.length} packages`;
  const rows = env.packages.map((p) => h("tr", { dataset: { name: p.name.toLowerCase() } }, h("td", {}, p.name), h("td", {}, p.version)));
  return h("section", {}, h("h4", {}, title), h("table", { class: "packages" }, h("tbody", {}, ...rows)));
}

async function loadPackages(list) {
  list.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let environments;
  try {
    ({ environments } = await api("GET", "/packages"));
  } catch (exc) {
    list.replaceChildren(h("p", { class: "muted" }, `Not loaded: ${exc.message}`));
    return false;
  }
  if (!environments.length) {
    list.replaceChildren(h("p", { class: "muted" }, "No worker is running."));
    return false;
  }
  const filter = h("input", { type: "search", id: "packages-filter", placeholder: "Filter", "aria-label": "Filter packages" });
  filter.addEventListener("input", () => {
    const wanted = filter.value.trim().toLowerCase();
    for (const row of list.querySelectorAll("tr[data-name]")) row.hidden = Boolean(wanted) && !row.dataset.name.includes(wanted);
  });
  list.replaceChildren(filter, ...environments.map((env) => environmentTable(env, environments.length > 1)));
  return true;
}

// The workers' packages, folded; fetched when first unfolded (again after a failure).
export function packagesList() {
  const list = h("div", { class: "packages-list" });
  const folded = h("details", { id: "info-packages" }, h("summary", {}, "Python packages on the workers"), list);
  let loading = null; // a load under way or done; null again after a failure
  folded.addEventListener("toggle", () => {
    if (!folded.open || loading) return;
    loading = loadPackages(list).then((ok) => void (loading = ok ? loading : null));
  });
  return folded;
}
