"""How long a run has left, from each task's last successful duration in earlier runs:
the longest chain of remaining work through the DAG. Pure functions, no clock of their own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..engine.events import PENDING, RETRYING, RUNNING
from ..engine.run import TaskView
from ..format import format_duration

TO_DO = (RUNNING, PENDING, RETRYING)  # what still takes time; blocked tasks will not run


def longest_chain(order: Sequence[str], deps: Mapping[str, Sequence[str]], work: Mapping[str, float]) -> float:
    """Seconds along the heaviest chain of dependencies (`order`: dependencies first; a
    task missing from `work` counts 0)."""
    total: dict[str, float] = {}
    for name in order:
        before = max((total[d] for d in deps.get(name, ()) if d in total), default=0.0)
        total[name] = max(0.0, work.get(name, 0.0)) + before
    return max(total.values(), default=0.0)


def work_left(tasks: Mapping[str, TaskView], last: Mapping[str, float], now: float) -> dict[str, float] | None:
    """Each unfinished task's expected seconds to go: a running one its last duration less
    what it has run (not below 0), a pending or retrying one its last duration. None when
    no unfinished task has a known duration (nothing to estimate from)."""
    left: dict[str, float] = {}
    for name, r in tasks.items():
        if r.state not in TO_DO or not r.selected or name not in last:
            continue
        took = last[name]
        if r.state == RUNNING and r.started_at is not None:
            took = max(0.0, took - (now - r.started_at))
        left[name] = took
    return left or None


def time_left(order: Sequence[str], tasks: Mapping[str, TaskView], last: Mapping[str, float],
              now: float) -> float | None:
    """The run's expected seconds to go from `now`, or None when it cannot be told."""
    left = work_left(tasks, last, now)
    if left is None:
        return None
    return longest_chain(order, {n: tasks[n].dependencies for n in order}, left)


def about(seconds: float) -> str:
    """A rough duration, short: 0.4s, 12s, 1m20s."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    return format_duration(seconds)
