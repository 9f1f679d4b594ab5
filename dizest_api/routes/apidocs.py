"""`/api/docs`: the API reference, Swagger UI over `GET /api/v1/openapi.json`, shipped offline.

Public and static, as the document is: it describes the routes, which are no secret, and shows
no data (calls made from it need a token or a session like any other). Swagger UI's files are
vendored in `console/static/vendor` (VENDORED.md: version, licence, checksums); the page is an
HTML shell whose scripts are files of this origin. Its CSP is the console's without the
'unsafe-inline' styles the console keeps for plotly: Swagger UI was measured to render with no
violation under it; Redoc was not (styled-components needs inline styles, and it calls home).
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template

from dizest_api.endpoint import endpoint
from dizest_api.schemas import Body

bp = Blueprint("apidocs", __name__, template_folder="../console/templates")

PAGE = Body("text/html", {"type": "string"}, "the reference page (HTML, the same for everyone)")


@endpoint(bp, "GET", "/api/docs", "This API's reference page (Swagger UI, offline)",
          access="public", responses={200: PAGE})  # fmt: skip
def api_docs() -> Response:
    page = Response(render_template("apidocs.html"), mimetype="text/html")
    page.headers["Content-Security-Policy"] = strict_csp()
    return page


def strict_csp() -> str:
    """The console's policy with style-src 'self' alone (the console's after_request keeps the
    policy a page set)."""
    from dizest_api.console import CSP  # the console imports the routes: not at import time

    return "; ".join(
        "style-src 'self'" if d.startswith("style-src ") else d for d in CSP.split("; ")
    )
