"""The seam above the engine: the run API that every viewer uses (the dashboard, the
headless reporter, and whatever reaches the run from another process).

A viewer reads a `Run` (its tasks as `TaskView`s), follows its events, and acts through
its methods; the process that owns the run also drives its life cycle (`Owner`). The
`Scheduler` is both for the process it runs in. `snapshot()` is the whole state as plain
data, the first thing a viewer in another process receives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from .events import Event


class TaskView(Protocol):
    """What a viewer sees of one task."""

    name: str
    state: str
    attempts: int  # attempts started in this run
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    pid: int | None
    logs: list[str]
    reason: str
    selected: bool

    @property
    def attempt(self) -> int:
        """The try within the current retry budget (1-based; 0 before the first)."""

    @property
    def max_attempts(self) -> int: ...

    @property
    def dependencies(self) -> list[str]: ...

    @property
    def duration(self) -> float | None: ...

    @property
    def definition(self) -> dict[str, Any]:
        """What it runs: `command` or `task` and `parameters`; `cwd`, `timeout`, `env` names."""


class Run(Protocol):
    """A run as its viewers see and drive it."""

    order: list[str]  # the tasks in dependency order, ties in file order
    tasks: Mapping[str, TaskView]
    run_id: str
    started_at: float
    paused: bool
    limit: int  # at most this many tasks at once (0: no limit)
    notes: list[str]  # what the run has to say once, at its start
    run_dir: str  # the run's own folder (its logs; what a viewer saves for the operator)
    subflows: Mapping[str, list[str]]  # subflow -> every task inside it (all levels), contiguous in `order`

    @property
    def job_name(self) -> str: ...

    @property
    def job_path(self) -> str: ...

    def running(self) -> int:
        """How many tasks run now."""

    def active(self) -> list[Any]:
        """The tasks running or waiting to retry."""

    def downstream(self, name: str) -> list[str]:
        """Every task that depends on `name`, directly or not."""

    def emitted(self, name: str) -> int | None:
        """Bytes of the running attempt's log already told as events (None: none runs)."""

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Every event from now on; returns a function that unsubscribes."""

    def retry(self, name: str) -> bool:
        """A failed or aborted task (and what it blocked) back to pending; False if n/a."""

    def restart(self, name: str) -> Awaitable[None]:
        """The task and everything downstream run again (running ones aborted first)."""

    def abort(self, name: str) -> Awaitable[None] | None:
        """End a running or retry-waiting task; None if it is neither."""

    def abort_all(self) -> Awaitable[Any]: ...

    def pause(self) -> None:
        """Launch nothing new; running tasks go on."""

    def unpause(self) -> None: ...

    def exit_code(self) -> int:
        """What the run would exit with now: 0 if every selected task succeeded."""


class Owner(Protocol):
    """The life cycle of a run, for the one process that owns it."""

    state_dir: str  # the state dir, and the job's own folder in it
    job_dir: str

    @property
    def job_path(self) -> str: ...

    async def start(self) -> None: ...

    async def shutdown(self, reason: str = "interrupted") -> None:
        """End every running task gracefully, write the checkpoint, release the run."""

    def emergency_stop(self, reason: str) -> None:
        """The same without the event loop, from any thread (blocking)."""

    def save_now(self) -> None: ...

    def kill_now(self) -> None:
        """SIGKILL every running task at once (a second interrupt)."""

    def hand_off(self) -> None:
        """Launch nothing more and write the checkpoint: another process takes the run over."""

    @property
    def kill_grace(self) -> float:
        """The longest a graceful stop can take, in seconds."""


def snapshot(run: Run) -> dict[str, Any]:
    """The run's whole state as plain data (JSON-serialisable)."""
    return {
        "job": run.job_name,
        "path": run.job_path,
        "run_id": run.run_id,
        "started_at": run.started_at,
        "paused": run.paused,
        "limit": run.limit,
        "running": run.running(),
        "order": list(run.order),
        "subflows": {k: list(v) for k, v in run.subflows.items()},
        "tasks": {
            name: {
                "state": t.state, "attempt": t.attempt, "attempts": t.attempts, "max_attempts": t.max_attempts,
                "exit_code": t.exit_code, "started_at": t.started_at, "finished_at": t.finished_at,
                "pid": t.pid, "logs": list(t.logs), "reason": t.reason, "selected": t.selected,
                "dependencies": list(t.dependencies), "emitted": run.emitted(name),
                "definition": t.definition,
            }
            for name, t in ((n, run.tasks[n]) for n in run.order)
        },
    }


def state_of(run: Run, name: str) -> str:
    """A task's state, or a subflow's: running while any of its tasks runs or waits to
    retry (or some ended and others wait), else failed, aborted or blocked if any is, else
    succeeded when all did, else pending."""
    members = run.subflows.get(name)
    if members is None:
        return run.tasks[name].state
    states = {run.tasks[n].state for n in members}
    if states & {"running", "retrying"}:
        return "running"
    for state in ("failed", "aborted", "blocked"):
        if state in states:
            return state
    if states == {"succeeded"}:
        return "succeeded"
    return "running" if "succeeded" in states else "pending"
