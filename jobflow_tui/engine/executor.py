"""The seam below the scheduler: an executor starts, watches, stops and re-attaches to
attempts without the scheduler knowing how or where they run.

The scheduler hands an executor an `AttemptRequest` (plain data) and gets back an
`Execution`; when `ended` is set it asks for the `Outcome`. Output always reaches the
attempt's log file (`request.files.log`), which the scheduler tails, whatever the executor.
`Executors` picks the executor of a task: the only place that knows kinds of task.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ..jobdef.model import JobDef, TaskDef
from ..journal import AttemptFiles


class AttemptRequest:
    """Everything needed to start one attempt of a task (plain data)."""

    __slots__ = ("task", "spec", "attempt", "files", "env", "upstream", "shared_dict", "params")

    def __init__(self, task: str, spec: TaskDef, attempt: int, files: AttemptFiles, env: dict[str, str],
                 upstream: dict[str, dict[str, Any]], shared_dict: dict[str, Any], params: dict[str, str]) -> None:
        self.task = task
        self.spec = spec
        self.attempt = attempt  # attempts of this task started so far, this one included (numbers its files)
        self.files = files
        self.env = env  # the whole environment of the attempt
        self.upstream = upstream  # outputs of the tasks it depends on, directly or not, that published any
        self.shared_dict = shared_dict  # a copy of the job-wide dict as the attempt starts
        self.params = params  # the run's -p KEY=VALUE parameters


class Outcome:
    """How an attempt ended."""

    __slots__ = ("code", "outputs", "shared_dict", "reason")

    def __init__(self, code: int | None, outputs: dict[str, Any] | None = None,
                 shared_dict: dict[str, Any] | None = None, reason: str = "") -> None:
        self.code = code  # exit status; -N: killed by signal N; None: ended without recording one
        self.outputs = outputs or {}
        self.shared_dict = shared_dict  # the attempt's copy at its end (None: not reported)
        self.reason = reason  # why it ended without an exit status (a lost worker), if the executor knows


class Execution(Protocol):
    """One attempt, running somewhere."""

    pid: int | None  # of the attempt's main process, where there is one
    create_time: float | None  # of that process, once known (tells it from a later one of the same pid)
    ended: asyncio.Future[None]  # set (on the loop given to `watch`) when the attempt is over

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start watching for the end; called once, on the loop, after the start."""

    async def outcome(self) -> Outcome:
        """How it ended; once `ended` is set."""

    async def stop(self, grace: float) -> None:
        """End it and everything it started: gracefully, then by force after `grace` seconds."""

    def signal(self, sig: int) -> None:
        """Send `sig` to everything it runs, at once, from any thread (an emergency stop)."""

    def alive(self) -> bool:
        """Whether anything of it still runs (from any thread)."""

    def track(self) -> None:
        """Called about once a second while it runs past a moment: keep its processes in reach."""

    def claim(self, pid: int) -> None:
        """A process of this attempt found outside its tree (an orphan that came back)."""

    def release(self) -> None:
        """Its end is recorded: let go at once of what the next attempt may need (a process
        to reuse), before anything else is launched."""

    async def clean_up(self, grace: float) -> None:
        """After the end, in the background: end what it left behind, free what it held."""


class Executor(Protocol):
    """Where and how attempts run."""

    quick_start: bool  # start() returns within about a millisecond: called on the loop, not in a thread
    start_grace: float  # seconds a resumed run waits for an attempt `starting` names to record its pid

    def start(self, request: AttemptRequest) -> Execution:
        """Start an attempt (blocking: called off the event loop); raises if it cannot."""

    def reattach(self, files: AttemptFiles, pid: int | None, create_time: float | None) -> Execution | None:
        """The attempt a runner that died had started, if it still runs: to be watched again."""

    def starting(self, attempts: list[AttemptFiles]) -> set[str]:
        """Of these attempts of a runner that died, none of which recorded its pid yet: the
        keys of those that may still be starting (a resumed run waits a moment for them;
        the others never started)."""

    def own_pids(self) -> set[int]:
        """Children of this process that the executor started and will reap itself."""

    def holds(self) -> bool:
        """Whether `close` has anything to release (it may block)."""

    def close(self) -> None:
        """The run is over: release what the executor holds (blocking)."""


class Executors:
    """The executors of a run, and which one runs each task."""

    def __init__(self, job: JobDef) -> None:
        from .local import LocalCommands, LocalPython

        self.commands = LocalCommands()
        self.python = LocalPython(job)
        self.remote: Executor | None = None
        if job.executor != "local":
            from .dask import DaskExecutor

            needs: dict[str, float] = {}
            for t in job.tasks.values():
                for name, amount in t.resources.items():
                    needs[name] = max(needs.get(name, 0.0), amount)
            self.remote = DaskExecutor(job.executor, job, needs)

    def pick(self, spec: TaskDef) -> Executor:
        if self.remote is not None and spec.executor != "local":
            return self.remote
        return self.python if spec.python_class else self.commands

    def pick_for_run(self, run: Any) -> Executor:
        """`pick` for a TaskRun."""
        return self.pick(run.spec)

    def all(self) -> list[Executor]:
        return [self.commands, self.python, *([self.remote] if self.remote is not None else [])]

    def own_pids(self) -> set[int]:
        return set().union(*(e.own_pids() for e in self.all()))
