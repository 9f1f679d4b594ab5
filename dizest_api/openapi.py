"""The OpenAPI 3 document, built from the app's URL map and the Spec each view carries.

Built from what is registered, so it cannot list a route that does not exist; a view without a
Spec is an error here (and in the test that compares the document with the URL map).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from dizest_api.endpoint import Field, Spec, spec_of

IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
_PARAM = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
CONSOLE = "console."  # the web console's pages (dizest_api/console)
ERROR = {"$ref": "#/components/schemas/Error"}


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
        "openapi": "3.0.3",
        "info": {"title": "dizest", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "dizest_session"},
            },
            "schemas": {"Error": _error_schema()},
        },
        "security": [{"bearer": []}, {"session": []}],
    }


def _operation(endpoint: str, spec: Spec, arguments: set[str]) -> dict[str, Any]:
    params = [_param(name, "path", True, "") for name in sorted(arguments)]
    params += [_param(name, "query", False, doc) for name, doc in spec.query.items()]
    op: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": spec.summary,
        "parameters": params,
        "responses": {
            "2XX": {"description": "success"},
            "default": {"description": "error", "content": {"application/json": {"schema": ERROR}}},
        },
    }
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
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return op


def _param(name: str, where: str, required: bool, doc: str | Field) -> dict[str, Any]:
    kind = doc.type if isinstance(doc, Field) else "string"
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": doc.description if isinstance(doc, Field) else doc,
        "schema": {"type": kind} | ({"minimum": 0} if kind == "integer" else {}),
    }


def _error_schema() -> dict[str, Any]:
    inner = {
        "type": "object",
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
    }
    return {"type": "object", "properties": {"error": inner}}
