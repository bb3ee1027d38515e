"""What the dashboard writes on its one-line widgets: task rows, group rows, the header,
the gauge and the log pane's title. Rich Text, never markup (a task named `[/x]` must not
break the screen)."""

from __future__ import annotations

import collections
from collections.abc import Mapping

from rich.text import Text

from ..engine.events import ABORTED, BLOCKED, FAILED, PENDING, RETRYING, RUNNING, SUCCEEDED
from ..engine.run import Run, TaskView
from ..format import format_duration, format_exit
from ..sanitize import clean_line
from .logview import LogView

GLYPH = {PENDING: "·", RUNNING: "▶", SUCCEEDED: "✓", FAILED: "✗", ABORTED: "■", RETRYING: "↻", BLOCKED: "⊘"}
STYLE = {PENDING: "dim", RUNNING: "bold cyan", SUCCEEDED: "green", FAILED: "bold red",
         ABORTED: "magenta", RETRYING: "yellow", BLOCKED: "dim red"}


def task_row(name: str, r: TaskView, now: float, position: Mapping[str, int]) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(f"{GLYPH[r.state]} ", style=STYLE[r.state])
    t.append(clean_line(name, False))
    t.append(" ")
    t.append(r.state, style=STYLE[r.state])
    if r.max_attempts > 1 or r.attempts > 1:
        t.append(f" {r.attempt}/{r.max_attempts}", style="dim")
    if r.started_at:
        t.append(f" {format_duration((r.finished_at or now) - r.started_at)}", style="dim")
    if r.state in (FAILED, RETRYING) and r.exit_code is not None:
        t.append(f" exit {format_exit(r.exit_code)}", style="red")
    deps = r.dependencies
    # Only what the row order does not already tell: several parents, or a distant one.
    if len(deps) > 1 or (deps and position[deps[0]] != position[name] - 1):
        t.append(f"  ← {', '.join(clean_line(d, False) for d in deps)}", style="dim")
    return t


def group_row(prefix: str, members: list[str], folded: bool, tasks: Mapping[str, TaskView]) -> Text:
    """A group's row: its prefix, size, and how many members are in each state."""
    counts = collections.Counter(tasks[n].state for n in members)
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("▸ " if folded else "▾ ", style="bold")
    t.append(f"{clean_line(prefix, False)}… ({len(members)})", style="bold")
    for state in (RUNNING, FAILED, RETRYING, ABORTED, BLOCKED, SUCCEEDED, PENDING):
        if counts.get(state):
            t.append(f"  {GLYPH[state]}{counts[state]}", style=STYLE[state])
    return t


def header(s: Run, now: float, idle_code: int | None) -> Text:
    counts = collections.Counter(r.state for r in s.tasks.values())
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(f" {clean_line(s.job_name, False)} ", style="bold reverse")
    t.append(f" {format_duration(now - s.started_at)} ")
    for state in (RUNNING, SUCCEEDED, FAILED, RETRYING, ABORTED, BLOCKED, PENDING):
        if counts.get(state):
            t.append(f" {GLYPH[state]}{counts[state]} {state}", style=STYLE[state])
    if s.paused:
        t.append("  PAUSED", style="bold yellow")
    elif idle_code is not None and not s.running():
        t.append("  done" if idle_code == 0 else "  stopped", style="bold")
    t.append(f"  run {s.run_id}", style="dim")
    return t


def gauge(s: Run, cpu: float, rss: float) -> Text:
    t = Text(no_wrap=True)
    t.append(f"running {s.running()}/{s.limit or '∞'}", style="bold")
    t.append(f"  cpu {cpu:.0f}%  mem {rss / 1e6:.0f} MB", style="dim")
    if s.paused:
        t.append("  PAUSED", style="bold yellow")
    return t


def log_title(name: str, r: TaskView, attempt_shown: int | None, view: LogView) -> Text:
    """The log pane's title: whose log, which attempt, the search, whether it follows."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(f" {clean_line(name, False)} ", style="bold")
    if r.attempts:
        n = attempt_shown or r.attempts
        t.append(f"attempt {n}/{r.attempts}{'' if attempt_shown is None else ' (earlier)'}  ")
    if view.search_term:
        pos = f"{view.match_index + 1}/{len(view.matches)}" if view.matches else "no match"
        t.append(f"/{view.search_term} {pos}  ", style="yellow")
    if view.follow:
        t.append("following", style="dim")
    else:
        t.append(f"paused: {view.unseen} new lines (f or End to follow)", style="bold yellow")
    return t
