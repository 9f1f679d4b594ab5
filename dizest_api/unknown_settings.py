"""DIZEST_* variables that nothing reads, said when `dizest serve` or `dizest worker` starts.

A setting's name is its field's (`dizest_core.envconfig`); a misspelt one, or one renamed
(`DIZEST_USER_UPLOADS` became `DIZEST_USER_BODIES`), would otherwise be ignored without a word
and its default used: an operator who lowered a limit would never know. Said, not refused: a
deployment may share one environment between versions, and a variable of a newer one must not
stop an older server. Every process of a deployment reads from the same set of names, so a
worker knows the API's too (docker-compose gives both one environment).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping

from dizest_core import envconfig

# Read by the CLI and its client (`dizest_cli.config`), and by docker-compose.yml: not settings.
OTHER_NAMES = ("DIZEST_TOKEN", "DIZEST_SERVER", "DIZEST_PROFILE", "DIZEST_REDIS_PASSWORD")
# Settings that have had another name, by their old one.
RENAMED = {"DIZEST_USER_UPLOADS": "DIZEST_USER_BODIES"}


def known_names() -> frozenset[str]:
    """Every DIZEST_* variable a dizest process reads."""
    from dizest_api.automation.settings import AutomationSettings
    from dizest_api.gunicorn_app import GunicornSettings
    from dizest_api.settings import ApiSettings

    classes = (ApiSettings, AutomationSettings, GunicornSettings)
    return frozenset(name for cls in classes for name in envconfig.names(cls)) | set(OTHER_NAMES)


def unknown(environ: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """A sentence for each DIZEST_* variable of `environ` not in `known`, naming the closest
    known one when there is one."""
    names = set(known)
    cut = len(envconfig.PREFIX)  # compared without it, which every name shares
    tails = sorted(n[cut:] for n in names)
    said = []
    for name in sorted(k for k in environ if k.upper().startswith(envconfig.PREFIX)):
        if name in names:
            continue
        near = difflib.get_close_matches(name[cut:].upper(), tails, n=1, cutoff=0.7)
        if name in RENAMED:
            hint = f" (it is {RENAMED[name]} now)"
        else:
            hint = f" (did you mean {envconfig.PREFIX}{near[0]}?)" if near else ""
        said.append(f"{name} is not a dizest setting: ignored{hint}")
    return said


def warn_unknown(say: Callable[[str], None], environ: Mapping[str, str] | None = None) -> None:
    for sentence in unknown(os.environ if environ is None else environ, known_names()):
        say(f"warning: {sentence}")
