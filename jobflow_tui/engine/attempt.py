"""A task's live state in a run (`TaskRun`), and what one attempt of it holds while it
runs (`Attempt`: made fresh for each attempt, so nothing of an earlier one lingers)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ..jobdef.model import TaskDef
from ..journal import AttemptFiles
from .events import PENDING
from .executor import Execution
from .tail import LogTail


class Attempt:
    """One attempt while it is started, runs and is finished."""

    __slots__ = ("files", "done", "execution", "tail", "timer", "kill_reason", "killer", "start_error",
                 "shared_before", "again")

    def __init__(self, files: AttemptFiles, done: asyncio.Future[None], again: bool = False) -> None:
        self.files = files
        self.done = done  # set once the attempt is recorded, whatever its end
        self.execution: Execution | None = None
        self.tail: LogTail | None = None
        self.timer: asyncio.TimerHandle | None = None  # the timeout
        self.kill_reason = ""  # why it is being ended: an abort, a restart, "timeout"
        self.killer: asyncio.Task | None = None
        self.start_error = ""  # why it could not start
        self.shared_before: dict[str, Any] | None = None  # the shared dict as the attempt received it
        self.again = again  # adopted, but changed since: runs again once it ends


@dataclass(eq=False)
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
    selected: bool = True  # part of this run (--only leaves the others out)
    current: Attempt | None = None  # while an attempt is started, runs or is being finished
    retry_handle: asyncio.TimerHandle | None = None  # a retry waiting out its delay
    retry_at: float | None = None  # when that retry starts (kept in the checkpoint)

    @property
    def attempt(self) -> int:
        """The try within the current retry budget (1-based; 0 before the first)."""
        return self.attempts - self.budget_start

    @property
    def max_attempts(self) -> int:
        return self.spec.max_attempts

    @property
    def dependencies(self) -> list[str]:
        return self.spec.dependencies

    def begin_attempt(self, log: str) -> None:
        """A new attempt starts now, writing `log`: nothing of the last one stays."""
        self.attempts += 1
        self.logs.append(log)
        self.exit_code = self.finished_at = self.pid = self.create_time = None
        self.started_at = time.time()
        self.adopted = False

    @property
    def definition(self) -> dict[str, Any]:
        """What the task runs, as a failure report names it: its command or Python class
        with parameters, folder, timeout, and the names (not the values) of its env."""
        return definition_of(self.spec)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


def definition_of(spec: TaskDef) -> dict[str, Any]:
    """A task's definition as plain data; env values are left out (they may be secrets)."""
    what: dict[str, Any] = {"command": spec.command} if spec.command is not None else {
        "task": spec.python_class, "parameters": spec.parameters}
    return {**what, "cwd": spec.cwd, "timeout": spec.timeout, "env": sorted(spec.env)}
