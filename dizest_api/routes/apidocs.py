"""`/api/docs`: the API reference, Swagger UI over `GET /api/v1/openapi.json`, shipped offline.

Public and static, as the document is: it describes the routes, which are no secret, and shows
no data (calls made from it need a token or a session like any other). Swagger UI's files are
vendored in `console/static/vendor` (VENDORED.md: version, licence, checksums); the page is an
HTML shell whose scripts are files of this origin, so the console's CSP (script-src 'self', no
eval) holds on it. Swagger UI was measured to render with no CSP violation even without
'unsafe-inline' styles; Redoc was not (styled-components, and it calls home).
"""

from __future__ import annotations

from flask import Blueprint, render_template

from dizest_api.endpoint import endpoint
from dizest_api.schemas import Body

bp = Blueprint("apidocs", __name__, template_folder="../console/templates")

PAGE = Body("text/html", {"type": "string"}, "the reference page (HTML, the same for everyone)")


@endpoint(bp, "GET", "/api/docs", "This API's reference page (Swagger UI, offline)",
          access="public", responses={200: PAGE})  # fmt: skip
def api_docs() -> str:
    return render_template("apidocs.html")
