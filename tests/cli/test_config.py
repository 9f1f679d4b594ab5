"""The CLI config file: TOML that tomllib reads back, written 0600 whatever the umask, and which
server and token a command resolves to."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from dizest_cli import config
from dizest_cli.config import Config, ConfigFileError, Profile, resolve


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path), **extra}


def test_awkward_strings_round_trip_through_tomllib(tmp_path: Path) -> None:
    odd = 'a "quoted" \\ back\tslash\n\x01\x7f é ☃ 😀'
    stored = Config({"p.1": Profile("p.1", "http://h:1", odd, odd, "id")}, "p.1")
    path = tmp_path / "dizest" / "config.toml"
    config.save(stored, path)
    assert config.load(path) == stored


def test_the_file_is_0600_in_a_0700_directory_whatever_the_umask(tmp_path: Path) -> None:
    path = config.config_path(env_for(tmp_path))
    previous = os.umask(0)
    try:
        config.save(Config({"a": Profile("a", "http://h", "t")}, "a"), path)
        config.save(Config({"b": Profile("b", "http://h", "t")}, "b"), path)  # replaces
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temp file left


def test_precedence_and_a_token_never_goes_to_another_server(tmp_path: Path) -> None:
    work, home = Profile("work", "http://work:1", "tw"), Profile("home", "http://home:2", "th")
    config.save(Config({"work": work, "home": home}, "work"), config.config_path(env_for(tmp_path)))
    default = resolve(None, None, env_for(tmp_path))
    assert default is not None and (default.server, default.token) == ("http://work:1", "tw")
    chosen = resolve(None, "home", env_for(tmp_path))
    assert chosen is not None and chosen.token == "th"
    found = resolve("http://home:2/", None, env_for(tmp_path))
    assert found is not None and (found.server, found.token) == ("http://home:2", "th")
    elsewhere = resolve(None, None, env_for(tmp_path, DIZEST_SERVER="http://other:3"))
    assert elsewhere is not None and elsewhere.token is None  # not work's token
    given = resolve(None, None, env_for(tmp_path, DIZEST_TOKEN="te"))
    assert given is not None and (given.server, given.token) == ("http://work:1", "te")
    with pytest.raises(ConfigFileError, match=r"no profile 'nope'.*home, work"):
        resolve(None, "nope", env_for(tmp_path))
    assert resolve(None, None, env_for(tmp_path / "empty")) is None


def test_bad_files_and_names_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[profiles.x]\nserver = 1\n")
    with pytest.raises(ConfigFileError, match="profile 'x' must be a table of strings"):
        config.load(path)
    path.write_text("not toml = = 1")
    with pytest.raises(ConfigFileError, match=re.escape(str(path))):
        config.load(path)
    with pytest.raises(ConfigFileError, match="profile name"):
        config.check_name("a b")
    for name in ("prod\n", "\u0661"):  # `$` took a final newline, `\d`-like classes other digits
        with pytest.raises(ConfigFileError, match="profile name"):
            config.check_name(name)
    with pytest.raises(ConfigFileError, match="not an http"):
        config.check_server("ftp://x")
