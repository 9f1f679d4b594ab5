// Runs from the editor: the saved version, all flows or one, followed live under the nodes, and
// cancelled from the editor too. One flow reruns within the last run (its upstream outputs
// reused) when that run ran this very version; else it is a run of the flow and what it needs.
import { get, post, problemLines } from "./api.js";
import { $, h, toast } from "./dom.js";
import { RunStream } from "./events.js";
import { statusLabel, statusShade } from "./graph.js";

const FINAL = new Set(["ready", "error", "cancelled"]);

// `item` added to `list`, which keeps at least its newest `n` (a flow may emit 100,000)
function keep(list, item, n) {
  list.push(item);
  if (list.length > 2 * n) list.splice(0, list.length - n);
}

export class EditorRuns {
  // wfId: the workflow; canvas: the EditorCanvas; version(): the saved version; save(): saves
  // the changes first (false: it could not); dirty(): unsaved changes.
  constructor({ wfId, canvas, version, save, dirty }) {
    Object.assign(this, { wfId, canvas, version, save, dirty });
    this.last = null; // {run_id, version, status}
    this.stream = null;
  }

  async all(flows = null) {
    if (this.dirty() && !(await this.save())) return;
    const body = { workflow_id: this.wfId, version: this.version() };
    if (flows) body.flows = flows;
    try {
      this.follow(await post("/runs", body));
    } catch (exc) {
      toast(problemLines(exc).join("\n"), "error");
    }
  }

  async flow(id) {
    if (this.dirty() && !(await this.save())) return;
    const last = this.last;
    if (!last || last.version !== this.version() || !FINAL.has(last.status)) return this.all([id]);
    try {
      this.follow(await post(`/runs/${encodeURIComponent(last.run_id)}/flows/${encodeURIComponent(id)}/rerun`), [id]);
    } catch (exc) {
      toast(problemLines(exc).join("\n"), "error");
    }
  }

  // A reload in the middle of a run: the caller's newest unfinished run of the saved version is
  // followed again (statuses and logs under the nodes replayed, Stop), as DIZEST's kernel keeps
  // a running workflow's state for whoever opens it next.
  async resume(me) {
    const query = `/runs?workflow_id=${encodeURIComponent(this.wfId)}&owner=${encodeURIComponent(me)}&limit=20`;
    let listed;
    try {
      listed = await get(query);
    } catch (exc) {
      return; // nothing to pick up: the editor works as before
    }
    const run = (listed.items || []).find((r) => !FINAL.has(r.status) && r.version === this.version());
    if (run && !this.last) this.follow(run);
  }

  async cancel() {
    if (!this.last || FINAL.has(this.last.status)) return;
    try {
      await post(`/runs/${encodeURIComponent(this.last.run_id)}/cancel`);
    } catch (exc) {
      toast(problemLines(exc).join("\n"), "error");
    }
  }

  showStatus(status) {
    this.last.status = status;
    $("#run-status").textContent = status;
    $("#run-stop").hidden = FINAL.has(status);
  }

  follow(run, only = null) {
    this.stream?.close?.();
    this.last = { run_id: run.run_id, version: this.version(), status: run.status || "pending" };
    const states = new Map();
    // As DIZEST: a flow's output of the run before stays under it (marked stale) until the flow
    // starts again (its log.clear); one that does not run this time keeps it.
    const state = (id) => states.get(id) || states.set(id, { status: "pending", reason: null, log: [], results: [] }).get(id);
    for (const [id, before] of this.canvas.runs) {
      if (only && !only.includes(id)) continue;
      states.set(id, { ...before, stale: true });
      this.canvas.setRun(id, states.get(id));
    }
    // Every node of this run is pending from the start: a colour (or badge) left by the run
    // before is not this run's, even before the flow's first event.
    for (const id of this.canvas.marks.keys()) if (!only || only.includes(id)) this.canvas.setStatus(id, "pending", "pending");
    const fresh = (f) => f.stale && Object.assign(f, { log: [], results: [], stale: false });
    const stop = h("button", { type: "button", id: "run-stop", class: "danger", onclick: () => this.cancel() }, "Stop");
    $("#run-state").replaceChildren("run ", h("a", { href: `/runs/${encodeURIComponent(run.run_id)}`, id: "run-link" }, run.run_id.slice(0, 8)), " ", h("span", { id: "run-status" }, ""), " ", stop);
    this.showStatus(this.last.status);
    this.stream = new RunStream(run.run_id, (batch) => {
      const touched = new Set();
      for (const e of batch) {
        if (e.type === "workflow.status") {
          this.showStatus(e.data.status);
          continue;
        }
        if (!e.flow_id || (only && !only.includes(e.flow_id))) continue;
        const f = state(e.flow_id);
        if (e.type === "flow.status") Object.assign(f, { status: e.data.status, reason: e.data.reason ?? null });
        else if (e.type === "log.append") (fresh(f), keep(f.log, e.data.entry, 50)); // what the node shows
        else if (e.type === "log.clear") fresh(f) || (f.log = []); // dizest.clear(): the log only
        else if (e.type === "result") (fresh(f), keep(f.results, e.data, 20));
        else continue;
        touched.add(e.flow_id);
      }
      for (const id of touched) {
        const f = states.get(id);
        this.canvas.setStatus(id, statusShade(f.status, f.reason), statusLabel(f.status, f.reason));
        this.canvas.setRun(id, f);
      }
    }, () => {});
  }
}
