"""The WSGI entry point for a gunicorn of your own: `gunicorn -c deploy/gunicorn.conf.py
'dizest_api.wsgi:create()'` (a factory, so importing this module does nothing)."""

from __future__ import annotations

from flask import Flask

from dizest_api.app import create_app
from dizest_api.settings import ApiSettings


def create() -> Flask:
    """The app, its settings read once from DIZEST_* variables."""
    return create_app(ApiSettings.from_env())
