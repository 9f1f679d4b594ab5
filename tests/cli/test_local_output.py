"""`dizest run` piped (as in CI): each event is a line the moment it happens; `dizest validate`
names the app, its flows and the line of code that does not compile."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import SYNTAX_ERROR, WAITING, dizest, started, write_dwp


def test_piped_run_output_arrives_before_the_run_ends(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    dwp = write_dwp(tmp_path / "waiting.dwp", WAITING)
    proc = started(tmp_path, "run", str(dwp), "-i", f"path={flag}")
    try:
        assert proc.stderr is not None
        seen = [proc.stderr.readline() for _ in range(4)]
        # the flow is still waiting for the file: these lines came as they happened
        assert seen == ["run running\n", "[w] pending\n", "[w] running\n", "[w] waiting\n"]
        flag.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert err.startswith("[w] got it\n[w] ready ") and "w.r = 1" in out


def test_validate_fails_on_code_that_does_not_compile_and_run_runs_it(tmp_path: Path) -> None:
    bad = write_dwp(tmp_path / "bad.dwp", SYNTAX_ERROR)
    result = dizest(tmp_path, "validate", str(bad), "--json")
    assert result.returncode == 2
    problems = json.loads(result.stdout)["problems"]
    assert [(p["code"], p["app"], p["flow"]) for p in problems] == [("syntax_error", "bad", "a")]
    assert "line 2: invalid syntax" in problems[0]["message"]
    assert "used by flow(s) 'bad' (a), 'bad' (b)" in problems[0]["message"]  # its app's title
    text = dizest(tmp_path, "validate", str(bad))
    assert "line 2" in text.stdout and "app 'bad'" in text.stdout
    assert "runs, but the flows of code that does not compile will fail" in text.stdout
    assert text.returncode == 2  # a check: that code never runs as written
    # ... yet it runs, as DIZEST runs it: the flows of that app end in error with the
    # SyntaxError as their reason, the others run (a work in progress is never refused)
    run = dizest(tmp_path, "run", str(bad), "--json")
    assert run.returncode == 1, run.stderr
    flows = json.loads(run.stdout)["flows"]
    reasons = {f: (d["status"], d["reason"]) for f, d in flows.items()}
    bad_reason = "SyntaxError: invalid syntax (<flow {}>, line 2)"
    assert reasons == {
        "a": ("error", bad_reason.format("a")),
        "b": ("error", bad_reason.format("b")),
        "c": ("ready", None),
    }
