"""What flows can import, against a real `dizest serve` and its worker: the packages of the
worker's environment (what its beat said), and a requirements.txt checked line by line against
them, as pip reads each line (names compared by PEP 503, version specifiers, markers)."""

from __future__ import annotations

import json
import platform
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

from dizest_api.routes.packages import MAX_LINE_CHARS, MAX_LINES
from tests.api.test_hostile_serve import new_users
from tests.cli.helpers import dizest, ok_json
from tests.conftest import package, wait_for
from tests.serve_process import call, serving


def refused(base: str, body: Any, user: dict[str, str]) -> tuple[int, Any]:
    """The status and JSON error of a check the server refuses."""
    sent = {"Content-Type": "application/json", **user}
    request = urllib.request.Request(
        f"{base}/api/v1/packages/check", json.dumps(body).encode(), sent
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_users_see_the_workers_packages_and_check_a_requirements_txt(tmp_path: Path) -> None:
    (tmp_path / "serve").mkdir()
    with serving(tmp_path / "serve") as served:
        base = served.base
        assert call(base, "GET", "/api/v1/packages")[0] == 401
        token = new_users(base, "alice")["alice"]["token"]
        user = {"Authorization": f"Bearer {token}"}
        listed = wait_for(lambda: call(base, "GET", "/api/v1/packages", None, user)[1]["environments"])  # fmt: skip
        assert len(listed) == 1, listed
        env = listed[0]
        assert env["python"] == platform.python_version() and len(env["workers"]) == 1
        versions = {p["name"]: p["version"] for p in env["packages"]}
        for name in ("dizest", "celery", "Flask", "redis"):
            assert versions[name] == metadata.version(name), name

        celery = metadata.version("celery")
        text = "\n".join([
            f"celery>={celery}",
            "flask<1.0",
            "no-such-package-here==1.0",
            "Flask_Sock  # any version",
            "# a comment, and a blank line:",
            "",
            "-r other.txt",
            'pandas-never-installed; python_version < "3.0"',
            "not a requirement!!",
            "git+https://example.com/x/y.git",
        ])  # fmt: skip
        status, checked, _ = call(base, "POST", "/api/v1/packages/check", {"requirements": text}, user)  # fmt: skip
        assert status == 200, checked
        assert checked["environments"] == [{"python": env["python"], "workers": env["workers"]}]
        rows = {row["line"]: row for row in checked["requirements"]}
        assert list(rows) == [line for line in text.splitlines() if line and line[0] != "#"]
        said = {line: (r["installed"], r["satisfied"], r["problem"]) for line, r in rows.items()}
        assert said[f"celery>={celery}"] == ([celery], [True], None)
        assert said["flask<1.0"] == ([metadata.version("flask")], [False], None)
        assert said["no-such-package-here==1.0"] == ([None], [False], None)
        assert said["Flask_Sock  # any version"] == ([metadata.version("flask-sock")], [True], None)
        assert said['pandas-never-installed; python_version < "3.0"'] == ([None], [True], None)
        assert said["-r other.txt"] == ([], [], "a pip option: not checked")
        assert rows["not a requirement!!"]["name"] is None
        assert rows["not a requirement!!"]["problem"].startswith("not a requirement pip reads: ")
        assert rows["git+https://example.com/x/y.git"]["problem"] == "a URL or path without a name: not checked (name @ URL is)"  # fmt: skip

        for bad in ({"requirements": 3}, {"requirement": "x"}, {}, ["x"]):
            status, error = refused(base, bad, user)
            assert status == 400 and error["error"]["code"] == "bad_request", (bad, error)
        # a marker pip cannot evaluate was a 500; a long line (16 s of the API's CPU at 9 MB)
        long = "celery" + ",".join([">=0.1"] * 200_000)
        hostile = f'celery; python_version ~= "3"\n{long}\ncelery>=0.1'
        status, checked, _ = call(base, "POST", "/api/v1/packages/check", {"requirements": hostile}, user)  # fmt: skip
        assert status == 200, checked
        said = [(r["name"], r["problem"], r["satisfied"]) for r in checked["requirements"]]
        assert said == [
            (None, "a marker pip cannot evaluate: Undefined <Op('~=')> on "
                   f"'{'.'.join(platform.python_version_tuple()[:2])}' and '3'.", []),
            (None, f"longer than {MAX_LINE_CHARS} characters: not checked", []),
            ("celery", None, [True]),
        ]  # fmt: skip
        many = "\n".join(f"p{n}" for n in range(MAX_LINES + 1))
        status, error = refused(base, {"requirements": many}, user)
        assert status == 400 and f"at most {MAX_LINES}" in error["error"]["message"], error

        # an import no worker can satisfy is a warning of the validation the editor asks for
        code = "import celery\nimport no_such_module_xyz\nv = 1"
        pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
        status, found, _ = call(base, "POST", "/api/v1/workflows/validate", {"package": pkg}, user)
        assert status == 200 and found["valid"], found
        warned = [p for p in found["problems"] if p["code"] == "missing_module"]
        assert [(p["app"], p["severity"], p["message"]) for p in warned] == [
            (
                "a",
                "warning",
                "line 2: imports 'no_such_module_xyz', which no live worker has installed",
            )
        ]

        # the same from the command line, for scripts and CI jobs: exit 1 unless all are met
        cli = {"DIZEST_TOKEN": token}
        home = tmp_path / "home"
        home.mkdir()
        listed_json = ok_json(dizest(home, "packages", "--json", "--server", base, **cli))
        assert listed_json == {"environments": listed}
        table = dizest(home, "packages", "--server", base, **cli)
        assert table.returncode == 0, table.stderr
        assert any(line.split() == ["celery", celery] for line in table.stdout.splitlines())
        check = ["packages", "--server", base, "--check", "-"]
        unmet = dizest(home, *check, stdin="celery\nno-such-package-here\n", **cli)
        assert unmet.returncode == 1, unmet.stderr
        lines = {line.split()[0]: line.split()[1:] for line in unmet.stdout.splitlines()[1:]}
        assert lines == {"celery": ["ok", celery], "no-such-package-here": ["MISSING", "(not", "installed)"]}  # fmt: skip
        met = dizest(home, *check, stdin=f"celery>={celery}\n# fine\n", **cli)
        assert met.returncode == 0, met.stdout + met.stderr
