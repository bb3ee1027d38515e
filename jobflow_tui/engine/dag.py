"""The tasks of a run and the moves between their seven states: every change of state
happens here, is told to the listeners and marked for the checkpoint.

    pending -> running -> succeeded | failed | aborted
    failed with attempts left -> retrying -> running
    a dependency failed or aborted -> blocked; retry or restart -> pending
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from ..jobdef.model import JobDef
from .attempt import Attempt, TaskRun
from .events import ABORTED, BLOCKED, FAILED, PENDING, RETRYING, SUCCEEDED, Event, StateChanged
from .process import signal_name


class TaskStates:
    """The state machine of a run's tasks, and the queue of those ready to launch."""

    def __init__(self, job: JobDef, tasks: dict[str, TaskRun], emit: Callable[[Event], None],
                 changed: Callable[[str], None], ready_again: Callable[[], None]) -> None:
        self.job = job
        self.tasks = tasks
        self.children = job.children()
        self.ready: collections.deque[str] = collections.deque()
        self.retrying = 0  # tasks waiting out a retry delay
        self.succeeded = 0
        self._emit = emit
        self._changed = changed  # a task's checkpoint entry changed
        self._ready_again = ready_again  # a retry's delay is over: launch what is ready

    def set(self, run: TaskRun, state: str, reason: str = "") -> None:
        previous, run.state = run.state, state
        run.reason = reason
        self.retrying += (state == RETRYING) - (previous == RETRYING)
        self.succeeded += (state == SUCCEEDED) - (previous == SUCCEEDED)
        self._emit(StateChanged(run.name, state, previous, run.attempt, run.spec.max_attempts,
                                run.exit_code, run.started_at, run.finished_at, reason))
        self._changed(run.name)

    def recount(self) -> None:
        """After the states were set from a checkpoint."""
        self.succeeded = sum(1 for r in self.tasks.values() if r.state == SUCCEEDED)
        self.retrying = sum(1 for r in self.tasks.values() if r.state == RETRYING)

    def reset(self, run: TaskRun, reason: str = "") -> None:
        """Back to pending, with a fresh retry budget."""
        run.budget_start = run.attempts
        run.exit_code = None
        run.finished_at = None
        if run.state != PENDING or reason:
            self.set(run, PENDING, reason)

    def deps_succeeded(self, run: TaskRun) -> bool:
        return all(self.tasks[d].state == SUCCEEDED for d in run.spec.dependencies)

    def deps_broken(self, run: TaskRun) -> bool:
        """Whether a dependency ended in a way that blocks `run`."""
        return any(self.tasks[d].state in (FAILED, ABORTED, BLOCKED) for d in run.spec.dependencies)

    def unblock(self, name: str) -> None:
        for child in self.children[name]:
            c = self.tasks[child]
            if c.state == BLOCKED and not self.deps_broken(c):
                self.set(c, PENDING)
                self.unblock(child)

    def block_downstream(self, name: str) -> None:
        for n in self.job.downstream(name):
            run = self.tasks[n]
            if run.state == PENDING:
                self.set(run, BLOCKED, f"'{name}' did not succeed")

    def enqueue_if_ready(self, name: str) -> None:
        run = self.tasks[name]
        if run.state == PENDING and run.selected and self.deps_succeeded(run):
            self.ready.append(name)

    def exit_code(self) -> int:
        """0 when every selected task succeeded, else 1."""
        return 0 if all(r.state == SUCCEEDED for r in self.tasks.values() if r.selected) else 1

    # ---- operator actions (the state part) ----------------------------------------

    def retry(self, name: str) -> bool:
        """A failed/aborted task, and the downstream it blocked, go back to pending."""
        run = self.tasks[name]
        if run.state not in (FAILED, ABORTED):
            return False
        run.selected = True
        self.reset(run)
        self.unblock(name)
        self.enqueue_if_ready(name)
        return True

    def restart(self, ordered: list[str]) -> None:
        """These tasks (none running any more) run again from a fresh start."""
        for n in ordered:
            self.tasks[n].selected = True
            self.tasks[n].outputs = {}
            self.reset(self.tasks[n])
        for n in ordered:
            if self.deps_broken(self.tasks[n]):
                self.set(self.tasks[n], BLOCKED, "a dependency did not succeed")
            else:
                self.enqueue_if_ready(n)

    def abort_retry(self, run: TaskRun, reason: str) -> None:
        """A task waiting out a retry delay is aborted instead."""
        if run.retry_handle:
            run.retry_handle.cancel()
            run.retry_handle = None
        run.retry_at = None
        self.set(run, ABORTED, reason)
        self.block_downstream(run.name)

    # ---- an attempt ended ---------------------------------------------------------

    def ended(self, run: TaskRun, attempt: Attempt, code: int | None, note: str = "") -> None:
        """The state an attempt that ended with `code` leaves its task in; `note`: what else
        the operator should know of it (a full disk, say)."""
        reason = attempt.kill_reason
        if attempt.start_error:
            what = attempt.start_error
        elif code is not None and code < 0:
            what = f"killed by {signal_name(-code)}"
        else:
            what = f"exit code {code}" if code is not None else "ended without an exit status"
        if note:
            what += f"; {note}"
        if reason and reason != "timeout":
            self.set(run, ABORTED, reason)
            self.block_downstream(run.name)
        elif attempt.again:
            # The adopted attempt ran the old definition: whatever it did, the new one runs.
            run.outputs = {}
            self.reset(run, f"changed since the last run; the adopted attempt ended ({what})")
            self.enqueue_if_ready(run.name)
        elif code == 0 and not reason:
            self.set(run, SUCCEEDED)
            for child in self.children[run.name]:
                self.enqueue_if_ready(child)
        else:
            why = f"timed out after {run.spec.timeout:g}s" if reason == "timeout" else what
            if run.attempt < run.spec.max_attempts:
                wait = run.spec.retry_wait(run.attempt)
                run.retry_at = time.time() + wait
                self.set(run, RETRYING, f"{why}; retry in {wait:g}s")
                self.retry_later(run)
            else:
                self.set(run, FAILED, why)
                self.block_downstream(run.name)

    def retry_later(self, run: TaskRun) -> None:
        """A retrying task's next attempt, at its `retry_at`."""
        delay = max(0.0, (run.retry_at or 0) - time.time())
        run.retry_handle = asyncio.get_running_loop().call_later(delay, self._retry_due, run)

    def _retry_due(self, run: TaskRun) -> None:
        run.retry_handle = None
        run.retry_at = None
        if run.state == RETRYING:
            self.ready.appendleft(run.name)
            self._ready_again()
