"""Owns accounts: users, API tokens, browser sessions and login throttling, all kept in Redis.

Invariants:
- a password is stored only as a bcrypt hash; a token's or a session's secret only as its SHA-256
  digest. A token is shown once, at creation, as `dz_<id>_<secret>`.
- a token's key expires in Redis at the token's expiry and is deleted on revocation, and
  `authenticate_token` checks the expiry too: a revoked or expired token fails at once.
- a token's `admin` scope counts only while its owner is an admin.
- removing a user (`dizest_api.user_removal`) removes their tokens and sessions and retires their
  name in the same transaction: a retired name is never given again (`NameRetired`), since what
  is kept by owner name (runs, for their TTL) must not pass to someone else. Changing a password
  ends the user's sessions (tokens survive: they are revoked one by one).
- failed logins are counted per (username, ip) in a key whose TTL is the window; at
  `max_failures` the pair is locked until that key expires. A success clears the counter.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import bcrypt
import redis

from dizest_api.data.counted import add_within
from dizest_api.data.session_cap import SessionCap
from dizest_api.ids import new_id
from dizest_core.errors import AuthError, DizestError
from dizest_worker.client import WorkerSettings, pairs, redis_client, run_script
from dizest_worker.keys import Keys

ROLES = frozenset({"admin", "user"})
SCOPES = frozenset({"read", "run", "admin"})
USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
MAX_TOKEN_NAME = 200
TOKEN = re.compile(r"dz_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})")
MIN_PASSWORD = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores (bcrypt>=5 refuses) anything longer


class AccountError(DizestError):
    """An account operation was asked with bad data (bad name, weak password, bad scope)."""


class UserExists(AccountError):
    """A user with this name exists already."""


class NameRetired(UserExists):
    """The name belonged to a removed user; it is not given again."""


class UserNotFound(AccountError, LookupError):
    """No user with this name."""


class TokenNotFound(AccountError, LookupError):
    """No token with this id (or not one the caller owns)."""


class InvalidCredentials(AuthError):
    """Wrong username, password, token or session."""


class LoginLocked(AuthError):
    """Too many failed logins for this username from this address."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed logins; retry in {retry_after} s")


@dataclass(frozen=True)
class User:
    username: str
    role: str
    created_at: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def to_dict(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role, "created_at": self.created_at}


@dataclass(frozen=True)
class Token:
    id: str
    owner: str
    name: str
    scopes: frozenset[str]
    created_at: float
    expires_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True)
class NewToken:
    """A token just created, with the secret that is shown this one time only."""

    token: Token
    secret: str = field(repr=False)


def text_client(settings: WorkerSettings) -> redis.Redis:
    """A Redis client that returns str (accounts and workflows are text), riding out restarts."""
    return redis_client(settings, text=True)


# A token's hash, then its owner's (`Keys.user` is ARGV[1] .. name): one round trip for both.
_TOKEN_AND_OWNER = """
local token = redis.call('HGETALL', KEYS[1])
for i = 1, #token, 2 do
  if token[i] == 'owner' then return {token, redis.call('HGETALL', ARGV[1] .. token[i + 1])} end
end
return {token, {}}
"""


