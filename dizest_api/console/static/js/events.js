// A run's events on the public SSE route, in order and exactly once: EventSource resumes with
// Last-Event-ID by itself after a dropped connection; when it gives up (an HTTP error), a new
// one resumes with ?after=. Events are handed over in batches, once per animation frame, so a
// burst of hundreds per second costs one DOM update per frame. `after`: follow the events after
// this id only (a page that read the run's state as of that event: bigrun.js).

const TYPES = ["workflow.status", "flow.status", "flow.index", "log.append", "log.clear", "result"];

const key = (id) => id.split("-").map(Number);
export function newer(a, b) {
  if (!b) return true;
  const [am, as] = key(a);
  const [bm, bs] = key(b);
  return am > bm || (am === bm && as > bs);
}

export class RunStream {
  constructor(runId, onBatch, onState, after = null) {
    this.runId = runId;
    this.onBatch = onBatch;
    this.onState = onState;
    this.last = after;
    this.queue = [];
    this.scheduled = false;
    this.done = false;
    this.open();
  }

  open() {
    const path = `/api/v1/runs/${encodeURIComponent(this.runId)}/events`;
    this.source = new EventSource(this.last ? `${path}?after=${this.last}` : path);
    this.source.onopen = () => this.onState("live");
    this.source.onerror = () => {
      if (this.done) return;
      if (this.source.readyState === EventSource.CLOSED) {
        this.onState("reconnecting");
        setTimeout(() => !this.done && this.open(), 1000);
      } else {
        this.onState("reconnecting");
      }
    };
    const take = (message) => this.take(message);
    for (const type of TYPES) this.source.addEventListener(type, take);
  }

  take(message) {
    if (!newer(message.lastEventId, this.last)) return; // already seen (a replay overlap)
    this.last = message.lastEventId;
    const event = JSON.parse(message.data);
    this.queue.push(event);
    if (event.type === "workflow.status" && ["ready", "error", "cancelled", "timeout"].includes(event.data.status)) {
      this.done = true;
      this.source.close(); // the stream ends here; EventSource would reconnect otherwise
      this.onState("ended");
    }
    if (!this.scheduled) {
      this.scheduled = true;
      const flush = () => this.flush();
      if (document.hidden) setTimeout(flush, 100); // no frames in a hidden tab
      else requestAnimationFrame(flush);
    }
  }

  flush() {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length) this.onBatch(batch);
  }

  close() {
    this.done = true;
    this.source.close();
  }
}
