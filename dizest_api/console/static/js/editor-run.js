// Runs from the editor: the saved version, all flows or one, followed live under the nodes, and
// cancelled from the editor too; the last run shown again on opening. One flow reruns within the
// last run (its upstream outputs reused) when that run ran this very version; else it is a run of
// the flow and what it needs.
import { get, post, problemLines } from "./api.js";
import { $, h, toast } from "./dom.js";
import { RunStream } from "./events.js";
import { flowName, namedIn } from "./flownames.js";
import { statusLabel, statusShade } from "./flowstatus.js";

const FINAL = new Set(["ready", "error", "cancelled"]);
const SLICE = 100; // flows' boxes drawn a frame

// `item` added to `list`, which keeps at least its newest `n` (a flow may emit 100,000)
function keep(list, item, n) {
  list.push(item);
  if (list.length > 2 * n) list.splice(0, list.length - n);
}

export class EditorRuns {
  // wfId: the workflow; canvas: the EditorCanvas; version(): the saved version on the canvas
  // (an older one opened with ?version=N runs as shown, not the latest); save(): saves
  // the changes first (false: it could not); dirty(): unsaved changes.
  // pkg(): the package as edited; appName: an app's id -> its name (problems).
  constructor({ wfId, canvas, version, save, dirty, pkg, appName }) {
    Object.assign(this, { wfId, canvas, version, save, dirty, pkg, appName });
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
      this.refused(exc, flows || []);
    }
  }

  async flow(id) {
    if (this.dirty() && !(await this.save())) return;
    const last = this.last;
    if (!last || last.version !== this.version() || !FINAL.has(last.status)) return this.all([id]);
    try {
      this.follow(await post(`/runs/${encodeURIComponent(last.run_id)}/flows/${encodeURIComponent(id)}/rerun`), [id]);
    } catch (exc) {
      this.refused(exc, [id]);
    }
  }

  // What the server refused, said as a toast that names flows and apps as the page does: a
  // problem's flow and app, and the flows asked for (`asked`) where its message repeats their ids.
  refused(exc, asked = []) {
    const name = (id) => flowName(this.canvas.graph, id);
    toast(problemLines(exc, name, this.appName).map((line) => namedIn(line, asked, name)).join("\n"), "error");
  }

  // On opening: the caller's newest run of this workflow under the nodes as if it had just
  // happened, as DIZEST keeps each node's output until its next run: followed (Stop) if it still
  // runs this version, else replayed from its events (capped, as a live run's: no report is read),
  // a flow whose app or values changed since shown as the run before's. A run of another
  // version still under way is not this editor's: the newest ended one is shown instead.
  async resume(me) {
    const query = `/runs?workflow_id=${encodeURIComponent(this.wfId)}&owner=${encodeURIComponent(me)}&limit=20`;
    let listed;
    try {
      listed = await get(query);
    } catch (exc) {
      return; // nothing to pick up: the editor works as before
    }
    const items = (listed.items || []).sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
    const run = items.find((r) => FINAL.has(r.status) || r.version === this.version());
    if (!run || this.last) return;
    const changed = run.version === this.version() ? new Set() : await this.changedSince(run.version);
    if (!this.last) this.follow(run, null, { last: true, changed, version: run.version });
  }

  // The flows of the editor's package whose output a run of `version` did not make as they are
  // now: new ones, and those whose app (its code, inputs, outputs) or values differ.
  async changedSince(version) {
    const now = this.pkg();
    let then;
    try {
      then = (await get(`/workflows/${encodeURIComponent(this.wfId)}?version=${encodeURIComponent(version)}`)).package;
    } catch (exc) {
      return new Set(Object.keys(now.flow)); // that version is gone: nothing is known to be its
    }
    const made = (pkg, flow) => {
      const app = (pkg.apps || {})[flow.app_id] || {};
      return JSON.stringify([flow.app_id, flow.data || {}, app.code || "", app.inputs || [], app.outputs || []]);
    };
    const old = then.flow || {};
    return new Set(Object.keys(now.flow).filter((id) => !old[id] || made(then, old[id]) !== made(now, now.flow[id])));
  }

  async cancel() {
    if (!this.last || FINAL.has(this.last.status)) return;
    try {
      await post(`/runs/${encodeURIComponent(this.last.run_id)}/cancel`);
    } catch (exc) {
      this.refused(exc);
    }
  }

  showStatus(status) {
    this.last.status = status;
    $("#run-status").textContent = status;
    $("#run-stop").hidden = FINAL.has(status);
  }

  // `last`: the run is the one before this opening of the editor (`changed`: its flows whose
  // output is stale; `version`: the one it ran), not one started here.
  follow(run, only = null, { last = false, changed = new Set(), version = this.version() } = {}) {
    this.stream?.close?.();
    this.last = { run_id: run.run_id, version, status: run.status || "pending" };
    const states = new Map();
    // As DIZEST: a flow's output of the run before stays under it (marked stale) until the flow
    // starts again (its log.clear); one that does not run this time keeps it.
    const state = (id) => states.get(id) || states.set(id, { status: "pending", reason: null, log: [], results: [], stale: changed.has(id) }).get(id);
    for (const [id, before] of this.canvas.runs) {
      if (only && !only.includes(id)) continue;
      states.set(id, { ...before, stale: true, carried: true });
      this.canvas.setRun(id, states.get(id));
    }
    // Every node of this run is pending from the start: a colour (or badge) left by the run
    // before is not this run's, even before the flow's first event. (An ended run's replay
    // colours only the flows it ran.)
    const ended = last && FINAL.has(this.last.status);
    for (const id of this.canvas.marks.keys()) if (!ended && (!only || only.includes(id))) this.canvas.setStatus(id, "pending", "pending");
    const fresh = (f) => f.carried && Object.assign(f, { log: [], results: [], stale: false, carried: false });
    const stop = h("button", { type: "button", id: "run-stop", class: "danger", onclick: () => this.cancel() }, "Stop");
    const link = h("a", { href: `/runs/${encodeURIComponent(run.run_id)}`, id: "run-link", title: last ? "the run before this opening of the editor" : null }, run.run_id.slice(0, 8));
    $("#run-state").replaceChildren(last ? "last run " : "run ", link, " ", h("span", { id: "run-status" }, ""), " ", stop);
    this.showStatus(this.last.status);
    // The flows changed since drawn, drawn at most SLICE a frame: the first batch of a replay
    // holds every flow of the run (1,000 boxes of dag1000's last run, one task of seconds).
    const dirty = new Set();
    const token = (this.token = {});
    let painting = 0;
    const paint = () => {
      painting = 0;
      if (this.token !== token) return; // another run followed since
      let n = 0;
      for (const id of dirty) {
        if (n++ === SLICE) break;
        dirty.delete(id);
        const f = states.get(id);
        this.canvas.setStatus(id, statusShade(f.status, f.reason), statusLabel(f.status, f.reason));
        this.canvas.setRun(id, f);
      }
      if (dirty.size) painting = requestAnimationFrame(paint);
    };
    this.stream = new RunStream(run.run_id, (batch) => {
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
        dirty.add(e.flow_id);
      }
      if (!painting) paint();
    }, () => {});
  }
}
