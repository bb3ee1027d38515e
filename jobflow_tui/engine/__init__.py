"""The engine: scheduler, executors, checkpoint, log tails. asyncio only, no UI."""

from .attempt import TaskRun
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
    Paused,
    RunIdle,
    StateChanged,
)
from .scheduler import Scheduler
from .statedir import RunError, StateDir, default_state_dir, safe_name

__all__ = [
    "ABORTED", "ACTIVE", "BLOCKED", "FAILED", "FINAL", "PENDING", "RETRYING", "RUNNING", "STATES",
    "SUCCEEDED", "Event", "Notice", "Output", "Paused", "RunError", "RunIdle", "Scheduler", "StateChanged",
    "StateDir", "TaskRun", "default_state_dir", "safe_name",
]
