"""The web console: server-rendered pages at `/` with small ES modules, a client of /api/v1.

Every page is a thin HTML shell (user, role, CSRF token, the ids in its URL); the modules in
`static/js` fetch everything else from the public API and follow runs on the same SSE route as
programs do. No route here answers data: what a page shows, a program can get too.

Pages authenticate themselves (their Spec says `public` so `auth.authenticate` lets them through):
without a session they redirect to /login instead of answering a JSON 401. A workflow or run page
checks access with the API's own `open_workflow` / `open_run`, so another user's id renders the
same 404 page as an id that never existed. Every answer of the app (API included) is
`nosniff`; every HTML answer carries a strict CSP (scripts only from this origin, no inline
script or handler, no framing); flow HTML is shown only in sandboxed iframes without
allow-same-origin (see static/js/render.js).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Flask,
    Response,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
)
from werkzeug.exceptions import NotFound as HttpNotFound

from dizest_api import auth
from dizest_api.console import appui
from dizest_api.endpoint import Spec
from dizest_api.errors import CHALLENGE, ApiError, handle_http

HERE = Path(__file__).parent
STATIC = HERE / "static"
bp = Blueprint("console", __name__, template_folder="templates")

# 'unsafe-inline' styles only: plotly.js sets style attributes and <style> elements itself.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "frame-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# a console page the app UI's frame of a run page may show (why the app's page is not there)
FRAMED_BY_CONSOLE = {
    "Content-Security-Policy": CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'"),
    "X-Frame-Options": "SAMEORIGIN",
}
API_PREFIXES = ("/api/", "/dizest/api/")


def page(summary: str) -> Any:
    """Mark a view as a console page: public to `auth` (it checks the session itself)."""

    def mark(view: Any) -> Any:
        view.dizest_spec = Spec("GET", summary, access="public")
        return view

    return mark


def _user() -> auth.Principal | None:
    """The caller's principal (session cookie or bearer token), or None when there is none."""
    return auth.optional()


def _address() -> str:
    """This request's address as a URL: its path encoded again (a folder "a #b" is at
    /files/a%20%23b; decoded, its "#" would end the path), then its query as it came."""
    path = quote(request.path, safe="/:@!$&'()*+,;=")
    query = request.query_string.decode("latin-1")
    return f"{path}?{query}" if query else path


def _shell(template: str, **context: Any) -> Any:
    principal = _user()
    if principal is None:
        # quoted as one query value: a path may hold any character (%0d%0a too), a Location
        # header may not, and the login page takes `next` back as the URL it was
        ended = "&ended=1" if request.cookies.get(auth.COOKIE) else ""  # a session it had
        return redirect(f"/login?next={quote(_address(), safe='/')}{ended}")
    csrf = auth.csrf_token(principal.credential) if principal.via == "session" else ""
    return render_template(template, me=principal.user, csrf=csrf, **context)


def _frame_key() -> str:
    """The key this page gives its app-UI frames (`appui.framed`): of this session and page."""
    principal = _user()
    return appui.frame_key(principal.credential, request.path) if principal else ""


def not_found_page() -> tuple[str, int]:
    principal = getattr(g, "principal", None) or _user()
    return render_template("notfound.html", me=principal.user if principal else None, csrf=""), 404


@bp.route("/")
@page("The console's home: the workflows page")
def home() -> Any:
    return redirect("/workflows")


@bp.route("/login")
@page("The login form")
def login() -> Any:
    ended = request.args.get("ended") == "1"  # sent here by a session that ended
    return render_template("login.html", me=None, csrf="", ended=ended)


@bp.route("/workflows")
@page("Workflows: list, search, upload")
def workflows() -> Any:
    return _shell("workflows.html")


@bp.route("/workflows/<wf_id>")
@page("One workflow: its graph, code and run form")
def workflow(wf_id: str) -> Any:
    from dizest_api.routes.workflows import open_workflow

    if _user() is None:
        return _shell("workflow.html")
    try:
        open_workflow(wf_id, "read")
    except ApiError:
        return not_found_page()
    return _shell("workflow.html", wf_id=wf_id)


