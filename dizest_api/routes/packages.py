"""What flows can import: the Python packages of the live workers' environments
(`dizest_worker.packages`), and a workflow's requirements.txt checked against them.

DIZEST's packages panel installs and uninstalls with pip in the one environment its kernels
share. Here that environment is every user's, so this is read-only: a user sees whether what
their workflow needs is there (and which version), and asks the operator for what is missing,
instead of finding out from an ImportError in the middle of a run.

    GET  /api/v1/packages          the environments: Python version, workers, packages
    POST /api/v1/packages/check    {"requirements": "<requirements.txt>"}: each line against each
                                   environment (read scope: it changes nothing)

A requirement is read as pip reads one (`packaging`, PEP 508): name, extras, version specifier,
environment marker. Its marker is evaluated for each environment's Python version; options
(`-r`, `--index-url`, `-e`) and lines `packaging` cannot read are listed with why, not checked.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify
from packaging.markers import UndefinedComparison, UndefinedEnvironmentName, default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

from dizest_api.endpoint import Field, endpoint, json_body
from dizest_api.errors import BadInput
from dizest_api.schemas import ERR, MAYBE_STRING, STRING, array, nullable, obj
from dizest_api.services import services
from dizest_worker.client import environments, live_workers

bp = Blueprint("packages", __name__)

# a line pip installs from a place, naming no distribution: `git+https://...`, `./pkg`, `/wheels/x.whl`
URL_ALONE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[a-z]+\+[a-z]+:|\.{0,2}/|~)", re.IGNORECASE)
MAX_LINES = 1000  # a requirements.txt longer than this is not one a person checks by eye
# a requirement longer than this is not read: its parse and check cost the API process ~2 us a
# character (a 9 MB line of `>=0.1,` clauses, or of `or`s in its marker, took 16 s of its CPU),
# and pip's longest real lines (a name @ URL with its hash) are a few hundred
MAX_LINE_CHARS = 1000

ENVIRONMENT = obj(
    "One environment of the live workers (identical ones are one)",
    python={**STRING, "description": "its Python version"},
    workers=array(STRING),
    packages=array(obj(name=STRING, version=STRING)),
)
CHECKED = obj(
    "A requirements.txt against each environment (`installed` and `satisfied` list one entry "
    "per environment, in the order of `environments`)",
    environments=array(obj(python=STRING, workers=array(STRING))),
    requirements=array(
        obj(
            line=STRING,
            name={**MAYBE_STRING, "description": "null: a line not checked (see problem)"},
            problem=MAYBE_STRING,
            installed=array(MAYBE_STRING),
            satisfied=array({**nullable({"type": "boolean"}), "description": "null: unknown"}),
        )
    ),
)


def live_environments() -> list[dict[str, Any]]:
    """The live workers' environments (`dizest_worker.packages.environments`)."""
    found = services()
    worker = found.settings.worker
    return environments(found.redis, worker, live_workers(found.redis, worker))


@endpoint(bp, "GET", "/packages", "The Python packages flows can import, per environment of "
          "the live workers", responses={200: obj(environments=array(ENVIRONMENT))})  # fmt: skip
def list_packages() -> Response:
    listed = [{k: v for k, v in env.items() if k != "modules"} for env in live_environments()]
    return jsonify({"environments": listed})


@endpoint(bp, "POST", "/packages/check", "A requirements.txt checked against the live workers' "
          "environments", scope="read", body={"requirements": Field("string", required=True)},
          responses={200: CHECKED, 400: ERR})  # fmt: skip
def check_requirements() -> Response:
    lines = json_body({"requirements": Field("string", required=True)})["requirements"].splitlines()
    wanted = [(line, stripped) for line in lines if (stripped := line.split(" #")[0].strip())]
    wanted = [(line, s) for line, s in wanted if not s.startswith("#")]
    if len(wanted) > MAX_LINES:
        raise BadInput(f"{len(wanted)} requirements: at most {MAX_LINES} are checked at once")
    envs = live_environments()
    have = [
        {str(canonicalize_name(p["name"])): p["version"] for p in env["packages"]} for env in envs
    ]
    return jsonify({
        "environments": [{"python": e["python"], "workers": e["workers"]} for e in envs],
        "requirements": [_check(line, text, envs, have) for line, text in wanted],
    })  # fmt: skip


def _check(line: str, text: str, envs: list[dict[str, Any]], have: list[dict[str, Any]]) -> Any:
    unchecked: dict[str, Any] = {"line": line, "name": None, "installed": [], "satisfied": []}
    if text.startswith("-"):
        return {**unchecked, "problem": "a pip option: not checked"}
    if URL_ALONE.match(text):
        return {**unchecked, "problem": "a URL or path without a name: not checked (name @ URL is)"}
    if len(text) > MAX_LINE_CHARS:
        return {**unchecked, "problem": f"longer than {MAX_LINE_CHARS} characters: not checked"}
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        return {**unchecked, "problem": f"not a requirement pip reads: {str(exc).splitlines()[0]}"}
    name = canonicalize_name(req.name)
    installed = [versions.get(name) for versions in have]
    try:
        satisfied = [_satisfied(req, v, e["python"]) for v, e in zip(installed, envs, strict=True)]
    except (UndefinedComparison, UndefinedEnvironmentName) as exc:  # `python_version ~= "3"`
        return {**unchecked, "problem": f"a marker pip cannot evaluate: {exc}"}
    return {"line": line, "name": req.name, "problem": None, "installed": installed,
            "satisfied": satisfied}  # fmt: skip


def _satisfied(req: Requirement, version: str | None, python: str) -> bool | None:
    """Whether `version` (None: not installed) meets `req` where Python is `python`; a
    requirement whose marker excludes that Python is met; None when it cannot be told."""
    if req.marker is not None:
        here: dict[str, Any] = {**default_environment(), "python_full_version": python,
                "python_version": ".".join(python.split(".")[:2])}  # fmt: skip
        if not req.marker.evaluate(here):
            return True
    if version is None:
        return False
    try:
        return req.specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return None
