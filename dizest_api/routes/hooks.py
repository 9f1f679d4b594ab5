"""Webhooks and triggers over HTTP (see `dizest_api.automation.hooks` and `.triggers`).

Webhooks: made by any user for their own runs (all of them, or one workflow's: that needs the
read right on it); read and deleted by their owner (and admins). The signing secret is in the
creation answer only.

Triggers: made by a user with the run right on the workflow, who becomes the owner whose rights
the trigger's runs use; rotated and revoked by that owner (and admins, and the workflow's
owner). `POST /triggers/<secret>` needs no credential: the secret is one. It answers 404 for an
unknown (revoked, rotated) secret, 429 past the trigger's rate, 403 when its owner may no longer
run the workflow.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request, url_for

from dizest_api import body_slots
from dizest_api.auth import Principal, current
from dizest_api.automation.hooks import Hook, HookNotFound, check_url
from dizest_api.automation.service import automation
from dizest_api.automation.triggers import Trigger, TriggerNotFound
from dizest_api.data.accounts import UserNotFound
from dizest_api.endpoint import Field, endpoint, json_body, json_value, query_number
from dizest_api.errors import ApiError, BadInput, Forbidden, NotFound
from dizest_api.routes.files import user_drive
from dizest_api.routes.health import require_worker
from dizest_api.routes.runs import InvalidRun, index, within_limit
from dizest_api.routes.workflows import made_while_allowed, open_workflow
from dizest_api.schemas import ERR, items_of
from dizest_api.services import services
from dizest_core.errors import DizestError

bp = Blueprint("hooks", __name__)

NEW_HOOK = {
    "url": Field("string", True, description="http(s) URL called when a run ends"),
    "workflow_id": Field("string", description="only this workflow's runs (default: all yours)"),
}
NEW_TRIGGER = {"rate_per_min": Field("integer", description="calls allowed per minute")}
LOG = {"limit": Field("integer", description="delivery records (1 to 100, default 20)",
                      minimum=1, maximum=100)}  # fmt: skip
TRIGGER_SCOPES = frozenset({"read", "run"})


class RateLimited(ApiError):
    status, code = 429, "rate_limited"


def open_hook(hook_id: str) -> Hook:
    try:
        hook = automation().hooks.get(hook_id)
    except HookNotFound:
        raise NotFound(f"no webhook {hook_id!r}") from None
    if not current().is_admin and hook.owner != current().username:
        raise NotFound(f"no webhook {hook_id!r}")
    return hook


@endpoint(bp, "POST", "/hooks", "Register a webhook called when your runs end", body=NEW_HOOK,
          responses={201: "NewHook", 422: ERR})  # fmt: skip
def create_hook() -> tuple[Response, int, dict[str, str]]:
    body, found = json_body(NEW_HOOK), automation()
    settings = found.settings
    url = check_url(
        body["url"], settings.webhook_allow_private, current().username, settings.webhook_timeout_s
    )
    wf_id = open_workflow(body["workflow_id"], "read").id if "workflow_id" in body else None
    hook = found.hooks.create(current().username, url, wf_id)
    if wf_id is not None:
        made_while_allowed(wf_id, "read", lambda: found.hooks.delete(hook.id))
    answer = {**hook.to_dict(), "secret": hook.secret}  # shown once
    return jsonify(answer), 201, {"Location": url_for(".get_hook", hook_id=hook.id)}


@endpoint(bp, "GET", "/hooks", "Your webhooks", responses={200: items_of("Hook")})  # fmt: skip
def list_hooks() -> Response:
    return jsonify({"items": [h.to_dict() for h in automation().hooks.owned(current().username)]})


@endpoint(bp, "GET", "/hooks/<hook_id>", "A webhook with its latest deliveries", query=LOG,
          responses={200: "HookDeliveries"})  # fmt: skip
def get_hook(hook_id: str) -> Response:
    hook = open_hook(hook_id)
    deliveries = automation().hooks.deliveries(hook_id, query_number("limit", 20, LOG["limit"]))
    return jsonify({**hook.to_dict(), "deliveries": deliveries})


@endpoint(bp, "DELETE", "/hooks/<hook_id>", "Delete a webhook",
          responses={204: None})  # fmt: skip
def delete_hook(hook_id: str) -> Response:
    open_hook(hook_id)
    automation().hooks.delete(hook_id)
    return Response(status=204)


def _trigger_out(trig: Trigger, secret: str | None = None) -> dict[str, Any]:
    out = trig.to_dict()
    if secret is not None:  # shown once, made or rotated
        out |= {"secret": secret, "url": url_for(".fire_trigger", secret=secret, _external=True)}
    return out


def open_trigger(wf_id: str, trigger_id: str) -> Trigger:
    wf = open_workflow(wf_id, "read")
    try:
        trig = automation().triggers.get(trigger_id)
    except TriggerNotFound:
        raise NotFound(f"no trigger {trigger_id!r}") from None
    principal = current()
    mine = principal.is_admin or principal.username in (trig.owner, wf.owner)
    if trig.workflow_id != wf.id or not mine:
        raise NotFound(f"no trigger {trigger_id!r}")
    return trig


@endpoint(bp, "POST", "/workflows/<wf_id>/triggers",
          "Make a secret URL that starts runs of this workflow as you", body=NEW_TRIGGER,
          responses={201: "NewTrigger", 422: ERR})  # fmt: skip
def create_trigger(wf_id: str) -> tuple[Response, int]:
    body, found = json_body(NEW_TRIGGER), automation()
    wf = open_workflow(wf_id, "run")
    rate = body.get("rate_per_min", found.settings.trigger_rate_per_min)
    trig, secret = found.triggers.create(current().username, wf.id, rate)
    made_while_allowed(wf.id, "run", lambda: found.triggers.delete(trig.id))
    return jsonify(_trigger_out(trig, secret)), 201


@endpoint(bp, "GET", "/workflows/<wf_id>/triggers", "A workflow's triggers (never their secrets)",
          responses={200: items_of("Trigger")})  # fmt: skip
def list_triggers(wf_id: str) -> Response:
    wf, principal = open_workflow(wf_id, "read"), current()
    everyone = principal.is_admin or wf.owner == principal.username
    found = automation().triggers.for_workflow(wf.id)
    mine = [t for t in found if everyone or t.owner == principal.username]
    return jsonify({"items": [_trigger_out(t) for t in mine]})


@endpoint(bp, "POST", "/workflows/<wf_id>/triggers/<trigger_id>/rotate",
          "Replace your trigger's secret (the old URL stops working)",
          responses={200: "NewTrigger", 403: ERR})  # fmt: skip
def rotate_trigger(wf_id: str, trigger_id: str) -> Response:
    trig = open_trigger(wf_id, trigger_id)
    if trig.owner != current().username:  # the new URL starts runs as its owner: theirs alone
        raise Forbidden(
            f"only the trigger's owner {trig.owner!r} may rotate its secret; you may revoke it"
        )
    trig, secret = automation().triggers.rotate(trigger_id)
    return jsonify(_trigger_out(trig, secret))


@endpoint(bp, "DELETE", "/workflows/<wf_id>/triggers/<trigger_id>", "Revoke a trigger",
          responses={204: None})  # fmt: skip
def delete_trigger(wf_id: str, trigger_id: str) -> Response:
    open_trigger(wf_id, trigger_id)
    automation().triggers.delete(trigger_id)
    return Response(status=204)


@endpoint(bp, "POST", "/triggers/<secret>",
          "Start a run of the trigger's workflow; the JSON body is the inputs",
          access="public",
          responses={201: "TriggeredRun", 400: ERR, 403: ERR, 413: ERR, 422: ERR, 429: ERR,
                     503: ERR})  # fmt: skip
def fire_trigger(secret: str) -> tuple[Response, int, dict[str, str]]:
    found = automation()
    try:
        trig = found.triggers.by_secret(secret)
    except TriggerNotFound as exc:
        raise NotFound(str(exc)) from None
    allowed, retry_after = found.triggers.count_call(trig)
    if not allowed:
        raise RateLimited(
            f"this trigger allows {trig.rate_per_min} call(s) a minute",
            {"retry_after": retry_after, "rate_per_min": trig.rate_per_min},
        )
    body_slots.hold(trig.owner)  # its callers act as its owner: a body they send is theirs
    # no body: no inputs; any other body is the inputs object (`null` too is refused)
    inputs = json_value() if request.get_data(cache=True).strip() else {}
    if not isinstance(inputs, dict):
        raise BadInput("the body must be a JSON object of inputs")
    g.principal = _as_owner(trig)
    try:
        wf = open_workflow(trig.workflow_id, "run")
    except (NotFound, Forbidden):
        raise Forbidden(
            f"the trigger's owner may no longer run workflow {trig.workflow_id!r}"
        ) from None
    _, version, package = services().library.package(wf.id)
    require_worker()
    with within_limit() as account:
        try:
            run_id = services().client.submit(
                package, inputs, None, None, {}, account=account,
                drive=user_drive(trig.owner).path,
                stored=lambda new: index().claim(new, trig.owner, wf.id, version=version,
                                                 origin={"kind": "trigger", "id": trig.id}),
            )  # fmt: skip
        except ValueError as exc:  # dizest errors (ValidationError...) go through the table
            if isinstance(exc, (DizestError, LookupError)):
                raise
            raise InvalidRun(str(exc)) from None
    answer = {"run_id": run_id, "workflow_id": wf.id, "version": version, "trigger_id": trig.id}
    return jsonify(answer), 201, {"Location": url_for("runs.get_run", run_id=run_id)}


def _as_owner(trig: Trigger) -> Principal:
    """The trigger's owner, with the read and run scopes: the rights its runs use."""
    try:
        user = services().accounts.get_user(trig.owner)
    except UserNotFound:
        raise Forbidden(f"the trigger's owner {trig.owner!r} no longer exists") from None
    return Principal(user, TRIGGER_SCOPES, "trigger", trig.id)
