"""Accounts over HTTP: password login and sessions, API tokens, users (admin) and passwords."""

from __future__ import annotations

import logging
import math

from flask import Blueprint, Response, g, jsonify, request

from dizest_api import user_removal
from dizest_api.auth import COOKIE, csrf_token, current
from dizest_api.automation.service import automation
from dizest_api.data.accounts import SCOPES
from dizest_api.endpoint import SAFE_METHODS, Field, endpoint, json_body
from dizest_api.errors import BadInput, Conflict, Forbidden, NotFound
from dizest_api.schemas import ERR, items_of
from dizest_api.services import services
from dizest_api.user_removal import Stores

bp = Blueprint("accounts", __name__)
log = logging.getLogger(__name__)

# Longest token lifetime: beyond it the expiry overflows Redis' PEXPIREAT (found by fuzzing).
MAX_TOKEN_LIFETIME_S = 100 * 365 * 86400
MIN_TOKEN_LIFETIME_S = 1  # a shorter one was expired when made
LOGIN = {"username": Field("string", True), "password": Field("string", True)}
# A login's is the one body read before any authentication: it must come whole before a thread
# reads it (`dizest_api.request_reads` gathers a body of known length up to 32 KiB), so one of
# no stated length (chunked) or longer is refused unread: a client sending it slowly, with no
# account, held a server thread for as long as it liked. So is one with an Expect field (100-
# continue, HTTP/1.0's too): `small_body` leaves its body to a thread, which waits for it.
LOGIN_BODY_BYTES = 8192
NEW_TOKEN = {
    "name": Field("string", True),
    "scopes": Field("array", items="string", description="subset of read, run, admin"),
    "expires_in_s": Field("number", description="lifetime in seconds; none: no expiry"),
}
NEW_USER = {
    "username": Field("string", True),
    "password": Field("string", True),
    "role": Field("string", description="admin or user (default)"),
}
PASSWORD = {
    "password": Field("string", True),
    "current_password": Field("string", description="required when changing your own"),
}


@endpoint(bp, "POST", "/auth/login", "Log in with a password", access="public", body=LOGIN,
          responses={200: "Login", 401: ERR, 429: ERR})  # fmt: skip
def login() -> Response:
    if request.mimetype != "application/json":  # a cross-site form can send none but these
        raise BadInput("log in with a JSON body (Content-Type: application/json)")
    size = request.content_length
    if size is None or size > LOGIN_BODY_BYTES:
        raise BadInput(
            f"a login's body has a Content-Length of at most {LOGIN_BODY_BYTES} bytes",
            {"max_bytes": LOGIN_BODY_BYTES, "content_length": size},
        )
    if "Expect" in request.headers:  # (gunicorn forwards it, HTTP/1.0's too)
        raise BadInput("a login's body is sent with its head, without Expect")
    body, found = json_body(LOGIN), services()
    user = found.accounts.login(body["username"], body["password"], request.remote_addr or "")
    sid = found.accounts.start_session(user.username)
    response = jsonify({"user": user.to_dict(), "csrf_token": csrf_token(sid)})
    response.set_cookie(
        COOKIE,
        sid,
        max_age=found.settings.session_ttl_s,
        httponly=True,
        samesite="Lax",
        secure=found.settings.cookie_secure,
    )
    return response


@endpoint(bp, "POST", "/auth/logout", "End the current session, or revoke the token used",
          scope="read", responses={204: None})  # fmt: skip
def logout() -> Response:
    """A session ends; a bearer token is revoked, whatever its scopes (`dizest logout` of a
    token it was given knows no token id, and `DELETE /tokens/<id>` needs the run scope)."""
    principal = current()
    if principal.via == "session":
        services().accounts.end_session(principal.credential)
    else:
        services().accounts.revoke_token(principal.credential, principal.username)
    response = Response(status=204)
    response.delete_cookie(COOKIE)
    return response


@endpoint(bp, "GET", "/auth/me", "The calling user, how it authenticated, and its scopes",
          responses={200: "Me"})  # fmt: skip
def me() -> Response:
    principal = current()
    return jsonify(
        {"user": principal.user.to_dict(), "via": principal.via, "scopes": sorted(principal.scopes)}
    )


@endpoint(bp, "GET", "/tokens", "Your API tokens (never their secrets)",
          responses={200: items_of("Token")})  # fmt: skip
