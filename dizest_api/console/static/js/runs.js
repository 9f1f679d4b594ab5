// The runs page: mine (admins: everyone's) or those of the workflows shared with me (their
// owners' runs, which my grants let me read), filtered by status, workflow and user, paginated;
// while a run shown is not final, the page asks for the same list again every POLL_MS (one
// request, never a stream per run: an admin's page may list 100 unfinished runs of one user,
// and a stream each would take every connection the browser allows to this origin, freezing
// every tab of the console). It stops when all are final and while the page is hidden.
// A filter applies as it changes (a select at once, a typed field as the typing pauses, or on
// Enter) and is kept in the address (a reload, or Back from a run, shows the same list). The
// workflow is picked by title (a list of the caller's workflows whose title holds what is typed)
// or by id. (The list itself comes from the API: without scripts the page shows nothing to filter.)
import { get } from "./api.js";
import { $, h, idText, seconds, toast, whenCell } from "./dom.js";

const LIMIT = Math.min(Math.max(Number(new URLSearchParams(location.search).get("limit")) || 25, 1), 200);
const FINAL = new Set(["ready", "error", "cancelled"]);
const POLL_MS = 2000;
const TYPING_MS = 300; // a typed field applies once its typing pauses this long
const params = new URLSearchParams(location.search);
let offset = Number(params.get("offset") || 0);
let shown = []; // the runs on the page, as last answered
let asked = 0; // the latest load's number: an older answer arriving late is dropped
let applied = 0; // the latest apply's number: one still finding its workflow when another began does nothing
let timer = null;

const FILTERS = ["shared", "status", "workflow_id", "owner"];
const FIELDS = ["shared", "status", "owner"]; // as typed or chosen (the workflow's field: see workflowId)
for (const name of FILTERS) {
  const input = $(`[name="${name}"]`);
  if (input && params.get(name)) input.value = params.get(name);
}
const wfInput = $("#f-workflow");
const titles = new Map(); // what the workflow field shows -> the workflow's id (its list's options, the titles seen)

// The list under the workflow field: the caller's workflows whose title holds what is typed, by
// title (with the id where two share it), the id beside.
async function suggest() {
  const page = await get(`/workflows?${new URLSearchParams({ title: wfInput.value.trim(), limit: 20 })}`);
  const seen = new Map();
  for (const wf of page.items) seen.set(wf.title, (seen.get(wf.title) || 0) + 1);
  $("#f-workflows").replaceChildren(
    ...page.items.map((wf) => {
      const shown = seen.get(wf.title) > 1 ? `${wf.title} (${wf.id})` : wf.title;
      titles.set(shown, wf.id);
      return h("option", { value: shown }, wf.id);
    }),
  );
}

// The id the workflow field names: an option's, else the one workflow of exactly that title,
// else the text itself (an id; a title of none: no runs match). Null: two workflows of that title.
async function workflowId(value) {
  if (!value || titles.has(value)) return titles.get(value) || "";
  const page = await get(`/workflows?${new URLSearchParams({ title: value, limit: 50 })}`);
  const same = page.items.filter((wf) => wf.title === value);
  if (same.length > 1) {
    suggest().catch(() => {});
    toast(`${same.length} workflows are titled "${value}": pick one from the list`, "error");
    return null;
  }
  return same.length ? same[0].id : value;
}

// The id in the address shown as its workflow's title, once a run listed tells it.
function showTitle(items) {
  const id = params.get("workflow_id");
  const run = id && wfInput.value === id && items.find((r) => r.workflow_id === id && r.workflow_title != null);
  if (!run) return;
  titles.set(run.workflow_title, id);
  wfInput.value = run.workflow_title;
}

function statusCell(run) {
  return h("span", { class: `status st-${run.status}` }, run.status || "expired");
}

function duration(run) {
  return run.finished_at && run.created_at ? seconds(run.finished_at - run.created_at) : "";
}

// Its workflow by title (the id when the caller may no longer read it), or "inline".
function workflowCell(run) {
  if (!run.workflow_id) return h("span", { class: "muted" }, "inline");
  const link = h("a", { href: `/workflows/${encodeURIComponent(run.workflow_id)}`, title: run.workflow_id }, run.workflow_title ?? run.workflow_id);
  return run.workflow_title == null ? h("code", {}, link) : link;
}

// What started it, where not its owner's submit: a schedule (its row on the schedules page), a
// trigger, a rerun (of the run it reran).
function originCell(run) {
  const o = run.origin;
  if (!o) return "";
  if (!o.id) return h("span", {}, o.kind); // another user's schedule, trigger or run: the kind alone
  if (o.kind === "schedule") return h("a", { href: `/schedules#s-${encodeURIComponent(o.id)}`, title: `schedule ${o.id}` }, "schedule");
  if (o.kind === "rerun") return h("a", { href: `/runs/${encodeURIComponent(o.id)}`, title: `rerun of ${o.id}` }, "rerun");
  return h("span", { title: `${o.kind} ${o.id}` }, o.kind);
}

