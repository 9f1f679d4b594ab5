"""Settings from DIZEST_* variables and back (`dizest_core.envconfig`): the reader and the writer
are derived from the same fields, so `from_env(to_env(s)) == s` for every settings value a reader
can produce, and a value no text can carry is refused rather than changed."""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dizest_api.automation.settings import AutomationSettings
from dizest_api.gunicorn_app import GunicornSettings
from dizest_api.settings import ApiSettings
from dizest_core import envconfig
from dizest_core.cgroups import PID_MAX
from dizest_core.errors import ConfigError
from dizest_core.sandbox import Policy, slot_uid
from dizest_core.settings import MAX_FLOW_ID, MAX_FLOW_UID_BASE, MAX_MEMORY_MB, UID_STRIDE, Settings
from dizest_worker.settings import WorkerSettings

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORD = st.from_regex(r"[A-Za-z0-9_.@:+/-]{1,12}", fullmatch=True)
PATH = st.lists(st.from_regex(r"[a-z0-9_.-]{1,8}", fullmatch=True), min_size=1, max_size=3).map(
    lambda parts: os.path.abspath("/" + "/".join(parts))
)
# values the fields' own checks (__post_init__) allow; every other field is drawn from its type
# and what its metadata says it allows
CHOSEN: dict[str, st.SearchStrategy[Any]] = {
    "inline_max_bytes": st.integers(1, 1 << 24),
    "max_output_bytes": st.integers(1 << 25, 1 << 40),  # at least twice inline_max_bytes
    "redis_url": WORD.map(lambda w: f"redis://:{w}@127.0.0.1:6379/1"),
    "secret_key": st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=16),
    "bcrypt_rounds": st.integers(4, 31),
    "heartbeat_s": st.floats(0.1, 300),
    "flow_cpus_max": st.none() | st.just(4096.0),  # not below flow_cpus
    "memory_limit_mb_max": st.none() | st.just(MAX_MEMORY_MB),  # not below memory_limit_mb
    "max_request_bytes": st.integers(1024, 10**6),
    "max_upload_bytes": st.integers(10**6, 10**9),
    "sweep_window_s": st.integers(60, 10**6),
}


def _value(field: dataclasses.Field[Any], hint: Any) -> st.SearchStrategy[Any]:
    if field.name in CHOSEN:
        return CHOSEN[field.name]
    if isinstance(hint, types.UnionType):  # X | None
        (inner,) = (a for a in typing.get_args(hint) if a is not type(None))
        return st.none() | _value(field, inner)
    if dataclasses.is_dataclass(hint):
        return instances(typing.cast(type, hint))
    opts, allowed = field.metadata.get("env", {}), field.metadata.get("allowed")
    listed = typing.get_origin(hint) is tuple
    if isinstance(allowed, envconfig.OneOf) and not listed:
        return st.sampled_from(allowed.values)
    if isinstance(allowed, envconfig.Matching) and not listed:
        return st.from_regex(allowed.pattern, fullmatch=True)
    if hint is bool:
        return st.booleans()
    if hint is int:
        low = int(allowed.low) + allowed.strict
        return st.integers(low, max(low, min(int(allowed.high), 2**40)))
    if hint is float:
        high = min(allowed.high, 1e9)
        return st.floats(allowed.low, high, exclude_min=allowed.strict)
    if hint is str:
        return PATH if opts.get("path") else st.text(st.characters(min_codepoint=32), min_size=1)
    item = PATH if opts.get("path") else WORD
    if isinstance(allowed, envconfig.Matching):  # a list whose items are checked each
        item = st.from_regex(allowed.pattern, fullmatch=True)
    sep, trim, empty = opts.get("sep", ","), opts.get("trim", ""), opts.get("empty")
    item = item.filter(
        lambda text: sep not in text and not text.endswith(trim or "\0") and text != empty
    )
    empty_ok = opts.get("empty") is not None or envconfig._read_back(field, hint, "") == ()
    return st.lists(item, min_size=0 if empty_ok else 1, max_size=4).map(tuple)


