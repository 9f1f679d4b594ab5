// Admin: users (add, remove, reset password), my tokens (create with scopes, secret shown
// once with a Copy button, revoke), and the service: readiness from /readyz, queue depth and
// more from /metrics, the Workers table (workers.js). A user who is not an admin gets the page
// as "Tokens": their tokens only (admin.html leaves the service cards out).
import { del, get, post, put } from "./api.js";
import { $, copyText, h, idText, toast, whenCell } from "./dom.js";
import { watchWorkers } from "./workers.js";

const isAdmin = $("#me-role")?.textContent === "admin";

// The samples of metric `name` in Prometheus' text: [labels, value] pairs.
function samples(text, name) {
  const line = new RegExp(`^${name}(?:\\{(.*)\\})? (\\S+)$`);
  return text.split("\n").map((l) => line.exec(l)).filter(Boolean).map(([, labels, value]) => [labels || "", Number(value)]);
}
const label = (labels, key) => (new RegExp(`${key}="([^"]*)"`).exec(labels) || [])[1] || "";
const count = (n) => (Number.isInteger(n) ? n.toLocaleString() : String(n));

// What /metrics says of the service, in words: each queue's waiting flow messages, live workers,
// runs kept by status, live streams of this API process.
function serviceRows(text) {
  const rows = samples(text, "dizest_queue_depth").map(([labels, n]) => [`Queue ${label(labels, "queue")}`, `${count(n)} waiting`]);
  for (const [, n] of samples(text, "dizest_workers_live")) rows.push(["Live workers", count(n)]);
  const runs = samples(text, "dizest_runs").map(([labels, n]) => `${count(n)} ${label(labels, "status")}`);
  if (runs.length) rows.push(["Runs kept", runs.join(" · ")]);
  for (const [, n] of samples(text, "dizest_stream_clients")) rows.push(["Live streams (this process)", count(n)]);
  return rows;
}

async function health() {
  const box = $("#health");
  const answer = await fetch("/readyz");
  const ready = await answer.json();
  // not ready (no live worker: runs are refused) stands out, as an error does
  const said = h("span", { class: `status ${answer.ok ? "st-ready" : "st-error"}` }, ready.status || ready.error?.message || "?");
  const rows = [["Ready", said]];
  rows.push(...serviceRows(await fetch("/metrics", { credentials: "same-origin" }).then((r) => (r.ok ? r.text() : ""))));
  box.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { metric: k } }, v)]));
}

async function users() {
  const list = await get("/users");
  $("#user-rows").replaceChildren(
    ...list.items.map((u) =>
      h(
        "tr",
        { dataset: { user: u.username } },
        h("td", {}, u.username),
        h("td", {}, u.role),
        h(
          "td",
          { class: "actions" },
          h("button", { type: "button", onclick: () => reset(u.username) }, "Reset password"),
          h("button", { type: "button", class: "danger", onclick: () => removeUser(u.username) }, "Remove"),
        ),
      ),
    ),
  );
}

async function reset(username) {
  const password = prompt(`New password for ${username}`);
  if (!password) return;
  try {
    await put(`/users/${encodeURIComponent(username)}/password`, { password });
    toast(`Password of ${username} changed`);
  } catch (exc) {
    toast(exc.message, "error");
  }
}

async function removeUser(username) {
  if (!confirm(`Remove ${username} with their tokens and workflows?`)) return;
  try {
    await del(`/users/${encodeURIComponent(username)}`);
  } catch (exc) {
    toast(exc.message, "error");
  }
  users();
}

async function tokens() {
  const list = await get("/tokens");
  $("#token-rows").replaceChildren(
    ...list.items.map((t) =>
      h(
        "tr",
        { dataset: { token: t.id } },
        h("td", {}, t.name),
        h("td", {}, h("code", { title: t.id }, idText(t.id))),
        h("td", {}, (t.scopes || []).join(", ")),
        h("td", {}, t.expires_at ? whenCell(t.expires_at) : "never"),
        h("td", {}, h("button", { type: "button", class: "danger", onclick: () => revoke(t.id) }, "Revoke")),
      ),
    ),
  );
}

async function revoke(id) {
  try {
    await del(`/tokens/${encodeURIComponent(id)}`);
  } catch (exc) {
    toast(exc.message, "error");
  }
  tokens();
}

$("#add-user")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(event.target);
  try {
    await post("/users", { username: data.get("username"), password: data.get("password"), role: data.get("role") });
    event.target.reset();
  } catch (exc) {
    toast(exc.message, "error");
  }
  users();
});

$("#add-token").addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(event.target);
  const body = { name: data.get("name"), scopes: data.getAll("scope") };
  if (data.get("days")) body.expires_in_s = Number(data.get("days")) * 86400;
  try {
    const made = await post("/tokens", body);
    const box = $("#token-secret");
    const value = h("code", { id: "token-value" }, made.token);
    box.replaceChildren(
      h("p", {}, h("strong", {}, "Shown once: "), "copy this token now, it cannot be shown again."),
      h("div", { class: "secret-value" }, value, h("button", { type: "button", id: "token-copy", class: "copy", onclick: () => copyText(value) }, "Copy")),
    );
    box.hidden = false;
    event.target.reset();
  } catch (exc) {
    toast(exc.message, "error");
  }
  tokens();
});

for (const button of document.querySelectorAll("#add-user button, #add-token button")) button.disabled = false; // (see admin.html)
const service = isAdmin ? [health(), users(), watchWorkers($("#worker-rows"))] : [];
Promise.all([...service, tokens()]).catch((exc) => toast(exc.message, "error"));
