"""What the engine tells its subscribers (the dashboard, the headless reporter, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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
    """New lines of a task's log, as it wrote them: `data` holds them joined by b"\\n"
    (one block per read, however many lines); `text` and `lines` decode them on first use
    (invalid UTF-8 as U+FFFD). Not sanitised: see `jobflow_tui.sanitize`."""

    task: str
    attempt: int
    data: bytes

    @cached_property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    @cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")


@dataclass(frozen=True)
class RunIdle:
    """Nothing is running or waiting to run; `exit_code` is what the run would exit with."""

    exit_code: int


@dataclass(frozen=True)
class Paused:
    """Launching new tasks stopped (`paused`) or started again."""

    paused: bool


@dataclass(frozen=True)
class Notice:
    """Something the operator should know that is not a task's state (a full disk, say)."""

    message: str
    severity: str = "warning"  # "information", "warning" or "error"


Event = StateChanged | Output | RunIdle | Notice | Paused
