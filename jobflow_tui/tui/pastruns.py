"""What earlier runs of the job tell the dashboard: each task's last successful duration
(shown on the rows that have not finished, and summed along the DAG into the run's
expected end), and `H`: the past runs, newest first, a run's tasks, a task's last log
lines. All read-only, and all read in threads: a slow disk or a locked history index
never freezes the dashboard."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..engine.checkpoint import from_iso
from ..engine.events import ABORTED, BLOCKED, FAILED, PENDING, RETRYING, RUNNING, SUCCEEDED
from ..engine.run import Run
from ..format import format_duration, format_exit
from ..history import History, HistoryError, RunRow
from ..sanitize import clean_line
from .buffer import read_tail
from .estimate import time_left
from .logview import LogView
from .rows import GLYPH, STYLE

RUNS_SHOWN = 200
THIS_RUN = "this run"  # the state shown for the dashboard's own run
RUN_STYLE = {**STYLE, "interrupted": "yellow", "stopped": "magenta", THIS_RUN: "bold cyan"}
UNREADABLE = (HistoryError, sqlite3.Error, OSError)


def folders(run_dir: str) -> tuple[str, str]:
    """(the state dir, the job's folder) of a run's folder `<state dir>/<job>/runs/<run id>`."""
    job_dir = os.path.dirname(os.path.dirname(run_dir))
    return os.path.dirname(job_dir), job_dir


class PastRuns:
    """Mixed into the Dashboard (which has the run, the task list and the header)."""

    scheduler: Run
    past: Mapping[str, float] = MappingProxyType({})  # task -> seconds its last success took
    past_asked = False

    def ask_history(self) -> None:
        """Once the run has its folder, read the past durations (once, in a thread)."""
        s = self.scheduler
        if not self.past_asked and s.run_id and s.run_dir:
            self.past_asked = True
            self.load_past(s.run_dir, s.job_name, s.run_id)

    @work(thread=True, group="history", exit_on_error=False)
    def load_past(self, run_dir: str, job: str, run_id: str) -> None:
        try:
            past = History(folders(run_dir)[0]).last_durations(job, before_run=run_id)
        except UNREADABLE:
            return  # no estimates: the dashboard does without
        if past:
            self.call_from_thread(self.got_past, past)

    def got_past(self, past: dict[str, float]) -> None:
        self.past = MappingProxyType(past)
        self.tasklist.relabel(self.scheduler.order)
        self.refresh_header()

    def time_left(self) -> float | None:
        """The run's expected seconds to go (None: no past duration to tell it from)."""
        if not self.past:
            return None
        return time_left(self.scheduler.order, self.scheduler.tasks, self.past, self.clock())

    def action_past_runs(self) -> None:
        s = self.scheduler
        if not (s.run_id and s.run_dir):
            self.notify("the run has not started: no past runs to show yet", timeout=3)
            return
        self.push_screen(RunsScreen(folders(s.run_dir)[1], s.job_name, s.run_id))


def table(rows: list[list[Text]], width: int, cut: int = 0) -> list[Text]:
    """Rows of cells in columns two apart, fitted to `width`: column `cut` (the names)
    gives way first, so the facts stay."""
    count = max(map(len, rows))
    widths = [max((r[i].cell_len for r in rows if i < len(r)), default=0) for i in range(count)]
    over = sum(widths) + 2 * (count - 1) - width
    if over > 0:
        widths[cut] = max(4, widths[cut] - over)
    out = []
    for row in rows:
        line = Text(no_wrap=True, overflow="ellipsis")
        for i, cell in enumerate(row):
            cell = cell.copy()
            cell.truncate(widths[i], overflow="ellipsis")
            if i < len(row) - 1:
                cell.pad_right(widths[i] - cell.cell_len + 2)
            line.append_text(cell)
        line.truncate(width, overflow="ellipsis")
        out.append(line)
    return out


def local(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def tallies(counts: Mapping[str, int]) -> str:
    """Tasks per state, as the header writes them: ✓3 ✗1 ⊘2."""
    order = (SUCCEEDED, FAILED, ABORTED, BLOCKED, RETRYING, RUNNING, PENDING)
    return " ".join(f"{GLYPH[s]}{counts[s]}" for s in order if counts.get(s))


class Listing(Screen[None]):
    """A read-only list over the dashboard: a title, column heads, rows, its keys. Only its
    own keys apply: nothing here can act on a run."""

    BINDINGS = [Binding("escape,q", "back", "back")]
    LEGEND = "↑↓ move · Enter open · Esc back"

    def __init__(self) -> None:
        super().__init__(classes="past")
        self.heading = Static(id="past-title")
        self.columns = Static(id="past-columns")
        self.list = OptionList(id="past-list")
        self.rows: list[list[Text]] = []  # the cells of each row, the column heads first
        self.message = ""  # instead of rows: why there are none

    @property
    def is_modal(self) -> bool:
        return True

    def compose(self) -> ComposeResult:
        yield self.heading
        yield self.columns
        yield self.list
        yield Static(Text(self.LEGEND, no_wrap=True, overflow="ellipsis"), id="past-keys")

    def on_mount(self) -> None:
        self.heading.update(self.title_text())
        self.list.focus()
        self.say("reading…")
        self.load()

    def load(self) -> None:
        """Read what the list shows (in a thread), then `show` or `say`."""

    def title_text(self) -> Text:
        return Text()

    def show(self, rows: list[list[Text]]) -> None:
        self.rows, self.message = rows, ""
        self.fill()

    def say(self, message: str) -> None:
        self.rows, self.message = [], message
        self.fill()

    def fill(self) -> None:
        """The rows, fitted to the list's width (again after a resize)."""
        width = self.list.scrollable_content_region.width or max(20, self.app.size.width - 2)
        at = self.list.highlighted
        if self.message:
            self.columns.update("")
            self.list.set_options([Option(Text(self.message), disabled=True)])
            return
        head, *lines = table(self.rows, width)
        self.columns.update(head)
        self.list.set_options(Option(line) for line in lines)
        if lines:
            self.list.highlighted = min(at or 0, len(lines) - 1)

    def on_resize(self) -> None:
        self.call_after_refresh(self.fill)

    def action_back(self) -> None:
        self.dismiss(None)

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if not self.message:
            self.open(event.option_index)

    def open(self, index: int) -> None:
        """Enter on row `index` (column heads not counted)."""


def heads(*names: str) -> list[Text]:
    return [Text(n, style="bold") for n in names]


class RunsScreen(Listing):
    """The job's past runs, newest first (`H`)."""

    LEGEND = "↑↓ move · Enter the run's tasks · Esc back · read-only"

    def __init__(self, job_dir: str, job: str, live: str) -> None:
        super().__init__()
        self.job_dir, self.job, self.live = job_dir, job, live
        self.runs: list[RunRow] = []
        self.states: list[str] = []  # as shown

    def title_text(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" past runs of {clean_line(self.job, False)} ", style="bold reverse")
        t.append("  newest first", style="dim")
        return t

    @work(thread=True, group="past", exit_on_error=False)
    def load(self) -> None:
        try:
            runs = History(os.path.dirname(self.job_dir)).runs(self.job, limit=RUNS_SHOWN)
        except UNREADABLE as e:
            self.app.call_from_thread(self.say, f"the history index cannot be read ({e}); "
                                                "`jobflow-tui history --rebuild` remakes it from the run folders")
            return
        self.app.call_from_thread(self.got, runs)

    def got(self, runs: list[RunRow]) -> None:
        self.runs = runs
        self.states = [THIS_RUN if r.run_id == self.live else "interrupted" if r.state == RUNNING else r.state
                       for r in runs]
        if not runs:
            self.say(f"no run of {self.job} recorded yet")
            return
        rows = [heads("RUN", "STARTED", "STATE", "TOOK", "TASKS")]
        for r, state in zip(runs, self.states, strict=True):
            rows.append([Text(clean_line(r.run_id, False)), Text(local(r.started_at)),
                         Text(state, style=RUN_STYLE.get(state, "")), Text(format_duration(r.duration)),
                         Text(tallies(r.counts))])
        self.show(rows)

    def open(self, index: int) -> None:
        self.app.push_screen(TasksScreen(self.job_dir, self.runs[index], self.states[index]))


class TasksScreen(Listing):
    """One run's tasks as its checkpoint left them."""

    LEGEND = "↑↓ move · Enter the task's last log · Esc back · read-only"

    def __init__(self, job_dir: str, run: RunRow, state: str) -> None:
        super().__init__()
        self.job_dir, self.run, self.state = job_dir, run, state
        self.live = state == THIS_RUN
        self.tasks: list[tuple[str, dict[str, Any]]] = []

    def title_text(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" run {clean_line(self.run.run_id, False)} ", style="bold reverse")
        t.append(f" {self.state}", style=RUN_STYLE.get(self.state, ""))
        t.append(f"  started {local(self.run.started_at)}", style="dim")
        if self.run.duration is not None:
            t.append(f", took {format_duration(self.run.duration)}", style="dim")
        return t

    @work(thread=True, group="past", exit_on_error=False)
    def load(self) -> None:
        run_id = self.run.run_id
        folder = os.path.join(self.job_dir, "runs", run_id)
        # The dashboard's own run has no final copy yet: its checkpoint is the job's.
        path = os.path.join(self.job_dir if self.live else folder, "checkpoint.json")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = None
        tasks = data.get("tasks") if isinstance(data, dict) and data.get("run_id") == run_id else None
        if not isinstance(tasks, dict):
            self.app.call_from_thread(self.say, f"run {run_id} left no final checkpoint: it did not end normally. "
                                                f"Its trail: {os.path.join(folder, 'events.jsonl')}")
            return
        self.app.call_from_thread(self.got, [(n, t) for n, t in tasks.items() if isinstance(t, dict)])

    def got(self, tasks: list[tuple[str, dict[str, Any]]]) -> None:
        self.tasks = tasks
        rows = [heads("TASK", "STATE", "TRIES", "TOOK", "EXIT")]
        for name, t in tasks:
            state = str(t.get("state", "?"))
            first = Text(no_wrap=True)
            first.append(f"{GLYPH.get(state, '?')} ", style=STYLE.get(state, ""))
            first.append(clean_line(name, False))
            tries = int(t.get("attempts") or 0)
            most = int(t.get("max_attempts") or 1)
            started, finished = from_iso(t.get("started_at")), from_iso(t.get("finished_at"))
            took = finished - started if started is not None and finished is not None else None
            code = t.get("exit_code")
            rows.append([first, Text(state, style=STYLE.get(state, "")),
                         Text(f"{t.get('attempt', tries)}/{most}" if most > 1 else str(tries)),
                         Text(format_duration(took)),
                         Text(format_exit(code) if isinstance(code, int) else "", style="red" if code else "")])
        self.show(rows)

    def open(self, index: int) -> None:
        name, t = self.tasks[index]
        logs = [p for p in t.get("logs") or [] if isinstance(p, str)]
        if not logs:
            self.notify(f"{name} has no log: it never started", timeout=3)
            return
        path = logs[-1] if os.path.isabs(logs[-1]) else os.path.join(self.job_dir, logs[-1])
        self.app.push_screen(TaskLogScreen(name, len(logs), self.run.run_id, path))


class TaskLogScreen(Screen[None]):
    """The last lines of one attempt's log, read-only."""

    BINDINGS = [Binding("escape,q", "back", "back")]

    def __init__(self, task: str, attempt: int, run_id: str, path: str) -> None:
        super().__init__(classes="past")
        self.task_name, self.attempt, self.run_id, self.path = task, attempt, run_id, path
        self.view = LogView(id="past-log")

    @property
    def is_modal(self) -> bool:
        return True

    def compose(self) -> ComposeResult:
        yield Static(id="past-title")
        yield self.view
        yield Static(Text("↑↓ PgUp PgDn scroll · Esc back · read-only", no_wrap=True, overflow="ellipsis"), id="past-keys")

    def on_mount(self) -> None:
        self.view.focus()
        self.load()

    def on_resize(self) -> None:
        """The title: the task's name gives way to what it says of the attempt."""
        rest = f"  attempt {self.attempt} of run {clean_line(self.run_id, False)}, last lines"
        name = clean_line(self.task_name, False)
        room = max(8, self.size.width - cell_len(rest) - 2)
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" {name if cell_len(name) <= room else name[: room - 1] + '…'} ", style="bold reverse")
        t.append(rest, style="dim")
        self.query_one("#past-title", Static).update(t)

    @work(thread=True, group="past", exit_on_error=False)
    def load(self) -> None:
        self.app.call_from_thread(self.view.show, read_tail(self.path))

    @on(LogView.Status)
    def quiet(self, event: LogView.Status) -> None:
        event.stop()  # the dashboard's own log title has nothing to do with it

    def action_back(self) -> None:
        self.dismiss(None)