def instances(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _value(f, hints[f.name]) for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


@PROPS
@given(instances(ApiSettings))
def test_api_settings_come_back_from_their_own_variables(value: ApiSettings) -> None:
    assert ApiSettings.from_env(envconfig.to_env(value)) == value


@PROPS
@given(instances(AutomationSettings))
def test_automation_settings_come_back_from_their_own_variables(value: Any) -> None:
    assert AutomationSettings.from_env(envconfig.to_env(value)) == value


def test_a_child_environment_overrides_every_variable_of_the_parent() -> None:
    """`{**os.environ, **to_env(s)}` gives the child `s`, whatever DIZEST_* the parent had:
    None is written as an empty (unset) variable, not left out."""
    parent = {"DIZEST_FLOW_TIMEOUT": "5", "DIZEST_SANDBOX_HIDE": "/secret", "DIZEST_PREFIX": "x"}
    value = WorkerSettings(prefix="dzchild", engine=Settings(flow_timeout=None))
    assert WorkerSettings.from_env({**parent, **envconfig.to_env(value)}) == value


@pytest.mark.parametrize(
    "value",
    [
        Settings(preload=("a,b",)),  # the separator inside an item
        Settings(plugin_paths=()),  # empty, but the default is not and no text says "empty"
        Settings(cache_dir=""),  # an empty variable is None
        WorkerSettings(artifact_dir="relative/dir"),  # read back as an absolute path
    ],
)
def test_a_value_no_variable_can_carry_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="has no text"):
        envconfig.to_env(value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DIZEST_LEASE_S": "nan"}, "DIZEST_LEASE_S='nan': expected a finite number"),
        ({"DIZEST_CONCURRENCY": "two"}, "DIZEST_CONCURRENCY='two': invalid literal"),
        ({"DIZEST_COOKIE_SECURE": "maybe"}, "DIZEST_COOKIE_SECURE='maybe': expected true or false"),
    ],
)
def test_a_malformed_variable_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ApiSettings.from_env({"DIZEST_SECRET_KEY": "k" * 16, **env})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # setrlimit took no such number: every flow ended "worker lost"
        ({"DIZEST_MAX_PIDS": "9" * 23}, f"DIZEST_MAX_PIDS must be from 1 to {PID_MAX}, not 9999"),
        ({"DIZEST_MAX_LOG_ENTRIES": "-1"}, "DIZEST_MAX_LOG_ENTRIES must be from 0 to 9223372036"),
        ({"DIZEST_FLOW_UID_BASE": "0"}, "DIZEST_FLOW_UID_BASE must be from 65536 to 4026531839"),
        ({"DIZEST_FLOW_UID_BASE": "-1"}, "DIZEST_FLOW_UID_BASE must be from 65536 to"),
        ({"DIZEST_FLOW_UID_BASE": "4026531840"}, "DIZEST_FLOW_UID_BASE must be from 65536 to"),
        ({"DIZEST_FLOW_GID": "-1"}, "DIZEST_FLOW_GID must be from 65536 to 4294967294, not -1"),
        ({"DIZEST_MAX_INPUT_STRING": "-1"}, "DIZEST_MAX_INPUT_STRING must be from 1 to"),
        ({"DIZEST_MAX_INPUT_KEYS": "-1"}, "DIZEST_MAX_INPUT_KEYS must be from 1 to"),
        ({"DIZEST_MAX_LOG_BYTES": "-1"}, "DIZEST_MAX_LOG_BYTES must be from 0 to"),
        ({"DIZEST_MAX_RENDER_BYTES": "-1"}, "DIZEST_MAX_RENDER_BYTES must be from 0 to"),
        ({"DIZEST_MAX_PREVIEW_BYTES": "-1"}, "DIZEST_MAX_PREVIEW_BYTES must be from 0 to"),
        (
            {"DIZEST_MAX_FILE_MB": str(1 << 44)},
            "DIZEST_MAX_FILE_MB must be from 1 to 8796093022207",
        ),
        ({"DIZEST_TMP_MB": "0"}, f"DIZEST_TMP_MB must be from 1 to {MAX_MEMORY_MB}, not 0"),
        (
            {"DIZEST_RETRY_BACKOFF_S": "1e300"},
            "DIZEST_RETRY_BACKOFF_S must be from 0 to 3153600000",
        ),
        (
            {"DIZEST_FLOW_TIMEOUT": "0"},
            "DIZEST_FLOW_TIMEOUT must be above 0 and at most 3153600000",
        ),
        ({"DIZEST_NETWORK": "lan"}, "DIZEST_NETWORK must be one of none, egress, full, not 'lan'"),
        # Redis's Lua took no such TTL ("value is not an integer"): every submit failed
        ({"DIZEST_TTL_S": "1" + "0" * 30}, "DIZEST_TTL_S must be from 1 to 3153600000, not 1000"),
        ({"DIZEST_STREAM_MAXLEN": "0"}, "DIZEST_STREAM_MAXLEN must be from 1 to"),  # logs lost
        ({"DIZEST_LEASE_S": "-1"}, "DIZEST_LEASE_S must be above 0 and at most 3153600000"),
        ({"DIZEST_LOCAL_SLOTS": "65"}, "DIZEST_LOCAL_SLOTS must be from 1 to 64, not 65"),
        ({"DIZEST_SESSION_TTL_S": "-1"}, "DIZEST_SESSION_TTL_S must be from 1 to 3153600000"),
        ({"DIZEST_LOGIN_MAX_FAILURES": "-1"}, "DIZEST_LOGIN_MAX_FAILURES must be from 1 to"),
        ({"DIZEST_LOGIN_WINDOW_S": "-1"}, "DIZEST_LOGIN_WINDOW_S must be from 1 to 3153600000"),
        ({"DIZEST_QUEUE": " "}, "DIZEST_QUEUE must be a queue name (1-100 of A-Z a-z 0-9 _ . @ -"),
        ({"DIZEST_QUEUE": "x.automation"}, "DIZEST_QUEUE must be a queue name"),  # beat's own
        ({"DIZEST_WORKER_NAME": " "}, "DIZEST_WORKER_NAME must be 1-255 visible ASCII characters"),
        # each item of a list is checked: a wildcard over a whole top-level domain, a URL
        ({"DIZEST_UI_CDN_HOSTS": "unpkg.com,*.org"}, "DIZEST_UI_CDN_HOSTS must be host names"),
        ({"DIZEST_UI_CDN_HOSTS": "https://x.org"}, "or none, not 'https://x.org'"),
        ({"DIZEST_UI_CDN_HOSTS": "x.org:65536"}, "DIZEST_UI_CDN_HOSTS must be host names"),
        ({"DIZEST_UI_CDN_HOSTS": "*"}, "DIZEST_UI_CDN_HOSTS must be host names"),
    ],
)
def test_a_value_out_of_its_range_is_refused_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ApiSettings.from_env({"DIZEST_SECRET_KEY": "k" * 16, **env})


