"""Webhooks: URLs called when a run ends, registered for one workflow or for all of a user's
runs. A hook fires for runs its owner started (a workflow hook: runs of that workflow), so a
hook never tells one user about another's runs; an admin's workflow hook fires for every run
of the workflow.

Invariants:
- A URL is http(s), carries no credentials, and (unless the operator set
  DIZEST_WEBHOOK_ALLOW_PRIVATE) every address its host resolves to is public: loopback, private,
  link-local (cloud metadata: 169.254.169.254), multicast, reserved and unspecified addresses are
  refused. The check runs at registration and again at every delivery (the name may point
  elsewhere by then), which connects to an address that check allowed, never resolving the
  name again (`dizest_api.automation.delivery`).
- The secret signs each body (`X-Dizest-Signature: sha256=<HMAC-SHA256 of the body>`); it is
  returned once, when the hook is made, and never logged.
- Each delivery attempt is logged (status code or error, duration), newest first, capped.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from dizest_api.automation import delivery
from dizest_api.automation.delivery import Address
from dizest_api.automation.keys import AutoKeys
from dizest_api.data.counted import add_within
from dizest_api.ids import new_id
from dizest_core.errors import DizestError, InputError

LOG = 100  # delivery records kept per hook
SIGNATURE_HEADER = "X-Dizest-Signature"


# what a request line cannot carry (http.client sends it as ASCII): percent-encode it, and
# give a host of another script in its IDNA form (xn--...)
_UNSENDABLE = re.compile(r"[^\x21-\x7e]")


class HookNotFound(DizestError, LookupError):
    """No webhook with this id."""


class UrlRefused(InputError):
    """A webhook URL that is not http(s) or points at an address the operator did not allow."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__("invalid_url", message, {"url": url})


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(url: str, allow_private: bool, owner: str, timeout_s: float) -> str:
    """`url` if a webhook may call it; UrlRefused saying why not. Its host is resolved within
    `timeout_s`, and at most `delivery.STALLED` resolutions of `owner`'s stay running past
    theirs: a name server that never answers must not hold the API's threads."""
    try:
        delivery.within(
            lambda: checked_addresses(url, allow_private, resolve=not allow_private),
            timeout_s,
            owner,
        )
    except delivery.DeadlinePassed as exc:
        raise UrlRefused(f"cannot resolve the url's host: {exc}", url) from None
    return url.strip()


def checked_addresses(url: str, allow_private: bool, resolve: bool = True) -> list[Address]:
    """The addresses `url`'s host resolves to, every one of them allowed (a delivery connects
    to one of these, never resolving the name again); UrlRefused saying why not. Without
    `resolve`, only the URL's form is checked (none are returned)."""
    if not isinstance(url, str) or len(url) > 2000:
        raise UrlRefused("url must be a string of at most 2000 characters", str(url)[:100])
    if _UNSENDABLE.search(url.strip()):  # every delivery would fail (http.client refuses it)
        raise UrlRefused(
            "url must be printable ASCII: no spaces, no control characters, no other script's"
            " letters (percent-encode them; a host in its xn-- form)",
            url,
        )
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # "http://[::1", a bracketed host that is no IPv6 address
        raise UrlRefused(f"bad url: {exc}", url) from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused(f"url must be http or https, not {parts.scheme or 'none'!r}", url)
    if parts.username or parts.password:
        raise UrlRefused("url must not carry credentials; the signature authenticates", url)
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range
        raise UrlRefused(f"bad url: {exc}", url) from None
    if not host:
        raise UrlRefused("url has no host", url)
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"cannot resolve {host!r}: {exc}", url) from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private and not all(_public(address) for address in addresses):
        raise UrlRefused(  # which address is not said: it would map internal names
            f"{host!r} is or resolves to a loopback, private, link-local or reserved address "
            "(an operator may allow those with DIZEST_WEBHOOK_ALLOW_PRIVATE=true)",
            url,
        )
    return addresses


# ranges Python's `is_global` calls global that are not anyone's public host: IPv6 site-local
# (deprecated, still routed inside some networks), the IETF's protocol block, the IPv6
# documentation block of RFC 9637, and SRv6 segment ids
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(n) for n in ("fec0::/10", "192.0.0.0/24", "3fff::/20", "5f00::/16")
)


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast: not loopback, private, shared (100.64/10), link-local
    (169.254/16, where cloud metadata answers), site-local, multicast, reserved or
    unspecified."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:  # the IPv4 address it reaches decides
            address = inner
    return (
        address.is_global
        and not address.is_multicast
        and not any(address in net for net in _NOT_PUBLIC if net.version == address.version)
    )


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: where a NAT64 gateway routes
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, the IPv4 in the last 32 bits
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # the deprecated IPv4-compatible ::a.b.c.d
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT's IPv4-translated ::ffff:0:a.b.c.d


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and may reach: mapped (::ffff:a.b.c.d), NAT64,
    IPv4-compatible, SIIT-translated (::ffff:0:a.b.c.d), 6to4 (2002:ab:cd::) or Teredo's
    client."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if (
        address in _NAT64
        or address in _LOCAL_NAT64
        or address in _TRANSLATED
        or (address in _COMPATIBLE and int(address) > 1)
    ):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return address.teredo[1] if address.teredo is not None else None


