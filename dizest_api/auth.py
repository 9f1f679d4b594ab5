"""Who is calling: every request has a principal, checked in `before_request` before any view.

A principal comes from `Authorization: Bearer dz_<id>_<secret>` (an API token: its scopes are
what it may do) or from the session cookie set by a password login (scopes: read and run, plus
admin for admins). Cookie-authenticated writes must echo the CSRF token returned at login in
`X-CSRF-Token`; bearer requests need none (a browser never adds that header on its own).
There is no exception for localhost or forwarded addresses. Only routes whose Spec says
`access="public"` skip this; a route without a Spec still needs a principal.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flask import current_app, g, request

from dizest_api.data.accounts import InvalidCredentials, User
from dizest_api.endpoint import SAFE_METHODS, spec_of
from dizest_api.errors import Forbidden, Unauthenticated
from dizest_api.services import services

COOKIE = "dizest_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SCOPES = frozenset({"read", "run"})


@dataclass(frozen=True)
class Principal:
    user: User
    scopes: frozenset[str]
    via: str  # "token" or "session"
    credential: str  # the token id, or the session id

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def is_admin(self) -> bool:
        """An admin acting as one: admin role and (for tokens) the admin scope."""
        return self.user.is_admin and "admin" in self.scopes


def current() -> Principal:
    principal: Principal = g.principal
    return principal


def optional() -> Principal | None:
    """The caller's principal (session cookie or bearer token), or None when there is none:
    for pages, which send such a caller to log in."""
    try:
        g.principal = _principal()
    except Unauthenticated:
        return None
    return current()


def csrf_token(session_id: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, session_id.encode(), hashlib.sha256).hexdigest()


def authenticate() -> None:
    """The app's before_request hook."""
    view = current_app.view_functions.get(request.endpoint or "")
    spec = spec_of(view)
    if spec is not None and spec.access == "public":
        return
    principal = _principal()
    g.principal = principal
    if principal.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent, csrf_token(principal.credential)):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header", {"reason": "csrf"})
    needed = spec.needed_scope if spec else ("read" if request.method in SAFE_METHODS else "run")
    if needed not in principal.scopes:
        raise Forbidden(f"this credential lacks the {needed!r} scope", {"scope": needed})
    if spec is not None and spec.access == "admin" and not principal.is_admin:
        if principal.user.is_admin:  # an admin's token made with the default scopes
            raise Forbidden(
                "admins only, and this credential lacks the 'admin' scope: use a token made "
                "with it (dizest login --scope read --scope run --scope admin)",
                {"scope": "admin"},
            )
        raise Forbidden("admins only")


def _principal() -> Principal:
    return principal_of(*presented())


def presented() -> tuple[str | None, str | None]:
    """The request's credentials as `principal_of` takes them: its `Authorization` header, else
    its session cookie's id. Beside a header the cookie is not read (nor its header parsed): the
    header decides, whatever the cookie holds."""
    header = request.environ.get("HTTP_AUTHORIZATION")
    if header is not None:
        return header, None
    return None, request.cookies.get(COOKIE)


def principal_of(header: str | None, sid: str | None) -> Principal:
    """The principal of an `Authorization` header, else of a session cookie's id, as presented
    (also asked again while a stream they opened lasts); Unauthenticated when neither holds."""
    accounts = services().accounts
    try:
        if header is not None:
            kind, _, value = header.partition(" ")
            if kind.lower() != "bearer" or not value.strip():
                raise Unauthenticated("Authorization must be 'Bearer <token>'")
            user, token = accounts.authenticate_token(value.strip())
            scopes = token.scopes if user.is_admin else token.scopes - {"admin"}
            return Principal(user, scopes, "token", token.id)
        if sid:
            user = accounts.session_user(sid)
            scopes = SESSION_SCOPES | ({"admin"} if user.is_admin else set())
            return Principal(user, frozenset(scopes), "session", sid)
    except InvalidCredentials as exc:
        raise Unauthenticated(str(exc)) from None
    raise Unauthenticated("authentication required: a bearer token or a session cookie")
