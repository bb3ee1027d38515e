"""The scheduler: runs a job's DAG on asyncio, event-driven, with a concurrency limit.

It owns the tasks' states and moves them (`pending` -> `running` -> ...), launches
attempts through an executor (`executor.py`: it never knows how or where they run),
tails their logs, and tells its listeners every change. It is the run API (`run.py`)
of the process that owns the run; viewers use only that API. Nothing here imports a UI."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..jobdef.model import JobDef
from . import contain
from .attempt import Attempt, TaskRun
from .attempts import AttemptRunner, attempt_environment, copy_of, run_environment
from .checkpoint import CheckpointWriter, run_head, task_entry
from .dag import TaskStates
from .events import ABORTED, ACTIVE, PENDING, RETRYING, RUNNING, Event, Notice, Paused, RunIdle
from .executor import AttemptRequest, Executors, Outcome
from .outputs import merge_shared, with_local_names
from .statedir import DiskWatch, RunError, StateDir, attempt_files, default_state_dir, new_run_id

if TYPE_CHECKING:
    from . import resume

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
        handed_over: bool = False,
    ) -> None:
        """`subreaper`: orphans of tasks come back to this process, which reaps every child
        it did not start; for a process that runs nothing else (the command line).
        `handed_over`: with `resume`, go on exactly where the previous owner stopped."""
        self.job = job
        self.state = StateDir(state_dir or default_state_dir(job.directory), job.name)
        self.state_dir, self.job_dir, self.checkpoint_path = self.state.root, self.state.job_dir, self.state.checkpoint_path
        self.limit = job.max_concurrency if max_concurrency is None else max_concurrency
        self.params = dict(params or {})
        self.resume_requested, self.handed_over = resume, handed_over
        self.paused_for_hand_off: bool | None = None  # hand_off(): whether the run was paused before
        self.order = job.order()
        self.tasks: dict[str, TaskRun] = {n: TaskRun(n, job.tasks[n]) for n in self.order}
        self.subflows = job.subflows
        if only:
            chosen = set(job.upstream(only))
            for name, run in self.tasks.items():
                run.selected = name in chosen
        self.paused = False
        self.run_id = ""
        self.run_dir = ""
        self.started_at = time.time()
        self.notes: list[str] = []
        self.shared_dict: dict[str, Any] = {}
        self.executors = Executors(job)
        self.checkpoint = CheckpointWriter(self.checkpoint_path, self.order, lambda: run_head(self),
                                           lambda n: task_entry(self.tasks[n], self.job_dir), self._emit)
        self.states = TaskStates(job, self.tasks, self._emit, self.checkpoint.changed, self._pump)
        self.attempts = AttemptRunner(self.executors, self.tasks, self._emit, self.checkpoint.changed,
                                      self._attempt_ended, self._spawn_bg)
        self.subreaper = subreaper
        self._listeners: list[Callable[[Event], None]] = []
        self._running = 0
        self._restarting = 0  # restarts under way (the run is not idle while they last)
        self.has_outputs = False  # any task published outputs (restored ones included)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Future | None = None
        self._background: set[asyncio.Task] = set()
        self._closed = False
        self._base_env: dict[str, str] = {}
        self.trail: Any = None  # the run's trail, history and end commands, once started

    # ---- the run API: what viewers read and do -----------------------------------

    job_name = property(lambda self: self.job.name, doc="The job's name.")
    job_path = property(lambda self: self.job.path, doc="The job file's path.")

    def running(self) -> int:
        """How many tasks run now."""
        return self._running

    def active(self) -> list[TaskRun]:
        """The tasks running or waiting to retry, in display order."""
        return [r for r in self.tasks.values() if r.state in ACTIVE]

    def downstream(self, name: str) -> list[str]:
        return self.job.downstream(name)

    def emitted(self, name: str) -> int | None:
        """Bytes of the running attempt's log already told as Output events (None: none runs)."""
        attempt = self.tasks[name].current
        return attempt.tail.emitted if attempt is not None and attempt.tail is not None else None

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call `listener(event)` for every event; returns a function that unsubscribes.
        Listeners run in the event loop and must be quick; one that raises never stops the run."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # retry, restart and abort take a subflow's name too: they act on all of its tasks.

    def retry(self, name: str) -> bool:
        """A failed/aborted task, and the downstream it blocked, go back to pending."""
        if self._closed or not [n for n in self.subflows.get(name, [name]) if self.states.retry(n)]:
            return False
        self._pump()
        self._check_idle()
        return True

    async def restart(self, name: str) -> None:
        """Run `name` and everything downstream of it again (running ones aborted first)."""
        roots = self.subflows.get(name, [name])
        targets = {*roots, *(d for n in roots for d in self.job.downstream(n))}
        waits = [self._abort(self.tasks[n], "restarted by operator") for n in targets if self.tasks[n].state in ACTIVE]
        self._restarting += 1  # not idle in between: a headless run would end before the put-back
        try:
            await asyncio.gather(*waits)
            self.states.restart([n for n in self.order if n in targets])
        finally:
            self._restarting -= 1
        self._pump()
        self._check_idle()

    def abort(self, name: str) -> asyncio.Future | None:
        """Abort a running (or retry-waiting) task; returns an awaitable, or None if n/a."""
        runs = [self.tasks[n] for n in self.subflows.get(name, [name]) if self.tasks[n].state in ACTIVE]
        if not runs:
            return None
        return asyncio.ensure_future(asyncio.gather(*(self._abort(r, "aborted by operator") for r in runs)))

    def abort_all(self) -> asyncio.Future:
        """Abort every running or retry-waiting task."""
        return asyncio.ensure_future(asyncio.gather(*(self._abort(r, "aborted by operator") for r in self.active())))

    def pause(self) -> None:
        """Stop launching new tasks; running ones go on."""
        self._paused(True)
        self._check_idle()

    def resume(self) -> None:
        """Launch again after `pause`."""
        self._paused(False)
        self._pump()
        self._check_idle()

    def _paused(self, paused: bool) -> None:
        if paused != self.paused:
            self.paused = paused
            self.checkpoint.changed()
            self._emit(Paused(paused))

    unpause = resume

    def exit_code(self) -> int:
        """0 when every selected task succeeded, else 1."""
        return self.states.exit_code()

    # ---- life cycle (the owner of the run) ---------------------------------------

    async def start(self) -> None:
        """Prepare the state dir, resume or start afresh, and launch what is ready."""
        self._loop = asyncio.get_running_loop()
        if self.subreaper and contain.become_subreaper():
            self.attempts.orphans = contain.Orphans()
        self._idle = self._loop.create_future()
        self.state.lock()
        try:
            if os.path.exists(self.checkpoint_path):
                from . import resume  # only now: a first run need not load it

                adopted = resume.take_over_run(self)
            else:
                self.run_id, self.started_at, adopted = new_run_id(), time.time(), []
            self.run_dir = self.state.run_dir(self.run_id)
            self._disk = DiskWatch(self.run_dir)
            self.attempts.journal = os.path.join(self.run_dir, "attempts.status")
            self._base_env = run_environment(self.job, self.run_id, self.state_dir, self.params)
            try:
                os.makedirs(self.run_dir, exist_ok=True)
                # On disk before anything starts: a runner killed a moment later must leave a
                # checkpoint naming this run, or --resume could not find (and adopt) its attempts.
                self.checkpoint.write_now(everything=True)
                from .trail import RunTrail

                self.trail = RunTrail(self)
            except OSError as e:
                raise RunError(f"cannot write to the state folder {self.job_dir}: {e.strerror}") from None
        except RunError:
            self.state.unlock()
            raise
        self._spawn_bg(self.checkpoint.run())
        self.attempts.start_ticking()
        for a in adopted:
            self._adopt(a)
        for name in self.order:
            self.states.enqueue_if_ready(name)
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

    async def shutdown(self, reason: str = "interrupted") -> None:
        """Stop launching, end every running tree gracefully, write the checkpoint."""
        self.paused = True
        self.attempts.stopping = True
        await asyncio.gather(*(self._abort(run, reason) for run in self.active()))
        await self.close()

    def emergency_stop(self, reason: str) -> None:
        """End every running tree (recorded `aborted`) and write the checkpoint, blocking and
        without the event loop, from any thread: for a loop that cannot run (a UI wedged on a
        vanished terminal)."""
        now = time.time()
        for run in self.attempts.end_all_now():
            run.state, run.reason, run.finished_at, run.pid = ABORTED, reason, now, None
        for run in self.tasks.values():
            if run.state == RETRYING:
                run.state, run.reason = ABORTED, reason
        if self.trail is not None:
            self.trail.end_now()  # the run's end in its trail: its end commands cannot run now
        self.save_now()

    def kill_now(self) -> None:
        """SIGKILL every running task at once (a second interrupt: no more grace)."""
        self.attempts.kill_now()

    def hand_off(self) -> None:
        """Before this process leaves the run to another: launch nothing more, and write the
        checkpoint (blocking, from any thread; the tasks go on, to be adopted)."""
        self.paused_for_hand_off = self.paused
        self.paused = True  # read by the next launch: no event, the loop may be stuck
        self.save_now()

    kill_grace = property(lambda self: max((t.kill_grace for t in self.job.tasks.values()), default=5.0),
                          doc="The longest a graceful stop of the run can take, in seconds.")

    def save_now(self) -> None:
        """Write the checkpoint at once, without the event loop (e.g. after it stopped)."""
        try:
            self.checkpoint.write_now(everything=True)
        except OSError as e:
            print(f"jobflow-tui: {self.checkpoint.cannot_write(e)}", file=sys.stderr)
        if self.trail is not None:
            self.trail.flush_now()  # this process may be about to leave (a hand-off): its trail on disk
    async def close(self) -> None:
        """Wait for background clean-up, write the final checkpoint, release the lock."""
        if self._closed:
            return
        self._closed = True
        self.attempts.close()
        self.checkpoint.close()
        await asyncio.gather(*(t for t in self._background if not t.done()), return_exceptions=True)
        await self.attempts.close_tails()
        self.checkpoint.finish()
        try:  # the run's end recorded and its end commands run with the lock held: nothing starts it meanwhile
            if self.trail is not None:
                await self.trail.finish(handed_off=self.paused_for_hand_off is not None)
        finally:
            self.state.unlock()
            for executor in self.executors.all():
                if executor.holds():
                    await asyncio.get_running_loop().run_in_executor(None, executor.close)

    # ---- states ------------------------------------------------------------------

    def notify(self, message: str, severity: str = "warning") -> None:
        """A Notice to every viewer; from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._emit, Notice(message, severity))

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as e:  # a subscriber's bug must not stop the run
                print(f"jobflow-tui: event listener failed: {e!r}", file=sys.stderr)

    def _pump(self) -> None:
        """Launch what is ready, within the concurrency limit."""
        ready = self.states.ready
        while ready and not self.paused and not self._closed and (self.limit <= 0 or self._running < self.limit):
            run = self.tasks[ready.popleft()]
            if run.state in (PENDING, RETRYING) and self.states.deps_succeeded(run):
                self._launch(run)

    def _is_idle(self) -> bool:
        return not (self._running or self.states.retrying or self.states.ready or self._restarting)

    def _check_idle(self) -> None:
        assert self._idle is not None and self._loop is not None
        if self._is_idle():
            if not self._idle.done():
                self.checkpoint.changed()
                self._idle.set_result(None)
                self._emit(RunIdle(self.exit_code()))
        elif self._idle.done():
            self._idle = self._loop.create_future()

    # ---- attempts ----------------------------------------------------------------

    def upstream_outputs(self, name: str) -> dict[str, dict]:
        """Outputs of every task `name` depends on (directly or not) that published any."""
        if not self.has_outputs:
            return {}  # the common case, and free: no ancestry walk
        found = {n: self.tasks[n].outputs for n in self.job.upstream([name]) if n != name and self.tasks[n].outputs}
        return with_local_names(name, found, self.subflows)

    def _launch(self, run: TaskRun) -> None:
        assert self._loop is not None
        files = attempt_files(self.run_dir, run.name, run.attempts + 1)
        attempt = run.current = Attempt(files, self._loop.create_future())
        run.begin_attempt(files.log)
        env = attempt_environment(self._base_env, run.spec, run.attempts, files)
        # The attempt gets a copy of the shared dict: what it changes is merged at its end.
        attempt.shared_before = copy_of(self.shared_dict)
        params = {**self.params, **run.spec.params} if run.spec.params else self.params
        request = AttemptRequest(run.name, run.spec, run.attempts, files, env, self.upstream_outputs(run.name),
                                 attempt.shared_before, params)
        self._running += 1
        self.states.set(run, RUNNING)
        self.attempts.start(run, attempt, request)

    def _adopt(self, adopted: resume.Adopted) -> None:
        """Follow an attempt whose runner died to its end; never start it again."""
        assert self._loop is not None
        run = adopted.run
        attempt = run.current = Attempt(adopted.files, self._loop.create_future(), again=adopted.again)
        run.adopted = True
        self._running += 1
        self.attempts.adopt(adopted, attempt)
        self.states.set(run, RUNNING, f"adopted running process {run.pid}")

    async def _abort(self, run: TaskRun, reason: str) -> None:
        if run.state == RETRYING:
            self.states.abort_retry(run, reason)
            self._check_idle()
            return
        attempt = run.current
        if run.state != RUNNING or attempt is None:
            return
        if not attempt.kill_reason:
            self.attempts.stop(run, reason)
        await asyncio.shield(attempt.done)

    def _attempt_ended(self, run: TaskRun, attempt: Attempt, outcome: Outcome) -> None:
        """An attempt is over (its log read to the end): record how, and move on."""
        run.exit_code = outcome.code
        run.finished_at = time.time()
        run.pid = None
        run.current = None
        if outcome.outputs:
            run.outputs.update(outcome.outputs)
            self.has_outputs = True
        if outcome.shared_dict is not None and attempt.shared_before is not None:
            if merge_shared(self.shared_dict, attempt.shared_before, outcome.shared_dict):
                self.checkpoint.changed()
        self._running -= 1
        attempt.start_error = attempt.start_error or outcome.reason  # what the executor knows of an odd end
        note = self._disk.note(fresh=outcome.code != 0)
        if note and outcome.code == 0:
            self._emit(Notice(f"the log of task '{run.name}' may be incomplete: {note}"))
        self.states.ended(run, attempt, outcome.code, note)
        attempt.done.set_result(None)
        self._pump()
        self._check_idle()

    def _spawn_bg(self, coro) -> asyncio.Task:
        t = asyncio.ensure_future(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)
        return t
