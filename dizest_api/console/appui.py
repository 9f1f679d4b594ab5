"""App UI mode: the document of an app's own UI (`html`, `js`, `css`) for one flow of a run.

    GET /runs/<run>/flows/<flow>/ui      the UI as a page, for the iframes of the run view and
                                         of the editor (UI mode under the flow's node)

Served only into a frame of the console: the browser's own `Sec-Fetch-Dest: iframe` and
`Sec-Fetch-Site: same-origin` (`framed`), headers no script of any page can set. Anything else
(a direct visit from a link, a frame of another site, a frame the UI itself navigates) gets the
console's 403 page before the run is looked up: opened top-level at the console's own address,
the author's page could draw a fake login form or go anywhere, and its sandbox stops neither.
Browsers send fetch metadata to https and localhost origins only; on plain http the request
must come from a page that frames app UIs itself, the run's page or the editor of the run's
workflow: its Referer, and the frame key that page was given.

DIZEST serves the same three fields at `/ui/<kernel>/<flow>/render` in the origin of its web
app; here the UI is flow code (a user wrote it), so it never runs as this origin. The document
is always sandboxed, by its own `Content-Security-Policy: sandbox allow-scripts` header (an
opaque origin whatever embeds it, not only because the console's iframe adds
`sandbox="allow-scripts"` too): no cookies, no storage, no access to the console's DOM.
`connect-src 'none'`: it cannot fetch anything; the only way out is the bridge below, whose
other end (static/js/appui.js) forwards `api` calls of this flow only. Scripts and styles may
be inline (the UI's own) or come from the https URLs the app lists in `cdn` (as DIZEST loads
them) on the hosts the operator allows, which alone its policy names (`cdn_hosts`: any other
source would carry what the UI reads to its author); images and fonts may be data or blob
URLs, or come from those hosts. A `cdn` entry left out is named in a note above the UI.

The bridge, `window.dizest` in the UI (documented in docs/compatibility.md):
    dizest.run, dizest.flow          ids
    dizest.results                   the flow's latest {status, outputs, results} (or null)
    dizest.onresults(fn)             fn(results) now if known, and on every change
    dizest.api(name, body) -> Promise   calls the app's `api` function `name`; resolves with
                                     its JSON (or text) answer, rejects with an Error whose
                                     message is the answer's text (a traceback) and `.status`
    (and, unasked, the UI's own errors: an uncaught exception, a rejected promise, a blocked
    source, each as {message, part, line}, for the note above its frame: static/js/appui.js)
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Blueprint, Response, current_app, g, request

from dizest_api.console.cdn_hosts import Sources, sources
from dizest_api.endpoint import endpoint
from dizest_api.errors import Forbidden, NotFound
from dizest_api.routes.runs import open_run
from dizest_api.schemas import Body
from dizest_api.services import services

bp = Blueprint("appui", __name__)

UI_FIELDS = ("html", "js", "css")
FRAMED = {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "same-origin"}
EDITOR_PAGE = re.compile(r"/workflows/([^/]+)/edit")
NOTE_STYLE = "font:13px sans-serif;background:#fff4e5;border:1px solid #e0a040;padding:4px 8px"

BRIDGE = """(function () {
  "use strict";
  var pending = new Map(), listeners = [], next = 1, reportListener = function () {};
  var me = JSON.parse(document.currentScript.dataset.ids);
  var dizest = { run: me.run, flow: me.flow, results: null };
  dizest.onresults = function (fn) {
    listeners.push(fn);
    if (dizest.results) fn(dizest.results);
  };
  dizest.api = function (name, body) {
    var id = next++;
    return new Promise(function (resolve, reject) {
      pending.set(id, { resolve: resolve, reject: reject });
      parent.postMessage({ dizest: "api", id: id, name: String(name), body: body === undefined ? null : body }, "*");
    });
  };
  dizest.call = dizest.api;
  window.addEventListener("message", function (event) {
    if (event.source !== parent || !event.data || typeof event.data !== "object") return;
    var msg = event.data;
    if (msg.dizest === "results") {
      dizest.results = msg.data;
      listeners.forEach(function (fn) { try { fn(msg.data); } catch (e) { reportListener(e); } });
    } else if (msg.dizest === "answer" && pending.has(msg.id)) {
      var waiter = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.ok) waiter.resolve(msg.data);
      else {
        var error = new Error(typeof msg.data === "string" ? msg.data : JSON.stringify(msg.data));
        error.status = msg.status;
        error.data = msg.data;
        waiter.reject(error);
      }
    }
  });
  window.dizest = dizest;
  // The UI's own errors go to the console, which shows them beside this frame as text: a syntax
  // error, an exception, a promise rejected with nobody to catch it, a script or stylesheet that
  // did not load, a source this page's policy blocked. Ten a second at most (a UI that throws in
  // a loop must not flood the console), each cut to 500 characters; a line is the UI's own
  // (its js or html field's line, not this page's).
  var sent = 0, since = 0;
  function lineOf(line) {
    if (!(line > 0)) return {};
    if (line >= me.lines.js) return { part: "js", line: line - me.lines.js + 1 };
    if (line >= me.lines.html) return { part: "html", line: line - me.lines.html + 1 };
    return {};
  }
  function stackLine(error) {
    var stack = String((error && error.stack) || ""), at = stack.indexOf(location.href + ":");
    return at < 0 ? 0 : parseInt(stack.slice(at + location.href.length + 1), 10) || 0;
  }
  function report(message, line) {
    var now = Date.now();
    if (now - since >= 1000) { since = now; sent = 0; }
    if (++sent > 10) return;
    var where = lineOf(line);
    parent.postMessage({ dizest: "error", message: String(message).slice(0, 500), part: where.part, line: where.line }, "*");
  }
  function describe(error) {
    try { return error instanceof Error ? error.name + ": " + error.message : String(error); } catch (e) { return "(an error that cannot be shown)"; }
  }
  reportListener = function (error) { report("Uncaught " + describe(error) + " (in an onresults function)", stackLine(error)); };
  window.addEventListener("error", function (event) {
    var el = event.target;
    if (event instanceof ErrorEvent) report(event.message || describe(event.error), event.filename === location.href ? event.lineno : stackLine(event.error));
    else if (el && (el.tagName === "SCRIPT" || el.tagName === "LINK")) report("could not load " + (el.src || el.href), 0);
  }, true);
  window.addEventListener("unhandledrejection", function (event) {
    report("Uncaught (in promise) " + describe(event.reason), stackLine(event.reason));
  });
  window.addEventListener("securitypolicyviolation", function (event) {
    report("blocked by the UI's policy (" + event.effectiveDirective + "): " + (event.blockedURI || "inline"), event.sourceFile === location.href ? event.lineNumber : 0);
  });
  parent.postMessage({ dizest: "ready" }, "*");
})();"""


def framed() -> bool:
    """Whether the browser says this request loads a frame of a page of this origin. A browser
    sends no fetch metadata to a plain-http origin other than localhost: there the request must
    carry the frame key its page gave this session (`frame_key`, as `?frame=`) and that page's
    address as its Referer; the page is the run's own or the editor of a workflow (whose run
    `app_ui` then checks it is: `editor_of`). Not the Referer alone: a link planted in the run's
    page (a plotly title, opened in a new tab) sent it too (console pages now send none: see
    `console._headers`). Not the key alone: it is in the frame's address, which the app's own
    script reads (and can send its author, through a `cdn` URL): that address, opened as a
    page, showed the app's page at the console's address."""
    if not _fetch_metadata():
        principal = g.get("principal")
        page = _framing_page((request.view_args or {}).get("run_id", ""))
        sent = request.args.get("frame", "")
        return (
            principal is not None
            and page is not None
            and hmac.compare_digest(sent, frame_key(principal.credential, page))
        )
    return all(request.headers.get(k, "").lower() == want for k, want in FRAMED.items())


def _fetch_metadata() -> bool:
    """Whether the browser said what this request loads (https, localhost): else only the
    Referer and the frame key say which page framed it."""
    return any(k in request.headers for k in FRAMED)


def _framing_page(run_id: str) -> str | None:
    """The path of the page the Referer names, if it is a page of this server that frames app
    UIs: the page of run `run_id`, or an editor (`/workflows/<id>/edit`). Only their app frames
    send one (their `referrerpolicy`); every console page's own policy sends none."""
    page = _referer_path()
    return page if page == f"/runs/{run_id}" or EDITOR_PAGE.fullmatch(page or "") else None


