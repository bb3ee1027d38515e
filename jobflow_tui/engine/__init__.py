"""The engine: scheduler, process runner, checkpoint, log tails. asyncio only, no UI."""

from .events import (
    ABORTED,
    ACTIVE,
    BLOCKED,
    FAILED,
    FINAL,
    PENDING,
    RETRYING,
    RUNNING,
    STATES,
    SUCCEEDED,
    Event,
    Notice,
    Output,
    RunIdle,
    StateChanged,
)
from .scheduler import RunError, Scheduler, TaskRun, default_state_dir, safe_name

__all__ = [
    "ABORTED",
    "ACTIVE", "BLOCKED", "FAILED", "FINAL", "PENDING", "RETRYING", "RUNNING", "STATES",
    "SUCCEEDED", "Event", "Notice", "Output", "RunError", "RunIdle", "Scheduler", "StateChanged",
    "TaskRun", "default_state_dir", "safe_name",
]
