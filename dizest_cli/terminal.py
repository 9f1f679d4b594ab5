"""What the CLI prints of a server's or a package's text, made safe for a terminal.

A flow's output is its author's: a shared run's log may be read by its grantees, in their own
terminals. Escape sequences other than colours could set their clipboard (OSC 52), their
window title, clear their screen or move the cursor to forge another flow's lines. So what the
CLI prints of a log keeps colour and style (SGR: `ESC [ ... m`, as tqdm, logging and pytest
write them) and shows every other control character (and the Unicode controls that reorder
what a terminal shows: bidi embeddings, overrides and isolates) as a visible mark. A carriage
return keeps what a terminal would show of the line: the text after the last one.

Everything else the CLI prints as text (a flow's error reason, a workflow's title, a flow's id,
a problem's message: `plain`) keeps no control character at all, newlines and tabs included
(a line that could forge the next one), nor those bidi controls. JSON output (`--json`)
escapes them itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import click

_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_BIDI = "\u202a-\u202e\u2066-\u2069"  # embeddings, overrides, isolates: reorder what follows
_CONTROL = re.compile(f"[\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f{_BIDI}]")  # a log line keeps its tabs
_ANY_CONTROL = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}]")


def _caret(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20 or code == 0x7F:
        return f"^{chr(code ^ 0x40)}"
    return f"<{code:#04x}>" if code < 0x100 else f"<U+{code:04X}>"


def plain(value: object) -> str:
    """`value` as text with every control character shown as a visible mark (see above)."""
    return _ANY_CONTROL.sub(_caret, str(value))


def safe_line(text: str) -> str:
    """One line of a log (no newline) as a terminal may show it."""
    if "\r" in text:
        text = next((part for part in reversed(text.split("\r")) if part), "")
    kept = _SGR.split(text)
    colours = _SGR.findall(text)
    cleaned = [_CONTROL.sub(_caret, part) for part in kept]
    out = cleaned[0]
    for colour, part in zip(colours, cleaned[1:], strict=True):
        out += colour + part
    if colours:
        out += "\x1b[0m"  # a colour left on must not paint the next flow's lines
    return out


def echo_problems(where: str, headline: str, problems: Sequence[object], err: bool = True) -> None:
    """What is wrong, in a line, then each problem, one a line (each `plain`: a problem may
    quote the package)."""
    echo(f"{where}: {headline}", err=err)
    for problem in problems:
        echo(f"  - {problem}", err=err)


def echo(message: object = "", err: bool = False) -> None:
    """One line of text (to stderr with `err`), its control characters made visible
    (`plain`): what the CLI prints may hold another user's or a package's text."""
    click.echo(plain(message), err=err)


class Failure(click.ClickException):
    """A command's failure (exit 1), its message printed as `plain` text: it often carries a
    server's words (an API error naming a title, a problem in a package)."""

    def format_message(self) -> str:
        return plain(self.message)


class Refusal(Failure):
    """A command refusing to start on its configuration (a malformed setting, a sandbox layer
    it requires): exit 78, sysexits' EX_CONFIG, which `dizest serve` does not restart (the
    same settings would refuse again) but stops on, saying why."""

    exit_code = os.EX_CONFIG
