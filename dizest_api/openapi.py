"""The OpenAPI 3.1 document, built from the app's URL map and the Spec each view carries.

Built from what is registered, so it cannot list a route that does not exist; a view without a
Spec is an error here (and in the test that compares the document with the URL map). The request
headers a route reads (its Spec's `headers`: Idempotency-Key, Last-Event-ID) are header parameters.
Answers come from each Spec's `responses` (shapes in `dizest_api.schemas`); the error answers a
route can give (401/403 unless public, 404 with path parameters, 400/413 with a body, 400 with
query or header parameters...) are added here, all of them the one `Error` shape. A route that declares no answer yet is documented as a 200 marked
`x-dizest-undeclared`, any media type (tests/api/test_openapi.py fails on it).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from flask import Flask

from dizest_api.endpoint import QUERY_INT_MAX, Field, Spec, spec_of
from dizest_api.ids import URL_IDS
from dizest_api.schemas import COMPONENTS, Body, Reply, ref

IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
_PARAM = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
CONSOLE = "console."  # the web console's pages (dizest_api/console)
ERROR = ref("Error")
UNDECLARED = "x-dizest-undeclared"
JSON = "application/json"
BYTES = {"type": "string", "format": "binary"}
UNKNOWN = Body({"*/*": {}}, description="success (its answer is not declared yet)")
ABOUT = """\
dizest's HTTP API. Authenticate with `Authorization: Bearer <token>` (make one with
`POST /api/v1/tokens` or `dizest token create`) or with the session cookie of
`POST /api/v1/auth/login` (then send its `csrf_token` as `X-CSRF-Token` on every write).
Every error answer is `{"error": {"code", "message", "details"}}` with a real HTTP status;
`code` is stable, for programs. `x-dizest-scope` names the token scope an operation needs."""


def document(app: Flask) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(CONSOLE):
            continue  # HTML pages for people, not API operations
        spec = spec_of(app.view_functions[rule.endpoint])
        if spec is None:
            raise LookupError(f"route {rule.rule} ({rule.endpoint}) has no Spec")
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            path = _PARAM.sub(r"{\1}", rule.rule)
            paths.setdefault(path, {})[method.lower()] = _operation(
                rule.endpoint, spec, rule.arguments
            )
    return {
        "openapi": "3.1.0",
        "info": {"title": "dizest", "version": "1", "description": ABOUT},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "dizest_session"},
            },
            "schemas": COMPONENTS,
        },
        "security": [{"bearer": []}, {"session": []}],
    }


def _operation(endpoint: str, spec: Spec, arguments: set[str]) -> dict[str, Any]:
    params = [_param(name, "path", True, "") for name in sorted(arguments)]
    params += [_param(name, "query", False, doc) for name, doc in spec.query.items()]
    params += [_param(name, "header", False, doc) for name, doc in spec.headers.items()]
    op: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "tags": [endpoint.split(".", 1)[0]],
        "summary": spec.summary,
        "parameters": params,
        "responses": _responses(spec, bool(arguments)),
    }
    if spec.description:
        op["description"] = spec.description
    if not spec.responses:
        op[UNDECLARED] = True
    if spec.access == "public":
        op["security"] = []
    else:
        op["x-dizest-scope"] = spec.needed_scope
    if spec.body is not None:
        props = {
            name: {"type": f.type, "description": f.description}
            | ({"items": {"type": f.items}} if f.items else {})
            for name, f in spec.body.items()
        }
        schema = {
            "type": "object",
            "additionalProperties": False,
            "properties": props,
            "required": sorted(n for n, f in spec.body.items() if f.required),
        }
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
    return op


def _responses(spec: Spec, has_path_params: bool) -> dict[str, Any]:
    declared: dict[int, Reply] = dict(spec.responses) or {200: UNKNOWN}
    errors = set()
    if spec.body is not None or spec.query or spec.headers:
        errors.add(400)
    if spec.body is not None:
        errors.add(413)
    if spec.access != "public":
        errors |= {401, 403}
    if has_path_params:
        errors.add(404)
    answers = {str(status): _response(status, reply) for status, reply in sorted(declared.items())}
    for status in sorted(errors - set(declared)):
        answers[str(status)] = _response(status, "Error")
    answers["default"] = {"description": "any other error", "content": {JSON: {"schema": ERROR}}}
    return answers


def _response(status: int, reply: Reply) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase
    if reply is None:
        return {"description": phrase}
    if isinstance(reply, Body):
        content = {m: {"schema": _media_schema(m, s)} for m, s in reply.content().items()}
        return {"description": reply.description or phrase, "content": content}
    return {"description": phrase, "content": {JSON: {"schema": _schema(reply)}}}


def _schema(schema: str | dict[str, Any]) -> dict[str, Any]:
    return ref(schema) if isinstance(schema, str) else schema


def _media_schema(media: str, schema: str | dict[str, Any] | None) -> dict[str, Any]:
    """`schema`, or when None: any JSON for JSON, any bytes for another type, and anything for
    a range (`*/*`, `text/*`): it holds JSON too, which a checker validates as JSON (a JSON
    answer of an `api` function failed `string`, `format: binary`)."""
    if schema is not None:
        return _schema(schema)
    return {} if media == JSON or "*" in media else BYTES


def _param(name: str, where: str, required: bool, doc: str | Field) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": doc.description if isinstance(doc, Field) else doc,
        "schema": _param_schema(name, where, doc),
    }


def _param_schema(name: str, where: str, doc: str | Field) -> dict[str, Any]:
    """A query integer with the bounds `query_int` checks (past them: 400), a path id with the
    form `ids.check_url_ids` checks (else: 404), any other parameter a string."""
    if isinstance(doc, Field) and doc.type == "integer":
        most = QUERY_INT_MAX if doc.maximum is None else doc.maximum
        return {"type": "integer", "minimum": doc.minimum, "maximum": most}
    if isinstance(doc, Field) and where == "header" and doc.type == "string":
        length = {} if doc.maximum is None else {"minLength": doc.minimum, "maxLength": doc.maximum}
        return {"type": "string", **length} | ({"pattern": doc.pattern} if doc.pattern else {})
    if isinstance(doc, Field):
        return {"type": doc.type}
    if where == "path" and name in URL_IDS:
        return {"type": "string", "pattern": f"^{URL_IDS[name][1].pattern}$"}
    return {"type": "string"}
