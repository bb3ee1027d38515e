"""The dashboard: the scheduler runs in the app's event loop; the operator drives it.

Engine events arrive through one subscriber that only queues them; a 20 Hz timer applies
them to the widgets in one batch, so a task printing 100,000 lines a second costs one
refresh per frame, not one widget write per line. Actions call the engine's public API.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Sparkline, Static

from ..engine import (
    ABORTED,
    ACTIVE,
    FAILED,
    PENDING,
    RUNNING,
    Event,
    Notice,
    Output,
    RunIdle,
    StateChanged,
)
from ..engine.run import Owner, Run
from ..sanitize import clean_line
from .actions import bindings, help_rows
from .buffer import TailBuffer, read_tail
from .cockpit import Cockpit
from .commands import TaskCommands
from .graphview import GraphScreen
from .keybar import KeyBar
from .keys import load_keymap
from .logview import LogView
from .pastruns import PastRuns
from .rows import gauge, group_row, header, log_title, merged_title, task_row
from .screens import Confirm, Help
from .session import Session
from .tasklist import TaskList
from .usage import UsageSampler

FLUSH_HZ = 20


class Dashboard(Cockpit, PastRuns, App[int]):
    """The jobflow-tui dashboard for one run."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "jobflow-tui"
    COMMANDS = App.COMMANDS | {TaskCommands}
    BINDINGS = bindings()

    def __init__(
        self,
        scheduler: Run,
        *,
        start_engine: bool = True,
        attached: bool = False,
        on_hangup: str = "detach",
        clock: Callable[[], float] = time.time,
        keymap_path: str | None = None,
    ) -> None:
        """`scheduler`: the run shown and driven, through its run API. With `start_engine`,
        this dashboard owns it: starts it, serves it, stops it or hands it over on quit or
        hang-up. `attached`: a viewer of a run another process owns."""
        super().__init__()
        self.scheduler = scheduler
        owner: Owner | None = scheduler if start_engine and not attached else None  # type: ignore[assignment]
        self.session = Session(self, scheduler, owner, attached, on_hangup)
        self.start_engine_on_mount = start_engine or attached
        self.clock = clock
        self.keymap_path = keymap_path
        self.buffers: dict[str, TailBuffer] = {n: TailBuffer() for n in scheduler.order}
        self.merged = TailBuffer()  # every task's lines, `TASK | line` (L)
        self.merged_shown = False
        self.prefix = {n: f"\x1b[2m{n} |\x1b[0m ".encode() for n in scheduler.order}
        self.position = {n: i for i, n in enumerate(scheduler.order)}
        self.pending: list[Event] = []
        self.shown: str | None = None
        self.attempt_shown: int | None = None  # None: the live (latest) attempt
        self.idle_code: int | None = None
        self.history: collections.deque[float] = collections.deque([0.0] * 60, maxlen=60)
        self.usage = UsageSampler()
        scheduler.subscribe(self.on_engine_event)

    # ---- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield TaskList(self.scheduler.order, self.label, self.group_label, subflows=self.scheduler.subflows,
                               id="dag")
                yield Static(id="gauge")
                yield Sparkline(list(self.history), id="spark")
            with Vertical(id="right"):
                yield Static(id="logtitle")
                yield LogView(id="log")
                yield Input(placeholder="search the log (Enter: find, Escape: cancel)", id="search")
        yield KeyBar()

    def on_mount(self) -> None:
        # Kept once: a query searches the active screen, which may be a modal dialog.
        self.tasklist = self.query_one("#dag", TaskList)
        self.logview = self.query_one("#log", LogView)
        self.searchbox = self.query_one("#search", Input)
        self.header = self.query_one("#header", Static)
        self.gauge = self.query_one("#gauge", Static)
        self.spark = self.query_one("#spark", Sparkline)
        self.logtitle = self.query_one("#logtitle", Static)
        keymap, problem = load_keymap(self.keymap_path)
        if keymap:
            self.set_keymap(keymap)
        if problem:
            self.notify(problem, severity="error", timeout=8)
        self.searchbox.display = False
        self.tasklist.focus()
        self.set_interval(1 / FLUSH_HZ, self.flush)
        if self.start_engine_on_mount:
            self.set_interval(1.0, self.tick)
            self.sample_usage()
            self.session.begin(terminal=not self.is_headless)  # a real terminal (not a test)
        self.show(self.scheduler.order[0])
        self.refresh_header()
        self.refresh_gauge()
        self.call_after_refresh(self.refresh_header)  # once it has a width, to fit it

    def on_resize(self) -> None:
        self.call_after_refresh(self.refresh_header)

    # ---- engine events -> widgets -----------------------------------------------

    def label(self, name: str, width: int | None = None) -> Text:
        return task_row(name, self.scheduler.tasks[name], self.clock(), self.position, width, self.past.get(name))

    def group_label(self, group) -> Text:
        return group_row(group.prefix, group.members, group.folded, self.scheduler.tasks, name=group.name)

    def on_engine_event(self, e: Event) -> None:
        """The engine's listener: output goes to its task's buffer at once (a cheap append
        of one block, however many lines); the rest waits for the next flush."""
        if isinstance(e, Output):
            # Raw lines: only the rows drawn are sanitised (in the log view).
            self.buffers[e.task].add_block(e.data)
            self.merged.add_block(e.data, self.prefix[e.task])
            return
        if isinstance(e, StateChanged):
            if e.state == RUNNING and e.previous != RUNNING:
                attempts = self.scheduler.tasks[e.task].attempts
                if attempts > 1:
                    # Earlier attempts stay above a rule ([ and ] show each one alone).
                    self.buffers[e.task].add_block(f"\x1b[2m── attempt {attempts} ──\x1b[0m".encode())
            if e.state != PENDING:
                exit_note = f" (exit {e.exit_code})" if e.exit_code is not None and e.state != RUNNING else ""
                self.merged.add_block(f"\x1b[2m── {e.state}{exit_note} ──\x1b[0m".encode(), self.prefix[e.task])
        self.pending.append(e)

    def flush(self) -> None:
        """Apply queued engine events to the widgets (20 times a second)."""
        events, self.pending[:] = list(self.pending), []
        self.ask_history()  # once the run has its folder
        changed: set[str] = set()
        for e in events:
            if isinstance(e, StateChanged):
                changed.add(e.task)
            elif isinstance(e, RunIdle):
                self.idle_code = e.exit_code
            elif isinstance(e, Notice):
                self.notify(clean_line(e.message, False), severity=e.severity, timeout=10)
        # Running rows show a growing duration: draw them again too (only visible ones cost).
        self.tasklist.relabel(changed.union(self.running_names()))
        if self.merged_shown or (self.shown is not None and self.attempt_shown is None):
            self.logview.update()
        if changed:
            self.to_first_failure(changed)
            self.refresh_header()
            self.refresh_log_title()
            self.refresh_bindings()
        if isinstance(self.screen, GraphScreen):
            self.screen.refresh_states(self.clock())  # running times grow: the critical path may change

    def running_names(self) -> list[str]:
        return [n for n, r in self.scheduler.tasks.items() if r.state == RUNNING]

    def tick(self) -> None:
        running = self.running_names()
        self.history.append(float(len(running)))
        self.spark.data = list(self.history)
        self.usage.pids = [pid for n in running if (pid := self.scheduler.tasks[n].pid)]
        self.refresh_header()
        self.refresh_gauge()

    @work(thread=True, group="usage", exit_on_error=False)
    def sample_usage(self) -> None:
        """CPU and memory of the running trees, sampled off the UI loop about once a second."""
        self.usage.run(lambda: self.is_running)

    def refresh_gauge(self) -> None:
        self.gauge.update(gauge(self.scheduler, self.usage.cpu, self.usage.rss))

    def refresh_header(self) -> None:
        self.header.update(header(self.scheduler, self.clock(), self.idle_code, self.header.size.width or None,
                                  self.time_left()))

    def refresh_log_title(self) -> None:
        if self.merged_shown:
            self.logtitle.update(merged_title(self.logview))
        elif self.shown is not None:
            self.logtitle.update(log_title(self.shown, self.scheduler.tasks[self.shown], self.attempt_shown,
                                           self.logview))

    def show(self, name: str, attempt: int | None = None) -> None:
        """Put a task's log in the pane: the live tail, or an earlier attempt from disk."""
        self.shown, self.attempt_shown = name, attempt
        self.merged_shown = False
        r = self.scheduler.tasks[name]
        view = self.logview
        if attempt is not None:
            view.show(read_tail(r.logs[attempt - 1]))
        else:
            buf = self.buffers[name]
            if not buf.total and r.logs and r.state != RUNNING:
                # Finished before this dashboard saw it (a resumed run): read it from disk.
                buf.extend(read_tail(r.logs[-1]).lines)
            view.show(buf)
        self.refresh_log_title()

    @on(TaskList.Highlighted)
    def highlighted(self, event: TaskList.Highlighted) -> None:
        if event.task is not None and (event.task != self.shown or self.merged_shown):
            self.show(event.task)
        self.refresh_bindings()  # a group row's keys act on its subflow

    @on(TaskList.Selected)
    def selected_with_enter(self) -> None:
        self.action_focus_log()

    @on(LogView.Status)
    def log_status(self) -> None:
        self.refresh_log_title()
        self.refresh_bindings()

    # ---- actions -----------------------------------------------------------------

    @property
    def selected(self) -> str | None:
        return self.tasklist.selected

    @property
    def target(self) -> str | None:
        """What r, R and a act on: the selected task, or the subflow whose row is selected."""
        return self.tasklist.selected or self.tasklist.selected_subflow

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Keys that do not apply to the selected task are shown disabled."""
        name = self.selected
        state = self.scheduler.tasks[name].state if name else None
        flow = self.tasklist.selected_subflow
        if flow is not None and action in ("retry", "abort", "restart"):
            states = {self.scheduler.tasks[n].state for n in self.scheduler.subflows[flow]}
            if action == "retry":
                return True if states & {FAILED, ABORTED} else None
            return True if action == "restart" or states & set(ACTIVE) else None
        if action == "retry":
            return True if state in (FAILED, ABORTED) else None
        if action == "abort":
            return True if state in ACTIVE else None
        if action == "abort_all":
            return True if self.scheduler.active() else None
        if action == "pager":
            return True if name and self.scheduler.tasks[name].logs else None
        if action == "next_match":
            return True if self.logview.matches else None
        if action == "copy":
            return True if self.logview.mark is not None else None
        if action == "report":
            return True if state in (FAILED, ABORTED) or (name and self.scheduler.tasks[name].logs) else None
        return True

    def run_task_action(self, action: str, name: str) -> None:
        """An action on a named task (from the command palette)."""
        self.tasklist.moved_by_operator = True
        self.tasklist.move_to(name)
        if action != "show":  # "show log of": the cursor on it is enough
            getattr(self, f"action_{action}")(name)

    def run_job_action(self, action: str) -> None:
        getattr(self, f"action_{action}")()

    def action_cursor(self, step: int) -> None:
        self.tasklist.action_move(step)

    def action_focus_log(self) -> None:
        self.logview.focus()

    def action_focus_tree(self) -> None:
        if not self.tasklist.display or not self.query_one("#left").display:
            self.action_zoom()  # Esc leaves the zoomed log
        self.tasklist.focus()

    def action_retry(self, name: str | None = None) -> None:
        name = name or self.target
        if name and self.scheduler.retry(name):
            self.flush()

    def action_abort(self, name: str | None = None) -> None:
        name = name or self.target
        if name:
            self.scheduler.abort(name)

    @work(group="actions", exit_on_error=False)
    async def action_restart(self, name: str | None = None) -> None:
        name = name or self.target
        if not name:
            return
        roots = self.scheduler.subflows.get(name, [name])  # a subflow: all of its tasks
        after = {d for n in roots for d in self.scheduler.downstream(n)} - set(roots)
        busy = [n for n in [*roots, *after] if self.scheduler.tasks[n].state in ACTIVE]
        if busy and not await self.push_screen_wait(
            Confirm(f"Restart '{name}' and {len(after)} task(s) after it? "
                    f"This aborts {', '.join(busy)}.")
        ):
            return
        await self.scheduler.restart(name)

    @work(group="actions", exit_on_error=False)
    async def action_abort_all(self) -> None:
        running = self.scheduler.active()
        if running and await self.push_screen_wait(Confirm(f"Abort all {len(running)} running task(s)?")):
            self.scheduler.abort_all()

    def action_pause(self) -> None:
        if self.scheduler.paused:
            self.scheduler.unpause()
            self.notify("launching again", timeout=2)
        else:
            self.scheduler.pause()
            self.notify("paused: running tasks go on, no new ones start", timeout=3)
        self.refresh_header()
        self.refresh_gauge()

    def action_follow(self) -> None:
        view = self.logview
        view.follow = not view.follow

    def action_search(self) -> None:
        box = self.searchbox
        box.display = True
        box.value = self.logview.search_term
        box.focus()

    @on(Input.Submitted, "#search")
    def search_submitted(self, event: Input.Submitted) -> None:
        view = self.logview
        found = view.search(event.value)
        event.input.display = False
        self.tasklist.focus()
        if event.value and not found:
            self.notify(f"not found: {event.value}", severity="warning", timeout=2)
        self.refresh_bindings()

    def on_key(self, event) -> None:
        box = self.searchbox
        if event.key == "escape" and box.has_focus:
            box.display = False
            self.tasklist.focus()
            event.stop()

    def action_next_match(self, step: int) -> None:
        self.logview.next_match(step)

    def action_help(self) -> None:
        self.push_screen(Help(help_rows(self._keymap)))

    @work(group="actions", exit_on_error=False)
    async def action_quit_app(self) -> None:
        await self.session.quit()

    def action_detach(self) -> None:
        self.session.detach()

    async def stop(self, code: int | None) -> None:
        """End the run (its trees, its checkpoint) and leave with its exit code."""
        await self.session.stop(code)
