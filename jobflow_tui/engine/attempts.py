"""Attempts while they run: started through their executor, their logs tailed, stopped on
abort or timeout, looked after while they run long, finished and handed back.

The `Scheduler` decides what runs and what an end means; this module does the running.
It also keeps the run's orphans in check (see `contain.py`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..jobdef.model import JobDef, TaskDef
from ..journal import AttemptFiles
from . import contain, process
from .attempt import Attempt, TaskRun
from .events import RUNNING, Event, Output
from .executor import AttemptRequest, Execution, Executor, Executors, Outcome
from .statedir import note_launch, safe_name
from .tail import LogTail

if TYPE_CHECKING:
    from .resume import Adopted

# Starting an attempt that may take a while (the Python worker answers a request, and is
# started itself on first use) happens in threads, so the loop goes on meanwhile.
_STARTER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jobflow-start")
TAIL_INTERVAL = 0.05  # seconds between reads of running tasks' logs
TRACK_INTERVAL = 1.0  # seconds between looks after long attempts' processes
TRACK_AFTER = 0.5  # seconds an attempt runs before its processes are looked after


class AttemptRunner:
    """Runs the attempts of one run; tells `ended(run, attempt, outcome)` each end."""

    def __init__(self, executors: Executors, tasks: dict[str, TaskRun], emit: Callable[[Event], None],
                 changed: Callable[[str], None], ended: Callable[[TaskRun, Attempt, Outcome], None],
                 background: Callable[[Coroutine], asyncio.Task]) -> None:
        self.executors = executors
        self.tasks = tasks
        self._emit = emit
        self._changed = changed  # a task's checkpoint entry changed
        self._ended = ended
        self._background = background
        self.stopping = False  # logs are not drained to the end any more
        self.journal = ""  # the run's journal, once the run has its folder
        self.orphans: contain.Orphans | None = None
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task | None = None
        self._by_safe_name: dict[str, TaskRun] = {}
        self._watched: dict[TaskRun, Attempt] = {}  # attempts whose log is tailed, in start order

    def start_ticking(self) -> None:
        self._ticker = self._background(self._tick())

    # ---- starting ----------------------------------------------------------------

    def start(self, run: TaskRun, attempt: Attempt, request: AttemptRequest) -> None:
        loop = asyncio.get_running_loop()
        executor = self.executors.pick(run.spec)
        if executor.quick_start:
            # A thread buys nothing for a start this short: the hand-over and the fight for
            # the GIL cost more than the start itself.
            fut = loop.create_future()
            try:
                fut.set_result(_start(executor, request))
            except Exception as e:
                fut.set_exception(e)
            self._started(run, attempt, fut)
            return
        fut = loop.run_in_executor(_STARTER, _start, executor, request)
        fut.add_done_callback(lambda f: self._started(run, attempt, f))

    def _started(self, run: TaskRun, attempt: Attempt, fut: asyncio.Future) -> None:
        try:
            execution: Execution = fut.result()
        except Exception as e:
            # Could not even start (no shell, bad class, a full disk): an attempt that
            # failed at once, with the reason in its state.
            if isinstance(e, OSError) and e.strerror:
                why = f"{e.strerror}: {e.filename}" if e.filename else e.strerror
            else:
                why = str(e)
            attempt.start_error = f"cannot start: {why}"
            try:
                with open(attempt.files.log, "ab") as f:
                    f.write(f"jobflow-tui: cannot start task {run.name!r}: {why}\n".encode())
            except OSError:
                pass  # the state dir itself is gone; the reason still reaches the checkpoint
            self._background(self._finish(run, attempt, Outcome(127)))
            return
        self._watch(run, attempt, execution)
        if attempt.kill_reason:  # aborted while it was being started
            self.stop(run, attempt.kill_reason)
        elif run.spec.timeout:
            attempt.timer = asyncio.get_running_loop().call_later(run.spec.timeout, self._timed_out, run)

    def _watch(self, run: TaskRun, attempt: Attempt, execution: Execution) -> None:
        """Follow a started (or adopted) attempt: its log, and its end."""
        attempt.execution = execution
        run.pid = execution.pid
        attempt.tail = LogTail(attempt.files.log)
        self._watched[run] = attempt
        execution.watch(asyncio.get_running_loop())
        execution.ended.add_done_callback(lambda _f: self._background(self._outcome(run, attempt)))
        self._wake.set()

    def adopt(self, adopted: Adopted, attempt: Attempt) -> None:
        """Follow an attempt whose runner died: tail its log, await its end, never restart it."""
        run = adopted.run
        self._watch(run, attempt, adopted.execution)
        if run.spec.timeout and run.started_at:
            left = max(0.0, run.started_at + run.spec.timeout - time.time())
            attempt.timer = asyncio.get_running_loop().call_later(left, self._timed_out, run)

    # ---- stopping ----------------------------------------------------------------

    def _timed_out(self, run: TaskRun) -> None:
        if run.state == RUNNING and run.current is not None and not run.current.kill_reason:
            self.stop(run, "timeout")

    def stop(self, run: TaskRun, reason: str) -> None:
        """End the running attempt of `run` (and everything it started) for `reason`."""
        attempt = run.current
        assert attempt is not None
        attempt.kill_reason = reason
        self.collect_orphans()  # daemons it started, come back to us, go with it
        if attempt.execution is not None and attempt.killer is None:
            attempt.killer = self._background(attempt.execution.stop(run.spec.kill_grace))

    def running(self) -> list[tuple[TaskRun, Execution]]:
        return [(r, r.current.execution) for r in self.tasks.values()
                if r.state == RUNNING and r.current is not None and r.current.execution is not None]

    def end_all_now(self) -> list[TaskRun]:
        """End every running attempt without the event loop (blocking, from any thread):
        SIGTERM, the grace period, SIGKILL. The tasks whose attempts were ended."""
        running = self.running()
        for _, execution in running:
            execution.signal(signal.SIGTERM)
        deadline = time.monotonic() + max((r.spec.kill_grace for r, _ in running), default=0)
        while any(e.alive() for _, e in running) and time.monotonic() < deadline:
            time.sleep(0.05)
        for _, execution in running:
            if execution.alive():
                execution.signal(signal.SIGKILL)
        return [r for r, _ in running]

    def kill_now(self) -> None:
        """SIGKILL every running attempt at once."""
        for _, execution in self.running():
            execution.signal(signal.SIGKILL)

    # ---- ending ------------------------------------------------------------------

    async def _outcome(self, run: TaskRun, attempt: Attempt) -> None:
        assert attempt.execution is not None
        await self._finish(run, attempt, await attempt.execution.outcome())

    async def _finish(self, run: TaskRun, attempt: Attempt, outcome: Outcome) -> None:
        if attempt.timer:
            attempt.timer.cancel()
        await self._drain(run, attempt)
        if attempt.killer is not None:
            await asyncio.shield(attempt.killer)
        if attempt.execution is not None:
            attempt.execution.release()
            # What it left behind is ended (in the background: the run goes on meanwhile).
            self._background(attempt.execution.clean_up(run.spec.kill_grace))
        self._ended(run, attempt, outcome)

    async def _drain(self, run: TaskRun, attempt: Attempt) -> None:
        """The rest of the attempt's log, to the very end, in bounded pieces, letting
        viewers catch up in between: a task that printed a gigabyte costs time, not memory."""
        tail = attempt.tail
        if tail is None:
            return
        while not tail.done:
            block = await tail.read(final=True)
            if block is not None:
                self._emit(Output(run.name, run.attempt, block))
            if tail.more:
                if self.stopping:
                    await tail.close()  # shutting down: the rest is in the log file
                    break
                await asyncio.sleep(0)
        attempt.tail = None
        if self._watched.get(run) is attempt:
            del self._watched[run]

    def close(self) -> None:
        """The run is over: orphans ended (in the background), the ticker stopped."""
        self.end_orphans()
        if self._ticker is not None:
            self._ticker.cancel()

    async def close_tails(self) -> None:
        for run in self.tasks.values():
            if run.current is not None and run.current.tail is not None:
                await run.current.tail.close()

    # ---- while they run: logs, long attempts, orphans ----------------------------

    async def _tick(self) -> None:
        last_track = 0.0
        while True:
            running = [r for r, a in self._watched.items() if r.current is a and a.tail is not None]
            if not running:
                self._wake.clear()
                await self._wake.wait()
                continue
            backlog = False
            for run in running:
                attempt = run.current
                tail = attempt.tail if attempt is not None else None
                if tail is not None and tail.has_new():
                    block = await tail.read()
                    if block is not None and attempt is not None and attempt.tail is tail:
                        self._emit(Output(run.name, run.attempt, block))
                    backlog = backlog or tail.more
            now = time.monotonic()
            if now - last_track >= TRACK_INTERVAL:
                last_track = now
                self.collect_orphans()
                for run in running:
                    if run.started_at and time.time() - run.started_at > TRACK_AFTER:
                        self._look_after(run)
            # A log with more to read is read again at once (yielding to the loop between
            # reads), so a flood is followed at the speed it is written, not 1 MiB per tick.
            await asyncio.sleep(0 if backlog else TAIL_INTERVAL)

    def _look_after(self, run: TaskRun) -> None:
        """A long-running attempt: its processes kept in reach, its create time noted
        (short attempts need neither)."""
        execution = run.current.execution if run.current is not None else None
        if execution is None:
            return
        execution.track()
        if run.create_time is None and execution.create_time is not None:
            run.create_time = execution.create_time
            self._changed(run.name)

    def collect_orphans(self) -> None:
        """Orphans of attempts, come back to this process: each joins its attempt while
        that attempt runs, or is ended (its attempt is over); exited ones are reaped."""
        if self.orphans is None:
            return
        with contain.GATE.scanning():
            found = self.orphans.scan(self.executors.own_pids())
        if not self._by_safe_name:
            self._by_safe_name = {safe_name(n): r for n, r in self.tasks.items()}
        for pid, owner in found.items():
            if owner is None:
                continue  # no attempt named: ended when the run closes
            run = self._by_safe_name.get(owner[1].rsplit(".", 1)[0]) if owner[0] == self.journal else None
            attempt = run.current if run is not None else None
            if (run is not None and run.state == RUNNING and attempt is not None
                    and attempt.execution is not None and attempt.files.key == owner[1]):
                attempt.execution.claim(pid)
            else:
                self._end_orphan(pid, run.spec.kill_grace if run is not None else 5.0)

    def _end_orphan(self, pid: int, grace: float) -> None:
        try:
            pgid = os.getpgid(pid)
        except OSError:
            return
        # One in this process's own group is ended alone: its group is the runner's.
        tree = process.Tree(pid if pgid == os.getpgrp() else pgid)
        tree.add(pid)
        self._background(tree.kill(grace))

    def end_orphans(self) -> None:
        """At the end of the run: every orphan left, those that hid their attempt too."""
        if self.orphans is None:
            return
        self.collect_orphans()
        grace = max((r.spec.kill_grace for r in self.tasks.values()), default=5.0)
        for pid in list(self.orphans.strays):
            self._end_orphan(pid, grace)
        self.orphans.strays.clear()


def _start(executor: Executor, request: AttemptRequest) -> Execution:
    """The attempt noted as launched (a runner that dies from here on leaves it to be
    waited for, never started twice), the files it needs, then the executor's start."""
    note_launch(request.files)
    if request.upstream:
        # Commands read what upstream tasks published from this JSON file.
        path = request.files.base + ".upstream.json"
        with open(path, "w") as f:
            json.dump(request.upstream, f, default=str)
        request.env["JOBFLOW_UPSTREAM_OUTPUTS"] = path
    return executor.start(request)


