"""Terminal output while a run goes on: log lines prefixed by flow, a live status line on a TTY,
and a summary table at the end. Writes to one text stream (stderr), never to stdout.

Not on a TTY (CI logs, a pipe), there is no status line to redraw, so every event that says
something is one line, written and flushed as it happens: each flow status change
(`[flow] running`, `[flow] ready 0.12s`, `[flow] error: reason`), each log line, and the run's
status."""

from __future__ import annotations

import time
from typing import Any, TextIO

from dizest_cli.terminal import plain, safe_line
from dizest_core import events as ev
from dizest_core.events import Event
from dizest_core.model import Package
from dizest_core.render import as_text


class Progress:
    def __init__(self, package: Package, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.width = max((len(f) for f in package.flows), default=4)
        self.counts = {"ready": 0, "error": 0, "running": 0}
        self.total = len(package.flows)
        self.started = time.monotonic()
        self._line_shown = False

    def event(self, event: Event) -> None:
        if event.type == ev.LOG_APPEND:
            entry = event.data["entry"]
            text = entry if isinstance(entry, str) else as_text(entry)
            for line in text.rstrip("\n").split("\n"):
                self._write(f"[{plain(event.flow_id):<{self.width}}] {safe_line(line)}")
        elif event.type == ev.FLOW_STATUS:
            self._status(event)
        elif event.type == ev.WORKFLOW_STATUS and not self.tty:
            self._write(f"run {event.data.get('status')}")
        if self.tty:
            self._draw()
        else:
            self.out.flush()

    def _status(self, event: Event) -> None:
        status = event.data["status"]
        if status == "running":
            self.counts["running"] += 1
        elif status in ("ready", "error"):
            self.counts["running"] -= 1
            self.counts[status] += 1
        if status == "error":
            reason = plain(event.data.get("reason"))
            self._write(f"[{plain(event.flow_id):<{self.width}}] error: {reason}")
        elif not self.tty:
            took = event.data.get("duration_s")
            after = f" {took:.3f}s" if isinstance(took, (int, float)) else ""
            self._write(f"[{plain(event.flow_id):<{self.width}}] {plain(status)}{after}")

    def _write(self, line: str) -> None:
        if self._line_shown:
            self.out.write("\r\x1b[2K")
            self._line_shown = False
        self.out.write(line + "\n")

    def _draw(self) -> None:
        c = self.counts
        self.out.write(
            f"\r\x1b[2K{c['ready']}/{self.total} ready, {c['running']} running, "
            f"{c['error']} failed  {time.monotonic() - self.started:.1f}s"
        )
        self.out.flush()
        self._line_shown = True

    def close(self) -> None:
        if self._line_shown:
            self.out.write("\r\x1b[2K")
            self._line_shown = False
        self.out.flush()

    def summary(self, report: dict[str, Any]) -> None:
        self.close()
        flows = report["flows"]
        shown = [(f, d) for f, d in flows.items() if d["status"] != "idle" or d["reason"]]
        if len(shown) > 40:  # large runs: only what went wrong
            shown = [(f, d) for f, d in shown if d["status"] != "ready"]
        width = max(self.width, len("flow"))
        self.out.write(f"\n{'flow':<{width}}  {'status':<8} {'time':>8}  reason\n")
        for flow_id, d in shown:
            dur = f"{d['duration_s']:.3f}s" if d["duration_s"] is not None else "-"
            status, reason = plain(d["status"]), plain(d["reason"] or "")
            line = f"{plain(flow_id):<{width}}  {status:<8} {dur:>8}  {reason}"
            self.out.write(line.rstrip() + "\n")
        ready = sum(1 for d in flows.values() if d["status"] == "ready")
        self.out.write(
            f"run {report['status']}: {ready} ready of {len(flows)} flows in "
            f"{time.monotonic() - self.started:.2f}s\n"
        )
        self.out.flush()
