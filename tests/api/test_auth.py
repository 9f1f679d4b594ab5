"""Every route needs a principal; tokens, sessions, CSRF, scopes and login throttling."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dizest_api.data.accounts import InvalidCredentials
from dizest_api.data.session_cap import MAX_SESSIONS
from tests.api.conftest import PASSWORD, Api

# Public: probes, login, a trigger's secret URL (the secret is its credential), and the API's
# documentation (the OpenAPI document and its reference page: static, they show no data).
PUBLIC = {
    "/healthz",
    "/readyz",
    ("/api/v1/auth/login", "POST"),
    ("/api/v1/triggers/<secret>", "POST"),
    ("/api/v1/openapi.json", "GET"),
    ("/api/docs", "GET"),
}


def test_every_route_but_the_public_ones_refuses_anonymous_requests(api: Api) -> None:
    checked = 0
    for rule in api.app.url_map.iter_rules():
        if rule.endpoint.startswith("console."):
            continue  # console pages redirect to /login (tests/console)
        path = re.sub(r"<(?:[a-z_]+:)?([A-Za-z_]\w*)>", "dummy", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if rule.rule in PUBLIC or (rule.rule, method) in PUBLIC:
                continue
            answer = api.http.open(path, method=method, json={})
            assert answer.status_code == 401, (method, rule.rule, answer.data[:200])
            if rule.endpoint.startswith("appui."):  # a page of the run page's frame
                assert b"Log in again" in answer.data
            else:
                assert answer.json["error"]["code"] == "unauthenticated"
            assert "WWW-Authenticate" in answer.headers
            checked += 1
    assert checked >= 15
    assert api.http.get("/healthz").status_code == 200
    docs = api.http.get("/api/docs")
    assert docs.status_code == 200 and docs.mimetype == "text/html"
    assert docs.data == api.http.get("/api/docs", headers=api.user("alice")).data  # static
    assert api.http.get("/api/v1/openapi.json").json["paths"]
    # an unknown path is not found, whoever asks (no 401 first)
    assert api.http.get("/api/v1/no/such/route").status_code == 404
    # an empty id: no route either (Werkzeug merged the slashes: a 308 with an HTML body)
    empty = api.http.get("/api/v1/runs//events", headers=api.user("alice"))
    assert empty.status_code == 404 and empty.json["error"]["code"] == "not_found"


def test_bad_bearer_headers_are_refused(api: Api) -> None:
    api.user("alice")
    for header in ("Bearer", "Basic abc", "Bearer dz_0123456789abcdef_wrongsecretwrongsecret"):
        assert api.call("GET", "/auth/me", {"Authorization": header}).status_code == 401


def test_revoked_token_stops_working_at_once(api: Api) -> None:
    headers = api.user("alice")
    me = api.call("GET", "/auth/me", headers)
    assert me.status_code == 200 and me.json["user"]["username"] == "alice"
    token_id = headers["Authorization"].split("_")[1]
    assert api.call("DELETE", f"/tokens/{token_id}", headers).status_code == 204
    assert api.call("GET", "/auth/me", headers).status_code == 401


def test_a_token_works_with_its_owner_s_role_and_stops_once_the_owner_is_gone(api: Api) -> None:
    """The token and its owner are read together (one round trip): the owner's record still
    decides the role, and a token outliving its owner authenticates no one."""
    keys = api.services.accounts.keys
    assert keys.user("") + "carol" == keys.user("carol")  # how the read finds the owner
    admin = api.user("carol", role="admin", scopes=("read", "admin"))
    me = api.call("GET", "/auth/me", admin)
    assert me.status_code == 200 and me.json["user"]["role"] == "admin"
    api.services.accounts.redis.delete(keys.user("carol"))  # the owner's record alone
    assert api.call("GET", "/auth/me", admin).status_code == 401


def test_expired_token_stops_working_and_expires_in_redis(api: Api) -> None:
    api.user("alice")
    new = api.services.accounts.create_token("alice", "short", ["read"], expires_in_s=60)
    headers = {"Authorization": f"Bearer {new.secret}"}
    assert api.call("GET", "/auth/me", headers).status_code == 200
    assert 0 < api.services.redis.pttl(api.services.accounts.keys.token(new.token.id)) <= 61_000
    api.services.accounts.clock = lambda: time.time() + 61
    assert api.call("GET", "/auth/me", headers).status_code == 401


def test_token_scopes_are_enforced(api: Api) -> None:
    read_only = api.user("alice", scopes=("read",))
    assert api.call("GET", "/workflows", read_only).status_code == 200
    # what the console offers follows the credential too (a probe's read-only token was told
    # it could rerun and cancel its own run, then refused)
    full = api.user("alice")
    made = api.call("POST", "/workflows", full, json={"package": {"apps": {}, "flow": {}}}).json
    assert api.call("GET", f"/workflows/{made['id']}", read_only).json["rights"] == ["read"]
    assert len(api.call("GET", f"/workflows/{made['id']}", full).json["rights"]) == 5
    answer = api.call("POST", "/workflows", read_only, json={"package": {"apps": {}, "flow": {}}})
    assert answer.status_code == 403 and answer.json["error"]["details"] == {"scope": "run"}
    # a token cannot mint a token with more scopes than it has
    answer = api.call("POST", "/tokens", read_only, json={"name": "x", "scopes": ["read", "run"]})
    assert answer.status_code == 403
    # a scope no one has is a bad request, not one its creator lacks (a probe's 403)
    full = api.user("alice")
    answer = api.call("POST", "/tokens", full, json={"name": "x", "scopes": ["read", "bogus"]})
    assert (
        answer.status_code == 400 and "unknown scope(s): bogus" in answer.json["error"]["message"]
    )
    for lifetime in (1e-9, 0.5, 0, -1):  # expired when made (its expiry equal to its creation)
        body = {"name": "x", "scopes": ["read"], "expires_in_s": lifetime}
        assert api.call("POST", "/tokens", full, json=body).status_code == 400, lifetime
    body = {"name": "x", "scopes": ["read"], "expires_in_s": 1}
    assert api.call("POST", "/tokens", full, json=body).status_code == 201
    # an admin token without the admin scope cannot use admin routes
    admin_run = api.user("root", "admin", scopes=("read", "run"))
    assert api.call("GET", "/users", admin_run).status_code == 403
    assert api.call("GET", "/users", api.user("root", "admin")).status_code == 200


def test_token_lifecycle_shows_the_secret_once(api: Api) -> None:
    headers = api.user("alice")
    made = api.call("POST", "/tokens", headers, json={"name": "ci", "scopes": ["read"]})
    assert made.status_code == 201 and made.json["token"].startswith(f"dz_{made.json['id']}_")
    listed = api.call("GET", "/tokens", headers).json["items"]
    assert {t["name"] for t in listed} == {"test", "ci"}
    assert all("token" not in t and "hash" not in t for t in listed)
    other = api.user("bob")
    assert api.call("DELETE", f"/tokens/{made.json['id']}", other).status_code == 404


def test_session_login_cookie_and_csrf(api: Api) -> None:
    api.user("alice")
    answer = api.http.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    csrf = answer.json["csrf_token"]
    assert api.call("GET", "/auth/me").json["via"] == "session"
    body = {"package": {"apps": {}, "flow": {}}}
    refused = api.call("POST", "/workflows", json=body)
    assert refused.status_code == 403 and refused.json["error"]["details"] == {"reason": "csrf"}
    wrong = api.call("POST", "/workflows", {"X-CSRF-Token": "nope"}, json=body)
    assert wrong.status_code == 403
    assert api.call("POST", "/workflows", {"X-CSRF-Token": csrf}, json=body).status_code == 201
    assert api.call("POST", "/auth/logout", {"X-CSRF-Token": csrf}).status_code == 204
    api.http.set_cookie("dizest_session", "stale")  # a copied cookie is dead too
    assert api.call("GET", "/auth/me").status_code == 401


def test_logout_with_a_token_revokes_that_token_only(api: Api) -> None:
    """A read-only token may end itself (DELETE /tokens/<id> needs the run scope); the
    user's other tokens go on working."""
    mine, other = api.user("alice", scopes=("read",)), api.user("alice")
    assert api.call("GET", "/auth/me", mine).json["via"] == "token"
    assert api.call("POST", "/auth/logout", mine).status_code == 204
    assert api.call("GET", "/auth/me", mine).status_code == 401
    assert api.call("GET", "/auth/me", other).status_code == 200


