"""The operator's cockpit: the dashboard's actions for reading a run whole. Find the
failure (`e`, and the cursor that goes to the first one), read any line (wrap, zoom,
earlier attempts, the pager), every task at once (`L`), copy lines and failure reports
out, and see the DAG as a graph (`g`)."""

from __future__ import annotations

import os
import shlex
import subprocess

from textual.app import SuspendNotSupported
from textual.widgets import Static

from ..engine import FAILED, safe_name
from ..engine.run import Run
from .buffer import TailBuffer
from .copyout import copy_out
from .graphview import GraphScreen
from .logview import LogView
from .report import failure_report
from .tasklist import TaskList


class Cockpit:
    """Actions mixed into the Dashboard (which has the run and the widgets they use)."""

    scheduler: Run
    tasklist: TaskList
    logview: LogView
    header: Static
    position: dict[str, int]
    shown: str | None
    attempt_shown: int | None
    merged_shown: bool
    merged: TailBuffer

    def to_first_failure(self, changed: set[str]) -> None:
        """A task failed and the operator has not moved the cursor: put it on the failure
        (and leave it there: the first failure is usually the cause)."""
        tasks = self.scheduler.tasks
        if self.tasklist.moved_by_operator or (self.selected and tasks[self.selected].state == FAILED):
            return
        failed = [n for n in changed if tasks[n].state == FAILED]
        if failed:
            self.tasklist.move_to(min(failed, key=self.position.__getitem__))

    def action_attempt(self, step: int) -> None:
        name = self.selected
        if not name:
            return
        total = len(self.scheduler.tasks[name].logs)
        if not total:
            return
        current = self.attempt_shown or total
        target = max(1, min(total, current + step))
        self.show(name, None if target == total else target)

    def action_pager(self) -> None:
        name = self.selected
        logs = self.scheduler.tasks[name].logs if name else []
        if not logs:
            return
        path = logs[(self.attempt_shown or len(logs)) - 1]
        pager = shlex.split(os.environ.get("PAGER") or "less -R")
        try:
            with self.suspend():
                subprocess.run([*pager, path], check=False)
        except SuspendNotSupported:
            self.notify(f"this terminal cannot hand over to a pager; the log is {path}", timeout=6)
        except OSError as e:
            self.notify(f"cannot run pager {pager[0]!r}: {e.strerror}", severity="error")

    def action_next_failure(self) -> None:
        """The cursor to the next failed task after it (round the end)."""
        order = self.scheduler.order
        here = self.position.get(self.selected or "", -1)
        failed = [n for n in order[here + 1:] + order[: here + 1] if self.scheduler.tasks[n].state == FAILED]
        if not failed:
            self.notify("no task has failed", timeout=2)
            return
        self.tasklist.moved_by_operator = True
        self.tasklist.move_to(failed[0])

    def action_wrap(self) -> None:
        self.logview.wrap = not self.logview.wrap
        self.notify("long lines wrap" if self.logview.wrap else "long lines scroll sideways (left/right)", timeout=2)

    def action_zoom(self) -> None:
        left = self.query_one("#left")
        left.display = not left.display
        self.header.display = left.display
        if not left.display:
            self.logview.focus()

    def action_merged(self) -> None:
        """Every task's output in one pane, `TASK | line`; again: back to the task's log."""
        if self.merged_shown:
            self.show(self.shown or self.scheduler.order[0])
            return
        self.merged_shown = True
        self.logview.show(self.merged)
        self.refresh_log_title()

    def action_graph(self) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self.tasklist.moved_by_operator = True
                self.tasklist.move_to(name)

        self.push_screen(GraphScreen(self.scheduler, self.clock(), self.selected), chosen)

    def action_mark(self) -> None:
        view = self.logview
        if view.mark is not None:
            view.stop_marking()
            return
        view.focus()
        view.start_marking()
        if view.mark is not None:
            self.notify("up/down mark lines; y copies them; Esc stops", timeout=3)
        self.refresh_bindings()

    def action_copy(self) -> None:
        view = self.logview
        lines = view.marked()
        if not lines:
            return
        _, said = copy_out(self, "\n".join(lines) + "\n", self.scheduler.run_dir, "copied.txt")
        view.stop_marking()
        self.notify(f"{len(lines)} line(s) {said}", timeout=8)
        self.refresh_bindings()

    def action_report(self, name: str | None = None) -> None:
        name = name or self.selected
        if not name:
            return
        text = failure_report(self.scheduler, name)
        path, said = copy_out(self, text, self.scheduler.run_dir, f"report-{safe_name(name)}.txt")
        self.notify(f"report of {name}: {said}", severity="information" if path else "warning", timeout=10)