def list_tokens() -> Response:
    tokens = services().accounts.tokens(current().username)
    return jsonify({"items": [t.to_dict() for t in tokens]})


@endpoint(bp, "POST", "/tokens", "Create an API token; its secret is shown this once",
          body=NEW_TOKEN, responses={201: "NewToken"})  # fmt: skip
def create_token() -> tuple[Response, int]:
    body, principal = json_body(NEW_TOKEN), current()
    scopes = set(body.get("scopes", ["read", "run"]))
    unknown = sorted(s for s in scopes if s not in SCOPES)  # not "lacks": no one has them
    if unknown:
        raise BadInput(f"unknown scope(s): {', '.join(unknown)}", {"known": sorted(SCOPES)})
    if not scopes <= principal.scopes:
        raise Forbidden("a token cannot have scopes its creator lacks", {"scopes": sorted(scopes)})
    lifetime = body.get("expires_in_s")
    # Compared first: math.isfinite overflows on a huge int, and NaN compares False.
    if lifetime is not None and not (
        MIN_TOKEN_LIFETIME_S <= lifetime <= MAX_TOKEN_LIFETIME_S and math.isfinite(lifetime)
    ):
        raise BadInput(
            f"expires_in_s must be a number of seconds from {MIN_TOKEN_LIFETIME_S}"
            f" to {MAX_TOKEN_LIFETIME_S}"
        )
    new = services().accounts.create_token(
        principal.username, body["name"], scopes, body.get("expires_in_s")
    )
    return jsonify({**new.token.to_dict(), "token": new.secret}), 201


@endpoint(bp, "DELETE", "/tokens/<token_id>", "Revoke a token (admins: anyone's)",
          responses={204: None})  # fmt: skip
def revoke_token(token_id: str) -> Response:
    principal = current()
    owner = None if principal.is_admin else principal.username
    services().accounts.revoke_token(token_id, owner)
    return Response(status=204)


@endpoint(bp, "GET", "/users", "Every user", access="admin", scope="admin",
          responses={200: items_of("User")})  # fmt: skip
def list_users() -> Response:
    return jsonify({"items": [u.to_dict() for u in services().accounts.users()]})


@endpoint(bp, "POST", "/users", "Add a user", access="admin", scope="admin", body=NEW_USER,
          responses={201: "User", 409: ERR})  # fmt: skip
def add_user() -> tuple[Response, int]:
    body = json_body(NEW_USER)
    user = services().accounts.add_user(
        body["username"], body["password"], body.get("role", "user")
    )
    return jsonify(user.to_dict()), 201


@endpoint(bp, "DELETE", "/users/<username>",
          "Remove a user with everything of theirs; the name is not given again",
          access="admin", scope="admin", responses={204: None, 409: ERR})  # fmt: skip
def remove_user(username: str) -> Response:
    if username == current().username:
        raise Conflict("you cannot remove yourself")
    user_removal.remove_user(removal_stores(), username)
    return Response(status=204)


def removal_stores() -> Stores:
    found = services()
    return Stores(found.accounts, found.library, automation(), found.settings.worker.drive_root)


def clear_late_writes(_exc: BaseException | None) -> None:
    """The app's teardown hook: a write request whose user was removed meanwhile leaves nothing
    under the retired name (`user_removal.clear_late`)."""
    if request.method in SAFE_METHODS:
        return
    principal = g.get("principal")
    if principal is None:
        return
    try:
        user_removal.clear_late(removal_stores(), principal.username)
    except Exception:  # the answer is given already; the removal's own clearing still ran
        log.exception("clearing after a removed user's request failed")


@endpoint(bp, "PUT", "/users/<username>/password", "Change a password (your own, or as admin)",
          body=PASSWORD, responses={204: None})  # fmt: skip
def set_password(username: str) -> Response:
    body, principal, accounts = json_body(PASSWORD), current(), services().accounts
    if username != principal.username and not principal.is_admin:
        raise NotFound(f"no user {username!r}")
    if username == principal.username and not principal.is_admin:
        if not body.get("current_password"):  # a bad one counts toward the login lock-out
            raise BadInput("current_password is required to change your own password")
        accounts.login(username, body["current_password"], request.remote_addr or "")
    accounts.set_password(username, body["password"])
    return Response(status=204)
