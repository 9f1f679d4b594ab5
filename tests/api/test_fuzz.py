"""Fuzz every operation of the served OpenAPI document: no input gives a 5xx, and every answer
is what the document says (its status documented, its media type declared, its JSON body valid
against the declared schema: `Error` for every error).

The schema is what the app serves (`GET /api/v1/openapi.json`, fetched with the test client) and
calls go to the app over WSGI, so the fuzzer sees exactly what is registered.

The app has a real worker Client but no worker: submitting a run stores a queued record and
returns at once. Excluded: what waits on a worker (`/dizest/api/run` blocks up to 600 s, an app's
`api/<name>` call waits for a worker's answer) and what streams until the run ends (`*/events`,
`*/ws`, `/dizest/api/stream`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dizest_api.app import create_app
from dizest_api.settings import ApiSettings
from dizest_worker.connection import redis_client
from dizest_worker.keys import Keys
from tests.api.conftest import Api
from tests.conftest import package
from tests.worker.conftest import make_settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup  # noqa: E402

EXCLUDED_PATHS = r"(/events|/ws|/api/\{name\})$|^/dizest/api/(run|stream)/"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25
# Deliberate 5xx: readiness answers 503 "not_ready" while no worker has been seen (none runs here).
EXPECTED_5XX = {("GET", "/readyz"): 503}
LOGOUT = ("POST", "/api/v1/auth/logout")  # with a token: revokes it
PACKAGE = package({"src": {"code": "y = 1", "outputs": ["y"]}}, {"a": {"app": "src"}})


@pytest.fixture
def live_api(redis_url: str, session_prefix: str, tmp_path: Path) -> Iterator[Api]:
    worker = make_settings(redis_url, tmp_path, prefix=f"{session_prefix}{uuid.uuid4().hex[:8]}")
    app = create_app(
        ApiSettings(
            secret_key="k" * 32,
            data_dir=str(tmp_path / "data"),
            bcrypt_rounds=4,
            max_request_bytes=64 * 1024,
            worker=worker,
        )
    )
    app.config["TESTING"] = True
    # a worker's beat (an hour ahead, so it outlasts the fuzz): submits are accepted, not 503
    # no_worker; the runs stay pending, which is all these tests need
    ahead = int(time.time() * 1000) + 3_600_000
    redis_client(worker).hset(Keys(worker.prefix).workers, "fuzz", ahead)
    yield Api(app, app.test_client())
    hub = app.extensions.get("dizest.events")
    if hub is not None:
        hub.close()


def _fuzz(
    api: Api, fresh: Callable[[], dict[str, str]], known: dict[str, list[str]]
) -> tuple[list[str], list[Any], Any]:
    """Run every operation with generated data, as the user whose new bearer headers `fresh`
    gives; describe each 5xx and each answer that is not what the document says. Also returns
    the cases as sent, in order, and the document they came from (for `_replay`)."""
    headers = fresh()
    served = api.http.get("/api/v1/openapi.json", headers=headers)
    assert served.status_code == 200, served.json
    schema = schemathesis.openapi.from_dict(served.json)
    schema.app = api.app
    schema = schema.exclude(path_regex=EXCLUDED_PATHS)
    ids = {name: st.sampled_from(values) for name, values in known.items()}
    failures: list[str] = []  # every failure, not just hypothesis' first, shrunk one
    sent: list[Any] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        # Valid inputs and invalid ones (wrong types, missing or unknown fields, bad bodies).
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy, data=st.data())
        def check(case: Any, data: st.DataObject) -> None:
            # Half the time, point path parameters at objects that exist, to get past the 404s.
            for name in list(case.path_parameters or {}):
                if name in ids and data.draw(st.booleans()):
                    case.path_parameters[name] = data.draw(ids[name])
            sent.append(case)
            _send(case, headers, fresh, failures)

        check()
    return failures, sent, served.json


def _send(
    case: Any, headers: dict[str, str], fresh: Callable[[], dict[str, str]], failures: list[str]
) -> None:
    """Send `case` with `headers`; describe a 5xx, or an answer the document does not allow, in
    `failures`."""
    # a token's logout revokes it: each such call ends a token of its own
    own = fresh() if (case.method, case.path) == LOGOUT else headers
    response = case.call(headers=own)
    if EXPECTED_5XX.get((case.method, case.path)) == response.status_code:
        return
    if response.status_code >= 500:
        failures.append(
            f"{case.method} {case.formatted_path} -> {response.status_code}: "
            f"{case.as_curl_command(headers=own)}"
        )
        return
    try:
        case.validate_response(response, checks=CHECKS, headers=own)
    except (Failure, FailureGroup) as exc:  # one failed check, or several
        failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:600]}")


def _replay(
    api: Api,
    fresh: Callable[[], dict[str, str]],
    known: dict[str, list[str]],
    sent: list[Any],
    document: Any,
) -> list[str]:
    """`_fuzz` as another user, sending the cases an earlier pass sent, in the same order: drawn
    anew from the same document they would be the same ones (derandomized, and nothing drawn
    depends on an answer; seen: 1379 of 1379 equal), and drawing them is most of a pass. Drawn
    anew when this user is served another document."""
    headers = fresh()
    served = api.http.get("/api/v1/openapi.json", headers=headers)
    assert served.status_code == 200, served.json
    if served.json != document:
        return _fuzz(api, fresh, known)[0]
    failures: list[str] = []
    for case in sent:
        _send(case, headers, fresh, failures)
    return failures


def _seed(api: Api, headers: dict[str, str]) -> dict[str, list[str]]:
    """A workflow and a run that path parameters can point at."""
    made = api.call("POST", "/workflows", headers, json={"title": "t", "package": PACKAGE})
    assert made.status_code == 201, made.json
    wf_id = str(made.json["id"])
    run = api.call("POST", "/runs", headers, json={"workflow_id": wf_id})
    assert run.status_code == 201, run.json
    return {
        "wf_id": [wf_id],
        "run_id": [str(run.json["run_id"])],
        "flow_id": ["a"],
        "name": ["y"],
        "username": ["bob"],
    }


@pytest.mark.timeout(600)  # ~60 operations x ~23 cases, drawn once, sent as 2 users: 1-3 min
def test_no_operation_gives_a_server_error(live_api: Api) -> None:
    live_api.user("bob")
    known = _seed(live_api, live_api.user("root", "admin"))
    failures, sent, document = _fuzz(live_api, lambda: live_api.user("root", "admin"), known)
    # After the admin's run, which may have deleted bob (his name is then retired for good)
    # or changed his password: a user of its own.
    failures += _replay(live_api, lambda: live_api.user("carol"), known, sent, document)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "lifetime", ["2.66e275", "1e400", "Infinity", "-Infinity", "NaN", "1" * 400]
)
def test_token_lifetime_out_of_range_is_a_bad_request(api: Api, lifetime: str) -> None:
    """Found by the fuzzer: a huge `expires_in_s` overflowed Redis' PEXPIREAT (500), after
    storing the token without its expiry."""
    headers = {**api.user("alice"), "Content-Type": "application/json"}
    body = f'{{"name": "t", "expires_in_s": {lifetime}}}'
    answer = api.call("POST", "/tokens", headers, data=body)
    assert answer.status_code == 400, answer.json
    listed = api.call("GET", "/tokens", headers).json["items"]
    assert [t["name"] for t in listed] == ["test"]