def test_a_value_out_of_range_is_refused_however_the_settings_are_made() -> None:
    with pytest.raises(ConfigError, match="DIZEST_LEASE_S must be above 0 and at most"):
        WorkerSettings(lease_s=float("inf"))  # no variable carries it, and none may be given
    with pytest.raises(ConfigError, match="DIZEST_SWEEP_WINDOW_S must be from 60 to"):
        AutomationSettings.from_env({"DIZEST_SWEEP_WINDOW_S": "59"})


def test_flow_uids_stay_inside_the_range_their_bounds_allow() -> None:
    """The highest base the bounds allow gives the last slot of the last pid the highest id;
    one more and it would be 2**32 - 1, which setresuid reads as "keep the current uid"."""
    top = Settings(flow_uid_base=MAX_FLOW_UID_BASE, flow_gid=MAX_FLOW_ID, max_pids=PID_MAX)
    assert slot_uid(Policy(uid_base=top.flow_uid_base), PID_MAX - 1, UID_STRIDE - 1) == MAX_FLOW_ID
    assert Settings(flow_uid_base=1 << 16, flow_gid=1 << 16).flow_uid_base == 65536


def test_a_number_must_declare_its_range() -> None:
    @dataclasses.dataclass(frozen=True)
    class Loose:
        count: int = 1

        def __post_init__(self) -> None:
            envconfig.check(self)

    with pytest.raises(TypeError, match="count: a number must declare its range"):
        Loose()