def copy_of(value: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of plain data (what an attempt gets of the shared dict)."""
    return json.loads(json.dumps(value, default=str)) if value else {}


def run_environment(job: JobDef, run_id: str, state_dir: str, params: dict[str, str]) -> dict[str, str]:
    """The environment every attempt of a run starts from."""
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", JOBFLOW_JOB=job.name, JOBFLOW_RUN_ID=run_id, JOBFLOW_JOB_FILE=job.path,
               JOBFLOW_STATE_DIR=state_dir)
    for k, v in params.items():
        env["JOBFLOW_PARAM_" + re.sub(r"[^A-Z0-9_]", "_", k.upper())] = v
    return env


def attempt_environment(base: dict[str, str], spec: TaskDef, attempt: int, files: AttemptFiles) -> dict[str, str]:
    """One attempt's environment: the run's, the task's own, and where its files are."""
    env = dict(base)
    env.update(spec.env)
    for k, v in spec.params.items():  # its subflows' parameters, over the run's
        env["JOBFLOW_PARAM_" + re.sub(r"[^A-Z0-9_]", "_", k.upper())] = v
    env.update(JOBFLOW_TASK=spec.name, JOBFLOW_ATTEMPT=str(attempt), JOBFLOW_OUTPUT=files.outputs,
               JOBFLOW_LOG=files.log)
    return env
