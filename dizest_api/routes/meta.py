"""Service-level routes under /api/v1: the plugin apps and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from dizest_api.endpoint import endpoint
from dizest_api.errors import NotFound
from dizest_api.openapi import document
from dizest_api.schemas import items_of
from dizest_api.services import services
from dizest_core.model import App

bp = Blueprint("meta", __name__)


def _summary(app: App, plugin: str) -> dict[str, Any]:
    return {
        "id": app.id,
        "title": app.title,
        "plugin": plugin,
        "inputs": [
            {"name": i.name, "type": i.type, "inputtype": i.inputtype, "description": i.description}
            for i in app.inputs
        ],
        "outputs": list(app.outputs),
    }


@endpoint(bp, "GET", "/apps", "The apps that installed plugins provide",
          responses={200: items_of("App")})  # fmt: skip
def apps() -> Response:
    registry = services().plugins
    items = [_summary(a, registry.plugin_of(a.id).name) for a in registry.apps().values()]
    return jsonify({"items": items})


@endpoint(bp, "GET", "/apps/<app_id>", "One plugin app: its inputs, outputs, code and plugin",
          responses={200: "AppDetail"})  # fmt: skip
def get_app(app_id: str) -> Response:
    registry = services().plugins
    app = registry.apps().get(app_id)
    if app is None:
        raise NotFound(f"no plugin provides app {app_id!r}")
    plugin = registry.plugin_of(app_id)
    answer = _summary(app, plugin.name)
    answer["description"] = str(app.raw.get("description") or "")
    answer["code"] = app.code
    answer["plugin"] = {"name": plugin.name, "title": plugin.title, "version": plugin.version}
    return jsonify(answer)


@endpoint(bp, "GET", "/openapi.json", "This API's OpenAPI 3.1 document (public, as /api/docs)",
          access="public",
          responses={200: {"type": "object", "description": "an OpenAPI 3.1 document"}})  # fmt: skip
def openapi() -> Response:
    return jsonify(document(current_app))
