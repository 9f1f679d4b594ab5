"""The ids of what the service stores (workflows, schedules, webhooks, triggers, tokens), and
the check of every id a URL names before anything reads Redis with it.

A URL id is part of a Redis key: `GET /workflows/<id>:versions` read the workflow's versions
hash as if it were a workflow and answered 500 where the workflow existed, 404 where it did not
(any user could test other users' ids so). Once the caller is authenticated (an anonymous one
gets 401, or the login page, as for any route), an id of the wrong form is a 404: the API's
JSON error, or the console's page for a console page.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import request
from werkzeug.exceptions import NotFound as PageNotFound

from dizest_core.job import RUN_ID

SERVICE_ID = re.compile(r"[0-9a-f]{16}")  # what `new_id` makes

# a URL's variable -> (what it names, the form of its ids)
URL_IDS: dict[str, tuple[str, re.Pattern[str]]] = {
    "wf_id": ("workflow", SERVICE_ID),
    "sid": ("schedule", SERVICE_ID),
    "hook_id": ("webhook", SERVICE_ID),
    "trigger_id": ("trigger", SERVICE_ID),
    "token_id": ("token", SERVICE_ID),
    "run_id": ("run", RUN_ID),
}


def new_id() -> str:
    """A new record's id: 16 hex digits."""
    return secrets.token_hex(8)


def check_url_ids() -> None:
    """The app's before_request hook after authentication: a 404 for an id that cannot name a
    record."""
    values: dict[str, Any] = request.view_args or {}
    for name, value in values.items():
        known = URL_IDS.get(name)
        if known is None or known[1].fullmatch(str(value)):
            continue
        from dizest_api import auth  # not at import: the stores import `new_id`
        from dizest_api.errors import NotFound

        message = f"no {known[0]} {str(value)[:100]!r}"
        if not (request.endpoint or "").startswith("console."):
            raise NotFound(message)
        if auth.optional() is not None:  # else the page sends the caller to log in first
            raise PageNotFound(message)
        return
