// Text cut to a width with an ellipsis, for the graph's SVG <text> (which has no text-overflow).
// A node's title cut to a count of characters ran under its status badge: 22 wide letters, or
// 22 CJK ones, are ~290 px on a 200 px node. Widths come from a canvas's measureText in the font
// the page's CSS gives that class of text (read once a page, from a probe), so drawing reads no
// layout of the graph; each text is measured once (dag1000's titles are alike), and short ASCII
// needs no measure at all.
import { escapeHtml } from "./dom.js";

const ELLIPSIS = "…";
const ASCII = /^[\x20-\x7e]*$/;
const WIDEST = 1.25; // em: no printable ASCII letter is wider, in any sans-serif font we know of
const KEPT = 5000; // texts a cache holds before it starts again (a 100,000-flow list is not drawn here)
const fonts = new Map(); // svg class \0 text class -> {font, size}
const widths = new Map(); // font \0 text -> px
const fits = new Map(); // font \0 px \0 text -> the text that fits
let ctx = null;
let ctxFont = "";

// The font of a node's <text class="`cls`"> in an <svg class="`svg`">, as the page's CSS has it.
function fontOf(cls, svg) {
  let f = fonts.get(`${svg}\u0000${cls}`);
  if (!f) {
    const probe = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    probe.setAttribute("class", svg);
    probe.style.cssText = "position:absolute;width:0;height:0;visibility:hidden";
    probe.innerHTML = `<g class="node"><text class="${cls}">x</text></g>`;
    document.body.append(probe);
    const style = getComputedStyle(probe.querySelector("text"));
    f = { font: `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`, size: parseFloat(style.fontSize) || 16 };
    probe.remove();
    fonts.set(`${svg}\u0000${cls}`, f);
  }
  return f;
}

function measure(text, font) {
  ctx ||= document.createElement("canvas").getContext("2d");
  if (ctxFont !== font) ctx.font = ctxFont = font;
  return ctx.measureText(text).width;
}

function kept(cache, key, make) {
  let value = cache.get(key);
  if (value === undefined) {
    if (cache.size >= KEPT) cache.clear();
    value = make();
    cache.set(key, value);
  }
  return value;
}

// The width in px of `text` drawn as a node's <text class="`cls`"> (in the graph's SVG, or
// another: `svg` is its class).
export function textWidth(text, cls, svg = "dag") {
  const { font } = fontOf(cls, svg);
  return kept(widths, `${font}\u0000${text}`, () => measure(text, font));
}

const segmenter = typeof Intl.Segmenter === "function" ? new Intl.Segmenter() : null;
const graphemes = (text) => (segmenter ? Array.from(segmenter.segment(text), (s) => s.segment) : Array.from(text));

// `text` as a node's <text class="`cls`"> shows it in `px`: whole if it fits, else the most of
// its first letters (never half of a letter made of several code points) that fit with "…".
export function fit(text, px, cls, svg = "dag") {
  const s = String(text ?? "");
  const f = fontOf(cls, svg);
  if (ASCII.test(s) && s.length * f.size * WIDEST <= px) return s;
  return kept(fits, `${f.font}\u0000${px}\u0000${s}`, () => {
    const whole = textWidth(s, cls, svg);
    if (whole <= px) return s;
    // From the share of its width that fits (letters are about alike): two or three measures
    // a title, where halving took six or seven (1,000 distinct long titles: ~20 ms on a busy machine)
    const parts = graphemes(s);
    const cut = (n) => measure(parts.slice(0, n).join("") + ELLIPSIS, f.font) <= px;
    let n = Math.min(parts.length - 1, Math.floor((parts.length * px) / whole));
    while (n > 0 && !cut(n)) n--;
    while (n + 1 < parts.length && cut(n + 1)) n++;
    return parts.slice(0, n).join("").trimEnd() + ELLIPSIS;
  });
}

// A node's tooltip (an SVG <title>, its first child) with its whole title when `shown` is cut.
export const tipMarkup = (full, shown) => (shown === String(full ?? "") ? "" : `<title>${escapeHtml(full)}</title>`);

// A node's <text> `el` shows `full` in `px` (written only when that changed); what it shows.
export function refit(el, full, px) {
  const shown = fit(full, px, el.getAttribute("class"));
  if (el.textContent !== shown) el.textContent = shown;
  return shown;
}

// A node's tooltip as tipMarkup makes it, for a title refit cut or no longer cuts.
export function setTip(node, full, shown) {
  let tip = node.firstElementChild?.tagName === "title" ? node.firstElementChild : null;
  if (shown === String(full ?? "")) return tip?.remove();
  tip ||= node.insertBefore(document.createElementNS("http://www.w3.org/2000/svg", "title"), node.firstChild);
  if (tip.textContent !== String(full)) tip.textContent = full;
}
