"""The app asks Flask whether a hook or view is a coroutine function only of one that may be
(`dizest_api.app.DizestFlask.ensure_sync`): a plain function or method is called as it is, with
no `inspect` question per request; anything else still goes through Flask's own check."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

import flask.app
import pytest

from dizest_api.app import DizestFlask


class Hooks:
    def before(self) -> None:
        return None


def plain() -> None:
    return None


async def coroutine() -> None:
    return None


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What Flask's own check was asked about."""
    seen: list[Any] = []

    def spy(func: Callable[..., Any]) -> bool:
        seen.append(func)
        return inspect.iscoroutinefunction(func)

    monkeypatch.setattr(flask.app, "iscoroutinefunction", spy)
    return seen


def test_a_plain_function_or_method_is_called_as_it_is_without_asking(asked: list[Any]) -> None:
    app, method = DizestFlask("t"), Hooks().before
    assert app.ensure_sync(plain) is plain
    assert app.ensure_sync(method) is method
    assert asked == []


def made_sync(func: Callable[..., Any]) -> bool:
    """Whether Flask made `func` a sync one (or refused: without its "async" extra)."""
    try:
        return DizestFlask("t").ensure_sync(func) is not func
    except RuntimeError as exc:
        return "async" in str(exc)


@pytest.mark.parametrize("func", [coroutine, functools.partial(coroutine)], ids=["def", "partial"])
def test_a_coroutine_function_still_goes_through_flask(
    asked: list[Any], func: Callable[..., Any]
) -> None:
    assert made_sync(func)
    assert asked == [func]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="inspect.markcoroutinefunction: 3.12")
def test_a_function_marked_as_a_coroutine_one_goes_through_flask(asked: list[Any]) -> None:
    def marked() -> None:
        return None

    inspect.markcoroutinefunction(marked)  # type: ignore[attr-defined]
    assert made_sync(marked)
    assert asked == [marked]
