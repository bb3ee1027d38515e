"""What the engine tells its subscribers (the dashboard, the headless reporter, tests)."""

from __future__ import annotations

from dataclasses import dataclass

PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
ABORTED = "aborted"
RETRYING = "retrying"
BLOCKED = "blocked"
STATES = (PENDING, RUNNING, SUCCEEDED, FAILED, ABORTED, RETRYING, BLOCKED)
FINAL = (SUCCEEDED, FAILED, ABORTED, BLOCKED)
ACTIVE = (RUNNING, RETRYING)  # work in progress: what an abort or a quit has to end


@dataclass(frozen=True)
class StateChanged:
    """A task moved from `previous` to `state`."""

    task: str
    state: str
    previous: str
    attempt: int  # the try within the current budget, 1-based (0 before the first)
    max_attempts: int
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    reason: str = ""


@dataclass(frozen=True)
class Output:
    """New lines of a task's log (already split and decoded; not yet sanitised)."""

    task: str
    attempt: int
    lines: list[str]


@dataclass(frozen=True)
class RunIdle:
    """Nothing is running or waiting to run; `exit_code` is what the run would exit with."""

    exit_code: int


Event = StateChanged | Output | RunIdle
