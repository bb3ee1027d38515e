"""LoggerHub: a run's loggers, each in a daemon thread with its own event loop, fed through
a bounded queue.

The run only ever appends to the queues (a lock held for a few instructions, never a
wait): a logger that is slow, blocks or raises falls behind or fails on its own, and what
did not fit in its queue is dropped and counted. When the run ends, the loggers get a
bounded time to finish; one still busy then is left behind, its remaining events counted
as dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from .base import Logger
from .discover import instantiate, load_classes
from .events import LogWriteEvent, Severity, from_record, output_lines

MAX_LINES = 100_000  # events (output lines) one logger's queue holds
MAX_BYTES = 16 << 20  # output bytes one logger's queue holds
RECORD_ROOM = 1_000  # kept for the run's own events when output has filled a queue
FAILURES_IN_A_ROW = 100  # then a logger is turned off: a broken one must not burn the run's CPU
HOOKS = {"succeeded": "on_success", "failed": "on_failure", "stopped": "on_abort"}

# Queue items: (kind, lines, bytes, payload...)
_EVENT, _OUTPUT, _HOOK, _STOP = range(4)


class _Sink:
    """One logger: its queue, its thread, and what it dropped or failed."""

    def __init__(self, name: str, instance: Logger, job: str, max_lines: int, max_bytes: int) -> None:
        self.name, self.logger, self.job = name, instance, job
        self.max_lines, self.max_bytes = max_lines, max_bytes
        self.bulk = getattr(instance, "update_output", None)
        self.queue: deque[tuple] = deque()
        self.lock = threading.Lock()
        self.lines = self.bytes = 0  # waiting in the queue (or being handled)
        self.dropped = self.failed = self.skipped = self.in_a_row = 0
        self.error = ""
        self.hook_errors: list[str] = []
        self.off = self.abandoned = False
        self.done = threading.Event()
        self.sleeping = False
        self.busy_since = 0.0  # when the item being handled was taken (0: idle)
        self.per_item: float | None = None  # how long an event or output item takes it, lately
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake: asyncio.Event | None = None
        self.task: asyncio.Task | None = None

    # ---- the run's side: append, never wait --------------------------------------

    def put(self, item: tuple, room: int | None) -> None:
        """Queue `item` if it fits under `room` events (None: always)."""
        with self.lock:
            if room is not None and self.off:
                self.skipped += item[1]  # turned off: not even woken for it
                return
            if room is not None and self.lines + item[1] > room:
                self.dropped += item[1]
                return
            self.lines += item[1]
            self.queue.append(item)
        self._nudge()

    def put_output(self, task: str, data: bytes, lines: int, when: float, cuts: dict) -> None:
        with self.lock:
            if self.off:
                self.skipped += lines
                return
            room_lines, room_bytes = self.max_lines - self.lines, self.max_bytes - self.bytes
            if lines > room_lines or len(data) > room_bytes:
                # The whole lines that fit, cut once for all the loggers with the same room.
                key = (room_lines, room_bytes)
                if key not in cuts:
                    cuts[key] = _head(data, room_lines, room_bytes)
                kept, n = cuts[key]
                self.dropped += lines - n
                if not n:
                    return
                data, lines = kept, n
            self.lines += lines
            self.bytes += len(data)
            self.queue.append((_OUTPUT, lines, len(data), task, data, when))
        self._nudge()

    def _nudge(self) -> None:
        # Only a sleeping loop needs waking: a busy one finds the item on its next turn.
        if self.sleeping and self.loop is not None and self.wake is not None:
            self.sleeping = False
            try:
                self.loop.call_soon_threadsafe(self.wake.set)
            except RuntimeError:
                pass  # its loop has ended

    def hopeless(self, left: float) -> bool:
        """Whether, at the pace it has kept, it cannot get through its queue in `left` seconds."""
        busy = self.busy_since
        if not busy:
            return False  # idle: about to take its last items
        # An item already in hand for longer than the usual pace is the pace, as far as we know.
        per = max(self.per_item or 0.0, time.monotonic() - busy)
        items = sum(1 for item in list(self.queue) if item[0] in (_EVENT, _OUTPUT))
        return (items + 1) * per > left

    def abandon(self) -> None:
        """Stop waiting for it: what it has not handled counts as dropped."""
        with self.lock:
            self.abandoned = True
            self.dropped += self.lines
            self.lines = 0
        if self.loop is not None and self.task is not None:
            try:
                self.loop.call_soon_threadsafe(self.task.cancel)  # an awaiting update ends at once
            except RuntimeError:
                pass

    # ---- the logger's thread ------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"logger {self.name}", daemon=True).start()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException:  # cancelled when left behind, or the logger's own exit
            pass
        finally:
            self.done.set()

    async def _main(self) -> None:
        self.wake = asyncio.Event()
        self.task = asyncio.current_task()
        self.loop = asyncio.get_running_loop()
        queue = self.queue
        while not self.abandoned:
            if not queue:
                self.wake.clear()
                self.sleeping = True
                if not queue:  # checked again after saying so: an item put meanwhile is seen
                    await self.wake.wait()
                self.sleeping = False
                continue
            item = queue.popleft()
            kind = item[0]
            if kind == _STOP:
                return
            self.busy_since = began = time.monotonic()
            try:
                if kind == _HOOK:
                    await self._hook(item[3])
                elif self.off:
                    self._skip(item[1])
                elif kind == _EVENT:
                    await self._event(item[3])
                else:
                    await self._output(item[1], *item[3:])
            finally:
                with self.lock:
                    if not self.abandoned:
                        self.lines -= item[1]
                        self.bytes -= item[2]
                self.busy_since = 0.0
                if kind != _HOOK:
                    took = time.monotonic() - began
                    self.per_item = took if self.per_item is None else 0.7 * self.per_item + 0.3 * took

    async def _call(self, fn: Any, *args: Any) -> None:
        result = fn(*args)
        if inspect.isawaitable(result):  # a logger written with a plain `def` works too
            await result

    async def _hook(self, name: str) -> None:
        try:
            await self._call(getattr(self.logger, name))
        except Exception as e:
            self.hook_errors.append(f"{name} failed: {_describe(e)}")

    async def _event(self, rec: dict[str, Any]) -> None:
        if rec.get("event") == "run_start" and rec.get("resumed"):
            await self._hook("on_restart")
        evt = from_record(rec, self.job)
        if evt is not None:
            await self._deliver(self.logger.update, 1, evt)

    async def _output(self, count: int, task: str, data: bytes, when: float) -> None:
        ts = datetime.fromtimestamp(when, UTC)
        update, info = self.logger.update, Severity.INFO
        for lines in output_lines(data):
            if self.off or self.abandoned:
                break
            count -= len(lines)
            if self.bulk is not None:
                await self._deliver(self.bulk, len(lines), task, lines, ts)
                continue
            for i, line in enumerate(lines):
                if self.off or self.abandoned:
                    count += len(lines) - i
                    break
                await self._deliver(update, 1, LogWriteEvent(task, info, line, ts))
        if self.off:
            self._skip(count)  # the rest of the block, never decoded

    def _skip(self, events: int) -> None:
        with self.lock:  # the run's side counts here too, once the logger is off
            self.skipped += events

    async def _deliver(self, fn: Any, events: int, *args: Any) -> None:
        try:
            await self._call(fn, *args)
            self.in_a_row = 0
        except Exception as e:
            self.failed += events
            self.in_a_row += events
            self.error = self.error or _describe(e)
            if self.in_a_row >= FAILURES_IN_A_ROW:
                self.off = True

    def summary(self) -> list[str]:
        head = f"logger '{self.name}':"
        out = [f"{head} {_events(self.dropped)} dropped (too slow)"] if self.dropped else []
        if self.failed:
            off = (f"; turned off after {FAILURES_IN_A_ROW} failures in a row, {_events(self.skipped)} not sent"
                   if self.off else "")
            out.append(f"{head} {_events(self.failed)} failed: {self.error}{off}")
        out.extend(f"{head} {h}" for h in self.hook_errors)
        if self.abandoned and not self.dropped:
            out.append(f"{head} still busy when the run ended: its last hooks may not have run")
        return out


class LoggerHub:
    """The loggers of one run. `record`, `output` and `close` may be called from any
    thread; `record` and `output` never wait."""

    max_lines = MAX_LINES
    max_bytes = MAX_BYTES

    def __init__(self, specs: list[Any], job_directory: str, extension_directories: list[str],
                 extension_packages: list[str], job_name: str, run_id: str) -> None:
        self.specs = list(specs)
        self.job_directory = job_directory
        self.extension_directories = list(extension_directories)
        self.extension_packages = list(extension_packages)
        self.job_name, self.run_id = job_name, run_id
        self._sinks: list[_Sink] = []
        self._problems: list[str] = []
        self._closed = False
        self._summary: list[str] | None = None

    @property
    def names(self) -> list[str]:
        """The loggers that started."""
        return [s.name for s in self._sinks]

    def start(self) -> None:
        """Create the loggers, each in its thread (their on_create runs there). A logger
        that cannot be created is said in close()'s summary; the run goes on."""
        if not self.specs or self._sinks:
            return
        classes, _ = load_classes(self.job_directory, self.extension_directories, self.extension_packages,
                                  [s.cls for s in self.specs])
        for spec in self.specs:
            instance, problems = instantiate(spec, classes)
            if instance is None:
                self._problems.append(f"logger '{spec.name}' not started: " + "; ".join(problems))
                continue
            instance.with_context(self.job_name, self.run_id, self.job_directory)
            sink = _Sink(spec.name, instance, self.job_name, self.max_lines, self.max_bytes)
            sink.put((_HOOK, 0, 0, "on_create"), None)
            sink.start()
            self._sinks.append(sink)

    def record(self, rec: dict[str, Any]) -> None:
        """A trail record of the run (run_start, state, run_end)."""
        if self._closed or not self._sinks:
            return
        item = (_EVENT, 1, 0, dict(rec))  # a copy: the caller may change its dict later
        room = self.max_lines + RECORD_ROOM
        for sink in self._sinks:
            sink.put(item, room)

    def output(self, task: str, data: bytes) -> None:
        """A block of a task's raw output lines, joined by LF (kept whole: split by each logger)."""
        if self._closed or not self._sinks or not data:
            return
        lines = data.count(b"\n") + 1
        when = time.time()
        cuts: dict = {}
        for sink in self._sinks:
            sink.put_output(task, data, lines, when, cuts)

    def close(self, outcome: str, wait: float = 1.0) -> list[str]:
        """The run ended ("succeeded", "failed" or "stopped"): run the loggers' last hooks,
        wait at most `wait` seconds in all, and return what went wrong, as sentences."""
        if self._summary is not None:
            return list(self._summary)
        self._closed = True
        deadline = time.monotonic() + wait
        for sink in self._sinks:
            sink.put((_HOOK, 0, 0, HOOKS.get(outcome, "on_failure")), None)
            sink.put((_HOOK, 0, 0, "on_destroy"), None)
            sink.put((_STOP, 0, 0), None)
        # Those that cannot finish in time at the pace they kept are left at once, so that a
        # logger taking seconds per event does not hold the end of the run for all of `wait`.
        while True:
            waiting = [s for s in self._sinks if not s.done.is_set() and not s.abandoned]
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                break
            for sink in waiting:
                if sink.hopeless(left):
                    sink.abandon()
            waiting = [s for s in waiting if not s.abandoned]
            if waiting:
                waiting[0].done.wait(min(0.02, left))
        out = list(self._problems)
        for sink in self._sinks:
            if not sink.done.is_set():
                sink.abandon()  # a daemon thread: it may linger, nobody waits for it
            out.extend(sink.summary())
        self._summary = out
        return list(out)


def _head(data: bytes, lines: int, size: int) -> tuple[bytes, int]:
    """The first whole lines of `data` in at most `size` bytes and about `lines` lines (the
    cut is judged by their average length: a few C-speed passes, never a loop per line);
    returns them and how many they are."""
    if lines <= 0 or size <= 0:
        return b"", 0
    cut = len(data)
    if size < cut:
        cut = data.rfind(b"\n", 0, size + 1)  # data[size] may be the LF that ends a whole line
    n = data.count(b"\n", 0, cut) + 1 if cut > 0 else 0
    if n > lines:
        cut = data.rfind(b"\n", 0, cut * lines // n + 1)
        n = data.count(b"\n", 0, cut) + 1 if cut > 0 else 0
    return (data[:cut], n) if cut > 0 else (b"", 0)


def _events(n: int) -> str:
    return f"{n:,} event{'' if n == 1 else 's'}"


def _describe(e: BaseException) -> str:
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= 200 else text[:197] + "..."