@bp.route("/workflows/<wf_id>/edit")
@page("The workflow editor: flows, connections, apps and code; save and run")
def edit_workflow(wf_id: str) -> Any:
    from dizest_api.routes.workflows import open_workflow

    if _user() is None:
        return _shell("editor.html")
    try:
        open_workflow(wf_id, "read")  # saving needs the write right: the API says so then
    except ApiError:
        return not_found_page()
    return _shell("editor.html", wf_id=wf_id, frame_key=_frame_key())


@bp.route("/runs")
@page("Runs: filter, paginate, live status")
def runs() -> Any:
    return _shell("runs.html")


@bp.route("/schedules")
@page("Schedules: each one's next run and last ticks; enable, disable, add, delete")
def schedules() -> Any:
    return _shell("schedules.html")


@bp.route("/runs/<run_id>")
@page("One run, live: graph, logs, results, timeline")
def run(run_id: str) -> Any:
    from dizest_api.routes.runs import open_run

    if _user() is None:
        return _shell("run.html")
    try:
        open_run(run_id)
    except (ApiError, LookupError):
        return not_found_page()
    return _shell("run.html", run_id=run_id, frame_key=_frame_key())


@bp.route("/files", defaults={"path": ""}, strict_slashes=False)  # /files/ too
@bp.route("/files/<path:path>")
@page("Files: your drive, a folder at a time (upload, download, new folder, move, delete)")
def files(path: str) -> Any:
    return _shell("files.html")  # the page reads its folder from its address


@bp.route("/admin")
@page("Admin: users, tokens, workers and queue")
def admin() -> Any:
    return _shell("admin.html")


@bp.route("/console/static/<path:filename>")
@page("The console's static assets")
def static(filename: str) -> Response:
    return send_from_directory(STATIC, filename, max_age=300)


@bp.route("/favicon.ico")
@page("The console's icon (what a browser asks for where a page names none)")
def favicon() -> Response:
    return send_from_directory(STATIC, "favicon.svg", max_age=86400)


def _not_found(exc: HttpNotFound) -> Any:
    """404s: JSON under the API's prefixes, the console's page everywhere else."""
    if request.path.startswith(API_PREFIXES):
        return handle_http(exc)
    return not_found_page()


def _headers(response: Response) -> Response:
    # Every answer, API and downloads included: a browser takes each as its declared type only,
    # so a text/plain output of this origin can never run as a <script src> here.
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.status_code == 204:  # no content, so no type (Flask's default said text/html)
        response.headers.pop("Content-Type", None)
        return response
    if response.mimetype == "text/html":
        # a page that set its own (an app's UI document: see appui.py) keeps it
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        # no Referer from a console page, whatever a flow planted in it: an app UI's frame alone
        # sends its run page's (its own referrerpolicy), which appui.framed asks of it
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@appui.bp.errorhandler(ApiError)
def _app_ui_refused(exc: ApiError) -> Any:
    """An app's page that cannot be shown (no such run or flow, no UI, the session ended, the
    grant taken away) says why as a page of the run page's frame: JSON there shows as text."""
    message = "Your session has ended." if exc.status == 401 else str(exc)
    page = render_template(
        "frame_refused.html", me=None, csrf="", message=message, login=exc.status == 401
    )
    return page, exc.status, {**FRAMED_BY_CONSOLE, **(CHALLENGE if exc.status == 401 else {})}


@appui.bp.before_request
def _app_ui_framed() -> Any:
    """After auth, before the view: an app's UI document goes only into a frame of the console
    (appui.py); any other request for it gets this page, the same whatever the run."""
    if appui.framed():
        return None
    run_id = (request.view_args or {}).get("run_id", "")
    page = render_template("framed_only.html", me=None, csrf="", run_id=run_id)
    # the console's own frame may show why (a browser that sent no fetch metadata: plain http)
    return page, 403, FRAMED_BY_CONSOLE


def _routed() -> None:
    """Before auth: a URL that matches no route is a 404, whoever asks; no 401 first. (Other
    routing errors, e.g. a plain GET on the WebSocket route, still need a principal first.)"""
    if isinstance(request.routing_exception, HttpNotFound):
        raise request.routing_exception


def register(app: Flask) -> None:
    """Mount the console on `app` (call before the auth hook is added: `_routed` runs first)."""
    app.before_request(_routed)
    app.register_blueprint(bp)
    app.register_blueprint(appui.bp)
    app.register_error_handler(HttpNotFound, _not_found)
    app.after_request(_headers)
