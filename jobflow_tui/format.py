"""How both reporters (the dashboard and the headless lines) write times, exit codes and
counts, so the two always read the same."""

from __future__ import annotations

from .engine.events import ABORTED, BLOCKED, FAILED, PENDING, RETRYING, RUNNING, SUCCEEDED
from .engine.process import signal_name

# The order in which counts per state are told: what needs attention first.
SUMMARY_ORDER = (SUCCEEDED, FAILED, ABORTED, BLOCKED, RETRYING, RUNNING, PENDING)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def format_exit(code: int | None) -> str:
    """An exit status as shown: the number, the signal's name (-15: SIGTERM), or "-"."""
    if code is None:
        return "-"
    if code < 0:
        return signal_name(-code)
    return str(code)
