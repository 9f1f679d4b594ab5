// The admin page's Workers table: every live worker (GET /api/v1/workers, admins), read again
// every REFRESH_MS while the page is shown (none while it is hidden; at once when it shows
// again), so a worker that stops leaves the table within the liveness window. One request per
// refresh for the whole cluster, no event stream per worker.
import { get } from "./api.js";
import { bytes, h, seconds, when } from "./dom.js";

export const REFRESH_MS = 3000;

function cells(w) {
  const disk = w.disk?.artifacts;
  const flows = (w.flows || []).map((f) => `${f.run_id} ${f.flow_id} (attempt ${f.attempt})`);
  return [
    h("td", { title: [w.pid && `pid ${w.pid}`, w.version && `dizest ${w.version}`, w.started_at && `started ${when(w.started_at)}`].filter(Boolean).join(", ") }, w.name),
    h("td", {}, w.host ?? "?"),
    h("td", {}, (w.queues || []).join(", ") || "?"),
    h("td", { class: "slots", title: flows.join("\n") || "no flow running" }, `${w.running}/${w.slots}`),
    h("td", { class: "load" }, w.load ? w.load.map((x) => x.toFixed(2)).join(" ") : "?"),
    h("td", {}, w.memory ? `${bytes(w.memory.available)} free of ${bytes(w.memory.total)}` : "?"),
    h("td", {}, disk ? `${bytes(disk.free)} free of ${bytes(disk.total)}` : "?"),
    h("td", { class: "beat" }, `${seconds(w.last_beat_s)} ago`),
  ];
}

async function refresh(rows) {
  try {
    const { items } = await get("/workers");
    const shown = items.map((w) => h("tr", { dataset: { worker: w.name } }, cells(w)));
    rows.replaceChildren(...(shown.length ? shown : [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "no live worker"))]));
  } catch (exc) {
    rows.replaceChildren(h("tr", {}, h("td", { colspan: 8, class: "muted" }, `could not read the workers: ${exc.message}`)));
  }
}

/** Fill `rows` (a <tbody>) now, then every REFRESH_MS while the page is visible. */
export function watchWorkers(rows) {
  let busy = false;
  const tick = async () => {
    if (busy || document.visibilityState !== "visible") return;
    busy = true;
    try {
      await refresh(rows);
    } finally {
      busy = false;
    }
  };
  setInterval(tick, REFRESH_MS);
  document.addEventListener("visibilitychange", tick);
  return tick();
}