def test_bearer_writes_need_no_csrf(api: Api) -> None:
    headers = api.user("alice")
    body = {"package": {"apps": {}, "flow": {}}}
    assert api.call("POST", "/workflows", headers, json=body).status_code == 201


def test_password_change_ends_sessions(api: Api) -> None:
    api.user("alice")
    csrf = api.login("alice")
    body = {"password": "another long one", "current_password": PASSWORD}
    headers = {"X-CSRF-Token": csrf}
    assert api.call("PUT", "/users/alice/password", headers, json=body).status_code == 204
    assert api.call("GET", "/auth/me").status_code == 401


def test_a_login_past_the_session_cap_ends_the_oldest_session(api: Api) -> None:
    accounts = api.services.accounts
    api.user("alice")
    api.user("bob")
    bobs = accounts.start_session("bob")
    older = [accounts.start_session("alice") for _ in range(MAX_SESSIONS)]
    api.login("alice")  # the cap plus one
    assert api.call("GET", "/auth/me").json["via"] == "session"  # the new one works
    with pytest.raises(InvalidCredentials):
        accounts.session_user(older[0])  # the oldest ended, and only it
    assert all(accounts.session_user(sid).username == "alice" for sid in older[1:])
    assert accounts.redis.scard(accounts.keys.user_sessions("alice")) == MAX_SESSIONS
    assert accounts.session_user(bobs).username == "bob"  # another user's are their own


