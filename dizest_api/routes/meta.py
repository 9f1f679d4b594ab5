"""Service-level routes under /api/v1: the plugin apps and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from dizest_api.endpoint import endpoint
from dizest_api.openapi import document
from dizest_api.services import services

bp = Blueprint("meta", __name__)


@endpoint(bp, "GET", "/apps", "The apps that installed plugins provide")
def apps() -> Response:
    registry = services().plugins
    items = [
        {
            "id": app.id,
            "title": app.title,
            "plugin": registry.plugin_of(app.id).name,
            "inputs": [{"name": i.name, "type": i.type} for i in app.inputs],
            "outputs": list(app.outputs),
        }
        for app in registry.apps().values()
    ]
    return jsonify({"items": items})


@endpoint(bp, "GET", "/openapi.json", "This API's OpenAPI 3 document")
def openapi() -> Response:
    return jsonify(document(current_app))