def _user(username: str, raw: dict[str, str]) -> User:
    return User(username, raw["role"], float(raw["created_at"]))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Accounts:
    """Users, tokens and sessions of one dizest installation (one key prefix)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        bcrypt_rounds: int = 12,
        session_ttl_s: int = 12 * 3600,
        max_failures: int = 5,
        window_s: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # A text client (`text_client`): replies are str, which redis-py's types cannot express.
        self.redis: Any = client
        self.keys, self.clock = keys, clock
        self.rounds, self.session_ttl_s = bcrypt_rounds, session_ttl_s
        self.max_failures, self.window_s = max_failures, window_s
        self._dummy_hash: bytes | None = None
        self._read_token = client.register_script(_TOKEN_AND_OWNER)
        self._sessions = SessionCap(client, keys)

    # -- users ---------------------------------------------------------------------------

    def add_user(self, username: str, password: str, role: str = "user") -> User:
        if not USERNAME.fullmatch(username):
            raise AccountError(f"username {username!r} must match {USERNAME.pattern}")
        if role not in ROLES:
            raise AccountError(f"role must be one of {sorted(ROLES)}")
        user = User(username, role, self.clock())
        fields = {"role": role, "password": self._hash(password), "created_at": user.created_at}

        def create(pipe: Any) -> None:
            if pipe.exists(self.keys.user(username)):
                raise UserExists(f"user {username!r} exists already")
            if pipe.hexists(self.keys.users_retired, username):
                raise NameRetired(
                    f"the name {username!r} belonged to a removed user and is not given again "
                    "(runs kept under it must not pass to someone else); choose another name"
                )
            pipe.multi()
            pipe.hset(self.keys.user(username), mapping=fields)
            pipe.sadd(self.keys.users, username)

        self.redis.transaction(create, self.keys.user(username), self.keys.users_retired)
        return user

    def get_user(self, username: str) -> User:
        raw = self.redis.hgetall(self.keys.user(username)) if USERNAME.fullmatch(username) else {}
        if not raw:
            raise UserNotFound(f"no user {username!r}")
        return _user(username, raw)

    def users(self) -> list[User]:
        names = sorted(self.redis.smembers(self.keys.users))
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.user(name))
        return [
            User(name, raw["role"], float(raw["created_at"]))
            for name, raw in zip(names, pipe.execute(), strict=True)
            if raw
        ]

    def set_password(self, username: str, password: str) -> None:
        """Change a password and end the user's sessions."""
        self.get_user(username)
        hashed = self._hash(password)

        def change(pipe: Any) -> None:
            if not pipe.exists(self.keys.user(username)):
                raise UserNotFound(f"no user {username!r}")
            sessions = pipe.smembers(self.keys.user_sessions(username))
            pipe.multi()
            pipe.hset(self.keys.user(username), "password", hashed)
            pipe.delete(self.keys.user_sessions(username), *map(self.keys.session, sessions))

        self.redis.transaction(change, self.keys.user(username), self.keys.user_sessions(username))

    def ensure_admin(self, password: str | None = None) -> str | None:
        """Create user `admin` if no admin exists; return the generated password, if one was."""
        if any(u.is_admin for u in self.users()):
            return None
        generated = None if password else secrets.token_urlsafe(18)
        try:
            self.add_user("admin", password or generated or "", role="admin")
        except UserExists:
            return None  # a user named admin exists with role user: leave it to a human
        return generated

    def login(self, username: str, password: str, ip: str) -> User:
        """Check a password, counting attempts per (username, ip); raise LoginLocked when over.

        The attempt is counted before the (slow) password check, so parallel guesses cannot
        all pass the limit; a success clears the count."""
        counter = self.keys.login_failures(username[:64], ip)
        pipe = self.redis.pipeline()
        pipe.set(counter, 0, ex=self.window_s, nx=True)
        pipe.incr(counter)
        pipe.ttl(counter)
        _, attempts, ttl = pipe.execute()
        if int(attempts) > self.max_failures:
            raise LoginLocked(max(1, int(ttl)))
        stored = (
            self.redis.hget(self.keys.user(username), "password")
            if USERNAME.fullmatch(username)
            else None
        )
        if not self._check(password, stored):
            raise InvalidCredentials("wrong username or password")
        self.redis.delete(counter)
        return self.get_user(username)

    def _hash(self, password: str) -> str:
        raw = password.encode()
        if len(password) < MIN_PASSWORD or len(raw) > MAX_PASSWORD_BYTES:
            raise AccountError(
                f"a password needs {MIN_PASSWORD} characters and at most {MAX_PASSWORD_BYTES} bytes"
            )
        if "\x00" in password:  # bcrypt stops at the first NUL: twelve NULs would be ""
            raise AccountError("a password may not contain a NUL character")
        return bcrypt.hashpw(raw, bcrypt.gensalt(self.rounds)).decode()

    def _check(self, password: str, stored: str | None) -> bool:
        raw = password.encode()
        if stored is None or len(raw) > MAX_PASSWORD_BYTES or b"\x00" in raw:
            if self._dummy_hash is None:  # spend the same time as a real check
                self._dummy_hash = bcrypt.hashpw(b"dummy-password", bcrypt.gensalt(self.rounds))
            bcrypt.checkpw(b"dummy-password", self._dummy_hash)
            return False
        return bcrypt.checkpw(raw, stored.encode())

    # -- tokens --------------------------------------------------------------------------

    def create_token(
        self, owner: str, name: str, scopes: Iterable[str], expires_in_s: float | None = None
    ) -> NewToken:
        user, wanted = self.get_user(owner), frozenset(scopes)
        if not wanted or wanted - SCOPES:
            raise AccountError(f"scopes must be a non-empty subset of {sorted(SCOPES)}")
        if "admin" in wanted and not user.is_admin:
            raise AccountError("only admins can hold tokens with the admin scope")
        if expires_in_s is not None and expires_in_s <= 0:
            raise AccountError("expires_in_s must be positive")
        if len(name) > MAX_TOKEN_NAME:  # a label in lists (a 9 MB one was stored)
            raise AccountError(f"a token name has at most {MAX_TOKEN_NAME} characters")
        now = self.clock()
        expires = None if expires_in_s is None else now + expires_in_s
        token = Token(new_id(), owner, name, wanted, now, expires)
        secret = secrets.token_urlsafe(32)
        fields = {
            "hash": digest(secret),
            "owner": owner,
            "name": name,
            "scopes": " ".join(sorted(wanted)),
            "created_at": now,
            "expires_at": "" if expires is None else expires,
        }

        def write(pipe: Any) -> None:
            pipe.hset(self.keys.token(token.id), mapping=fields)
            if expires is not None:
                pipe.pexpireat(self.keys.token(token.id), int(expires * 1000) + 1)
            pipe.sadd(self.keys.user_tokens(owner), token.id)

        index = self.keys.user_tokens(owner)
        add_within(self.redis, index, "tokens", f"user {owner}", write, self.keys.token)
        return NewToken(token, f"dz_{token.id}_{secret}")

    def tokens(self, owner: str) -> list[Token]:
        ids = sorted(self.redis.smembers(self.keys.user_tokens(owner)))
        pipe = self.redis.pipeline(transaction=False)
        for token_id in ids:
            pipe.hgetall(self.keys.token(token_id))
        found = [_token(i, raw) for i, raw in zip(ids, pipe.execute(), strict=True) if raw]
        return [t for t in found if t.expires_at is None or t.expires_at > self.clock()]

    def revoke_token(self, token_id: str, owner: str | None = None) -> None:
        """Delete a token (only `owner`'s, unless owner is None); it stops working at once."""
        raw = self.redis.hgetall(self.keys.token(token_id)) if len(token_id) < 64 else {}
        if not raw or (owner is not None and raw["owner"] != owner):
            raise TokenNotFound(f"no token {token_id!r}")
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.token(token_id))
        pipe.srem(self.keys.user_tokens(raw["owner"]), token_id)
        pipe.execute()

    def authenticate_token(self, presented: str) -> tuple[User, Token]:
        match = TOKEN.fullmatch(presented)
        raw, owner = self._token_and_owner(match.group(1)) if match else ({}, {})
        if not match or not raw or not hmac.compare_digest(raw["hash"], digest(match.group(2))):
            raise InvalidCredentials("invalid or revoked token")
        token = _token(match.group(1), raw)
        if token.expires_at is not None and token.expires_at <= self.clock():
            raise InvalidCredentials("token expired")
        if not owner or not USERNAME.fullmatch(token.owner):  # as get_user would find it
            raise InvalidCredentials("token owner no longer exists")
        return _user(token.owner, owner), token

    def _token_and_owner(self, token_id: str) -> tuple[dict[str, str], dict[str, str]]:
        """The token's hash and its owner's user hash, in one round trip (every bearer request
        needs both)."""
        keys, args = [self.keys.token(token_id)], [self.keys.user("")]
        token, owner = run_script(self.redis, self._read_token, keys, args)  # every bearer request
        return pairs(token), pairs(owner)

    # -- sessions ------------------------------------------------------------------------

    def start_session(self, username: str) -> str:
        """A new session id for the cookie; only its digest is stored. Past MAX_SESSIONS, the
        user's oldest sessions end (`session_cap`)."""
        sid = secrets.token_urlsafe(32)
        self._sessions.start(username, digest(sid), self.clock(), self.session_ttl_s)
        return sid

    def session_user(self, sid: str) -> User:
        name = self.redis.hget(self.keys.session(digest(sid)), "user") if sid else None
        if name is None:
            raise InvalidCredentials("session expired or ended")
        try:
            return self.get_user(name)
        except UserNotFound:
            raise InvalidCredentials("session user no longer exists") from None

    def end_session(self, sid: str) -> None:
        key = self.keys.session(digest(sid))
        name = self.redis.hget(key, "user")
        pipe = self.redis.pipeline()
        pipe.delete(key)
        if name:
            pipe.srem(self.keys.user_sessions(name), digest(sid))
        pipe.execute()


def _token(token_id: str, raw: dict[str, str]) -> Token:
    return Token(
        token_id,
        raw["owner"],
        raw["name"],
        frozenset(raw["scopes"].split()),
        float(raw["created_at"]),
        float(raw["expires_at"]) if raw.get("expires_at") else None,
    )
