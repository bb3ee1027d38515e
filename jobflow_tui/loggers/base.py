"""The Logger base class and the `@logger` decorator, as in Flowmancer.

A Logger's class annotations are its parameters (validated by pydantic before the run
starts). Each logger runs in a thread of its own with its own event loop, so its `update`
and hooks may block or sleep without slowing the run.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, PrivateAttr

from .events import SerializableLogEvent

_REGISTRY: dict[str, type[Logger]] = {}


class Logger(ABC, BaseModel):
    """Base class of loggers. Implement `async update(event)`; the hooks are optional.

    Hooks run in this order: on_create (when the run starts), on_restart (when the run is
    a resume, before its first event), then the events, then on_success, on_failure or
    on_abort (the run was stopped), then on_destroy.

    A logger may also define `async update_output(task, lines, timestamp)` to take a block
    of output lines at once (the built-ins do, to keep up with a flood); without it each
    line comes to `update` as a LogWriteEvent.
    """

    # defer_build: a class's validator is made when first used, so the built-ins a job does not
    # name cost nothing when the runner starts.
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, use_enum_values=True, defer_build=True)
    logger_class_name: ClassVar[str] = ""
    _context: dict[str, Any] = PrivateAttr(default_factory=dict)

    def with_context(self, job_name: str, run_id: str, job_directory: str) -> Logger:
        """This logger, told which run it logs."""
        self._context = {"job_name": job_name, "run_id": run_id, "job_directory": job_directory}
        return self

    @property
    def job_name(self) -> str:
        """The job's name (config.name)."""
        return self._context.get("job_name", "")

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._context.get("run_id", "")

    @property
    def job_directory(self) -> str:
        """The folder of the job file: relative paths in parameters start there."""
        return self._context.get("job_directory", ".")

    def resolve(self, path: str) -> str:
        """`path` (`~` expanded) relative to the job file's folder."""
        return os.path.normpath(os.path.join(self.job_directory, os.path.expanduser(path)))

    @abstractmethod
    async def update(self, evt: SerializableLogEvent) -> None:
        """Log one event."""

    async def on_create(self) -> None:
        """When the run starts."""

    async def on_restart(self) -> None:
        """When the run is a resume of an earlier one, before its first event."""

    async def on_success(self) -> None:
        """The run succeeded."""

    async def on_failure(self) -> None:
        """The run failed."""

    async def on_abort(self) -> None:
        """The run was stopped."""

    async def on_destroy(self) -> None:
        """Last, always (unless the logger was still busy when the run ended)."""


def logger(cls: type[Logger]) -> type[Logger]:
    """Register a Logger class under its class name, for `logger:` in job files."""
    if not (isinstance(cls, type) and issubclass(cls, Logger)):
        raise TypeError(f"@logger needs a subclass of jobflow_tui.loggers.Logger, not {cls!r}")
    cls.logger_class_name = cls.__name__
    _REGISTRY[cls.__name__] = cls
    return cls


def registered(cls: Any) -> bool:
    """Whether `cls` is a class decorated @logger."""
    return isinstance(cls, type) and issubclass(cls, Logger) and cls.__dict__.get("logger_class_name") == cls.__name__


def registry() -> dict[str, type[Logger]]:
    """Every class decorated @logger so far, by name (the last of a name wins)."""
    return dict(_REGISTRY)

