"""The scheduler: runs a JobDef's DAG on asyncio, event-driven, with a concurrency limit.

Public API (what the dashboard and the headless runner use): `start`, `run`, `wait_idle`,
`abort`, `abort_all`, `retry`, `restart`, `pause`, `resume`, `shutdown`, `subscribe`, and
the read-only `tasks` mapping. Nothing here imports a UI toolkit.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..jobdef.model import JobDef, TaskDef
from . import contain, process
from .checkpoint import FORMAT, CheckpointError, read_checkpoint, reserve_space, write_atomic
from .events import (
    ABORTED,
    ACTIVE,
    BLOCKED,
    FAILED,
    PENDING,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    Event,
    Notice,
    Output,
    RunIdle,
    StateChanged,
)
from .tail import LogTail

if TYPE_CHECKING:
    from ..worker.client import Worker

_SPAWNER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jobflow-spawn")
TAIL_INTERVAL = 0.05  # seconds between reads of running tasks' logs
TRACK_INTERVAL = 1.0  # seconds between scans for descendants that leave the process group
SAVE_INTERVAL = 0.05  # at most this often a checkpoint write; changes in between coalesce
# How long an attempt whose files exist may take to record its pid: one started a moment
# before its runner died is still on its way (a shell or a fork takes milliseconds).
START_GRACE = 1.0
RETRY_WRITE_INTERVAL = 1.0  # seconds between tries of a checkpoint write that failed
RESERVE = 64 * 1024  # bytes kept aside (at least) so the next checkpoint fits on a full disk
FULL_DISK = 64 * 1024  # free bytes under which a disk counts as full


class RunError(Exception):
    """The run cannot start (state dir locked, previous run still alive, bad checkpoint)."""


def default_state_dir(job: JobDef) -> str:
    return os.environ.get("JOBFLOW_STATE_DIR") or os.path.join(job.directory, ".jobflow")


MAX_SAFE_NAME = 200  # a file name holds at most 255 bytes; room is left for ".<attempt>.<kind>"


def safe_name(name: str) -> str:
    """A file-name-safe form of a task or job name, unique per name and short enough for
    any file system (the full name stays in the checkpoint)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if safe != name or not safe or len(safe) > MAX_SAFE_NAME:
        safe = f"{safe[:60]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return safe


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _from_iso(s: Any) -> float | None:
    try:
        return datetime.fromisoformat(s).timestamp() if isinstance(s, str) else None
    except ValueError:
        return None


def _count(entry: dict, key: str) -> int:
    """A non-negative whole number from a checkpoint entry (0 when absent or not one)."""
    value = entry.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def parse_outputs(path: str) -> dict[str, str]:
    """`key=value` lines (and GitHub's `key<<EOF ... EOF` blocks) from a JOBFLOW_OUTPUT file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        eq = line.find("=")
        heredoc = line.find("<<")
        if heredoc > 0 and (eq < 0 or heredoc < eq):
            key, delim = line[:heredoc].strip(), line[heredoc + 2 :].strip()
            body: list[str] = []
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            i += 1
            if key:
                out[key] = "\n".join(body)
        elif eq > 0:
            out[line[:eq].strip()] = line[eq + 1 :]
    return out


@dataclass
class TaskRun:
    """A task's live state in this run. Read it; change it only through the Scheduler."""

    name: str
    spec: TaskDef
    state: str = PENDING
    attempts: int = 0  # attempts started in this run (they number the log files)
    budget_start: int = 0  # attempts before the current retry budget began
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    create_time: float | None = None
    logs: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    adopted: bool = False
    _proc: int | None = None  # pid of our own child, to reap
    _tree: process.Tree | None = None
    _files: process.AttemptFiles | None = None
    _tail: LogTail | None = None
    _timer: asyncio.TimerHandle | None = None
    _retry_handle: asyncio.TimerHandle | None = None
    _kill_reason: str = ""
    _start_error: str = ""
    _killer: asyncio.Task | None = None
    _done: asyncio.Future | None = None
    _shared_snapshot: dict | None = None  # shared_dict as a Python task's attempt received it
    # A Python attempt's worker, and a future set if its process ends the attempt but lives
    # on to run another (then it is kept: no leftovers to end, and released afterwards).
    _worker: Worker | None = None
    _ended: Future | None = None
    _kept: bool = False
    _again: bool = False  # adopted, but changed since: runs again when the adopted attempt ends

    @property
    def attempt(self) -> int:
        """The try within the current retry budget (1-based; 0 before the first)."""
        return self.attempts - self.budget_start

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


