"""What the dashboard writes on its one-line widgets: task rows, group rows, the header,
the gauge and the log pane's title. Rich Text, never markup (a task named `[/x]` must not
break the screen)."""

from __future__ import annotations

import collections
from collections.abc import Mapping

from rich.cells import cell_len
from rich.text import Text

from ..engine.events import ABORTED, BLOCKED, FAILED, PENDING, RETRYING, RUNNING, SUCCEEDED
from ..engine.run import Run, TaskView
from ..format import format_duration, format_exit
from ..sanitize import clean_line
from .estimate import about
from .logview import LogView

GLYPH = {PENDING: "·", RUNNING: "▶", SUCCEEDED: "✓", FAILED: "✗", ABORTED: "■", RETRYING: "↻", BLOCKED: "⊘"}
STYLE = {PENDING: "dim", RUNNING: "bold cyan", SUCCEEDED: "green", FAILED: "bold red",
         ABORTED: "magenta", RETRYING: "yellow", BLOCKED: "dim red"}


def task_row(name: str, r: TaskView, now: float, position: Mapping[str, int], width: int | None = None,
             last: float | None = None) -> Text:
    """A task's row: glyph, name, then its facts (state, attempt, duration, exit), what it
    took last time (`last`, while it has not finished) and the parents the order does not
    show. Narrow, the parents go, then the estimate, then the name is cut: the facts always
    stay."""
    facts = Text(no_wrap=True)
    facts.append(r.state, style=STYLE[r.state])
    if r.max_attempts > 1 or r.attempts > 1:
        facts.append(f" {r.attempt}/{r.max_attempts}", style="dim")
    if r.started_at:
        facts.append(f" {format_duration((r.finished_at or now) - r.started_at)}", style="dim")
    if r.state in (FAILED, RETRYING) and r.exit_code is not None:
        facts.append(f" exit {format_exit(r.exit_code)}", style="red")
    guess = Text(no_wrap=True)
    if last is not None and r.state in (PENDING, RUNNING) and r.selected:
        guess.append(f"{'/' if r.state == RUNNING and r.started_at else ' '}~{about(last)}", style="dim")
    deps = r.dependencies
    parents = Text(no_wrap=True)
    # Only what the row order does not already tell: several parents, or a distant one.
    if len(deps) > 1 or (deps and position[deps[0]] != position[name] - 1):
        parents.append(f"  ← {', '.join(clean_line(d, False) for d in deps)}", style="dim")
    label = clean_line(name, False)
    if width is None or 3 + cell_len(label) + facts.cell_len + guess.cell_len <= width:
        facts.append_text(guess)
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(f"{GLYPH[r.state]} ", style=STYLE[r.state])
    room = None if width is None else width - 3 - facts.cell_len
    if room is not None and cell_len(label) > room:
        label = label[: max(1, room - 1)] + "…"
    t.append(label)
    t.append(" ")
    t.append_text(facts)
    if width is None or t.cell_len + parents.cell_len <= width:
        t.append_text(parents)
    return t


def group_row(prefix: str, members: list[str], folded: bool, tasks: Mapping[str, TaskView],
              name: str | None = None) -> Text:
    """A group's row: its prefix (or a subflow's `name`), size, and how many members are in each state."""
    counts = collections.Counter(tasks[n].state for n in members)
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("▸ " if folded else "▾ ", style="bold")
    title = clean_line(prefix, False) + "…" if name is None else clean_line(name, False)
    t.append(f"{title} ({len(members)})", style="bold")
    for state in (RUNNING, FAILED, RETRYING, ABORTED, BLOCKED, SUCCEEDED, PENDING):
        if counts.get(state):
            t.append(f"  {GLYPH[state]}{counts[state]}", style=STYLE[state])
    return t


def header(s: Run, now: float, idle_code: int | None, width: int | None = None, left: float | None = None) -> Text:
    """The run's line: job, elapsed, counts per state, the time it is expected to take yet
    (`left`, seconds) or whether it ended, its id. Narrow, the counts lose their words,
    then the estimate goes, then the job name shortens; the run id stays."""
    counts = collections.Counter(r.state for r in s.tasks.values())
    states = [st for st in (RUNNING, SUCCEEDED, FAILED, RETRYING, ABORTED, BLOCKED, PENDING) if counts.get(st)]
    name = clean_line(s.job_name, False)
    ended = idle_code is not None and not s.running()
    for worded, estimate in ((True, True), (False, True), (False, False)):
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" {name} ", style="bold reverse")
        t.append(f" {format_duration(now - s.started_at)} ")
        for state in states:
            t.append(f" {GLYPH[state]}{counts[state]}{' ' + state if worded else ''}", style=STYLE[state])
        if estimate and left is not None and not ended:
            t.append(f"  ~{about(left)} left", style="bold")
        if s.paused:
            t.append("  PAUSED", style="bold yellow")
        elif ended:
            t.append("  done" if idle_code == 0 else "  stopped", style="bold")
        t.append(f"  run {s.run_id}", style="dim")
        if width is None or t.cell_len <= width:
            return t
    over = t.cell_len - width
    if over < len(name) - 4:  # the job name gives way before the run id
        return header_with_name(t, name, name[: len(name) - over - 1] + "…")
    return t


def header_with_name(t: Text, old: str, new: str) -> Text:
    """`t` with the job name in its first segment shortened."""
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(f" {new} ", style="bold reverse")
    out.append_text(t[len(old) + 2:])
    return out


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
    return _view_state(t, view)


def merged_title(view: LogView) -> Text:
    """The title of the merged log of every task (L)."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" all tasks ", style="bold")
    t.append("(L: back)  ", style="dim")
    return _view_state(t, view)


def _view_state(t: Text, view: LogView) -> Text:
    """What the pane is doing: marking lines, the search, following or not."""
    if view.mark is not None:
        t.append(f"marking {abs(view.mark[1] - view.mark[0]) + 1} line(s): y copies, Esc stops  ", style="bold yellow")
    if view.search_term:
        pos = f"{view.match_index + 1}/{len(view.matches)}" if view.matches else "no match"
        t.append(f"/{view.search_term} {pos}  ", style="yellow")
    if view.follow:
        t.append("following", style="dim")
    else:
        t.append(f"paused: {view.unseen} new lines (f or End to follow)", style="bold yellow")
    return t