def test_login_rate_limit_locks_after_five_failures(api: Api) -> None:
    api.user("alice")
    wrong = {"username": "alice", "password": "not the password"}
    codes = [api.http.post("/api/v1/auth/login", json=wrong).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    right = {"username": "alice", "password": PASSWORD}
    locked = api.http.post("/api/v1/auth/login", json=right)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert locked.json["error"]["code"] == "too_many_attempts"


def test_parallel_guesses_cannot_pass_the_limit_together(api: Api) -> None:
    api.user("alice")
    wrong = {"username": "alice", "password": "not the password"}
    barrier = threading.Barrier(20)

    def guess() -> int:
        http = api.app.test_client()
        barrier.wait()
        return http.post("/api/v1/auth/login", json=wrong).status_code

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda _: guess(), range(20)))
    assert sorted(codes) == [401] * 5 + [429] * 15


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/users"), ("POST", "/users"), ("DELETE", "/users/root")],
)
def test_admin_routes_refuse_users(api: Api, method: str, path: str) -> None:
    api.user("root", "admin")
    body = {"username": "x", "password": PASSWORD} if method == "POST" else None
    answer = api.call(method, path, api.user("alice"), json=body)
    assert answer.status_code == 403


def test_admin_manages_users_and_users_cannot_touch_others(api: Api) -> None:
    admin, alice = api.user("root", "admin"), api.user("alice")
    made = api.call("POST", "/users", admin, json={"username": "bob", "password": PASSWORD})
    assert made.status_code == 201 and made.json["role"] == "user"
    again = api.call("POST", "/users", admin, json={"username": "bob", "password": PASSWORD})
    assert again.status_code == 409
    weak = api.call("POST", "/users", admin, json={"username": "carl", "password": "short"})
    assert weak.status_code == 400
    for nul in ("\x00" * 12, "long enough\x00tail"):  # bcrypt reads up to the first NUL only
        made = api.call("POST", "/users", admin, json={"username": "carl", "password": nul})
        assert made.status_code == 400 and "NUL" in made.json["error"]["message"], made.json
        changed = api.call("PUT", "/users/bob/password", admin, json={"password": nul})
        assert changed.status_code == 400, changed.json
    assert (
        api.call("POST", "/auth/login", json={"username": "bob", "password": ""}).status_code == 401
    )
    body = {"password": "a new password"}
    assert api.call("PUT", "/users/bob/password", alice, json=body).status_code == 404
    assert api.call("PUT", "/users/bob/password", admin, json=body).status_code == 204
    own = api.call("PUT", "/users/alice/password", alice, json={**body, "current_password": "bad"})
    assert own.status_code == 401
    bare = api.call("PUT", "/users/alice/password", alice, json=body)  # forgot it: said so
    assert (
        bare.status_code == 400 and "current_password is required" in bare.json["error"]["message"]
    )
    assert api.call("DELETE", "/users/bob", admin).status_code == 204
    assert api.call("DELETE", "/users/bob", admin).status_code == 404
    assert api.call("DELETE", "/users/root", admin).status_code == 409


def test_a_plain_get_of_the_websocket_route_says_what_it_needs(api: Api) -> None:
    """A probe's plain GET got 'The browser (or proxy) sent a request that this server could
    not understand'; before any other check, the answer now names the upgrade and the SSE door."""
    alice = api.user("alice")
    answer = api.call("GET", "/runs/0123456789abcdef0123456789abcdef/ws", alice)
    assert answer.status_code == 400, answer.json
    assert "connect with 'Upgrade: websocket'" in answer.json["error"]["message"]
    assert api.call("GET", "/runs/x/ws").status_code == 401  # authentication still comes first