def _referer_path() -> str | None:
    """The (decoded) path of the Referer when it is an address of this server, as the page's
    own `request.path` was when it was given its key."""
    referer = urlsplit(request.headers.get("Referer", ""))
    return unquote(referer.path) if referer.netloc == request.host else None


def editor_of() -> str | None:
    """The workflow whose editor framed this request, when only its Referer said who framed it
    (plain http): the run shown must be of that workflow."""
    if _fetch_metadata():
        return None
    found = EDITOR_PAGE.fullmatch(_referer_path() or "")
    return found[1] if found else None


def frame_key(credential: str, page: str) -> str:
    """What one session's page at path `page` (a run's, an editor's) gives its app-UI frames
    (see `framed`)."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, f"app-ui:{credential}:{page}".encode(), hashlib.sha256).hexdigest()


def has_ui(app_raw: Any) -> bool:
    """Whether an app (its raw JSON) has a UI: a non-blank `html` or `js`."""
    return isinstance(app_raw, dict) and any(
        isinstance(app_raw.get(k), str) and app_raw[k].strip() for k in ("html", "js")
    )


def _csp(cdn: Sources) -> str:
    """The UI's policy: its own inline code, and the origins of its `cdn` URLs that were kept
    (for images and fonts, of both kinds: a stylesheet's fonts come from its own host)."""
    both = cdn.origins("js", "css")
    return "; ".join(
        [
            "sandbox allow-scripts",
            "default-src 'none'",
            " ".join(["script-src 'unsafe-inline'", *cdn.origins("js")]),
            " ".join(["style-src 'unsafe-inline'", *cdn.origins("css")]),
            " ".join(["img-src data: blob:", *both]),
            " ".join(["font-src data:", *both]),
            "worker-src 'none'",
            "connect-src 'none'",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'self'",
        ]
    )


def _text(app_raw: dict[str, Any], key: str) -> str:
    value = app_raw.get(key)
    return value if isinstance(value, str) else ""


def _closing(text: str, tag: str) -> str:
    """The UI's own text inside our <style>/<script>: a closing tag in it must not end ours."""
    return re.sub(rf"</(?={tag})", r"<\\/", text, flags=re.IGNORECASE)


def _note(cdn: Sources) -> str:
    """What the UI lost, above it: each `cdn` entry left out, and why."""
    if not cdn.refused:
        return ""
    items = "".join(
        f"<li><code>{html.escape(r.url)}</code>: {html.escape(r.reason)}</li>" for r in cdn.refused
    )
    return (
        f'<div id="dizest-cdn-note" role="note" style="{NOTE_STYLE}">This app\'s UI lists '
        f"scripts or styles this server does not load, left out:<ul>{items}</ul></div>"
    )


def document(run_id: str, flow_id: str, app_raw: dict[str, Any], cdn: Sources) -> str:
    """The UI's page. The bridge is told on which of its lines the UI's html and js start, so
    that an error's line is the one its author sees in that field."""
    styles = "".join(f'<link rel="stylesheet" href="{html.escape(u)}">' for u in cdn.css)
    scripts = "".join(f'<script src="{html.escape(u)}"></script>' for u in cdn.js)

    def head(lines: dict[str, int]) -> str:
        ids = json.dumps({"run": run_id, "flow": flow_id, "lines": lines})
        return (
            '<!doctype html><html><head><meta charset="utf-8">'
            f'<script data-ids="{html.escape(ids)}">{BRIDGE}</script>{styles}'
            f"<style>{_closing(_text(app_raw, 'css'), 'style')}</style>{scripts}</head>"
            f"<body>{_note(cdn)}"
        )

    ui_html = _text(app_raw, "html")
    first = head({}).count("\n") + 1  # (the numbers written in it add no line)
    lines = {"html": first, "js": first + ui_html.count("\n")}
    return (
        f"{head(lines)}{ui_html}"
        f"<script>{_closing(_text(app_raw, 'js'), 'script')}</script></body></html>"
    )


@endpoint(bp, "GET", "/runs/<run_id>/flows/<flow_id>/ui",
          "The flow's app UI (html, js, css) as a sandboxed page for the run view and "
          "the editor",
          responses={200: Body("text/html", {"type": "string"}, "the app's page"),
                     401: Body("text/html", {"type": "string"}, "no credentials, or they "
                               "ended: a page saying so (every error here is a page, for the "
                               "run page's frame)"),
                     403: Body("text/html", {"type": "string"},
                               description="not asked for as a frame of the console "
                               "(`Sec-Fetch-Dest: iframe`, `Sec-Fetch-Site: same-origin`): the "
                               "console's page; a frame of the editor of another workflow than the run's "
                               "(plain http); or a token without the read scope"),
                     404: Body("text/html", {"type": "string"}, "no such run or flow, or an "
                               "app without a UI: a page saying so, for the run page's frame")})  # fmt: skip
def app_ui(run_id: str, flow_id: str) -> Response:
    record = open_run(run_id)
    editor = editor_of()
    if editor is not None and record.get("workflow_id") != editor:
        raise Forbidden(f"run {run_id} is not a run of the workflow of the editor showing it")
    package = services().client.snapshot(run_id) or {}
    flow = (package.get("flow") or {}).get(flow_id)
    if not isinstance(flow, dict):
        raise NotFound(f"run {run_id} has no flow {flow_id!r}")
    app_raw = (package.get("apps") or {}).get(flow.get("app_id"))
    if not isinstance(app_raw, dict) or not has_ui(app_raw):
        raise NotFound(f"the app of flow {flow_id!r} has no UI")
    cdn = sources(app_raw.get("cdn"), services().settings.ui_cdn_hosts)
    response = Response(document(run_id, flow_id, app_raw, cdn), mimetype="text/html")
    response.headers["Content-Security-Policy"] = _csp(cdn)
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
