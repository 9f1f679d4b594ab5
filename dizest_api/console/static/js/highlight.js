// A small Python highlighter: one regex pass, every token escaped, classes for the CSS.
import { escapeHtml } from "./dom.js";

const KEYWORDS = new Set(
  ("False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case")
    .split(" "),
);
const BUILTINS = new Set(
  "print len range dict list set tuple str int float bool open enumerate zip map filter sorted min max sum abs isinstance dizest display".split(" "),
);
const TOKEN =
  /("""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|[rbfuRBFU]{0,2}"(?:\\.|[^"\\\n])*"?|[rbfuRBFU]{0,2}'(?:\\.|[^'\\\n])*'?)|(#[^\n]*)|(\b\d[\d_]*\.?\d*(?:[eE][+-]?\d+)?j?\b)|(@[\w.]+)|([A-Za-z_]\w*)/g;

export function highlightPython(code) {
  let out = "";
  let last = 0;
  let previous = "";
  for (const m of code.matchAll(TOKEN)) {
    out += escapeHtml(code.slice(last, m.index));
    last = m.index + m[0].length;
    const text = escapeHtml(m[0]);
    let kind = "";
    if (m[1]) kind = "str";
    else if (m[2]) kind = "com";
    else if (m[3]) kind = "num";
    else if (m[4]) kind = "dec";
    else if (KEYWORDS.has(m[0])) kind = "kw";
    else if (previous === "def" || previous === "class") kind = "def";
    else if (BUILTINS.has(m[0])) kind = "bi";
    if (m[5]) previous = m[0];
    out += kind ? `<span class="tok-${kind}">${text}</span>` : text;
  }
  return out + escapeHtml(code.slice(last));
}
