"""Fixed-name routes own their path for every method: `/workflows/usage` is never a workflow.

Werkzeug prefers a fixed segment to a variable only among the rules of the request's method, so
`PUT /workflows/usage` went to `PUT /workflows/<wf_id>` and answered 404 "no workflow 'usage'",
and `OPTIONS /workflows/usage` offered PUT and DELETE. `FixedRoutes.of(url_map)` finds every
such case once, when the app is built, by sending the path of each route with each method that
path does not take through the router; `answer` (a before_request hook, after authentication
as for any 405) then gives those requests the 405 the path's own methods call for, with them
in `Allow`, and the router's own 405s and OPTIONS of such a path only its own methods too. The invariant, checked by a test over the
whole URL map: a request reaches a view only through the route that owns its path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map

SAMPLE = "0123456789abcdef"  # a URL variable's value in a route's sample path (any id's form)


@dataclass(frozen=True)
class Shadow:
    """A path of fixed-name route `owner` that the variable route it is filed under also
    matches: when the request's URL variables hold `fixed`, the request is the owner's."""

    fixed: frozenset[tuple[str, Any]]
    owner: str


@dataclass(frozen=True)
class FixedRoutes:
    """The methods of each route path that shadows another (path -> methods), and the
    shadows of each route path that another shadows (path -> its shadows)."""

    methods: dict[str, frozenset[str]]
    shadows: dict[str, tuple[Shadow, ...]]

    @classmethod
    def of(cls, url_map: Map) -> FixedRoutes:
        served: dict[str, set[str]] = {}
        for rule in url_map.iter_rules():
            served.setdefault(rule.rule, set()).update(rule.methods or ())
        every = set().union(*served.values())
        adapter = url_map.bind("localhost")
        methods: dict[str, frozenset[str]] = {}
        shadows: dict[str, list[Shadow]] = {}
        for rule in url_map.iter_rules():
            if rule.websocket:
                continue
            path = rule.build(dict.fromkeys(rule.arguments, SAMPLE), append_unknown=False)
            assert path is not None, rule.rule  # every converter takes SAMPLE
            for method in sorted(every - served[rule.rule]):
                try:
                    other, args = adapter.match(path[1], method=method, return_rule=True)
                except HTTPException:  # 405 (no route takes it), or a redirect
                    continue
                fixed = frozenset((k, v) for k, v in args.items() if v != SAMPLE)
                if other.rule == rule.rule or not fixed:
                    continue
                methods[rule.rule] = frozenset(served[rule.rule])
                found = shadows.setdefault(other.rule, [])
                if Shadow(fixed, rule.rule) not in found:
                    found.append(Shadow(fixed, rule.rule))
        return cls(methods, {path: tuple(found) for path, found in shadows.items()})

    def owner(self, rule: str) -> str | None:
        """The fixed route that owns the request's path, when the route `rule` took it."""
        shadows = self.shadows.get(rule)
        if not shadows:  # most routes: no other route's path is also theirs
            return None
        values = (request.view_args or {}).items()
        for shadow in shadows:
            if shadow.fixed <= values:
                return shadow.owner
        return None

    def answer(self) -> Response | None:
        """The before_request hook: 405 for a method the path's own route does not take, with
        only its methods in `Allow` (werkzeug's 405 and OPTIONS list the shadowed route's too).
        A request the router matched has no routing error (one it refused has no rule)."""
        rule = request.url_rule
        if rule is None:
            owner = self._refused_owner()
        elif rule.rule in self.methods and request.method == "OPTIONS":
            return options_answer(sorted(self.methods[rule.rule]))
        else:
            owner = self.owner(rule.rule)
        if owner is not None:
            raise MethodNotAllowed(valid_methods=sorted(self.methods[owner]))
        return None

    def _refused_owner(self) -> str | None:
        """The fixed route that owns the path of a request the router refused with a 405."""
        refused = request.routing_exception
        if not isinstance(refused, MethodNotAllowed) or not self.methods:
            return None
        adapter = current_app.url_map.bind("localhost")
        for method in refused.valid_methods or ():
            try:
                rule, _ = adapter.match(request.path, method=method, return_rule=True)
            except HTTPException:
                continue
            if rule.rule in self.methods:  # the fixed route wins for the methods it takes
                return rule.rule
        return None


def options_answer(methods: Iterable[str]) -> Response:
    """204, `Allow: methods` and no body nor content type: every OPTIONS request's answer."""
    answer = Response(status=204)
    answer.allow.update(methods)
    del answer.headers["Content-Type"]
    return answer
