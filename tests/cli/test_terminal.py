"""What the CLI prints of a flow's log keeps colours and defuses every other escape: a shared
run's author could otherwise set a grantee's clipboard (OSC 52), retitle or clear their
terminal, or overwrite the line's `[flow]` prefix (a hostile probe's report)."""

from __future__ import annotations

from pathlib import Path

from dizest_cli.terminal import Failure, plain, safe_line
from tests.conftest import package
from tests.test_cli import dizest, write


def test_colours_stay_and_every_other_control_is_shown_not_obeyed() -> None:
    assert safe_line("\x1b]52;c;aGk=\x07 hi") == "^[]52;c;aGk=^G hi"
    assert safe_line("\x1b[2J\x1b[1;1H") == "^[[2J^[[1;1H"
    assert safe_line("\x1b[31mred\x1b[0m ok") == "\x1b[31mred\x1b[0m ok\x1b[0m"
    assert safe_line("[other] forged\rmine") == "mine"
    assert safe_line("tab\there nul\x00 c1\x9b") == "tab\there nul^@ c1<0x9b>"
    assert safe_line("plain é ✓") == "plain é ✓"
    assert safe_line("x\u202eexe.txt") == "x<U+202E>exe.txt"  # shown reversed otherwise


def test_plain_text_keeps_no_control_at_all() -> None:
    """A reason, a title or a flow id: no colour, no newline (a forged next line), no bidi
    override (text shown in another order than it is)."""
    assert plain("boom\x1b[2J\x1b]52;c;eA==\x07") == "boom^[[2J^[]52;c;eA==^G"
    assert plain("a\nb\tc\rd\x00") == "a^Jb^Ic^Md^@"
    assert plain("\u202etxt.exe\u2066x\u2069") == "<U+202E>txt.exe<U+2066>x<U+2069>"
    assert plain(None) == "None" and plain("plain é ✓ 日本") == "plain é ✓ 日本"


def test_a_failure_prints_a_servers_words_defused() -> None:
    """A review's API error naming a title with an OSC 52 write went through click's own
    ClickException, printed raw."""
    message = "bad_input: title T\x1b]52;c;eA==\x07\x1b[2J"
    assert Failure(message).format_message() == "bad_input: title T^[]52;c;eA==^G^[[2J"


def test_a_hostile_error_reason_is_printed_defused(tmp_path: Path) -> None:
    """A probe's flow raised ValueError with a clear-screen and a clipboard write in its
    message: `dizest run` printed the reason raw (the log was already defused)."""
    code = "raise ValueError('boom\\x1b[2J\\x1b]52;c;eA==\\x07\\n[g] ready')"
    pkg = package({"a": {"code": code}}, {"f": {"app": "a"}})
    result = dizest("run", write(tmp_path, pkg))
    assert result.returncode == 1, result.stderr
    assert "boom^[[2J^[]52;c;eA==^G^J[g] ready" in result.stderr, result.stderr
    assert "\x1b]" not in result.stderr and "\x1b[2J" not in result.stderr


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