@dataclass(frozen=True)
class Hook:
    id: str
    url: str
    owner: str
    workflow_id: str | None
    created_at: float
    secret: str = ""  # only filled when read for a delivery, or once at creation

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "owner": self.owner,
            "workflow_id": self.workflow_id,
            "created_at": self.created_at,
        }


class HookStore:
    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis, self.keys = redis, AutoKeys(prefix)

    def create(self, owner: str, url: str, workflow_id: str | None) -> Hook:
        hook = Hook(new_id(), url, owner, workflow_id, time.time(), _secret())
        scope = (
            self.keys.workflow_hooks(workflow_id) if workflow_id else self.keys.user_hooks(owner)
        )
        fields = {
            "url": url,
            "owner": owner,
            "workflow_id": workflow_id or "",
            "created_at": str(hook.created_at),
            "secret": hook.secret,
        }

        def write(pipe: Any) -> None:
            pipe.hset(self.keys.hook(hook.id), mapping=fields)
            pipe.sadd(scope, hook.id)
            pipe.zadd(self.keys.owned_hooks(owner), {hook.id: int(hook.created_at * 1000)})

        owned = self.keys.owned_hooks(owner)  # ids of hooks gone since are not counted
        add_within(self.redis, owned, "webhooks", f"user {owner}", write, self.keys.hook)
        return hook

    def get(self, hook_id: str, with_secret: bool = False) -> Hook:
        raw = self.redis.hgetall(self.keys.hook(hook_id))
        if not raw:
            raise HookNotFound(f"no webhook {hook_id!r}")
        return _hook(hook_id, raw, with_secret)

    def owned(self, owner: str) -> list[Hook]:
        ids = self.redis.zrevrange(self.keys.owned_hooks(owner), 0, -1)
        return [h for h in (self._maybe(i) for i in ids) if h is not None]

    def for_run(self, owner: str, workflow_id: str | None) -> list[Hook]:
        """The hooks a run of `owner` (of stored workflow `workflow_id`) fires, with secrets."""
        ids = set(self.redis.smembers(self.keys.user_hooks(owner)))
        if workflow_id:
            ids |= set(self.redis.smembers(self.keys.workflow_hooks(workflow_id)))
        found = [h for h in (self._maybe(i, True) for i in sorted(ids)) if h is not None]
        return [h for h in found if h.owner == owner or (h.workflow_id and self._admin(h.owner))]

    def delete(self, hook_id: str) -> None:
        hook = self.get(hook_id)
        scope = (
            self.keys.workflow_hooks(hook.workflow_id)
            if hook.workflow_id
            else self.keys.user_hooks(hook.owner)
        )
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.hook(hook_id), self.keys.hook_log(hook_id))
        pipe.srem(scope, hook_id)
        pipe.zrem(self.keys.owned_hooks(hook.owner), hook_id)
        pipe.execute()

    def delete_for_workflow(self, workflow_id: str) -> None:
        for hook_id in self.redis.smembers(self.keys.workflow_hooks(workflow_id)):
            try:
                self.delete(hook_id)
            except HookNotFound:
                self.redis.srem(self.keys.workflow_hooks(workflow_id), hook_id)

    def log(self, hook_id: str, item: Mapping[str, Any]) -> None:
        pipe = self.redis.pipeline()
        pipe.lpush(self.keys.hook_log(hook_id), json.dumps(dict(item)))
        pipe.ltrim(self.keys.hook_log(hook_id), 0, LOG - 1)
        pipe.execute()

    def deliveries(self, hook_id: str, limit: int = LOG) -> list[dict[str, Any]]:
        return [json.loads(r) for r in self.redis.lrange(self.keys.hook_log(hook_id), 0, limit - 1)]

    def _maybe(self, hook_id: str, with_secret: bool = False) -> Hook | None:
        raw = self.redis.hgetall(self.keys.hook(hook_id))
        return _hook(hook_id, raw, with_secret) if raw else None

    def _admin(self, username: str) -> bool:
        from dizest_worker.keys import Keys

        return bool(self.redis.hget(Keys(self.keys.prefix).user(username), "role") == "admin")


def _secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _hook(hook_id: str, raw: Mapping[str, str], with_secret: bool) -> Hook:
    return Hook(
        hook_id,
        raw["url"],
        raw["owner"],
        raw.get("workflow_id") or None,
        float(raw["created_at"]),
        raw["secret"] if with_secret else "",
    )
