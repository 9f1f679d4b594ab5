"""A flow's output pipe cut into lines: what the Supervisor turns into log entries and records.

The child's stdout and stderr share one pipe (two could not tell which line came first), and
its log records ride in it too, each after `wire.LOG_MARK` on a line of its own. A line never
grows without bound: an unfinished line longer than MAX_LINE becomes entries of MAX_LINE bytes,
except a log record (up to the job's record limit), which is only whole once its newline comes.
"""

from __future__ import annotations

from dizest_core import wire

MAX_LINE = 65_536


def pipe_lines(buf: bytearray, data: bytes, record_limit: int) -> list[bytes]:
    """Add `data` to what is pending in `buf`; return the lines now complete (or cut)."""
    lines: list[bytes] = []
    buf += data
    if b"\n" in data:
        *whole, rest = buf.split(b"\n")
        lines.extend(bytes(line) for line in whole)
        buf[:] = rest
    mark = len(wire.LOG_MARK)
    while len(buf) > MAX_LINE:
        at = buf.find(wire.LOG_MARK, 0, MAX_LINE + mark)
        if at == 0 and len(buf) <= record_limit:
            break
        cut = at if at > 0 else MAX_LINE
        lines.append(bytes(buf[:cut]))
        del buf[:cut]
    return lines