class Scheduler:
    """Runs one job. Create it, `await start()` (or `await run()`), drive it with the API."""

    def __init__(
        self,
        job: JobDef,
        *,
        state_dir: str | None = None,
        max_concurrency: int | None = None,
        params: dict[str, str] | None = None,
        only: list[str] | None = None,
        resume: bool = False,
        subreaper: bool = False,
    ) -> None:
        """`subreaper`: orphans of tasks come back to this process, which reaps every child
        it did not start; for a process that runs nothing else (the command line)."""
        self.job = job
        self.state_dir = os.path.abspath(state_dir or default_state_dir(job))
        self.job_dir = os.path.join(self.state_dir, safe_name(job.name))
        self.checkpoint_path = os.path.join(self.job_dir, "checkpoint.json")
        self.limit = job.max_concurrency if max_concurrency is None else max_concurrency
        self.params = dict(params or {})
        self.resume_requested = resume
        self.order = job.order()
        self.tasks: dict[str, TaskRun] = {n: TaskRun(n, job.tasks[n]) for n in self.order}
        self.children = job.children()
        self.selected: set[str] = set(job.upstream(only) if only else job.tasks)
        self.paused = False
        self.run_id = ""
        self.started_at = time.time()
        self.notes: list[str] = []
        self.shared_dict: dict[str, Any] = {}
        self._listeners: list[Callable[[Event], None]] = []
        self._ready: collections.deque[str] = collections.deque()
        self._running = 0
        self._retrying = 0
        self._version = 0  # bumped on every change; the checkpoint on disk is _written
        self._written = -1
        self._succeeded = 0
        self._has_outputs = False  # any task published outputs (restored ones included)
        self._json: dict[str, str] = {}  # task -> its encoded checkpoint entry, key included
        self._stale: set[str] = set(self.tasks)  # entries to encode again
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Future | None = None
        self._wake: asyncio.Event | None = None
        self._dirty: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None  # set by close(): the writer finishes up
        self._background: set[asyncio.Task] = set()
        self._lock_fd: int | None = None
        self._closed = False
        self._write_failing = False  # reported once until a write succeeds again
        self._stopping = False  # shutdown(): logs are not drained to the end any more
        self.subreaper = subreaper
        self._orphans: contain.Orphans | None = None
        self._cgroups: str | None = None  # where attempts' cgroups are made, if anywhere
        self._by_safe_name: dict[str, TaskRun] | None = None
        self._base_env: dict[str, str] = {}

    # ---- subscribers -------------------------------------------------------------

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call `listener(event)` for every event; returns a function that unsubscribes.

        Listeners run synchronously in the event loop and must be quick (hand work off);
        an exception in one is reported on stderr and never stops the run.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as e:  # a subscriber's bug must not stop the run
                print(f"jobflow-tui: event listener failed: {e!r}", file=sys.stderr)

    def _set(self, run: TaskRun, state: str, reason: str = "") -> None:
        previous, run.state = run.state, state
        run.reason = reason
        self._retrying += (state == RETRYING) - (previous == RETRYING)
        self._succeeded += (state == SUCCEEDED) - (previous == SUCCEEDED)
        self._emit(
            StateChanged(
                run.name, state, previous, run.attempt, run.spec.max_attempts,
                run.exit_code, run.started_at, run.finished_at, reason,
            )
        )
        self._save(run.name)

    # ---- life cycle --------------------------------------------------------------

    async def start(self) -> None:
        """Prepare the state dir, resume or start afresh, and launch what is ready."""
        self._loop = asyncio.get_running_loop()
        if self.subreaper and contain.become_subreaper():
            self._orphans = contain.Orphans()
        self._cgroups = contain.cgroup_base()
        self._idle = self._loop.create_future()
        self._wake = asyncio.Event()
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        try:
            os.makedirs(self.job_dir, exist_ok=True)
            self._take_lock()
        except OSError as e:
            raise RunError(f"cannot use the state folder {self.job_dir}: {e.strerror}") from None
        try:
            prev = read_checkpoint(self.checkpoint_path, self.job.name)
        except CheckpointError as e:
            self._release_lock()
            raise RunError(str(e)) from None
        adopt: list[TaskRun] = []
        if self.resume_requested and prev and not prev.get("completed"):
            adopt = self._restore(prev)
        else:
            if self.resume_requested and prev:
                self.notes.append("the last run finished with every task succeeded: starting a new run")
            if prev:
                self._refuse_if_alive(prev)
            self.run_id = time.strftime("%Y%m%dT%H%M%S", time.localtime()) + "-" + os.urandom(2).hex()
            self.started_at = time.time()
        self.run_dir = os.path.join(self.job_dir, "runs", self.run_id)
        self._base_env = self._make_env()
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            # On disk before anything starts: a runner killed a moment later must leave a
            # checkpoint naming this run, or --resume could not find (and adopt) its attempts.
            self.save_now()
        except OSError as e:
            self._release_lock()
            raise RunError(f"cannot write to the state folder {self.job_dir}: {e.strerror}") from None
        self._spawn_bg(self._writer())
        self._spawn_bg(self._ticker())
        for run in adopt:
            self._adopt(run)
        for name in self.order:
            self._enqueue_if_ready(name)
        self._pump()
        self._check_idle()

    async def run(self) -> int:
        """Start, wait until nothing is left to do, close; return the exit code (0 or 1)."""
        await self.start()
        try:
            await self.wait_idle()
        finally:
            await self.close()
        return self.exit_code()

    async def wait_idle(self) -> None:
        """Wait until no task runs or waits to run (a later retry wakes the run again)."""
        while True:
            assert self._idle is not None
            await asyncio.shield(self._idle)
            if self._is_idle():
                return

    def exit_code(self) -> int:
        """0 when every selected task succeeded, else 1."""
        ok = all(self.tasks[n].state == SUCCEEDED for n in self.selected)
        return 0 if ok else 1

    async def shutdown(self, reason: str = "interrupted") -> None:
        """Stop launching, end every running tree gracefully, write the checkpoint."""
        self.paused = True
        self._stopping = True
        waits = [self._abort(run, reason) for run in self.active()]
        if waits:
            await asyncio.gather(*waits)
        await self.close()

    def emergency_stop(self, reason: str) -> None:
        """End every running tree and write the checkpoint without the event loop.

        For when the loop cannot run any more (a UI wedged on a vanished terminal): blocking,
        from any thread. Running tasks are recorded `aborted`.
        """
        import signal as sig

        trees = [(r, r._tree) for r in self.tasks.values() if r.state == RUNNING and r._tree is not None]
        for _, tree in trees:
            tree.signal(sig.SIGTERM)
        deadline = time.monotonic() + max((r.spec.kill_grace for r, _ in trees), default=0)
        while any(t.alive() for _, t in trees) and time.monotonic() < deadline:
            time.sleep(0.05)
        for _, tree in trees:
            if tree.alive():
                tree.signal(sig.SIGKILL)
        now = time.time()
        for run, _ in trees:
            run.state, run.reason, run.finished_at, run.pid = ABORTED, reason, now, None
        for run in self.tasks.values():
            if run.state == RETRYING:
                run.state, run.reason = ABORTED, reason
        try:
            self.save_now()
        except OSError as e:
            print(f"jobflow-tui: {self._cannot_write(e)}", file=sys.stderr)

    async def close(self) -> None:
        """Wait for background clean-up, write the final checkpoint, release the lock."""
        if self._closed:
            return
        self._closed = True
        self._end_orphans()
        for t in list(self._background):
            if t.get_coro().__name__ == "_ticker":
                t.cancel()
        # The writer is not cancelled (a write in flight would then race a newer one): it
        # writes what is left, once, and stops.
        if self._closing is not None:
            self._closing.set()
        self._save()
        pending = [t for t in self._background if not t.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for run in self.tasks.values():
            if run._tail is not None:
                await run._tail.close()
        if self._written != self._version:
            try:
                self._write_now()
            except OSError as e:
                self._write_failed(e)
        self._release_lock()
        if any(t.python_class for t in self.job.tasks.values()):
            from ..worker.client import close_workers

            await asyncio.get_running_loop().run_in_executor(None, close_workers)

    # ---- operator actions --------------------------------------------------------

    def pause(self) -> None:
        """Stop launching new tasks; running ones go on."""
        self.paused = True
        self._check_idle()

    def resume(self) -> None:
        """Launch again after `pause`."""
        self.paused = False
        self._pump()
        self._check_idle()

    def abort(self, name: str) -> asyncio.Future | None:
        """Abort a running (or retry-waiting) task; returns an awaitable, or None if n/a."""
        run = self.tasks[name]
        if run.state not in ACTIVE:
            return None
        return asyncio.ensure_future(self._abort(run, "aborted by operator"))

    def abort_all(self) -> asyncio.Future:
        """Abort every running or retry-waiting task."""
        return asyncio.ensure_future(asyncio.gather(*(self._abort(r, "aborted by operator") for r in self.active())))

    def active(self) -> list[TaskRun]:
        """The tasks running or waiting to retry, in display order."""
        return [r for r in self.tasks.values() if r.state in ACTIVE]

    def can_retry(self, name: str) -> bool:
        return self.tasks[name].state in (FAILED, ABORTED)

    def retry(self, name: str) -> bool:
        """A failed/aborted task, and the downstream it blocked, go back to pending."""
        run = self.tasks[name]
        if not self.can_retry(name):
            return False
        self.selected.add(name)
        self._reset(run)
        self._unblock(name)
        self._enqueue_if_ready(name)
        self._pump()
        self._check_idle()
        return True

    async def restart(self, name: str) -> None:
        """Run `name` and everything downstream of it again (running ones aborted first)."""
        targets = {name, *self.job.downstream(name)}
        waits = [self._abort(self.tasks[n], "restarted by operator") for n in targets if self.tasks[n].state in ACTIVE]
        if waits:
            await asyncio.gather(*waits)
        self.selected.update(targets)
        ordered = [n for n in self.order if n in targets]
        for n in ordered:
            self.tasks[n].outputs = {}
            self._reset(self.tasks[n])
        for n in ordered:
            if self._deps_broken(self.tasks[n]):
                self._set(self.tasks[n], BLOCKED, "a dependency did not succeed")
            else:
                self._enqueue_if_ready(n)
        self._pump()
        self._check_idle()

    # ---- scheduling --------------------------------------------------------------

    def _reset(self, run: TaskRun, reason: str = "") -> None:
        run.budget_start = run.attempts
        run.exit_code = None
        run.finished_at = None
        if run.state != PENDING or reason:
            self._set(run, PENDING, reason)

    def _deps_succeeded(self, run: TaskRun) -> bool:
        return all(self.tasks[d].state == SUCCEEDED for d in run.spec.dependencies)

    def _deps_broken(self, run: TaskRun) -> bool:
        """Whether a dependency ended in a way that blocks `run`."""
        return any(self.tasks[d].state in (FAILED, ABORTED, BLOCKED) for d in run.spec.dependencies)

    def _unblock(self, name: str) -> None:
        for child in self.children[name]:
            c = self.tasks[child]
            if c.state == BLOCKED and not self._deps_broken(c):
                self._set(c, PENDING)
                self._unblock(child)

    def _enqueue_if_ready(self, name: str) -> None:
        run = self.tasks[name]
        if run.state == PENDING and name in self.selected and self._deps_succeeded(run):
            self._ready.append(name)

    def _pump(self) -> None:
        while self._ready and not self.paused and (self.limit <= 0 or self._running < self.limit):
            run = self.tasks[self._ready.popleft()]
            if run.state in (PENDING, RETRYING) and self._deps_succeeded(run):
                self._launch(run)

    def _is_idle(self) -> bool:
        return not (self._running or self._retrying or self._ready)

    def _check_idle(self) -> None:
        assert self._idle is not None and self._loop is not None
        if self._is_idle():
            if not self._idle.done():
                self._save()
                self._idle.set_result(None)
                self._emit(RunIdle(self.exit_code()))
        elif self._idle.done():
            self._idle = self._loop.create_future()

    def _make_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYTHONUNBUFFERED="1",
            JOBFLOW_JOB=self.job.name,
            JOBFLOW_RUN_ID=self.run_id,
            JOBFLOW_JOB_FILE=self.job.path,
            JOBFLOW_STATE_DIR=self.state_dir,
        )
        for k, v in self.params.items():
            env["JOBFLOW_PARAM_" + re.sub(r"[^A-Z0-9_]", "_", k.upper())] = v
        return env

    def _attempt_files(self, run: TaskRun, attempt: int) -> process.AttemptFiles:
        return process.AttemptFiles(os.path.join(self.run_dir, f"{safe_name(run.name)}.{attempt}"))

    def _launch(self, run: TaskRun) -> None:
        assert self._loop is not None
        run.attempts += 1
        files = self._attempt_files(run, run.attempts)
        run._files = files
        run.logs.append(files.log)
        run.exit_code = None
        run.started_at = time.time()
        run.finished_at = None
        run.pid = run.create_time = None
        run._kill_reason = ""
        run.adopted = False
        run._worker = run._ended = None
        run._kept = False
        run._done = self._loop.create_future()
        env = dict(self._base_env)
        env.update(run.spec.env)
        env.update(
            JOBFLOW_TASK=run.name,
            JOBFLOW_ATTEMPT=str(run.attempts),
            JOBFLOW_OUTPUT=files.outputs,
            JOBFLOW_LOG=files.log,
        )
        upstream = self.upstream_outputs(run.name)
        self._running += 1
        self._set(run, RUNNING)
        # posix_spawn blocks until the child has exec'd; in a thread (it releases the GIL)
        # the loop goes on reaping and launching meanwhile. Files are made there too: a
        # failure (a full disk) is then a failed start like any other.
        fut = self._loop.run_in_executor(_SPAWNER, self._spawn, run, files, env, upstream)
        fut.add_done_callback(lambda f, run=run: self._spawned(run, f))

    def upstream_outputs(self, name: str) -> dict[str, dict]:
        """Outputs of every task `name` depends on (directly or not) that published any."""
        if not self._has_outputs:
            return {}  # the common case, and free: no ancestry walk
        return {n: self.tasks[n].outputs for n in self.job.upstream([name]) if n != name and self.tasks[n].outputs}

    def _spawned(self, run: TaskRun, fut: asyncio.Future) -> None:
        assert self._loop is not None and run._files is not None
        try:
            pid = fut.result()
        except Exception as e:
            # Could not even start (no shell, bad class, a full disk): an attempt that
            # failed at once, with the reason in its state.
            if isinstance(e, OSError) and e.strerror:
                why = f"{e.strerror}: {e.filename}" if e.filename else e.strerror
            else:
                why = str(e)
            run._start_error = f"cannot start: {why}"
            try:
                with open(run._files.log, "ab") as f:
                    f.write(f"jobflow-tui: cannot start task {run.name!r}: {why}\n".encode())
            except OSError:
                pass  # the state dir itself is gone; the reason still reaches the checkpoint
            self._spawn_bg(self._finish(run, 127))
            return
        run.pid = pid
        run._proc = None if run.spec.python_class else pid
        run._tree = process.Tree(pid)
        run._tail = LogTail(run._files.log)
        if run._kill_reason:  # aborted while it was being started
            self._start_kill(run, run._kill_reason)
        elif run.spec.timeout:
            run._timer = self._loop.call_later(run.spec.timeout, self._on_timeout, run)
        self._await_end(run, pid)
        self._wake.set()  # type: ignore[union-attr]

    def _await_end(self, run: TaskRun, pid: int) -> None:
        """Call _on_exit once: when the process exits, or when it reports the attempt's end."""
        assert self._loop is not None
        exited = process.wait_exit(pid, self._loop)
        if run._ended is None:
            exited.add_done_callback(lambda _f: self._on_exit(run))
            return
        ended = asyncio.wrap_future(run._ended, loop=self._loop)
        handled = False

        def first(fut: asyncio.Future) -> None:
            nonlocal handled
            if handled:
                return
            handled = True
            if fut is ended:
                run._kept = True
                exited.cancel()  # closes the pidfd: this process goes on to other attempts
            else:
                ended.cancel()
                if run._worker is not None and run._files is not None:
                    run._worker.forget(run._files.status, run._files.key)
            self._on_exit(run)

        exited.add_done_callback(first)
        ended.add_done_callback(first)

    def _spawn(self, run: TaskRun, files: process.AttemptFiles, env: dict[str, str], upstream: dict) -> int:
        if upstream:
            # Commands read what upstream tasks published from this JSON file.
            path = files.base + ".upstream.json"
            with open(path, "w") as f:
                json.dump(upstream, f, default=str)
            env["JOBFLOW_UPSTREAM_OUTPUTS"] = path
        if run.spec.python_class:
            from ..worker.client import spawn_task

            pid, run._worker, run._ended = spawn_task(self, run, files, env)
            return pid
        assert run.spec.command is not None
        return process.spawn(run.spec.command, files, env, run.spec.cwd)

    def _on_exit(self, run: TaskRun) -> None:
        if run._proc is None:  # not our child (adopted, or forked by the Python worker)
            self._spawn_bg(self._finish_foreign(run))
        else:
            self._spawn_bg(self._finish(run, process.reap(run._proc)))

    async def _finish_foreign(self, run: TaskRun) -> None:
        code = run._files.read_status() if run._files else None
        if code is None and run.spec.python_class and not run.adopted:
            # The worker's reaper records the status of a child that died abruptly just
            # after the exit we saw: give it a moment.
            for _ in range(50):
                await asyncio.sleep(0.01)
                code = run._files.read_status() if run._files else None
                if code is not None:
                    break
        await self._finish(run, code)

    def _on_timeout(self, run: TaskRun) -> None:
        if run.state == RUNNING and not run._kill_reason:
            self._start_kill(run, "timeout")

    def _start_kill(self, run: TaskRun, reason: str) -> None:
        run._kill_reason = reason
        self._collect_orphans()  # daemons it started, come back to us, go with it
        if run._tree is not None and run._killer is None:
            run._killer = self._spawn_bg(run._tree.kill(run.spec.kill_grace, run.pid))

    async def _abort(self, run: TaskRun, reason: str) -> None:
        if run.state == RETRYING:
            if run._retry_handle:
                run._retry_handle.cancel()
                run._retry_handle = None
            self._set(run, ABORTED, reason)
            self._block_downstream(run.name)
            self._check_idle()
            return
        if run.state != RUNNING:
            return
        if not run._kill_reason:
            self._start_kill(run, reason)
        if run._done is not None:
            await asyncio.shield(run._done)

    async def _finish(self, run: TaskRun, code: int | None) -> None:
        """An attempt's process has ended: drain its log, record the result, move on."""
        if run._timer:
            run._timer.cancel()
            run._timer = None
        tail = run._tail
        if tail is not None:
            # To the very end, in bounded pieces, letting viewers catch up in between: a
            # task that printed a gigabyte costs time here, never memory.
            while not tail.done:
                block = await tail.read(final=True)
                if block is not None:
                    self._emit(Output(run.name, run.attempt, block))
                if tail.more:
                    if self._stopping:
                        await tail.close()  # shutting down: the rest is in the log file
                        break
                    await asyncio.sleep(0)
            run._tail = None
        if run._tree is not None and run._killer is None and not run._kept:
            if run.spec.python_class:
                self._spawn_bg(self._end_leftovers(run._tree, run.spec.kill_grace))
            elif run._tree.alive():  # our own child, already reaped: only real leftovers remain
                self._spawn_bg(run._tree.kill(run.spec.kill_grace))
            else:
                run._tree.release()
        if run._killer is not None:
            await asyncio.shield(run._killer)
            run._killer = None
        run.exit_code = code
        run.finished_at = time.time()
        if run._kept and run._worker is not None and run.pid is not None:
            run._worker.release(run.pid)  # only now: an abort of this attempt can no longer reach it
        run.pid = None
        run._proc = None
        if run._files is not None:
            self._collect_outputs(run, run._files)
        self._running -= 1
        reason = run._kill_reason
        if code is not None and code < 0:
            what = f"killed by {process.signal_name(-code)}"
        else:
            what = f"exit code {code}" if code is not None else "ended without an exit status"
        if run._start_error:
            what, run._start_error = run._start_error, ""
        full = self._disk_full()
        if full:
            what += f"; {full}"
            if code == 0:
                self._emit(Notice(f"the log of task '{run.name}' may be incomplete: {full}"))
        if reason and reason != "timeout":
            self._set(run, ABORTED, reason)
            self._block_downstream(run.name)
        elif run._again:
            # The adopted attempt ran the old definition: whatever it did, the new one runs.
            run._again = False
            run.outputs = {}
            self._reset(run, f"changed since the last run; the adopted attempt ended ({what})")
            self._enqueue_if_ready(run.name)
        elif code == 0 and not reason:
            self._set(run, SUCCEEDED)
            for child in self.children[run.name]:
                self._enqueue_if_ready(child)
        else:
            why = f"timed out after {run.spec.timeout:g}s" if reason == "timeout" else what
            if run.attempt < run.spec.max_attempts:
                wait = run.spec.retry_wait(run.attempt)
                self._set(run, RETRYING, f"{why}; retry in {wait:g}s")
                assert self._loop is not None
                run._retry_handle = self._loop.call_later(wait, self._retry_now, run)
            else:
                self._set(run, FAILED, why)
                self._block_downstream(run.name)
        if run._done is not None and not run._done.done():
            run._done.set_result(None)
        self._pump()
        self._check_idle()

    async def _end_leftovers(self, tree: process.Tree, grace: float) -> None:
        """A Python task is done; end whatever it left running in its group or tree."""
        # A moment first: it is reaped by its worker, not by us, and a zombie still counts
        # as a member of its group.
        await asyncio.sleep(0.05)
        if tree.alive():
            await tree.kill(grace)

    def _collect_outputs(self, run: TaskRun, files: process.AttemptFiles) -> None:
        """Outputs from $JOBFLOW_OUTPUT, and a Python task's return value and shared_dict."""
        if os.path.exists(files.outputs):
            run.outputs.update(parse_outputs(files.outputs))
            self._has_outputs = True
        result = files.read_result() if run.spec.python_class else None
        if result is None:
            return
        if isinstance(result.get("outputs"), dict) and result["outputs"]:
            run.outputs.update(result["outputs"])
            self._has_outputs = True
        new, old = result.get("shared_dict"), run._shared_snapshot
        if isinstance(new, dict) and isinstance(old, dict):
            # Merge what this task changed; concurrent tasks' changes to other keys survive.
            for k, v in new.items():
                if k not in old or old[k] != v:
                    self.shared_dict[k] = v
            for k in old:
                if k not in new:
                    self.shared_dict.pop(k, None)
            self._save()

    def _disk_full(self) -> str:
        """"" or why an attempt's log may be cut short: the disk holding it is full."""
        try:
            st = os.statvfs(self.run_dir)
        except OSError:
            return ""
        if st.f_bavail * st.f_frsize >= FULL_DISK:
            return ""
        return f"the disk holding its log ({self.run_dir}) is full"

    def _retry_now(self, run: TaskRun) -> None:
        run._retry_handle = None
        if run.state == RETRYING:
            self._ready.appendleft(run.name)
            self._pump()

    def _block_downstream(self, name: str) -> None:
        for n in self.job.downstream(name):
            run = self.tasks[n]
            if run.state == PENDING:
                self._set(run, BLOCKED, f"'{name}' did not succeed")

    # ---- adoption and resume -----------------------------------------------------

    def _attempts_on_disk(self) -> dict[str, int]:
        """Safe task name -> the highest attempt number with files in this run's folder.

        The files, not the checkpoint, are the truth about what was started: each attempt's
        log exists before its command runs, and a runner killed a moment after starting an
        attempt may not have recorded it yet.
        """
        found: dict[str, int] = {}
        try:
            names = os.listdir(self.run_dir)
        except OSError:
            return found
        for fn in names:
            stem, _, rest = fn.partition(".")  # safe names hold no dot: <task>.<attempt>.<kind>
            num = rest.split(".", 1)[0]
            if num.isdigit():
                found[stem] = max(found.get(stem, 0), int(num))
        return found

    def _alive_attempt(self, files: process.AttemptFiles, pid: int | None, created: float | None):
        """The live process of an attempt that outlived its runner, or None."""
        import psutil

        pid = pid or files.read_pid()
        if not pid:
            return None
        try:
            p = psutil.Process(pid)
            if p.status() == psutil.STATUS_ZOMBIE:
                return None
            if created is not None:
                return p if abs(p.create_time() - created) < 0.05 else None
            env = p.environ()
            if env.get("JOBFLOW_ATTEMPT_KEY") == files.key and env.get("JOBFLOW_STATUS_FILE") == files.status:
                return p  # a command's wrapper
            # A forked Python attempt has the worker's start environment, but recorded when
            # it wrote its pid: it was started before that; one that got the pid later, after.
            written = files.records().get("time")
            return p if written is not None and p.create_time() <= written else None
        except (psutil.Error, OSError):
            return None

    def _settle(self, files: process.AttemptFiles, pid: int | None, created: float | None):
        """How an attempt of a runner that died stands, from one consistent reading:
        (its live process, None) while it runs, else (None, its recorded exit status, or
        None when it died without one).

        Liveness is looked at first and the journal read after it: an attempt that ends
        between the two looks ended (its exit record is written before it exits), never
        killed-without-status, which would start it again.
        """
        proc = self._alive_attempt(files, pid, created)
        code = files.read_status()
        return (None, code) if code is not None else (proc, None)

    def _await_unrecorded_starts(self, prev: dict, on_disk: dict[str, int]) -> None:
        """Give attempts started a moment before their runner died the time to say so.

        An attempt's log is made just before it starts; one whose log exists but whose pid
        is not in the journal yet may be about to run. Wait (once, for all of them, at most
        START_GRACE) until each has recorded its pid, or, for a command, until no process
        carries its environment (then it never started).
        """
        waiting = []
        for name, run in self.tasks.items():
            t = prev["tasks"].get(name) if isinstance(prev["tasks"].get(name), dict) else {}
            last = max(_count(t, "attempts"), on_disk.get(safe_name(name), 0))
            if last and (t.get("state") == RUNNING or last > _count(t, "attempts")):
                files = self._attempt_files(run, last)
                if os.path.exists(files.log):
                    waiting.append((files, run.spec.python_class is None))
        deadline = time.monotonic() + START_GRACE
        while waiting and time.monotonic() < deadline:
            waiting = [(f, cmd) for f, cmd in waiting if f.read_pid() is None and f.read_status() is None]
            spawned = process.attempts_alive([f for f, cmd in waiting if cmd]) if waiting else set()
            waiting = [(f, cmd) for f, cmd in waiting if not cmd or f.key in spawned]
            if waiting:
                time.sleep(0.01)

    def _refuse_if_alive(self, prev: dict) -> None:
        self.run_id = str(prev.get("run_id", ""))
        self.run_dir = os.path.join(self.job_dir, "runs", self.run_id)
        on_disk = self._attempts_on_disk()
        self._await_unrecorded_starts(prev, on_disk)
        for name, run in self.tasks.items():
            t = prev["tasks"].get(name) if isinstance(prev["tasks"].get(name), dict) else {}
            attempt = max(_count(t, "attempts"), on_disk.get(safe_name(name), 0))
            if not attempt:
                continue
            files = self._attempt_files(run, attempt)
            if self._settle(files, t.get("pid"), t.get("create_time"))[0] is not None:
                self._release_lock()
                raise RunError(
                    f"task '{name}' of the previous run is still running (pid {files.read_pid()}); "
                    "use --resume to adopt it, or stop it first"
                )

    def _restore(self, prev: dict) -> list[TaskRun]:
        """Take over a previous run: keep what succeeded, adopt what still runs."""
        self.run_id = str(prev.get("run_id") or "")
        self.started_at = _from_iso(prev.get("started_at")) or time.time()
        self.run_dir = os.path.join(self.job_dir, "runs", self.run_id)
        shared = prev.get("shared_dict")
        self.shared_dict = shared if isinstance(shared, dict) else {}
        base = self.job_dir
        changed = {
            n for n, t in prev["tasks"].items()
            if n in self.tasks and t.get("fingerprint") != self.tasks[n].spec.fingerprint()
        }
        rerun = set(changed)
        for n in changed:
            rerun.update(self.job.downstream(n))
        adopt: list[TaskRun] = []
        on_disk = self._attempts_on_disk()
        self._await_unrecorded_starts(prev, on_disk)
        for name, run in self.tasks.items():
            t = prev["tasks"].get(name)
            if not isinstance(t, dict):
                continue
            run.attempts = _count(t, "attempts")
            run.logs = [os.path.join(base, p) for p in t.get("logs") or [] if isinstance(p, str)]
            run.outputs = t.get("outputs") if isinstance(t.get("outputs"), dict) else {}
            run.exit_code = t.get("exit_code") if isinstance(t.get("exit_code"), int) else None
            run.started_at = _from_iso(t.get("started_at"))
            run.finished_at = _from_iso(t.get("finished_at"))
            last = max(run.attempts, on_disk.get(safe_name(name), 0))
            state = t.get("state")
            if last > run.attempts:
                # The runner died between starting an attempt and recording it.
                for n in range(run.attempts + 1, last + 1):
                    run.logs.append(self._attempt_files(run, n).log)
                run.attempts = last
                state = RUNNING
            if state == RUNNING and run.attempts:
                files = self._attempt_files(run, run.attempts)
                proc, code = self._settle(files, t.get("pid"), t.get("create_time"))
                if proc is not None:
                    run._files = files
                    run.pid = proc.pid
                    run.create_time = proc.create_time()
                    run.budget_start = max(0, run.attempts - 1)
                    run._again = name in rerun  # its definition changed: run that once this ends
                    adopt.append(run)
                    continue
                run.exit_code = code
                run.finished_at = run.finished_at or time.time()
                if code is not None:
                    self._collect_outputs(run, files)
                state = SUCCEEDED if code == 0 else FAILED
            if state == SUCCEEDED and name not in rerun:
                run.state = SUCCEEDED
            else:
                if name in rerun:
                    run.outputs = {}
                run.budget_start = run.attempts
                run.state = PENDING
        self._succeeded = sum(1 for r in self.tasks.values() if r.state == SUCCEEDED)
        self._has_outputs = any(r.outputs for r in self.tasks.values())
        if changed:
            self.notes.append("changed since the last run, so run again with what depends on them: " + ", ".join(sorted(changed)))
        return adopt

    def _adopt(self, run: TaskRun) -> None:
        """Follow an attempt whose runner died: tail its log, await its end, never restart it."""
        assert self._loop is not None and run._files is not None and run.pid is not None
        run.adopted = True
        run._done = self._loop.create_future()
        run._tree = process.Tree(run.pid)
        if self._cgroups:
            cgroup = contain.Cgroup(self._cgroups, run._files.status, run._files.key)
            if cgroup.exists():
                run._tree.cgroup = cgroup  # made by the runner that died
        run._tail = LogTail(run._files.log)
        run._kill_reason = ""
        self._running += 1
        self._set(run, RUNNING, f"adopted running process {run.pid}")
        if run.spec.timeout and run.started_at:
            left = max(0.0, run.started_at + run.spec.timeout - time.time())
            run._timer = self._loop.call_later(left, self._on_timeout, run)
        waiter = process.wait_exit(run.pid, self._loop)
        waiter.add_done_callback(lambda _f, run=run: self._on_exit(run))

    # ---- background: log tails, descendant tracking, checkpoint writer -----------

    def _spawn_bg(self, coro) -> asyncio.Task:
        t = asyncio.ensure_future(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)
        return t

    async def _ticker(self) -> None:
        assert self._wake is not None
        last_track = 0.0
        while True:
            running = [r for r in self.tasks.values() if r.state == RUNNING and r._tail is not None]
            if not running:
                self._wake.clear()
                await self._wake.wait()
                continue
            backlog = False
            for run in running:
                tail = run._tail
                if tail is not None and tail.has_new():
                    block = await tail.read()
                    if block is not None and run._tail is tail:
                        self._emit(Output(run.name, run.attempt, block))
                    backlog = backlog or tail.more
            now = time.monotonic()
            if now - last_track >= TRACK_INTERVAL:
                last_track = now
                self._collect_orphans()
                for run in running:
                    if run._tree is not None and run.pid and run.started_at and time.time() - run.started_at > 0.5:
                        self._track(run)
            # A log with more to read is read again at once (yielding to the loop between
            # reads), so a flood is followed at the speed it is written, not 1 MiB per tick.
            await asyncio.sleep(0 if backlog else TAIL_INTERVAL)

    def _track(self, run: TaskRun) -> None:
        """Note a long-running attempt's create time and its descendants (short ones need neither)."""
        import psutil

        assert run._tree is not None and run.pid is not None
        if run.create_time is None:
            try:
                run.create_time = psutil.Process(run.pid).create_time()
                self._save(run.name)
            except psutil.Error:
                pass
        run._tree.track(run.pid)
        if self._cgroups and run._tree.cgroup is None and run._files is not None and not run.spec.python_class:
            run._tree.contain(contain.Cgroup(self._cgroups, run._files.status, run._files.key), run.pid)

    def _collect_orphans(self) -> None:
        """Orphans of attempts, come back to this process: each joins its attempt's tree
        while that attempt runs, or is ended (its attempt is over); exited ones are reaped."""
        if self._orphans is None:
            return
        ours = {r._proc for r in self.tasks.values() if r._proc}
        if any(t.python_class for t in self.job.tasks.values()):
            from ..worker.client import worker_pids

            ours |= worker_pids()
        journal = os.path.join(self.run_dir, process.JOURNAL)
        if self._by_safe_name is None:
            self._by_safe_name = {safe_name(n): r for n, r in self.tasks.items()}
        for pid, owner in self._orphans.scan(ours).items():
            if owner is None:
                continue  # no attempt named: ended when the run closes
            run = self._by_safe_name.get(owner[1].rsplit(".", 1)[0]) if owner[0] == journal else None
            if (run is not None and run.state == RUNNING and run._tree is not None
                    and run._files is not None and run._files.key == owner[1]):
                run._tree.add(pid)
            else:
                self._end_orphan(pid, run.spec.kill_grace if run is not None else 5.0)

    def _end_orphan(self, pid: int, grace: float) -> None:
        try:
            tree = process.Tree(os.getpgid(pid))
        except OSError:
            return
        tree.add(pid)
        self._spawn_bg(tree.kill(grace))

    def _end_orphans(self) -> None:
        """At the end of the run: every orphan left, those that hid their attempt too."""
        if self._orphans is None:
            return
        self._collect_orphans()
        grace = max((t.kill_grace for t in self.job.tasks.values()), default=5.0)
        for pid in list(self._orphans.strays):
            self._end_orphan(pid, grace)
        self._orphans.strays.clear()

    def _save(self, name: str | None = None) -> None:
        if name is not None:
            self._stale.add(name)
        self._version += 1
        if self._dirty is not None:
            self._dirty.set()

    async def _writer(self) -> None:
        """Write the checkpoint after changes, at most every SAVE_INTERVAL (bursts coalesce).

        A write that fails (a full disk) leaves the last good checkpoint in place; it is
        reported once and tried again every RETRY_WRITE_INTERVAL until it succeeds.
        """
        assert self._dirty is not None and self._closing is not None and self._loop is not None
        while True:
            if self._written == self._version:
                if self._closing.is_set():
                    return
                await self._dirty.wait()
            self._dirty.clear()
            version, data = self._version, self._serialise()
            pause = SAVE_INTERVAL
            try:
                await self._loop.run_in_executor(None, self._store, data)
                self._written = version
            except OSError as e:
                self._write_failed(e)
                if self._closing.is_set():
                    return  # close() makes the last try itself
                pause = RETRY_WRITE_INTERVAL
            if not self._closing.is_set():
                try:  # coalesce: the next write waits for SAVE_INTERVAL, or for close()
                    await asyncio.wait_for(self._closing.wait(), pause)
                except TimeoutError:
                    pass

    def _store(self, data: bytes) -> None:
        """Replace the checkpoint with `data`, then set space aside for the next one."""
        spare = self.checkpoint_path + ".spare"
        write_atomic(self.checkpoint_path, data, spare)
        reserve_space(spare, max(RESERVE, 2 * len(data))) or reserve_space(spare, len(data) + 4096)
        if self._write_failing:
            self._write_failing = False
            self._emit(Notice(f"the checkpoint is written again: {self.checkpoint_path}", "information"))

    def _cannot_write(self, e: OSError) -> str:
        return (f"cannot write the checkpoint {self.checkpoint_path}: {e.strerror} "
                f"(in {self.job_dir}); the last good one is kept")

    def _write_failed(self, e: OSError) -> None:
        if not self._write_failing:
            self._write_failing = True
            self._emit(Notice(self._cannot_write(e) + ", and the write is tried again", "error"))

    def _write_now(self) -> None:
        version = self._version
        self._store(self._serialise())
        self._written = version

    def save_now(self) -> None:
        """Write the checkpoint at once, without the event loop (e.g. after it stopped)."""
        self._stale.update(self.tasks)
        self._write_now()

    def _serialise(self) -> bytes:
        """The checkpoint document; only the tasks that changed are encoded again."""

        def rel(p: str) -> str:
            return os.path.relpath(p, self.job_dir)

        stale, self._stale = self._stale, set()
        for name in stale:
            r = self.tasks[name]
            self._json[name] = json.dumps(name) + ": " + json.dumps({
                "state": r.state,
                "attempts": r.attempts,
                "attempt": r.attempt,
                "max_attempts": r.spec.max_attempts,
                "exit_code": r.exit_code,
                "reason": r.reason,
                "started_at": _iso(r.started_at),
                "finished_at": _iso(r.finished_at),
                "pid": r.pid if r.state == RUNNING else None,
                "create_time": r.create_time if r.state == RUNNING else None,
                "logs": [rel(p) for p in r.logs],
                "outputs": r.outputs,
                "fingerprint": r.spec.fingerprint(),
                "selected": name in self.selected,
            }, default=str)
        head = json.dumps({
            "format": FORMAT,
            "job": {"name": self.job.name, "path": self.job.path, "hash": self.job.hash},
            "run_id": self.run_id,
            "started_at": _iso(self.started_at),
            "updated_at": _iso(time.time()),
            "completed": self._succeeded == len(self.tasks),
            "params": self.params,
            "shared_dict": self.shared_dict,
        }, default=str)
        tasks = ",\n".join([self._json[n] for n in self.order])
        return f'{head[:-1]}, "tasks": {{\n{tasks}}}}}\n'.encode()

    # ---- the state dir lock ------------------------------------------------------

    def _take_lock(self) -> None:
        path = os.path.join(self.job_dir, "lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                other = os.read(fd, 32).decode(errors="replace").strip()
            finally:
                os.close(fd)
            raise RunError(
                f"job '{self.job.name}' is already being run from {self.job_dir} (pid {other or '?'})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
