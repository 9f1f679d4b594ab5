// The runs page: mine (admins: everyone's), filtered by status, workflow and user, paginated;
// runs not yet final update live from their own event streams.
import { get } from "./api.js";
import { $, h, seconds, toast, when } from "./dom.js";

const LIMIT = Math.min(Math.max(Number(new URLSearchParams(location.search).get("limit")) || 25, 1), 200);
const FINAL = new Set(["ready", "error", "cancelled"]);
const params = new URLSearchParams(location.search);
let offset = Number(params.get("offset") || 0);
const live = new Map(); // run id -> EventSource, for the runs shown that are not final

for (const name of ["status", "workflow_id", "owner"]) {
  const input = $(`[name="${name}"]`);
  if (input && params.get(name)) input.value = params.get(name);
}

function statusCell(run) {
  return h("span", { class: `status st-${run.status}` }, run.status || "expired");
}

function watch(run, row) {
  const source = new EventSource(`/api/v1/runs/${encodeURIComponent(run.run_id)}/events?after=${Date.now() - 1}-0`);
  live.set(run.run_id, source);
  source.onerror = () => {
    // The stream ended without our final event (a clock skew, a restart): refresh the list.
    source.close();
    live.delete(run.run_id);
    setTimeout(() => load().catch(() => {}), 1000);
  };
  source.addEventListener("workflow.status", (message) => {
    const event = JSON.parse(message.data);
    run.status = event.data.status;
    row.querySelector(".st").replaceChildren(statusCell(run));
    if (FINAL.has(run.status)) {
      source.close();
      live.delete(run.run_id);
      load();
    }
  });
}

async function load() {
  const query = new URLSearchParams({ offset, limit: LIMIT });
  for (const name of ["status", "workflow_id", "owner"]) if (params.get(name)) query.set(name, params.get(name));
  const page = await get(`/runs?${query}`);
  for (const source of live.values()) source.close();
  live.clear();
  const rows = page.items.map((run) => {
    const row = h(
      "tr",
      { dataset: { id: run.run_id } },
      h("td", {}, h("a", { href: `/runs/${encodeURIComponent(run.run_id)}`, class: "run-link" }, run.run_id.slice(0, 12))),
      h("td", { class: "st" }, statusCell(run)),
      h("td", {}, run.workflow_id ? h("a", { href: `/workflows/${encodeURIComponent(run.workflow_id)}` }, run.workflow_id) : h("span", { class: "muted" }, "inline")),
      h("td", {}, run.owner || ""),
      h("td", {}, when(run.created_at)),
      h("td", {}, run.finished_at && run.created_at ? seconds(run.finished_at - run.created_at) : ""),
    );
    if (!FINAL.has(run.status) && run.status) watch(run, row);
    return row;
  });
  $("#run-rows").replaceChildren(...rows);
  $("#runs-empty").hidden = page.total > 0;
  $("#runs-page").textContent = page.total ? `${offset + 1}–${offset + page.items.length} of ${page.total}` : "";
  $("#runs-prev").disabled = offset === 0;
  $("#runs-next").disabled = offset + LIMIT >= page.total;
}

function go(next) {
  offset = Math.max(0, next);
  params.set("offset", offset);
  history.replaceState(null, "", `?${params}`);
  load().catch((exc) => toast(exc.message, "error"));
}

$("#run-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  for (const [name, value] of new FormData(event.target)) {
    if (value) params.set(name, value);
    else params.delete(name);
  }
  go(0);
});
$("#runs-prev").addEventListener("click", () => go(offset - LIMIT));
$("#runs-next").addEventListener("click", () => go(offset + LIMIT));
load().catch((exc) => toast(exc.message, "error"));
