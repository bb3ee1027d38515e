"""The dashboard: the scheduler runs in the app's event loop; the operator drives it.

Engine events arrive through one subscriber that only queues them; a 20 Hz timer applies
them to the widgets in one batch, so a task printing 100,000 lines a second costs one
refresh per frame, not one widget write per line. Actions call the engine's public API.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Sparkline, Static

from ..engine import (
    ABORTED,
    ACTIVE,
    BLOCKED,
    FAILED,
    PENDING,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    Event,
    Notice,
    Output,
    RunIdle,
    Scheduler,
    StateChanged,
)
from ..engine.run import Owner, Run
from ..format import format_duration, format_exit
from ..sanitize import clean_line
from .buffer import TailBuffer, read_tail
from .commands import TaskCommands
from .keys import load_keymap
from .logview import LogView
from .screens import Confirm, Help
from .tasklist import TaskList
from .usage import UsageSampler

GLYPH = {PENDING: "·", RUNNING: "▶", SUCCEEDED: "✓", FAILED: "✗", ABORTED: "■", RETRYING: "↻", BLOCKED: "⊘"}
STYLE = {PENDING: "dim", RUNNING: "bold cyan", SUCCEEDED: "green", FAILED: "bold red",
         ABORTED: "magenta", RETRYING: "yellow", BLOCKED: "dim red"}
FLUSH_HZ = 20


class Dashboard(App[int]):
    """The jobflow-tui dashboard for one run."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "jobflow-tui"
    COMMANDS = App.COMMANDS | {TaskCommands}
    BINDINGS = [
        Binding("j", "cursor(1)", "down", show=False, id="down"),
        Binding("k", "cursor(-1)", "up", show=False, id="up"),
        Binding("enter", "focus_log", "log", id="log"),
        Binding("r", "retry", "retry", id="retry"),
        Binding("R", "restart", "restart", id="restart"),
        Binding("a,x", "abort", "abort", id="abort"),
        Binding("A", "abort_all", "abort all", id="abort_all"),
        Binding("p", "pause", "pause", id="pause"),
        Binding("f", "follow", "follow", id="follow"),
        Binding("slash", "search", "search", id="search"),
        Binding("n", "next_match(1)", "next", show=False, id="next_match"),
        Binding("N", "next_match(-1)", "previous", show=False, id="previous_match"),
        Binding("left_square_bracket", "attempt(-1)", "earlier attempt", show=False, id="earlier_attempt"),
        Binding("right_square_bracket", "attempt(1)", "later attempt", show=False, id="later_attempt"),
        Binding("o", "pager", "pager", id="pager"),
        Binding("question_mark", "help", "help", id="help"),
        Binding("q", "quit_app", "quit", id="quit"),
        Binding("escape", "focus_tree", "tasks", show=False, id="tasks"),
    ]

    def __init__(
        self,
        scheduler: Run,
        *,
        start_engine: bool = True,
        clock: Callable[[], float] = time.time,
        keymap_path: str | None = None,
    ) -> None:
        """`scheduler`: the run shown and driven, through its run API. With `start_engine`,
        this dashboard also owns it: starts it, and stops it on quit or hang-up."""
        super().__init__()
        self.scheduler = scheduler
        self.owner: Owner | None = scheduler if start_engine else None  # type: ignore[assignment]
        self.start_engine_on_mount = start_engine
        self.clock = clock
        self.keymap_path = keymap_path
        self.buffers: dict[str, TailBuffer] = {n: TailBuffer() for n in scheduler.order}
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
                yield TaskList(self.scheduler.order, self.label, self.group_label, id="dag")
                yield Static(id="gauge")
                yield Sparkline(list(self.history), id="spark")
            with Vertical(id="right"):
                yield Static(id="logtitle")
                yield LogView(id="log")
                yield Input(placeholder="search the log (Enter: find, Escape: cancel)", id="search")
        yield Footer(compact=True)

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
            self.run_worker(self.start_engine(), group="engine", exit_on_error=False)
            self.sample_usage()
            if not self.is_headless:  # a real terminal (tests drive the app in-process)
                self.install_signal_handlers()
        self.show(self.scheduler.order[0])
        self.refresh_header()
        self.refresh_gauge()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGHUP end the running trees and save the checkpoint, whatever the UI does.

        These are plain handlers, not event-loop ones: when the terminal vanishes, the UI can
        block inside its output thread and the loop never runs again, so the stop must not
        depend on it. SIGTERM first tries the orderly way (terminal restored), with a
        deadline; SIGHUP (no terminal left to restore) stops at once.
        """
        import threading

        loop = asyncio.get_running_loop()
        owner = self.owner
        assert owner is not None

        def emergency(code: int, reason: str) -> None:
            owner.emergency_stop(reason)
            os._exit(code)

        def on_signal(signum: int, _frame) -> None:
            code = 128 + signum
            reason = f"interrupted by {signal.Signals(signum).name}"
            if signum == signal.SIGHUP:
                threading.Thread(target=emergency, args=(code, reason), daemon=True).start()
                return
            loop.call_soon_threadsafe(lambda: self.run_worker(self.stop(code), group="stop"))

            def deadline() -> None:
                time.sleep(owner.kill_grace + 5)
                emergency(code, reason)

            threading.Thread(target=deadline, daemon=True).start()

        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, on_signal)

        # A terminal can also vanish with no SIGHUP sent to us (it was not our controlling
        # terminal, say): then Textual's input thread spins on the dead tty at full CPU. A hung
        # up tty fails isatty(), so look once a second and stop as for SIGHUP.
        terminals = [fd for fd in (0, 1, 2) if os.isatty(fd)]

        def watch_terminal() -> None:
            while all(os.isatty(fd) for fd in terminals):
                time.sleep(1.0)
            emergency(128 + signal.SIGHUP, "the terminal went away")

        if terminals:
            threading.Thread(target=watch_terminal, daemon=True, name="jobflow-terminal").start()

    async def start_engine(self) -> None:
        assert self.owner is not None
        try:
            await self.owner.start()
        except Exception as e:  # RunError and the like: say it and leave, nothing ran
            self.exit(2, message=f"jobflow-tui: {e}")
            return
        for note in self.scheduler.notes:
            self.notify(note, timeout=8)

    # ---- engine events -> widgets -----------------------------------------------

    def label(self, name: str) -> Text:
        r = self.scheduler.tasks[name]
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"{GLYPH[r.state]} ", style=STYLE[r.state])
        t.append(clean_line(name, False))
        t.append(" ")
        t.append(r.state, style=STYLE[r.state])
        if r.max_attempts > 1 or r.attempts > 1:
            t.append(f" {r.attempt}/{r.max_attempts}", style="dim")
        if r.started_at:
            t.append(f" {format_duration((r.finished_at or self.clock()) - r.started_at)}", style="dim")
        if r.state in (FAILED, RETRYING) and r.exit_code is not None:
            t.append(f" exit {format_exit(r.exit_code)}", style="red")
        deps = r.dependencies
        # Only what the row order does not already tell: several parents, or a distant one.
        if len(deps) > 1 or (deps and self.position[deps[0]] != self.position[name] - 1):
            t.append(f"  ← {', '.join(clean_line(d, False) for d in deps)}", style="dim")
        return t

    def group_label(self, group) -> Text:
        """A group's row: its prefix, size, and how many members are in each state."""
        counts = collections.Counter(self.scheduler.tasks[n].state for n in group.members)
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("▸ " if group.folded else "▾ ", style="bold")
        t.append(f"{clean_line(group.prefix, False)}… ({len(group.members)})", style="bold")
        for state in (RUNNING, FAILED, RETRYING, ABORTED, BLOCKED, SUCCEEDED, PENDING):
            if counts.get(state):
                t.append(f"  {GLYPH[state]}{counts[state]}", style=STYLE[state])
        return t

    def on_engine_event(self, e: Event) -> None:
        """The engine's listener: output goes to its task's buffer at once (a cheap append
        of one block, however many lines); the rest waits for the next flush."""
        if isinstance(e, Output):
            # Raw lines: only the rows drawn are sanitised (in the log view).
            self.buffers[e.task].add_block(e.data)
            return
        if isinstance(e, StateChanged) and e.state == RUNNING and e.previous != RUNNING:
            attempts = self.scheduler.tasks[e.task].attempts
            if attempts > 1:
                # Earlier attempts stay above a rule ([ and ] show each one alone).
                self.buffers[e.task].add_block(f"\x1b[2m── attempt {attempts} ──\x1b[0m".encode())
        self.pending.append(e)

    def flush(self) -> None:
        """Apply queued engine events to the widgets (20 times a second)."""
        events, self.pending[:] = list(self.pending), []
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
        if self.shown is not None and self.attempt_shown is None:
            self.logview.update()
        if changed:
            self.refresh_header()
            self.refresh_log_title()
            self.refresh_bindings()

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
        s = self.scheduler
        limit = s.limit or "∞"
        t = Text(no_wrap=True)
        t.append(f"running {s.running()}/{limit}", style="bold")
        cpu, mem = self.usage.cpu, self.usage.rss
        t.append(f"  cpu {cpu:.0f}%  mem {mem / 1e6:.0f} MB", style="dim")
        if s.paused:
            t.append("  PAUSED", style="bold yellow")
        self.gauge.update(t)

    def refresh_header(self) -> None:
        s = self.scheduler
        counts = collections.Counter(r.state for r in s.tasks.values())
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" {clean_line(s.job_name, False)} ", style="bold reverse")
        t.append(f" {format_duration(self.clock() - s.started_at)} ")
        for state in (RUNNING, SUCCEEDED, FAILED, RETRYING, ABORTED, BLOCKED, PENDING):
            if counts.get(state):
                t.append(f" {GLYPH[state]}{counts[state]} {state}", style=STYLE[state])
        if s.paused:
            t.append("  PAUSED", style="bold yellow")
        elif self.idle_code is not None and not s.running():
            t.append("  done" if self.idle_code == 0 else "  stopped", style="bold")
        t.append(f"  run {s.run_id}", style="dim")
        self.header.update(t)

    def refresh_log_title(self) -> None:
        if self.shown is None:
            return
        r = self.scheduler.tasks[self.shown]
        view = self.logview
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f" {clean_line(self.shown, False)} ", style="bold")
        if r.attempts:
            n = self.attempt_shown or r.attempts
            t.append(f"attempt {n}/{r.attempts}{'' if self.attempt_shown is None else ' (earlier)'}  ")
        if view.search_term:
            pos = f"{view.match_index + 1}/{len(view.matches)}" if view.matches else "no match"
            t.append(f"/{view.search_term} {pos}  ", style="yellow")
        if view.follow:
            t.append("following", style="dim")
        else:
            t.append(f"paused: {view.unseen} new lines (f or End to follow)", style="bold yellow")
        self.logtitle.update(t)

    def show(self, name: str, attempt: int | None = None) -> None:
        """Put a task's log in the pane: the live tail, or an earlier attempt from disk."""
        self.shown, self.attempt_shown = name, attempt
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
        if event.task is not None and event.task != self.shown:
            self.show(event.task)
            self.refresh_bindings()

    @on(TaskList.Selected)
    def selected_with_enter(self) -> None:
        self.action_focus_log()

    @on(LogView.Status)
    def log_status(self) -> None:
        self.refresh_log_title()

    # ---- actions -----------------------------------------------------------------

    @property
    def selected(self) -> str | None:
        return self.tasklist.selected

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Keys that do not apply to the selected task are shown disabled."""
        name = self.selected
        state = self.scheduler.tasks[name].state if name else None
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
        return True

    def run_task_action(self, action: str, name: str) -> None:
        """An action on a named task (from the command palette)."""
        self.tasklist.move_to(name)
        if action != "show":
            getattr(self, f"action_{action}")(name)

    def run_job_action(self, action: str) -> None:
        getattr(self, f"action_{action}")()

    def action_cursor(self, step: int) -> None:
        self.tasklist.action_move(step)

    def action_focus_log(self) -> None:
        self.logview.focus()

    def action_focus_tree(self) -> None:
        self.tasklist.focus()

    def action_retry(self, name: str | None = None) -> None:
        name = name or self.selected
        if name and self.scheduler.retry(name):
            self.flush()

    def action_abort(self, name: str | None = None) -> None:
        name = name or self.selected
        if name:
            self.scheduler.abort(name)

    @work(group="actions", exit_on_error=False)
    async def action_restart(self, name: str | None = None) -> None:
        name = name or self.selected
        if not name:
            return
        affected = [name, *self.scheduler.downstream(name)]
        busy = [n for n in affected if self.scheduler.tasks[n].state in ACTIVE]
        if busy and not await self.push_screen_wait(
            Confirm(f"Restart '{name}' and {len(affected) - 1} task(s) after it? "
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

    def action_help(self) -> None:
        self.push_screen(Help(self.BINDINGS, self._keymap))

    @work(group="actions", exit_on_error=False)
    async def action_quit_app(self) -> None:
        running = self.scheduler.active()
        if running and not await self.push_screen_wait(
            Confirm(f"{len(running)} task(s) running: abort them and quit?")
        ):
            return
        await self.stop(None)

    async def stop(self, code: int | None) -> None:
        """End every running tree, write the checkpoint, leave with the run's exit code."""
        if self.owner is not None:
            await self.owner.shutdown("aborted: dashboard quit" if code is None else "interrupted")
        if not self.is_headless:
            _exit_if_stuck(code if code is not None else self.scheduler.exit_code())
        self.exit(code if code is not None else self.scheduler.exit_code())


def _exit_if_stuck(code: int, grace: float = 5.0) -> None:
    """Leave anyway if the terminal cannot be restored within `grace` seconds."""
    import threading

    def watchdog() -> None:
        time.sleep(grace)
        os._exit(code)

    threading.Thread(target=watchdog, daemon=True, name="jobflow-exit-watchdog").start()


def run_dashboard(scheduler: Scheduler) -> int:
    """Run the dashboard until the operator quits; the exit code of the run."""
    import sys

    app = Dashboard(scheduler)
    code = app.run()
    running = [r for r in scheduler.tasks.values() if r.state == RUNNING]
    if running:
        # The dashboard stopped on an error. Tasks never depend on it: they keep running,
        # recorded in the checkpoint, and a resumed run adopts them instead of starting them again.
        scheduler.save_now()
        pids = ", ".join(f"{r.name} (pid {r.pid})" for r in running)
        print(f"jobflow-tui: the dashboard stopped; still running: {pids}.\n"
              f"jobflow-tui: `jobflow-tui {scheduler.job_path} --resume` adopts them.", file=sys.stderr)
        return 1
    if code is None:
        return app.return_code or 1
    return code
