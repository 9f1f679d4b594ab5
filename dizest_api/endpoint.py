"""Route declarations: each view states its summary, who may call it, the body it takes and
what it answers.

`endpoint(bp, "POST", "/tokens", ...)` registers the view and attaches a `Spec`, which `auth`
enforces before the view runs and `openapi` turns into the API document. A view without a spec
still needs a principal (GET: scope read, other methods: scope run): no route can be forgotten.

Bodies are strict: a JSON object whose fields are all declared, with the declared types.
Answers are declared by status: `responses={201: "Token", 204: None}` names components of
`dizest_api.schemas` (or gives a schema, or a `Body` of another media type); `openapi` adds the
error answers every route can give.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint, request

from dizest_api.errors import BadInput
from dizest_api.schemas import Reply

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
F = TypeVar("F", bound=Callable[..., Any])

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True)
class Field:
    """One body field: its JSON type, whether it is required, and (for arrays) the item type."""

    type: str
    required: bool = False
    items: str | None = None
    description: str = ""
    # a query integer's bounds, which `query_number` checks and the document gives (a header
    # string's length: its `minimum` and `maximum` characters, when a maximum is given)
    minimum: int = 0
    maximum: int | None = None
    pattern: str | None = None  # a header string's form (a regular expression, whole value)

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) and self.type != "boolean":
            return False
        if value is None or not isinstance(value, _JSON_TYPES[self.type]):
            return False
        if self.items is not None and isinstance(value, list):
            return all(Field(self.items).accepts(v) for v in value)
        return True


OFFSET = Field("integer", description="skip this many")
LIMIT = Field("integer", description="at most this many (1 to 200)", minimum=1, maximum=200)


@dataclass(frozen=True)
class Spec:
    """What `auth` and `openapi` know of a route."""

    method: str
    summary: str
    access: str = "user"  # public | user | admin
    scope: str | None = None  # the token scope needed; default: read for GET, run otherwise
    body: Mapping[str, Field] | None = None
    query: Mapping[str, str | Field] = field(default_factory=dict)  # name -> doc (a string)
    headers: Mapping[str, str | Field] = field(default_factory=dict)  # request headers read
    responses: Mapping[int, Reply] = field(default_factory=dict)  # status -> what it answers
    description: str = ""  # longer than the summary, for the API reference

    @property
    def needed_scope(self) -> str:
        if self.scope:
            return self.scope
        return "read" if self.method in SAFE_METHODS else "run"


def endpoint(bp: Blueprint, method: str, rule: str, summary: str, **spec: Any) -> Callable[[F], F]:
    """Register the decorated view on `bp` for `method rule`, with its Spec."""

    def register(view: F) -> F:
        view.dizest_spec = Spec(method, summary, **spec)  # type: ignore[attr-defined]
        bp.add_url_rule(rule, view_func=view, methods=[method])
        return view

    return register


def spec_of(view: Any) -> Spec | None:
    spec = getattr(view, "dizest_spec", None)
    return spec if isinstance(spec, Spec) else None


def json_value() -> Any:
    """The request body as JSON (null when empty); BadInput when it is not. Not Flask's
    `get_json`: it lets the RecursionError of a body nested too deep for the parser through
    (a 500), even with silent=True."""
    data = request.get_data(cache=True) or b"null"
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"malformed JSON: {exc}") from None
    if _SURROGATE_HINT.search(data) and _lone_surrogate(value):  # the walk only when it may
        raise BadInput("malformed JSON: a lone UTF-16 surrogate (\\ud800-\\udfff) is no character")
    return value


_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")  # escaped, or raw
_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(value: Any) -> bool:
    """Whether a string of `value` (keys included) holds a surrogate json.loads left alone:
    one without its pair, which no text encoding can write (it would fail later, a 500)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return False


def json_body(fields: Mapping[str, Field]) -> dict[str, Any]:
    """The request's JSON object, checked against `fields`; BadInput names every wrong field."""
    return checked(json_value(), fields)


def checked(body: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
    """`body` if it is a JSON object with only `fields`, of their types; else BadInput."""
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise BadInput(f"unknown field(s): {', '.join(unknown)}", {"unknown": unknown})
    missing = sorted(n for n, f in fields.items() if f.required and n not in body)
    if missing:
        raise BadInput(f"missing field(s): {', '.join(missing)}", {"missing": missing})
    wrong = {
        name: f"expected {fields[name].type}"
        + (f" of {fields[name].items}" if fields[name].items else "")
        for name, value in body.items()
        if not fields[name].accepts(value)
    }
    if wrong:
        raise BadInput(f"wrong type for field(s): {', '.join(sorted(wrong))}", {"types": wrong})
    return body


QUERY_INT_MAX = 2**31 - 1


def query_number(name: str, default: int, field: Field) -> int:
    """The integer query parameter `name`, within the bounds `field` declares."""
    return query_int(name, default, field.minimum, field.maximum)


def query_int(name: str, default: int, low: int = 0, high: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"query parameter {name} must be an integer") from None
    high = QUERY_INT_MAX if high is None else high  # past it Redis refuses the number (a 500)
    if value < low or value > high:
        raise BadInput(f"query parameter {name} must be between {low} and {high}")
    return value
