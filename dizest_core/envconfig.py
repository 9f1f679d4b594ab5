"""DIZEST_* variables <-> settings dataclasses: the one reader and the one writer of them all.

Every field of a settings dataclass is the variable DIZEST_<FIELD> (upper case); what its text
means follows from the field's type hint: int, float (finite), str, bool, `X | None`,
`tuple[str, ...]` (items split on the separator its `spec(sep=...)` metadata declares) or a nested
settings dataclass, whose fields are read from the same environment under their own names.
`to_env` is the inverse, so a parent starts a child with exactly its settings:
`{**os.environ, **to_env(settings)}`; `read(cls, to_env(s))` rebuilds `s`. An empty variable means
None for an `X | None` field (that is how `to_env` writes None) and no items for a tuple whose
default has none; for any other field it is a ConfigError, never a silent default.

What a field allows is declared once, next to it, in its metadata (`at_least`, `above`, `one_of`,
`matching`; for a tuple, what each item allows) and checked by `check`, which each settings
class calls first in `__post_init__`: a value outside is a ConfigError naming the variable and
what it allows. Every number declares its
range (an int at most INT_MAX), so none reaches Redis or a system call it does not fit.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from dizest_core.errors import ConfigError

T = TypeVar("T")
PREFIX = "DIZEST_"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
INT_MAX = (1 << 63) - 1  # what Redis and the C calls take: every int setting ends in one


@dataclass(frozen=True)
class Range:
    """The numbers a field allows: from `low` (or above it, `strict`) to `high`, finite."""

    low: float
    high: float
    strict: bool = False

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        above_low = value > self.low if self.strict else value >= self.low
        return above_low and value <= self.high and math.isfinite(value)

    def __str__(self) -> str:
        if self.strict:
            return f"above {self.low} and at most {self.high}"
        return f"from {self.low} to {self.high}"


@dataclass(frozen=True)
class OneOf:
    """The texts a field allows."""

    values: tuple[str, ...]

    def __contains__(self, value: object) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return f"one of {', '.join(self.values)}"


@dataclass(frozen=True)
class Matching:
    """The texts a field allows: those `pattern` matches whole, as `described`."""

    pattern: re.Pattern[str]
    described: str

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and self.pattern.fullmatch(value) is not None

    def __str__(self) -> str:
        return self.described


def at_least(low: float, high: float = INT_MAX) -> dict[str, Any]:
    """Field metadata: a number from `low` to `high`."""
    return {"allowed": Range(low, high)}


def above(low: float, high: float = INT_MAX) -> dict[str, Any]:
    """Field metadata: a number above `low`, at most `high`."""
    return {"allowed": Range(low, high, strict=True)}


def one_of(values: tuple[str, ...]) -> dict[str, Any]:
    """Field metadata: one of these texts."""
    return {"allowed": OneOf(values)}


def matching(pattern: re.Pattern[str], described: str) -> dict[str, Any]:
    """Field metadata: a text `pattern` matches whole; `described` says which, in a message."""
    return {"allowed": Matching(pattern, described)}


def check(settings: object) -> None:
    """Every field of `settings` that declares what it allows holds such a value (None, for an
    `X | None`, always does; a tuple, such items); else a ConfigError naming its variable and
    what it allows."""
    for field, hint in _fields(type(settings)):
        allowed = field.metadata.get("allowed")
        if allowed is None and _number(hint):
            raise TypeError(f"{field.name}: a number must declare its range (at_least, above)")
        value = getattr(settings, field.name)
        if allowed is None or value is None:
            continue
        for item in value if isinstance(value, tuple) else (value,):  # a list: each of its items
            if item not in allowed:
                raise ConfigError(f"{env_name(field.name)} must be {allowed}, not {item!r}")


def spec(*, sep: str = ",", empty: str | None = None, path: bool = False, trim: str = "") -> dict:
    """Field metadata for a variable whose type hint does not say all: `sep` splits a tuple's
    items; `empty` is the text of an empty tuple (needed when the default is not empty, since an
    empty variable then is refused); `path` makes a path (or each item) absolute when read; `trim`
    strips these characters from the end of each item (an origin's trailing '/')."""
    return {"env": {"sep": sep, "empty": empty, "path": path, "trim": trim}}


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def read(cls: type[T], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The constructor arguments of `cls` whose variables are set, parsed (nested settings
    always, from the same environment); a malformed value is a ConfigError naming the variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field, hint in _fields(cls):
        if dataclasses.is_dataclass(hint):
            values[field.name] = from_env(typing.cast(type, hint), env)
            continue
        raw = env.get(env_name(field.name))
        if raw == "":
            values[field.name] = _empty(field, hint)
        elif raw is not None:
            try:
                values[field.name] = _parser(field, hint)(raw)
            except ValueError as exc:
                raise ConfigError(f"{env_name(field.name)}={raw!r}: {exc}") from None
    return values


def from_env(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """An instance of `cls` from the environment: defaults for the variables not set."""
    return cls(**read(cls, environ))


def to_env(settings: object) -> dict[str, str]:
    """Every DIZEST_* variable of `settings` (nested settings included), as `read` parses them.
    A value no text reads back as (an item holding its separator, a non-finite float, an empty
    value where the default is not) is a ConfigError, never a silent change in the child."""
    out: dict[str, str] = {}
    for field, hint in _fields(type(settings)):
        value = getattr(settings, field.name)
        if dataclasses.is_dataclass(hint):
            nested = to_env(value)
            if out.keys() & nested.keys():
                raise ConfigError(f"{type(value).__name__} repeats {sorted(out.keys() & nested)}")
            out.update(nested)
            continue
        text = _write(field, value)
        if _read_back(field, hint, text) != value:
            raise ConfigError(f"{type(settings).__name__}.{field.name}={value!r} has no text")
        out[env_name(field.name)] = text
    return out


def _fields(cls: Any) -> tuple[tuple[dataclasses.Field[Any], Any], ...]:
    return _fields_of(cls)


@functools.cache  # `check` runs at every construction: resolve the hints of a class once
def _fields_of(cls: Any) -> tuple[tuple[dataclasses.Field[Any], Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls) if f.init)


def _number(hint: Any) -> bool:
    return bool({int, float} & {hint, *typing.get_args(hint)})


def _empty(field: dataclasses.Field[Any], hint: Any) -> object:
    """What an empty variable means: None, no items; or a ConfigError (an empty variable a
    template left behind once meant the default: `DIZEST_REDIS_URL=` a Redis on localhost)."""
    if isinstance(hint, types.UnionType):
        return None
    if typing.get_origin(hint) is tuple and _default(field) == ():
        return ()
    none = _options(field)["empty"]
    besides = f" ({none!r} for none)" if none is not None else ""
    raise ConfigError(
        f"{env_name(field.name)} is empty: give it a value{besides}, or unset it for the default"
    )


def _default(field: dataclasses.Field[Any]) -> object:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _options(field: dataclasses.Field[Any]) -> dict[str, Any]:
    return dict(field.metadata.get("env") or spec()["env"])


def _parser(field: dataclasses.Field[Any], hint: Any) -> Callable[[str], object]:
    if isinstance(hint, types.UnionType):  # X | None: unset (or empty) is None
        (hint,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
    opts = _options(field)
    if hint is bool:
        return _bool
    if hint is int:
        return int
    if hint is float:
        return _finite
    if hint is str:
        return os.path.abspath if opts["path"] else str
    if typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, ...):
        return functools.partial(_items, **opts)
    raise TypeError(f"{field.name}: no DIZEST_* text for {hint!r}")


def _read_back(field: dataclasses.Field[Any], hint: Any, text: str) -> object:
    try:
        return _parser(field, hint)(text) if text else _empty(field, hint)
    except (ValueError, ConfigError):
        return _Unreadable


class _Unreadable:
    """What a text that does not parse reads back as: equal to no value."""


def _write(field: dataclasses.Field[Any], value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        opts = _options(field)
        if not value and opts["empty"] is not None:
            return str(opts["empty"])
        return str(opts["sep"]).join(value)
    return str(value)


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in TRUE + FALSE:
        raise ValueError("expected true or false")
    return value in TRUE


def _finite(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def _items(raw: str, sep: str, empty: str | None, path: bool, trim: str) -> tuple[str, ...]:
    if empty is not None and raw.strip() == empty:
        return ()
    return tuple(_item(part, path, trim) for part in raw.split(sep) if part.strip())


def _item(part: str, path: bool, trim: str) -> str:
    text = part.strip().rstrip(trim) if trim else part.strip()
    return os.path.abspath(text) if path else text


def names(cls: type) -> Iterator[str]:
    """Every DIZEST_* variable `cls` reads, nested settings included."""
    for field, hint in _fields(cls):
        if dataclasses.is_dataclass(hint):
            yield from names(typing.cast(type, hint))
        else:
            yield env_name(field.name)
