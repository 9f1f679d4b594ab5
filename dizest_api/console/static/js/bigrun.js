// A run with more flows than the graph draws (flowlist.js TOO_MANY). Its whole report (every
// flow's log, results and outputs) took the API seconds to build and the page 10-12 s to read
// at 100,000 flows, and replaying its whole event stream held the tab for a minute. Here the
// page reads the flows' states alone (GET /runs/<id>?flows=states: statuses, counts by status,
// `last_event_id`), follows only the events after that id (none for an ended run), and reads a
// flow's log, results and outputs (GET /runs/<id>/flows/<flow>) when the flow is selected.
//
// A flow's log and result events are applied only once its part was read: before that they
// are not needed (the part holds them), while it is read they are held, and then those after
// the part's own `last_event_id` are applied (the stream may be ahead of it, or behind).
import { get } from "./api.js";
import { $ } from "./dom.js";
import { newer } from "./events.js";
import { statusLabel } from "./flowstatus.js";

const LOGGED = new Set(["log.append", "log.clear", "result"]);
const ORDER = ["running", "pending", "error", "ready", "cancelled", "skipped", "idle"]; // the counts' order

export class BigRun {
  constructor(runId) {
    this.path = `/runs/${encodeURIComponent(runId)}`;
    this.counts = new Map(); // status word (statusLabel) -> how many flows have it
    $("#run-counts").hidden = false; // its place now, before the graph is drawn (console.css)
  }

  states() {
    return get(`${this.path}?flows=states`);
  }

  // The counts of a states report, shown: of the words its flows' statuses are shown as (a
  // cancelled flow is counted as cancelled, not by the engine's error or idle; a skipped one as
  // skipped, not idle).
  counted(report) {
    this.counts = new Map();
    for (const f of Object.values(report.flows)) {
      const word = statusLabel(f.status, f.reason);
      this.counts.set(word, (this.counts.get(word) || 0) + 1);
    }
    this.showCounts();
  }

  // A flow's status word (statusLabel) went from `was` to `now` (an event).
  moved(was, now) {
    if (was === now) return;
    this.counts.set(was, (this.counts.get(was) || 0) - 1);
    this.counts.set(now, (this.counts.get(now) || 0) + 1);
    this.changed = true;
  }

  showCounts() {
    this.changed = false;
    const rank = (s) => (ORDER.includes(s) ? ORDER.indexOf(s) : ORDER.length);
    const shown = [...this.counts].filter(([, n]) => n > 0).sort(([a], [b]) => rank(a) - rank(b));
    const el = $("#run-counts");
    el.textContent = shown.map(([s, n]) => `${n.toLocaleString("en")} ${s}`).join(" · ");
    el.hidden = false;
  }

  // Whether event `e` of flow state `f` is to be applied now (see the top of this file).
  take(f, e) {
    if (!LOGGED.has(e.type)) return true;
    if (f.part === undefined) return false;
    if (f.part === "loading") {
      f.held.push(e);
      return false;
    }
    return newer(e.id, f.part.after);
  }

  // Read flow `id`'s part into its state `f`, then `apply` the events held meanwhile.
  async load(id, f, apply) {
    f.part = "loading";
    f.held = [];
    let part;
    try {
      part = await get(`${this.path}/flows/${encodeURIComponent(id)}`);
    } catch (exc) {
      f.part = undefined;
      throw exc;
    }
    Object.assign(f, { log: part.log, seen: part.log.length, results: part.results, got: part.results.length });
    const outputs = part.status === "ready" ? part.outputs : null; // (a ready flow's never change)
    Object.assign(f, { outputs, duration: part.duration_s, part: { after: part.last_event_id } });
    const held = f.held;
    f.held = null;
    if (held.length) apply(held);
  }
}
