"""The parent side of flow children: start them through the zygote, supervise, turn ends into data.

`Supervisor` is single-threaded and poll-driven (one selector over every child's pipe and socket
and the zygote's): `launch` a FlowJob, then `poll` for `Signal`s (log lines, results) and, per
child, one `Finished` with a typed outcome (ok, user error, timeout, signal, early exit, protocol).

A child runs user code, so all it sends is untrusted: messages are parsed by `wire` without
pickle (a malformed one ends the flow in error), output values stay opaque bytes, file outputs are
checked (`outcome`), logs bounded (`logbudget`); nothing a flow started outlives it. Children
come through the zygote (`zygote_handle`), ahead of their jobs (`spares`)."""

from __future__ import annotations

import contextlib
import os
import selectors
import time
from typing import Any

from dizest_core import cpuuse, wire, zygote_handle
from dizest_core.childrec import Child
from dizest_core.diskguard import DiskGuard
from dizest_core.errors import ErrorInfo, ExecutionError, ProtocolError
from dizest_core.job import FlowJob
from dizest_core.logbudget import LogBudget
from dizest_core.outcome import Finished, Signal, check_artifacts, end_of
from dizest_core.pipelines import pipe_lines
from dizest_core.sandbox import UID_STRIDE, Policy
from dizest_core.spares import Spares
from dizest_core.wire import FrameReader
from dizest_core.zygote_handle import Zygote

__all__ = ["Finished", "Signal", "Supervisor", "Zygote"]

READ_CHUNK = 1 << 20
DRAIN_READS = 16  # reads of a finished child's pipe: bounded, a grandchild may still write