def test_an_empty_variable_is_refused_unless_it_means_none() -> None:
    """Empty, a variable whose field cannot be None nor an empty list could only mean its
    default: `DIZEST_REDIS_URL=` once sent a worker to the Redis on localhost. Where the field
    can, empty is None or no items (how `to_env` writes them)."""
    refused = {
        "DIZEST_REDIS_URL": "DIZEST_REDIS_URL is empty: give it a value, or unset it",
        "DIZEST_TTL_S": "DIZEST_TTL_S is empty",
        "DIZEST_COOKIE_SECURE": "DIZEST_COOKIE_SECURE is empty",
        "DIZEST_PLUGIN_PATHS": "DIZEST_PLUGIN_PATHS is empty",  # its default has items
        "DIZEST_SANDBOX_REQUIRE": "DIZEST_SANDBOX_REQUIRE is empty: give it a value ('none' for",
        "DIZEST_SECRET_KEY": "DIZEST_SECRET_KEY is empty",
        "DIZEST_UI_CDN_HOSTS": "DIZEST_UI_CDN_HOSTS is empty: give it a value ('none' for none)",
    }
    for name, message in refused.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            ApiSettings.from_env({"DIZEST_SECRET_KEY": "k" * 16, name: ""})
    none = ("FLOW_TIMEOUT", "ADMIN_PASSWORD", "CONCURRENCY", "PRELOAD", "ALLOWED_ORIGINS")
    got = ApiSettings.from_env({"DIZEST_SECRET_KEY": "k" * 16, **{f"DIZEST_{n}": "" for n in none}})
    engine = got.worker.engine
    assert engine.flow_timeout is engine.concurrency is got.admin_password is None
    assert engine.preload == got.allowed_origins == ()


def test_lists_read_as_they_always_have() -> None:
    got = ApiSettings.from_env(
        {
            "DIZEST_SECRET_KEY": "k" * 16,
            "DIZEST_ALLOWED_ORIGINS": " https://a.example/ ,, https://b.example",
            "DIZEST_SANDBOX_REQUIRE": " none ",
            "DIZEST_PLUGIN_PATHS": f"/p1{os.pathsep}{os.pathsep}/p2",
            "DIZEST_FLOW_ENV": "HF_*, WANDB_MODE",
            "DIZEST_COOKIE_SECURE": "Yes",
            "DIZEST_UI_CDN_HOSTS": " *.Example.org, 127.0.0.1:8443 ",
        }
    )
    assert got.ui_cdn_hosts == ("*.Example.org", "127.0.0.1:8443")
    assert ApiSettings.from_env({"DIZEST_SECRET_KEY": "k" * 16}).ui_cdn_hosts == (
        "cdn.jsdelivr.net",
        "unpkg.com",
        "cdnjs.cloudflare.com",
    )
    no_host = ApiSettings.from_env({"DIZEST_SECRET_KEY": "k" * 16, "DIZEST_UI_CDN_HOSTS": "none"})
    assert no_host.ui_cdn_hosts == ()
    assert got.allowed_origins == ("https://a.example", "https://b.example")
    assert got.worker.engine.sandbox_require == ()
    assert got.worker.engine.plugin_paths == ("/p1", "/p2")
    assert got.worker.engine.flow_env == ("HF_*", "WANDB_MODE")
    assert got.cookie_secure is True


def test_every_variable_is_named_once() -> None:
    """The names are the fields' own, and no two settings classes share one: a variable set for
    one package never changes another's setting."""
    names = [
        *envconfig.names(ApiSettings),
        *envconfig.names(AutomationSettings),
        *envconfig.names(GunicornSettings),
    ]
    assert len(names) == len(set(names)) == 98
    assert {"DIZEST_SANDBOX_REQUIRE", "DIZEST_REDIS_URL", "DIZEST_SECRET_KEY"} <= set(names)
