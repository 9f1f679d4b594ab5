"""The Flask app of dizest's HTTP service (see the package's story): `create_app(settings)`."""

from __future__ import annotations

from collections.abc import Callable
from inspect import CO_COROUTINE
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin

from dizest_api import auth, body_slots, console, errors
from dizest_api.data.accounts import Accounts, text_client
from dizest_api.data.library import Library
from dizest_api.fixed_routes import FixedRoutes, options_answer
from dizest_api.ids import check_url_ids
from dizest_api.routes import BLUEPRINTS
from dizest_api.routes.accounts import clear_late_writes
from dizest_api.services import Services
from dizest_api.settings import ApiSettings
from dizest_core.options import Bounds
from dizest_core.plugins import PluginRegistry
from dizest_worker.keys import Keys

__all__ = ["ApiSettings", "create_app"]


class NoFlaskSession(SessionInterface):
    """dizest's login session is its own cookie (`auth`); Flask's signed-cookie session is never
    used, so no request pays for opening it (a serializer per request: a few percent of an SSE
    connect's CPU). Writing to `flask.session` fails loudly (a null session)."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


MARKED_COROUTINE = "_is_coroutine_marker"  # set by inspect.markcoroutinefunction (3.12)


class DizestFlask(Flask):
    """Flask, asking whether a hook or view is a coroutine function only of one that may be:
    Flask asks `inspect.iscoroutinefunction` of every before/after-request hook, teardown and
    view at every request (ten times an SSE connect, ~70 Python calls). A function or method
    whose code is not a coroutine's, and that is not marked as one (Python 3.12's
    `inspect.markcoroutinefunction`), is returned as is, as Flask would; anything else (a
    partial, a coroutine function) goes through Flask's own check."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        code = getattr(func, "__code__", None)
        if code is None or code.co_flags & CO_COROUTINE or hasattr(func, MARKED_COROUTINE):
            return super().ensure_sync(func)
        return func

    def make_default_options_response(self) -> Response:
        """An OPTIONS request's answer: 204 and the path's methods in `Allow`, no body (Flask's
        is a 200 with an empty text/html body, an HTML answer under /api)."""
        return options_answer(super().make_default_options_response().allow)


def create_app(settings: ApiSettings, client: Any = None) -> Flask:
    """The Flask app for `settings`; `client` (a dizest_worker Client) is built when omitted."""
    app = DizestFlask("dizest_api", static_folder=None)
    app.session_interface = NoFlaskSession()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
    )
    # A package answered (GET /workflows/<id>) keeps its order: flows' order is DIZEST's order
    # of sources and the planner's tie-break, and the editor saves back what it was given.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # `/runs//events` is no route (an empty id), not a redirect to `/runs/events` (an HTML page)
    app.url_map.merge_slashes = False
    plugins = PluginRegistry.discover(settings.worker.engine.plugin_paths)
    if client is None:
        from dizest_worker.client import Client

        client = Client(settings.worker, plugins=plugins)
    redis = text_client(settings.worker)
    keys = Keys(settings.worker.prefix)
    accounts = Accounts(
        redis,
        keys,
        bcrypt_rounds=settings.bcrypt_rounds,
        session_ttl_s=settings.session_ttl_s,
        max_failures=settings.login_max_failures,
        window_s=settings.login_window_s,
    )
    bounds = Bounds.of(settings.worker.engine, settings.worker.max_flow_timeout_s)
    library = Library(
        redis,
        keys,
        extra_apps=plugins.apps(),
        limits=settings.library_limits(),
        option_bounds=bounds,
        engine=settings.worker.engine,
    )
    app.extensions["dizest"] = Services(settings, redis, accounts, library, plugins, client)
    errors.register(app)
    console.register(app)  # its 404 check runs before auth
    for blueprint, prefix in BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix=prefix)
    app.before_request(auth.authenticate)
    # once the caller is known, before any view: a fixed-name route's path is its own, for
    # every method (`PUT /workflows/usage` is a 405, not "no workflow 'usage'"), then the ids
    app.before_request(FixedRoutes.of(app.url_map).answer)
    app.before_request(check_url_ids)
    # then, before any view reads it, a body a thread will wait for takes one of the caller's
    # slots (429 when none is free), given back when the request ends
    app.before_request(body_slots.before_body)
    app.teardown_request(body_slots.give_back)
    app.teardown_request(clear_late_writes)
    return app
