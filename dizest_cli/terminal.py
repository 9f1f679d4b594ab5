"""A flow's log line, made safe to print on a terminal.

A flow's output is its author's: a shared run's log may be read by its grantees, in their own
terminals. Escape sequences other than colours could set their clipboard (OSC 52), their
window title, clear their screen or move the cursor to forge another flow's lines. So what the
CLI prints of a log keeps colour and style (SGR: `ESC [ ... m`, as tqdm, logging and pytest
write them) and shows every other control character as a visible `^X` / `^[` mark. A carriage
return keeps what a terminal would show of the line: the text after the last one.
"""

from __future__ import annotations

import re

_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]")


def _caret(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"^{chr(code ^ 0x40)}" if code < 0x20 or code == 0x7F else f"<{code:#04x}>"


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
