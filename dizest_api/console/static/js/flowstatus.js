// What a person reads of a flow's status, the same in every view (a node, a result box, a
// panel, a list's cell, a timeline bar): the word it is shown as, its colour's class, and its
// reason with the flows it names by their names.

// The engine's reasons that name a flow by its id (dizest_core.status.Reason): the text before
// it and after it. Each is why a flow was skipped: a flow upstream of it failed, or it needs the
// output of an inactive one, which has none (the engine ends both idle).
const NAMING = [["upstream failed: ", ""], ["needs output of inactive flow ", ", which has none"]];

// A flow not run because of a flow upstream of it (its reason names that flow).
const skipped = (reason) => NAMING.some(([head]) => reason?.startsWith(head));

const CANCELLED = "cancelled"; // the reason of a cancelled run's flows (dizest_core.status.Reason)

// The status a flow is drawn as (its class st-<shade>: a node, a list's cell, a badge, a timeline
// bar): a cancelled flow in the cancelled colour, not an error's red, whether the cancel killed it
// while it ran (the engine ends it in error) or stopped it before it started (idle).
export const statusShade = (status, reason) => (reason === CANCELLED ? CANCELLED : status);

// The one word a flow's status is shown as, on its node, in its panel and in a big run's counts
// alike: a flow not run for a flow upstream of it (failed, or inactive) is "skipped", a cancelled
// one "cancelled".
export function statusLabel(status, reason) {
  if (skipped(reason)) return "skipped";
  if (reason === CANCELLED) return CANCELLED;
  return status;
}

// A flow's reason as what happened to it: a cancelled flow says whether it was stopped while it
// ran or before it started; one that names a flow (the failed one upstream, an inactive one whose
// output it needs) names it as a person reads it (`name`: id -> its name, flowName; the reason
// itself keeps the id, for programs); any other reason is the engine's own.
export function reasonText(status, reason, name = (id) => id) {
  for (const [head, tail] of NAMING) {
    if (reason?.startsWith(head) && reason.endsWith(tail) && reason.length > head.length + tail.length) {
      return head + name(reason.slice(head.length, reason.length - tail.length)) + tail;
    }
  }
  if (reason !== CANCELLED) return reason || "";
  return status === "error" ? "cancelled while it ran (stopped)" : "cancelled before it started";
}

// A flow's status with what happened to it, in one line (a result box's head, a panel).
export function statusText(status, reason, name = (id) => id) {
  const word = statusLabel(status, reason);
  const note = reasonText(status, reason, name);
  if (!note || status === "ready" || word.endsWith(note)) return word;
  return note.startsWith(word) ? note : `${word}: ${note}`;
}
