// Rendered values ({mime, data}) as elements. Flow HTML goes only into an iframe whose sandbox
// lacks allow-same-origin and allow-scripts: it can never script or read the console.
import { h } from "./dom.js";

const PLOTLY = "application/vnd.plotly.v1+json";
let plotly = null;

function loadPlotly() {
  plotly ||= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/console/static/vendor/plotly.min.js";
    script.onload = () => resolve(window.Plotly);
    script.onerror = () => reject(new Error("plotly.js did not load"));
    document.head.append(script);
  });
  return plotly;
}

// A log entry or result that costs a document to show (an HTML iframe: ~10 ms apiece, 1,000
// took 7-15 s; a plot): past the newest few, one is folded to a line that shows it on a click.
// Under a flow's HTML (its own styles come after and win): the console's font, and tables (a
// DataFrame's `to_html`, `display(df)`) drawn as a notebook draws them, not in serif with borders
// a cell apart.
const HTML_BASE = "<style>body{margin:6px;font:13px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2330}"
  + "table{border-collapse:collapse;margin:4px 0}th,td{border:1px solid #d9dde5;padding:2px 8px;text-align:right}"
  + "th{background:#f5f6f8}thead th,tbody th{font-weight:600}</style>";

// An output's preview as the API gives it (dizest_core.outvalue.preview): JSON, or {"$type",
// "$repr"} for a value JSON cannot carry (a DataFrame, an array): then its type and its repr, as
// text, not that object's JSON.
export function outputView(value) {
  const keys = value && typeof value === "object" && !Array.isArray(value) ? Object.keys(value) : [];
  if (keys.length === 2 && typeof value.$type === "string" && typeof value.$repr === "string") {
    return h("div", { class: "output-repr" }, h("small", { class: "muted" }, value.$type), h("pre", { class: "result-json" }, value.$repr));
  }
  return h("pre", { class: "result-json" }, JSON.stringify(value, null, 2));
}

// A figure names addresses plotly would fetch as the viewer (layout and trace images' `source`,
// maps' `geojson` and `style`): one of this origin is a GET with the viewer's session, to a
// path the flow's author chose. Only data: addresses are kept (as a README's images).
// (A `style` may also be a name, "italic", "carto-positron": kept.)
const fetched = (key, value) => typeof value === "string" && !/^data:/i.test(value.trim())
  && (key === "source" || key === "geojson" || (key === "style" && !/^[a-z-]*$/i.test(value)));
function withoutFetches(value) {
  if (Array.isArray(value)) return value.map(withoutFetches);
  if (!value || typeof value !== "object") return value;
  const kept = {};
  for (const [key, inner] of Object.entries(value)) if (!fetched(key, inner)) kept[key] = withoutFetches(inner);
  return kept;
}

export const heavy = (entry) => Boolean(entry) && typeof entry === "object" && (entry.mime === "text/html" || entry.mime === PLOTLY);

export function folded(payload) {
  const kind = payload.mime === PLOTLY ? "plot" : "HTML output";
  const line = h("button", { type: "button", class: "line muted folded" }, `[${kind}, ${String(payload.data).length} characters: show]`);
  line.addEventListener("click", () => line.replaceWith(renderPayload(payload)));
  return line;
}

// `entries` as elements, of which only the newest `shown` heavy ones unfolded.
export function renderEntries(entries, shown) {
  const out = new Array(entries.length);
  let left = shown;
  for (let i = entries.length - 1; i >= 0; i--) {
    out[i] = heavy(entries[i]) && left-- <= 0 ? folded(entries[i]) : renderEntry(entries[i]);
  }
  return out;
}

// Fold the heavy elements of `box` (its children) past its newest `shown`.
export function foldOlder(box, shown) {
  const open = [...box.children].filter((el) => el.payload);
  for (const el of open.slice(0, Math.max(0, open.length - shown))) el.replaceWith(folded(el.payload));
}

export function renderEntry(entry) {
  if (entry === null || entry === undefined) return h("div", { class: "line" }, "");
  if (typeof entry !== "object") return h("div", { class: "line" }, String(entry));
  return renderPayload(entry);
}

export function renderPayload({ mime, data }) {
  if (mime === "text/plain" || !mime) return h("div", { class: "line" }, data);
  if (mime.startsWith("image/")) {
    return h("img", { class: "result-image", alt: "image output", src: `data:${mime};base64,${data}` });
  }
  if (mime === "application/json") {
    let text = data;
    try {
      text = JSON.stringify(JSON.parse(data), null, 2);
    } catch {
      // shown as sent
    }
    return h("pre", { class: "result-json" }, text);
  }
  if (mime === "text/html") {
    const frame = h("iframe", { class: "result-html", sandbox: "", srcdoc: HTML_BASE + data, title: "HTML output", referrerpolicy: "no-referrer" });
    frame.payload = { mime, data }; // see foldOlder
    return frame;
  }
  if (mime === PLOTLY) {
    const box = h("div", { class: "result-plotly" });
    box.payload = { mime, data };
    // A figure's text may hold links (<a href target=_top>): one must never take the console's
    // tab elsewhere (a page of the flow's author would pass for the console). They open in a
    // new tab, without a handle back to this one.
    box.addEventListener("click", (event) => {
      const link = event.target.closest?.("a");
      if (!link) return;
      event.preventDefault();
      event.stopPropagation();
      const href = link.getAttribute("href") || link.getAttribute("xlink:href") || "";
      if (/^https?:/i.test(href)) window.open(href, "_blank", "noopener,noreferrer");
    }, true);
    loadPlotly()
      .then((Plotly) => {
        const figure = withoutFetches(JSON.parse(data));
        return Plotly.newPlot(box, figure.data || [], { ...(figure.layout || {}), autosize: true }, { responsive: true, displaylogo: false });
      })
      .catch((exc) => box.append(h("div", { class: "error" }, `plot not shown: ${exc.message}`)));
    return box;
  }
  return h("div", { class: "line muted" }, `[${mime}, ${String(data).length} characters]`);
}
