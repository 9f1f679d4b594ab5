// The workflows page: mine and granted, newest first, searchable; a new empty one (opened in
// the editor), upload (picker or drop), download, delete. Validation problems are listed one per
// line, naming flow and app by their titles.
import { del, get, post, problemLine, problemLines, put } from "./api.js";
import { $, h, onDrop, toast, whenCell } from "./dom.js";
import { appName, flowName, flowTitle } from "./flownames.js";

const LIMIT = 50;
let offset = 0;
let query = "";

async function load() {
  const params = new URLSearchParams({ offset, limit: LIMIT });
  if (query) params.set("title", query);
  const page = await get(`/workflows?${params}`);
  const rows = page.items.map((wf) =>
    h(
      "tr",
      { dataset: { id: wf.id } },
      h("td", { class: "title" }, h("a", { href: `/workflows/${encodeURIComponent(wf.id)}`, class: "wf-title" }, wf.title)),
      h("td", {}, wf.owner),
      h("td", {}, `v${wf.version}`),
      h("td", {}, whenCell(wf.updated_at)),
      h(
        "td",
        { class: "actions" },
        h("a", { href: `/api/v1/workflows/${encodeURIComponent(wf.id)}/dwp`, class: "button", download: "" }, "Download"),
        h("a", { href: `/runs?workflow_id=${encodeURIComponent(wf.id)}`, class: "button" }, "Runs"),
        (wf.rights || []).includes("delete") ? h("button", { type: "button", class: "danger", onclick: () => remove(wf) }, "Delete") : null,
      ),
    ),
  );
  $("#wf-rows").replaceChildren(...rows);
  $("#wf-empty").hidden = page.total > 0;
  $("#wf-page").textContent = page.total ? `${offset + 1}–${offset + page.items.length} of ${page.total}` : "";
  $("#wf-prev").disabled = offset === 0;
  $("#wf-next").disabled = offset + LIMIT >= page.total;
}

async function remove(wf) {
  if (!confirm(`Delete "${wf.title}" and all its versions?`)) return;
  try {
    await del(`/workflows/${encodeURIComponent(wf.id)}`);
    toast(`Deleted ${wf.title}`);
  } catch (exc) {
    toast(exc.message, "error");
  }
  await load();
}

// The newest of the caller's own workflows of exactly this title, if any: an upload of a file
// again (an edited copy) is offered as its next version rather than a twin of the same name.
// Their own only: a newer namesake another user shared with them as editor (any user's, for an
// admin) came first, and an OK gave that user the file (its code, its stored values) as a new
// version of their workflow, changed for everyone it is shared with.
const me = $("#me-name")?.textContent;
async function namesake(title) {
  const page = await get(`/workflows?${new URLSearchParams({ title, limit: 200 })}`);
  return page.items.find((wf) => wf.title === title && wf.owner === me && (wf.rights || []).includes("write")) || null;
}

// How the problems of an uploaded package `pkg` name its flows and apps, as the views name them
// (flownames.js): [flow, app], each an id -> its name. (Its flows' names are worked out when a
// problem first asks.)
function namesIn(pkg) {
  const apps = pkg && typeof pkg === "object" ? pkg.apps : null;
  let graph = null;
  const flow = (id) => {
    graph ||= { nodes: Object.entries((pkg && pkg.flow) || {}).map(([key, f]) => ({ id: key, title: flowTitle(key, f || {}, (apps || {})[f?.app_id] || {}) })) };
    return flowName(graph, id);
  };
  return [flow, (id) => appName(apps, id)];
}

async function upload(files) {
  const box = $("#upload-problems");
  const lines = [];
  for (const file of files) {
    let pkg;
    try {
      pkg = JSON.parse(await file.text());
    } catch (exc) {
      lines.push(`${file.name}: not a JSON .dwp file (${exc.message})`);
      continue;
    }
    const [flow, app] = namesIn(pkg);
    const title = (pkg && typeof pkg.title === "string" && pkg.title) || file.name.replace(/\.dwp$/i, "");
    try {
      const same = await namesake(title);
      const wf = same && confirm(`"${title}" exists (v${same.version}). OK: store this file as its next version. Cancel: keep both, as a new workflow.`)
        ? await put(`/workflows/${encodeURIComponent(same.id)}`, { package: pkg })
        : await post("/workflows", { title, package: pkg });
      // stored all the same (code that does not compile yet...), said as the problems are
      for (const w of wf.warnings || []) lines.push(`${file.name}: warning: ${problemLine(w, flow, app)}`);
      toast(wf.stored === false ? `${wf.title} is v${wf.version} already: nothing stored` : `Uploaded ${wf.title} (v${wf.version})`);
    } catch (exc) {
      lines.push(`${file.name}:`, ...problemLines(exc, flow, app).map((l) => `  ${l}`));
    }
  }
  box.textContent = lines.join("\n");
  box.hidden = lines.length === 0;
  offset = 0;
  await load();
}

$("#wf-new").addEventListener("click", async () => {
  try {
    const title = prompt("Name of the new workflow", "Untitled workflow");
    if (title === null) return; // cancelled
    const made = await post("/workflows", { title: title.trim() || "Untitled workflow", package: { apps: {}, flow: {} } });
    location.assign(`/workflows/${encodeURIComponent(made.id)}/edit`);
  } catch (exc) {
    toast(problemLines(exc).join("\n"), "error");
  }
});

$("#wf-file").addEventListener("change", (event) => {
  upload([...event.target.files]);
  event.target.value = "";
});
onDrop($("#dropzone"), (dropped) => upload([...dropped.files]));
let timer;
$("#wf-search").addEventListener("input", (event) => {
  clearTimeout(timer);
  timer = setTimeout(() => {
    query = event.target.value.trim();
    offset = 0;
    load();
  }, 200);
});
$("#wf-prev").addEventListener("click", () => {
  offset = Math.max(0, offset - LIMIT);
  load();
});
$("#wf-next").addEventListener("click", () => {
  offset += LIMIT;
  load();
});
load().catch((exc) => toast(exc.message, "error"));