function row(run) {
  return h(
    "tr",
    { dataset: { id: run.run_id } },
    h("td", {}, h("a", { href: `/runs/${encodeURIComponent(run.run_id)}`, class: "run-link", title: run.run_id }, idText(run.run_id, 12))),
    h("td", { class: "st" }, statusCell(run)),
    // (its user and what started it under it, on a phone)
    h("td", { class: "wf" }, workflowCell(run), h("small", { class: "by muted" }, run.owner || ""), run.origin && h("small", { class: "from muted" }, originCell(run))),
    h("td", { class: "who" }, run.owner || ""),
    h("td", { class: "origin" }, originCell(run)),
    h("td", {}, whenCell(run.created_at)),
    h("td", { class: "took" }, duration(run)),
  );
}

const unfinished = (runs) => runs.some((run) => run.status && !FINAL.has(run.status));

function render(page) {
  const rows = $("#run-rows");
  const same = page.items.length === shown.length && page.items.every((run, i) => run.run_id === shown[i].run_id);
  if (same) {
    // the same runs: only what changes, so a poll never disturbs a hover, a focus or a selection
    page.items.forEach((run, i) => {
      const tr = rows.children[i];
      if (run.status !== shown[i].status) tr.querySelector(".st").replaceChildren(statusCell(run));
      tr.querySelector(".took").textContent = duration(run);
    });
  } else rows.replaceChildren(...page.items.map(row));
  shown = page.items;
  showTitle(page.items);
  $("#runs-empty").hidden = page.total > 0;
  $("#runs-page").textContent = page.total ? `${offset + 1}–${offset + page.items.length} of ${page.total}` : "";
  $("#runs-prev").disabled = offset === 0;
  $("#runs-next").disabled = offset + LIMIT >= page.total;
}

// The next poll, if one is due: a run shown is not final and the page is visible.
function schedule() {
  clearTimeout(timer);
  timer = null;
  if (!document.hidden && unfinished(shown)) timer = setTimeout(poll, POLL_MS);
}

function poll() {
  load().catch(schedule); // a failed poll (a restart, a blip) is tried again, without a toast
}

async function load() {
  const query = new URLSearchParams({ offset, limit: LIMIT });
  for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
  const mine = ++asked;
  clearTimeout(timer);
  timer = null;
  const page = await get(`/runs?${query}`);
  if (mine !== asked) return; // a newer load (another page, a filter) answers instead
  render(page);
  schedule();
}

function go(next) {
  offset = Math.max(0, next);
  params.set("offset", offset);
  history.replaceState(null, "", `?${params}`);
  load().catch((exc) => toast(exc.message, "error"));
}

async function apply() {
  const mine = ++applied;
  const wf = await workflowId(wfInput.value.trim());
  if (wf === null || mine !== applied) return;
  for (const [name, value] of [...FIELDS.map((n) => [n, $(`[name="${n}"]`)?.value]), ["workflow_id", wf]]) {
    if (value) params.set(name, value);
    else params.delete(name);
  }
  go(0);
}

const filters = $("#run-filters");
let typing = null; // a typed field's apply, due when the typing pauses
const applying = (event) => {
  event?.preventDefault();
  clearTimeout(typing);
  apply().catch((exc) => toast(exc.message, "error"));
};
filters.addEventListener("submit", applying);
filters.addEventListener("change", applying);
for (const field of filters.querySelectorAll("input")) {
  field.addEventListener("keydown", (event) => event.key === "Enter" && applying(event));
  field.addEventListener("input", (event) => {
    // an option picked from the workflows' list applies at once; typing, once it pauses (the
    // workflow field asks for its list again then too)
    if (field === wfInput && (event.inputType === "insertReplacementText" || (!event.inputType && titles.has(wfInput.value)))) return applying(event);
    clearTimeout(typing);
    typing = setTimeout(() => {
      if (field === wfInput) suggest().catch(() => {});
      applying();
    }, TYPING_MS);
  });
}
wfInput.addEventListener("focus", () => suggest().catch(() => {}), { once: true });
$("#runs-prev").addEventListener("click", () => go(offset - LIMIT));
$("#runs-next").addEventListener("click", () => go(offset + LIMIT));
document.addEventListener("visibilitychange", () => {
  if (document.hidden) schedule(); // clears the timer: no poll while nobody looks
  else if (unfinished(shown)) poll(); // back in view: fresh statuses at once
});
load().catch((exc) => toast(exc.message, "error"));
