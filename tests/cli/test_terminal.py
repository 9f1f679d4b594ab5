"""What the CLI prints of a flow's log keeps colours and defuses every other escape: a shared
run's author could otherwise set a grantee's clipboard (OSC 52), retitle or clear their
terminal, or overwrite the line's `[flow]` prefix (a hostile probe's report)."""

from __future__ import annotations

from pathlib import Path

from dizest_cli.terminal import safe_line
from tests.conftest import package
from tests.test_cli import dizest, write


def test_colours_stay_and_every_other_control_is_shown_not_obeyed() -> None:
    assert safe_line("\x1b]52;c;aGk=\x07 hi") == "^[]52;c;aGk=^G hi"
    assert safe_line("\x1b[2J\x1b[1;1H") == "^[[2J^[[1;1H"
    assert safe_line("\x1b[31mred\x1b[0m ok") == "\x1b[31mred\x1b[0m ok\x1b[0m"
    assert safe_line("[other] forged\rmine") == "mine"
    assert safe_line("tab\there nul\x00 c1\x9b") == "tab\there nul^@ c1<0x9b>"
    assert safe_line("plain é ✓") == "plain é ✓"


def test_dizest_run_prints_a_hostile_log_defused(tmp_path: Path) -> None:
    code = (
        "print('\\x1b]52;c;aGk=\\x07 clip')\n"
        "print('\\x1b[31mred\\x1b[0m')\n"
        "print('\\x1b]0;title\\x07\\x1b[2J')\n"
        "v = 1"
    )
    pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    result = dizest("run", write(tmp_path, pkg))
    assert result.returncode == 0, result.stderr
    assert "[f] ^[]52;c;aGk=^G clip" in result.stderr
    assert "[f] \x1b[31mred\x1b[0m" in result.stderr
    assert "[f] ^[]0;title^G^[[2J" in result.stderr
    assert "\x1b]" not in result.stderr and "\x07" not in result.stderr