class Supervisor:
    """Runs flow children concurrently and reports what they do; not thread-safe by design."""

    def __init__(
        self,
        env: dict[str, str],
        preload: tuple[str, ...] = (),
        renderer_files: tuple[str, ...] = (),
        policy: Policy | None = None,
        disk_reserve_mb: int = 0,
    ) -> None:
        self.zygote = zygote_handle.start(env, preload, renderer_files, policy)
        self.disk = DiskGuard(disk_reserve_mb)
        self.layers = self.zygote.layers
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.zygote.sock, selectors.EVENT_READ, None)
        self.children: dict[str, Child] = {}
        self.by_pid: dict[int, Child] = {}
        self.forking: dict[str, Child] = {}  # asked the zygote to fork, pid not known yet
        self.spares = Spares(self.zygote)
        self.spare_slots = 0  # spare children kept waiting (0: none)
        self.spare_memory = 0  # the memory limit spares are forked for: the last job's
        self.meter = cpuuse.Meter()
        self.logs = LogBudget()
        self._asked = False  # a CPU-usage question to the zygote is unanswered
        self._ended: list[str] = []  # fork tokens of children that said DONE: to kill
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, "wake")

    def __len__(self) -> int:
        return len(self.children)

    def launch(
        self, job: FlowJob, timeout: float | None = None, encoded: bytes | None = None
    ) -> None:
        """Start `job` (`encoded` by `wire.encode_job` already, or not) in a spare child forked
        for its memory limit, else in a new one; its first signals come from `poll`."""
        if job.flow_id in self.children:
            raise ExecutionError(f"flow {job.flow_id!r} is already running")
        if len(self.children) >= UID_STRIDE:
            raise ExecutionError(f"at most {UID_STRIDE} flows run at once in one engine")
        memory = self.spare_memory = job.memory_limit_mb or 0
        spare = self.spares.take(memory)
        if spare is None:
            if len(self.children) + len(self.spares) >= UID_STRIDE:
                self.spares.close()  # spares for another limit: their slots are needed
            self.spares.fork(memory)
            spare = self.spares.take(memory)
            assert spare is not None
        now = time.monotonic()
        child = Child(
            job,
            spare.conn,
            {spare.out_r: "output"},
            bytearray(wire.encode_job(job) if encoded is None else encoded),
            now,
            now + timeout if timeout else None,
            timeout or 0.0,
            reader=FrameReader(wire.max_frame(job), wire.max_output(job)),
            record_limit=wire.max_record(job),
            token=spare.token,
            pid=spare.pid,
        )
        spare.conn.setblocking(False)
        os.set_blocking(spare.out_r, False)
        child.partial[spare.out_r] = bytearray()
        self.selector.register(spare.out_r, selectors.EVENT_READ, child)
        self.selector.register(spare.conn, selectors.EVENT_READ | selectors.EVENT_WRITE, child)
        self.children[job.flow_id] = child
        self.logs.start(job.flow_id, job.max_log_bytes)
        self.meter.forget(spare.token)  # its CPU use as a spare says nothing of the flow
        if spare.pid is None:
            self.forking[spare.token] = child
        else:
            self.by_pid[spare.pid] = child
        self._conn_ready(child, selectors.EVENT_WRITE, [])  # the job now, not after a select

    def rest(self, reserve: int, memory_mb: int) -> None:
        """Between runs: `reserve` spares for `memory_mb`, none for another limit; the zygote
        forks them while the caller goes on (`spares`)."""
        self.spare_slots, self.spare_memory = reserve, memory_mb
        self.spares.rest(reserve, memory_mb, UID_STRIDE - len(self.children))

    def sample_cpu(self) -> None:
        """Ask the zygote for the children's CPU use (read by `holds_core` once answered)."""
        if not self._asked:
            self._asked = True
            self.zygote.ask_usage()

    def holds_core(self, flow_id: str) -> bool:
        """Whether a running flow uses (or may use: not measured yet) a core of its own."""
        child = self.children.get(flow_id)
        return child is not None and self.meter.holds_core(child.token)

    def kill(self, flow_id: str, reason: str) -> None:
        """Kill a running flow's process group; it finishes (not ok) with `reason`."""
        child = self.children.get(flow_id)
        if child is None or child.kill_reason:
            return
        child.kill_reason = reason
        if child.pid is not None:
            self.zygote.kill(child.token)

    def settle(self) -> None:
        """Kill what the children that said DONE left now (else the next poll does it)."""
        for token in self._ended:
            self.zygote.kill(token)
        self._ended.clear()

    def wake(self) -> None:
        """Make a blocked `poll` return now (safe from another thread or a signal handler)."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def poll(self, timeout: float | None) -> list[Signal | Finished]:
        """Wait up to `timeout` seconds for children to say or do something."""
        out: list[Signal | Finished] = []
        self.settle()
        self.spares.top_up(self.spare_slots, self.spare_memory, UID_STRIDE - len(self.children))
        for key, events in self.selector.select(self._until_deadline(timeout)):
            if key.data is None:
                self._zygote_notices(out)
            elif key.data == "wake":
                os.read(self._wake_r, 4096)
            else:
                self._child_ready(key.data, key, events, out)
        self._expire_deadlines()
        if self.children and self.disk.check(self._written_to, time.monotonic()):
            self.zygote.ask_writes()
        return self.logs.admit(out)

    def _written_to(self) -> list[str]:
        """Where the running flows write on the server's disk."""
        paths = [c.job.workdir for c in self.children.values()]
        return paths + [c.job.artifact_dir for c in self.children.values() if c.job.artifact_dir]

    def _child_ready(
        self, child: Child, key: selectors.SelectorKey, events: int, out: list[Signal | Finished]
    ) -> None:
        if self.children.get(child.job.flow_id) is not child:
            return  # finished earlier in this batch; its fds are closed
        if key.fileobj is child.conn:
            if child.conn.fileno() >= 0:
                self._conn_ready(child, events, out)
        elif key.fd in child.pipes:
            self._pipe_ready(child, key.fd, out)

    def close(self) -> None:
        self.spare_slots = 0
        self.spares.close()
        for flow_id in list(self.children):
            self.kill(flow_id, "engine closed")
        deadline = time.monotonic() + 5
        while self.children and time.monotonic() < deadline:
            self.poll(0.1)
        self.poll(0)  # the kills of children that said DONE
        self.selector.close()
        self.zygote.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def _until_deadline(self, timeout: float | None) -> float | None:
        deadlines = [c.deadline for c in self.children.values() if c.deadline and not c.kill_reason]
        if not deadlines:
            return timeout
        wait = max(0.0, min(deadlines) - time.monotonic())
        return wait if timeout is None else min(wait, timeout)

    def _expire_deadlines(self) -> None:
        now = time.monotonic()
        for flow_id, child in list(self.children.items()):
            if child.deadline and now >= child.deadline:
                self.kill(flow_id, f"timeout after {child.timeout:g} s")

    def _zygote_notices(self, out: list[Signal | Finished]) -> None:
        for notice in self.zygote.read():
            if notice[0] == "P":
                child = self.forking.pop(notice[1], None)
                if child is None:
                    self.spares.started(notice[1], int(notice[2]))
                    continue
                child.pid = int(notice[2])
                child.started = time.monotonic()  # durations count from the fork, not the request
                if child.deadline is not None:
                    child.deadline = child.started + child.timeout
                self.by_pid[child.pid] = child
                if child.kill_reason:
                    self.zygote.kill(child.token)
            elif notice[0] == "C":
                self._asked, now = False, time.monotonic()
                for token, ns, runnable in cpuuse.parse(notice[1:]):
                    self.meter.record(token, now, ns, runnable)
            elif notice[0] == "W":
                by_token = {c.token: c for c in self.children.values()}
                found = self.disk.culprit_of(notice[1:], by_token)
                if found is not None:
                    self.kill(by_token[found[0]].job.flow_id, found[1])
            elif notice[0] == "X":
                child = self.by_pid.pop(int(notice[1]), None)
                if child is None:
                    self.spares.ended(int(notice[1]))
                    continue
                child.status = int(notice[2])
                child.oom = int(notice[3]) if len(notice) > 3 else 0
                if not child.reported:
                    self._finish(child, out)

    def _conn_ready(self, child: Child, events: int, out: list[Signal | Finished]) -> None:
        if events & selectors.EVENT_WRITE and child.outbox:
            try:
                sent = child.conn.send(child.outbox[:READ_CHUNK])
                del child.outbox[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                child.outbox.clear()
            if not child.outbox:
                self.selector.modify(child.conn, selectors.EVENT_READ, child)
        if events & selectors.EVENT_READ:
            self._read_conn(child, out)

    def _read_conn(self, child: Child, out: list[Signal | Finished]) -> bool:
        """Read what is there; False at end of stream."""
        while True:
            try:
                data = child.conn.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                data = b""
            if not data:
                self.selector.unregister(child.conn)
                child.conn.close()
                return False
            child.received += len(data)
            try:
                messages = child.reader.feed(data)
            except ProtocolError as exc:
                self._reject(child, exc)
                return False
            for message in messages:
                self._message(child, message, out)
            if child.done and not child.reported:  # its last message: report now; the exit
                self._finish(child, out)  # notice will only reap it
                return False

    def _reject(self, child: Child, exc: ProtocolError) -> None:
        """The child broke the protocol (broken or hostile user code): stop listening to it
        and end the flow in error; nothing it sent after this point is trusted."""
        if child.conn.fileno() >= 0:
            self.selector.unregister(child.conn)
            child.conn.close()
        self.kill(child.job.flow_id, f"protocol error: the flow sent {exc}")

    def _message(
        self, child: Child, message: tuple[Any, ...], out: list[Signal | Finished]
    ) -> None:
        """A checked message (see `wire`): its fields have the documented types."""
        kind, flow_id = message[0], child.job.flow_id
        if kind == wire.LOG:
            out.append(Signal(flow_id, "log", {"entry": message[1], "stream": "print"}))
        elif kind == wire.CLEAR:
            out.append(Signal(flow_id, "clear"))
        elif kind == wire.RESULT:
            out.append(Signal(flow_id, "result", {"name": message[1], "value": message[2]}))
        elif kind == wire.OUTPUT:
            _, name, raw, shown = message
            child.outputs[name] = raw
            child.previews[name] = shown
        elif kind == wire.ERROR:
            child.compiled = message[1].pop("compiled")  # (decoded for this message alone)
            child.error = ErrorInfo(**message[1])
        elif kind == wire.DONE:
            child.done = True
        elif kind == wire.ANSWER:
            child.answer = (message[1], message[2], message[3])

    def _pipe_ready(self, child: Child, fd: int, out: list[Signal | Finished]) -> bool:
        """Read the output pipe once; False when there was nothing to read."""
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return False
        if not data:
            self._close_pipe(child, fd, out)
            return False
        child.received += len(data)
        if self.logs.spent(child.job.flow_id):  # all dropped: not cut into lines (~1.5 us a
            child.partial[fd].clear()  # line of the engine's CPU, outside the flow's cgroup)
            return True
        for line in pipe_lines(child.partial[fd], data, child.record_limit):
            self._line(child, fd, line, out)
        return True

    def _line(self, child: Child, fd: int, line: bytes, out: list[Signal | Finished]) -> None:
        """One line of the pipe: text, or text then a log record (print, display, clear)."""
        stream, at = child.pipes[fd], line.find(wire.LOG_MARK)
        if at != 0:
            text = (line if at < 0 else line[:at]).decode("utf-8", "replace").rstrip("\r")
            if at < 0 or text:
                out.append(Signal(child.job.flow_id, "log", {"entry": text, "stream": stream}))
            if at < 0:
                return
        record = line[at + len(wire.LOG_MARK) :]
        try:
            message = wire.decode_record(record)
        except ProtocolError:  # the pipe is shared with subprocesses: show it, do not fail
            text = record.decode("utf-8", "replace")
            out.append(Signal(child.job.flow_id, "log", {"entry": text, "stream": stream}))
            return
        self._message(child, message, out)

    def _close_pipe(self, child: Child, fd: int, out: list[Signal | Finished]) -> None:
        if child.partial[fd]:
            self._line(child, fd, bytes(child.partial[fd]), out)
            child.partial[fd].clear()
        self.selector.unregister(fd)
        os.close(fd)
        del child.pipes[fd]

    def _finish(self, child: Child, out: list[Signal | Finished]) -> None:
        """The child sent its last message or exited: drain what it left in its channels,
        close them, and report its outcome (once)."""
        child.reported = True
        if child.status is None:  # it said DONE: it and what it started must end; killed (by
            self._ended.append(child.token)  # token: its pid may be unread yet) off the path
        if child.conn.fileno() >= 0:
            if not child.done:
                self._read_conn(child, out)
            if child.conn.fileno() >= 0:  # done, or a grandchild holds the socket open
                self.selector.unregister(child.conn)
                child.conn.close()
        for fd in list(child.pipes):
            for _ in range(DRAIN_READS):
                if not self._pipe_ready(child, fd, out):
                    break
            if fd in child.pipes:
                self._close_pipe(child, fd, out)
        del self.children[child.job.flow_id]
        self.meter.forget(child.token)
        ok, reason = end_of(
            child.kill_reason, child.error, child.done, child.status, child.oom, child.job
        )
        if ok:
            ok, reason = check_artifacts(child.job, child.outputs)
        if reason and not child.error:
            out.append(
                Signal(child.job.flow_id, "log", {"entry": f"dizest: {reason}", "stream": "engine"})
            )
        out.append(child.finished(ok, reason, time.monotonic() - child.started))
