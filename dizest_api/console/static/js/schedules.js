// The schedules page: mine (admins: everyone's), each with its workflow, cron and zone, next run
// and an on/off switch; its last ticks (the run each made, or why it made none) shown on asking;
// a form to add one to a workflow I may run, and a delete. A row is `#s-<id>`: a run's page and
// the runs list link a run a schedule made to it.
import { del, get, patch, post, problemLines } from "./api.js";
import { $, h, idText, toast, whenCell } from "./dom.js";

const HISTORY = 10; // the ticks a row shows when asked
const rows = $("#schedule-rows");
const form = $("#add-schedule");
const error = $("#schedule-error");

function workflowCell(s) {
  const href = `/workflows/${encodeURIComponent(s.workflow_id)}`;
  const link = h("a", { href, title: s.workflow_id }, s.workflow_title ?? s.workflow_id);
  return s.workflow_title == null ? h("code", {}, link) : link; // (a workflow I may no longer read: its id)
}

// One tick of the history: when, and the run it made (a link) or why it made none.
function tickLine(t) {
  const made = t.run_id
    ? h("a", { href: `/runs/${encodeURIComponent(t.run_id)}`, class: "run-link", title: t.run_id }, "run ", idText(t.run_id, 12))
    : h("span", { class: t.error ? "error" : "muted" }, t.error || (t.skipped ? `skipped: ${t.skipped}` : "no run"));
  return h("li", {}, h("span", { class: "tick" }, t.tick || ""), " ", made);
}

async function showTicks(s, tr, button) {
  const open = tr.nextElementSibling?.classList.contains("ticks") ? tr.nextElementSibling : null;
  if (open) {
    open.remove();
    button.textContent = "Ticks";
    button.setAttribute("aria-expanded", "false");
    return;
  }
  const found = await get(`/schedules/${encodeURIComponent(s.id)}?limit=${HISTORY}`);
  const list = found.history.length ? h("ol", { class: "tick-list" }, found.history.map(tickLine)) : h("p", { class: "muted" }, "No ticks yet.");
  tr.after(h("tr", { class: "ticks", dataset: { of: s.id } }, h("td", { colspan: 6 }, list)));
  button.textContent = "Hide ticks";
  button.setAttribute("aria-expanded", "true");
}

function row(s) {
  const tr = h("tr", { id: `s-${s.id}`, dataset: { id: s.id } });
  const toggle = h("input", { type: "checkbox", class: "enabled", checked: s.enabled, "aria-label": `schedule ${s.cron} on` });
  toggle.addEventListener("change", async () => {
    toggle.disabled = true;
    try {
      const changed = await patch(`/schedules/${encodeURIComponent(s.id)}`, { enabled: toggle.checked });
      tr.replaceWith(row(changed));
    } catch (exc) {
      toggle.checked = !toggle.checked;
      toggle.disabled = false;
      toast(exc.message, "error");
    }
  });
  const ticks = h("button", { type: "button", class: "show-ticks", "aria-expanded": "false", title: "its last ticks: the runs it made" }, "Ticks");
  ticks.addEventListener("click", () => showTicks(s, tr, ticks).catch((exc) => toast(exc.message, "error")));
  const remove = h("button", { type: "button", class: "danger delete" }, "Delete");
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete the schedule ${s.cron} of ${s.workflow_title ?? s.workflow_id}?`)) return;
    try {
      await del(`/schedules/${encodeURIComponent(s.id)}`);
      if (tr.nextElementSibling?.classList.contains("ticks")) tr.nextElementSibling.remove();
      tr.remove();
      $("#schedules-empty").hidden = rows.children.length > 0;
    } catch (exc) {
      toast(exc.message, "error");
    }
  });
  tr.append(
    h("td", { class: "wf" }, workflowCell(s)),
    h("td", { class: "cron" }, h("code", {}, s.cron), " ", h("span", { class: "muted" }, s.timezone)),
    h("td", { class: "next" }, s.enabled ? whenCell(s.next_run_at) : h("span", { class: "muted" }, "off")),
    h("td", {}, toggle),
    h("td", { class: "who" }, s.owner),
    h("td", { class: "actions" }, ticks, " ", remove),
  );
  return tr;
}

async function load() {
  const found = await get("/schedules");
  rows.replaceChildren(...found.items.map(row));
  $("#schedules-empty").hidden = found.items.length > 0;
  markTarget();
}

// The row the address names (#s-<id>), marked and in view; any other address marks nothing
// (a form field's id, a hash that is no percent-encoding).
function markTarget() {
  for (const tr of rows.querySelectorAll("tr.target")) tr.classList.remove("target");
  let id = "";
  try {
    id = decodeURIComponent(location.hash.slice(1));
  } catch {
    return;
  }
  const target = [...rows.children].find((tr) => tr.id === id && tr.dataset.id);
  if (!target) return;
  target.classList.add("target");
  target.scrollIntoView({ block: "center" });
}
addEventListener("hashchange", markTarget);

// The workflows a schedule may be added to: mine and those shared with me (the server refuses
// one I may not run, and says so).
async function workflows() {
  const page = await get("/workflows?limit=200");
  $("#s-workflow").replaceChildren(...page.items.map((wf) => h("option", { value: wf.id }, wf.title ?? wf.id)));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const data = new FormData(form);
  const body = { cron: data.get("cron").trim() };
  if (data.get("timezone").trim()) body.timezone = data.get("timezone").trim();
  try {
    await post(`/workflows/${encodeURIComponent(data.get("workflow"))}/schedules`, body);
    $("#s-cron").value = "";
    await load();
  } catch (exc) {
    error.textContent = problemLines(exc).join("\n");
    error.hidden = false;
  }
});

$("#s-timezone").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
form.querySelector("button").disabled = false; // (see schedules.html)
Promise.all([load(), workflows()]).catch((exc) => toast(exc.message, "error"));
