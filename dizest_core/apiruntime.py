"""The child side of an app's `api` call: runs the app's `api` code and one of its functions.

DIZEST's HTTP functions (`FlowInstance.api`): the `api` source is executed on every call with
the flow's globals, then the named function is called. A call runs like a flow (a forked child
in the flow sandbox, `runtime.main`), with the same `dizest` object, whose `input` reads the
flow's wired inputs and whose `output(name)` reads the flow's outputs of its run, plus DIZEST's
`dizest.request` and `dizest.response`. What it answers is one ANSWER message:

- a `dizest.response.*` call ends the function with that answer (as DIZEST's
  `ResponseException` does);
- otherwise its return value: bytes as a file, anything else as JSON (None is `null`);
- the function's parameters are filled by name from the request's values (query, then a JSON
  object body), so `def add(a, b)` answers `{"a": 1, "b": 2}` with `3`;
- an exception: 422 with the plain-text traceback (DIZEST: a 500 with an HTML traceback);
  an unknown function: 404.
Invariant: an ANSWER is sent before DONE unless the process dies.
"""

from __future__ import annotations

import inspect
import io
import json
import pickle
from collections.abc import Callable
from typing import Any

from dizest_core import wire
from dizest_core.flowerror import format_error
from dizest_core.job import ApiCall, Artifact, FlowJob, Value
from dizest_core.runtime import FlowAPI, execute, flow_globals

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
Emit = Callable[[tuple[Any, ...]], None]


class Respond(Exception):
    """Ends the function with an answer (DIZEST's ResponseException)."""

    def __init__(self, status: int, media_type: str, body: bytes) -> None:
        super().__init__(status)
        self.status, self.media_type, self.body = status, media_type, body


def _json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False, default=_not_json).encode()


def error_body(code: str, message: str) -> bytes:
    """An error in the API's own shape (`{"error": {code, message, details}}`)."""
    return _json({"error": {"code": code, "message": message, "details": None}})


def _not_json(value: Any) -> Any:
    for name in ("tolist", "item"):  # numpy arrays and scalars
        if callable(getattr(value, name, None)):
            return getattr(value, name)()
    raise TypeError(f"a {type(value).__name__} is not JSON")


class Request:
    """DIZEST's `dizest.request` for the call being answered."""

    def __init__(self, call: ApiCall) -> None:
        self._call = call
        self.method = call.method

    def query(self, key: str | None = None, default: Any = None) -> Any:
        """A request value (`default=True`: required, a 400 answer when missing); no key: all."""
        if key is None:
            return dict(self._call.params)
        if key in self._call.params:
            return self._call.params[key]
        if default is True:
            raise Respond(400, JSON, _json({"code": 400, "data": f"missing value {key!r}"}))
        return default

    def json(self) -> Any:
        return self._call.body

    def uri(self) -> str:
        return self._call.path

    def headers(self, key: str | None = None, default: Any = None) -> Any:
        found = {k.lower(): v for k, v in self._call.headers.items()}
        return found if key is None else found.get(key.lower(), default)


class Response:
    """DIZEST's `dizest.response`: every answering method ends the call."""

    def __init__(self) -> None:
        self._status = 200
        self._media_type: str | None = None

    def set_status(self, status: int) -> Response:
        self._status = int(status)
        return self

    def set_mimetype(self, media_type: str) -> Response:
        self._media_type = str(media_type)
        return self

    def json(self, value: Any, status: int | None = None) -> None:
        raise Respond(status or self._status, self._media_type or JSON, _json(value))

    def send(self, text: str | bytes, content_type: str | None = None) -> None:
        body = text if isinstance(text, bytes) else str(text).encode()
        raise Respond(self._status, content_type or self._media_type or TEXT, body)

    def status(self, code: int = 200, data: Any = None) -> None:
        raise Respond(int(code), JSON, _json({"code": int(code), "data": data}))

    def abort(self, code: int = 500) -> None:
        raise Respond(int(code), JSON, _json({"code": int(code)}))

    error = abort

    def download(self, path: str, media_type: str | None = None) -> None:
        with open(path, "rb") as fh:  # the sandbox bounds what the flow may open
            body = fh.read()
        import mimetypes  # on use, not in every child (see runtime)

        guessed = mimetypes.guess_type(path)[0] or "application/octet-stream"
        raise Respond(self._status, media_type or guessed, body)

    def PIL(self, image: Any) -> None:  # DIZEST's name
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        raise Respond(self._status, "image/png", buf.getvalue())


class ApiFlowAPI(FlowAPI):
    """The flow's `dizest` object in `api` code: `output(name)` reads the flow's last outputs."""

    def __init__(self, job: FlowJob, emit: Emit) -> None:
        super().__init__(job, emit)
        assert job.call is not None
        self.request = Request(job.call)
        self.response = Response()
        self._last = dict(job.call.last_outputs)

    def output(self, *args: Any, **values: Any) -> Any:
        if len(args) == 1 and not values and args[0] not in self.outputs and args[0] in self._last:
            self.outputs[args[0]] = _load(self._last.pop(args[0]))
        return super().output(*args, **values)


def _load(raw: Value) -> Any:
    if isinstance(raw, Artifact):
        with open(raw.path, "rb") as fh:
            return pickle.load(fh)
    return pickle.loads(raw)


def call(job: FlowJob, emit: Emit) -> bool:
    """Run the app's `api` code and the asked function; emit its ANSWER; True unless it raised."""
    assert job.call is not None
    api = ApiFlowAPI(job, emit)
    filename = f"<api {job.app_id}>"
    env = flow_globals(api)
    try:
        try:
            execute(env, api, job, job.call.source, filename)
            answer = _answer(_function(env, job), job.call)
        except Respond as respond:
            answer = respond
    except BaseException as exc:  # user code may raise anything, SystemExit included
        info = format_error(exc, filename)
        text = info.traceback or f"{info.type}: {info.message}"
        answer = Respond(422, TEXT, text.encode("utf-8", "replace"))
    limit = wire.max_frame(job)
    if limit is not None and len(answer.body) > limit - 65_536:
        message = f"the answer is {len(answer.body)} bytes, over the limit of {limit - 65_536}"
        answer = Respond(422, TEXT, message.encode())
    emit((wire.ANSWER, answer.status, answer.media_type, answer.body))
    return answer.status < 400


def _function(env: dict[str, Any], job: FlowJob) -> Callable[..., Any]:
    assert job.call is not None
    name = job.call.name
    found = env.get(name)
    own = inspect.isfunction(found) and found.__module__ == "__dizest_flow__"
    if not own or name.startswith("_"):
        message = f"app {job.app_id!r} has no api function {name!r}"
        raise Respond(404, JSON, error_body("not_found", message))
    assert found is not None
    return found  # type: ignore[no-any-return]


def _answer(function: Callable[..., Any], call: ApiCall) -> Respond:
    """Call `function` with the request's values bound to its parameters by name."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        kwargs = dict(call.params)
    else:
        names = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
        kwargs = {k: v for k, v in call.params.items() if k in names}
    missing = [
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in kwargs
    ]
    if missing:
        data = f"{function.__name__}() needs {', '.join(map(repr, missing))}"
        raise Respond(400, JSON, error_body("bad_request", data))
    value = function(**kwargs)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Respond(200, "application/octet-stream", bytes(value))
    try:
        return Respond(200, JSON, _json(value))
    except (TypeError, ValueError) as exc:
        message = f"{function.__name__}() returned a {type(value).__name__}, not JSON: {exc}"
        return Respond(422, TEXT, message.encode())
