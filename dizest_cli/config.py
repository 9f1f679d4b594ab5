"""The per-user CLI configuration: the servers a user logged in to (profiles) and their tokens.

The file is `$XDG_CONFIG_HOME/dizest/config.toml` (default `~/.config/dizest/config.toml`):

    default = "work"

    [profiles.work]
    server = "https://dizest.example.com"
    token = "dz_..."
    username = "alice"
    token_id = "..."

Invariants:
- It holds API tokens, so it is never readable by anyone else: the directory is created 0700, and
  the file is written whole to a temporary file (0600 from its creation, `mkstemp`) that then
  replaces it; a reader sees the old file or the new one, never a part or a wider mode.
- Read with the standard library's `tomllib`. Written by the tiny writer below rather than as
  JSON: the file is meant to be read and edited by people (TOML, like pip's and ruff's), and it
  only ever holds one table of tables of strings, which needs no TOML library.
- Which server and token a command uses (`resolve`): `--server`, else DIZEST_SERVER, else the
  profile's (`--profile`, else DIZEST_PROFILE, else the default profile). The token is
  DIZEST_TOKEN, else the token of a profile for that very server: a token stored for one server
  is never sent to another.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_PROFILE = "default"
FIELDS = ("server", "token", "username", "token_id")


class ConfigFileError(ValueError):
    """The config file cannot be used (malformed, or a profile that does not exist)."""


@dataclass(frozen=True)
class Profile:
    """One server and the credentials stored for it."""

    name: str
    server: str
    token: str = field(repr=False)
    username: str = ""
    token_id: str = ""


@dataclass
class Config:
    """The whole file: profiles by name, and which one commands use by default."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    default: str | None = None


@dataclass(frozen=True)
class Remote:
    """What a command talks to: the server, the token (None: not logged in) and where the
    token came from (for messages)."""

    server: str
    token: str | None = field(repr=False)
    source: str


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "dizest" / "config.toml"


def check_name(name: str) -> str:
    if not PROFILE_NAME.fullmatch(name):
        raise ConfigFileError(
            f"profile name {name!r} must be 1-64 letters, digits, '_', '.' or '-'"
        )
    return name


def check_server(url: str) -> str:
    """`url` without a trailing slash; it must be an http(s) URL with a host."""
    server = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", server):
        raise ConfigFileError(f"server {url!r} is not an http:// or https:// URL")
    return server


def load(path: Path) -> Config:
    """The config at `path` (empty when there is no file)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(f"{path}: {exc}") from None
    profiles: dict[str, Profile] = {}
    tables = raw.get("profiles", {})
    if not isinstance(tables, dict):
        raise ConfigFileError(f"{path}: 'profiles' must be a table")
    for name, table in tables.items():
        if not isinstance(table, dict) or not all(
            isinstance(table.get(k, ""), str) for k in FIELDS
        ):
            raise ConfigFileError(f"{path}: profile {name!r} must be a table of strings")
        if not table.get("server") or not table.get("token"):
            raise ConfigFileError(f"{path}: profile {name!r} needs a server and a token")
        profiles[name] = Profile(name, **{k: table[k] for k in FIELDS if k in table})
    default = raw.get("default")
    if default is not None and not isinstance(default, str):
        raise ConfigFileError(f"{path}: 'default' must be a profile name")
    return Config(profiles, default)


def _string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def dumps(config: Config) -> str:
    lines = ["# dizest CLI profiles (dizest login / logout); holds API tokens: keep it 0600", ""]
    if config.default is not None:
        lines += [f"default = {_string(config.default)}", ""]
    for name, profile in sorted(config.profiles.items()):
        lines.append(f"[profiles.{_string(name)}]")
        for key in FIELDS:
            value = getattr(profile, key)
            if value:
                lines.append(f"{key} = {_string(value)}")
        lines.append("")
    return "\n".join(lines)


def save(config: Config, path: Path) -> None:
    """Replace the file atomically with a 0600 one (directory created 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(dumps(config))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve(
    server: str | None, profile: str | None, environ: Mapping[str, str] | None = None
) -> Remote | None:
    """The server and token a command uses (see the module docstring); None when no server is
    named anywhere. Raises ConfigFileError for a malformed file or an unknown profile."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    config = load(path)
    name = profile or env.get("DIZEST_PROFILE") or config.default
    chosen = config.profiles.get(name) if name else None
    if name and chosen is None and (profile or env.get("DIZEST_PROFILE")):
        known = ", ".join(sorted(config.profiles)) or "none"
        raise ConfigFileError(f"no profile {name!r} in {path} (profiles: {known})")
    url = server or env.get("DIZEST_SERVER") or (chosen.server if chosen else None)
    if not url:
        return None
    url = check_server(url)
    if env.get("DIZEST_TOKEN"):
        return Remote(url, env["DIZEST_TOKEN"], "DIZEST_TOKEN")
    candidates = [chosen] if chosen else []
    candidates += [p for _, p in sorted(config.profiles.items()) if p is not chosen]
    for found in candidates:
        if found is not None and found.server == url:
            return Remote(url, found.token, f"profile {found.name!r} in {path}")
    return Remote(url, None, "")
