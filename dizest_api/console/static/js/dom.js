// Small DOM helpers: build elements without innerHTML for anything a user or a flow wrote.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** `text` (anything: a stored package may hold a title of any type) cut to `max` characters, escaped for SVG/HTML. */
export const clip = (text, max) => {
  const s = String(text ?? "");
  return escapeHtml(s.length > max ? `${s.slice(0, max - 1)}…` : s);
};

export function toast(message, kind = "info") {
  const box = $("#toast");
  if (!box) return;
  box.textContent = message;
  box.className = `show ${kind}`;
  clearTimeout(box._timer);
  box._timer = setTimeout(() => (box.className = ""), 5000);
}

// The text of element `el` copied to the clipboard, or where there is none (a page served over
// plain http, a browser that refuses) selected for Ctrl+C.
export async function copyText(el) {
  try {
    await navigator.clipboard.writeText(el.textContent);
    toast("Copied");
  } catch (exc) {
    getSelection().selectAllChildren(el);
    toast("Selected: press Ctrl+C (or ⌘C) to copy");
  }
}

// A box whose table scrolls sideways in it (.scroll-x) marked with the edges that have more of
// the table beyond them (classes more-left, more-right: console.css fades them out), again as it
// scrolls and as it or its table changes size (a phone turned, rows loaded). (A scroll-driven
// CSS animation would need no script, but Chromium puts a box with nothing to scroll at its end:
// a fade at the left of every table that fits.)
export function scrollCues(box) {
  const mark = () => {
    const end = box.scrollWidth - box.clientWidth;
    box.classList.toggle("more-left", end > 1 && box.scrollLeft > 1);
    box.classList.toggle("more-right", end > 1 && box.scrollLeft < end - 1);
  };
  box.addEventListener("scroll", mark, { passive: true });
  const sizes = new ResizeObserver(mark);
  for (const el of [box, box.firstElementChild]) if (el) sizes.observe(el);
}

// Files dropped anywhere on the page: `take(dataTransfer)`, read in the drop event itself (its
// items are gone after it); `zone` shows that something is dragged over the page.
export function onDrop(zone, take) {
  for (const target of [zone, document.body]) {
    target.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  document.body.addEventListener("dragleave", () => zone.classList.remove("over"));
  document.body.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer?.files?.length) take(event.dataTransfer);
  });
}

const asDate = (ts) => (typeof ts === "number" ? new Date(ts * 1000) : new Date(ts));

export function when(ts) {
  if (!ts) return "";
  return asDate(ts).toLocaleString();
}

// `when` in a few characters, for a narrow column: the time today, the day this year, else the
// day and its year ("14:05", "Mar 3", "Mar 3, 2024").
export function shortWhen(ts, now = new Date()) {
  if (!ts) return "";
  const date = asDate(ts);
  if (date.toDateString() === now.toDateString()) return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const day = { month: "short", day: "numeric" };
  return date.toLocaleDateString([], date.getFullYear() === now.getFullYear() ? day : { ...day, year: "numeric" });
}

// A time in a table's cell: `when`, and `shortWhen` for the CSS to show instead where the
// column is narrow (a phone: console.css), the whole in its tooltip.
export function whenCell(ts) {
  if (!ts) return "";
  return h("time", { datetime: asDate(ts).toISOString(), title: when(ts) }, h("span", { class: "when-long" }, when(ts)), h("span", { class: "when-short" }, shortWhen(ts)));
}

// An id in a table's cell (its first `max` characters, all by default), only its first 8 where the
// column is narrow (a phone: console.css hides the rest); whatever holds it has the whole id in
// its tooltip.
export const idText = (id, max = id.length) => [id.slice(0, 8), h("span", { class: "id-more" }, id.slice(8, max))];

export function seconds(s) {
  if (s === null || s === undefined) return "";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** A byte count in the largest binary unit that keeps it at least 1 ("12.5 GiB"). */
export function bytes(n) {
  let unit = 0;
  while (n >= 1024 && unit < UNITS.length - 1) [n, unit] = [n / 1024, unit + 1];
  return `${unit === 0 || n >= 100 ? Math.round(n) : n.toFixed(1)} ${UNITS[unit]}`;
}

export function tabs(root = document) {
  for (const button of $$(".tabs button", root)) {
    button.addEventListener("click", () => showTab(button.dataset.tab, root));
  }
}

export function showTab(name, root = document) {
  for (const b of $$(".tabs button", root)) b.classList.toggle("active", b.dataset.tab === name);
  for (const t of $$(".tab", root)) t.classList.toggle("active", t.id === name);
}

// The flow a page shows is kept in its URL (#flow=<id>): a reload or a shared link reopens it.
export function flowInHash() {
  const found = /^#flow=(.+)$/.exec(location.hash);
  try {
    return found ? decodeURIComponent(found[1]) : null;
  } catch (exc) {
    return null; // a malformed escape: no flow
  }
}

export function keepFlowInHash(id) {
  const hash = id ? `#flow=${encodeURIComponent(id)}` : "";
  if (location.hash !== hash) history.replaceState(history.state, "", `${location.pathname}${location.search}${hash}`);
}

// Select the flow the URL names, if the graph has it (else the URL forgets it).
export function selectFlowInHash(has, select) {
  const id = flowInHash();
  if (id !== null && has(id)) select(id);
  else if (id !== null) keepFlowInHash(null);
}
