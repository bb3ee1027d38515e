"""The dashboard: the scheduler runs in the app's event loop; the operator drives it.

Engine events arrive through one subscriber that only queues them; a 20 Hz timer applies
them to the widgets in batches, so a task printing 100,000 lines a second costs one log
write per frame, not one per line.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shlex
import signal
import subprocess
import time

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Log, Static, Tree

from ..engine import (
    ABORTED,
    BLOCKED,
    FAILED,
    PENDING,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    Event,
    Output,
    RunIdle,
    Scheduler,
    StateChanged,
)
from ..headless import format_duration, format_exit
from ..sanitize import clean_line

GLYPH = {PENDING: "·", RUNNING: "▶", SUCCEEDED: "✓", FAILED: "✗", ABORTED: "■", RETRYING: "↻", BLOCKED: "⊘"}
STYLE = {PENDING: "dim", RUNNING: "bold cyan", SUCCEEDED: "green", FAILED: "bold red",
         ABORTED: "magenta", RETRYING: "yellow", BLOCKED: "dim red"}
TAIL_LINES = 5000  # lines per task kept in memory; the full log is on disk
FLUSH_HZ = 20


class Confirm(ModalScreen[bool]):
    """A yes/no question: y or Enter says yes, n or Escape says no."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self.question), id="question")
            yield Label("[y] yes    [n] no", id="choices")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class Help(ModalScreen[None]):
    """Every key of the dashboard, generated from its bindings."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self.keys = bindings

    def compose(self) -> ComposeResult:
        rows = Text()
        rows.append("Keys\n\n", style="bold")
        for b in self.keys:
            keys = ", ".join(k.strip() for k in b.key.split(","))
            rows.append(f"  {keys:<16}", style="bold")
            rows.append(f"{b.description}\n")
        rows.append("\nEscape or ? closes this screen.", style="dim")
        with Vertical(id="dialog"):
            yield Static(rows)


class Dashboard(App[int]):
    """The jobflow-tui dashboard for one Scheduler."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "jobflow-tui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("j", "cursor(1)", "down", show=False),
        Binding("k", "cursor(-1)", "up", show=False),
        Binding("enter", "focus_log", "log"),
        Binding("r", "retry", "retry"),
        Binding("R", "restart", "restart"),
        Binding("a,x", "abort", "abort"),
        Binding("A", "abort_all", "abort all"),
        Binding("p", "pause", "pause"),
        Binding("f", "follow", "follow"),
        Binding("o", "pager", "pager"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit_app", "quit"),
    ]

    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__()
        self.scheduler = scheduler
        self.tails: dict[str, collections.deque[str]] = {
            n: collections.deque(maxlen=TAIL_LINES) for n in scheduler.order
        }
        self.pending: list[Event] = []
        self.nodes = {}
        self.shown: str | None = None
        self.shown_count = 0  # lines of self.shown already in the Log widget
        self.follow = True
        self.exit_code = 0
        self.t0 = time.monotonic()
        self.idle_code: int | None = None
        self.colour = "NO_COLOR" not in os.environ
        scheduler.subscribe(self.pending.append)

    # ---- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with Horizontal(id="main"):
            tree: Tree[str] = Tree("tasks", id="dag")
            tree.show_root = False
            tree.guide_depth = 2
            yield tree
            with Vertical(id="right"):
                yield Static(id="logtitle")
                yield Log(max_lines=TAIL_LINES, id="log")
        yield Footer()

    def on_mount(self) -> None:
        tree = self.query_one("#dag", Tree)
        for name in self.scheduler.order:
            self.nodes[name] = tree.root.add_leaf(self.label(name), data=name)
        tree.root.expand()
        tree.focus()
        tree.move_cursor(self.nodes[self.scheduler.order[0]])
        self.set_interval(1 / FLUSH_HZ, self.flush)
        self.set_interval(1.0, self.refresh_header)
        self.run_worker(self.start_engine(), group="engine", exit_on_error=False)
        loop = asyncio.get_running_loop()
        for sig, code in ((signal.SIGTERM, 143), (signal.SIGHUP, 129)):
            loop.add_signal_handler(sig, lambda code=code: self.run_worker(self.stop(code), group="stop"))
        self.refresh_header()
        self.show(self.scheduler.order[0])

    async def start_engine(self) -> None:
        try:
            await self.scheduler.start()
        except Exception as e:  # RunError and the like: show it and leave
            self.exit(2, message=f"jobflow-tui: {e}")

    # ---- engine events -> widgets -----------------------------------------------

    def label(self, name: str) -> Text:
        r = self.scheduler.tasks[name]
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"{GLYPH[r.state]} ", style=STYLE[r.state])
        t.append(clean_line(name, False))
        t.append(f"  {r.state}", style=STYLE[r.state])
        if r.attempts:
            t.append(f" {r.attempt}/{r.spec.max_attempts}", style="dim")
        if r.started_at:
            t.append(f" {format_duration(r.duration)}", style="dim")
        if r.state == FAILED and r.exit_code is not None:
            t.append(f" exit {format_exit(r.exit_code)}", style="red")
        deps = r.spec.dependencies
        if len(deps) > 1 or (deps and self.scheduler.order.index(deps[0]) != self.scheduler.order.index(name) - 1):
            t.append(f"  ← {', '.join(clean_line(d, False) for d in deps)}", style="dim")
        return t

    def flush(self) -> None:
        events, self.pending[:] = list(self.pending), []
        changed: set[str] = set()
        for e in events:
            if isinstance(e, Output):
                self.tails[e.task].extend(clean_line(line, False) for line in e.lines)
            elif isinstance(e, StateChanged):
                changed.add(e.task)
                if e.state == RUNNING and e.previous != RUNNING and self.scheduler.tasks[e.task].attempts > 1:
                    # Earlier attempts stay above, under a rule: their logs are on disk too.
                    self.tails[e.task].append(f"── attempt {self.scheduler.tasks[e.task].attempts} ──")
            elif isinstance(e, RunIdle):
                self.idle_code = e.exit_code
        running = {n for n, r in self.scheduler.tasks.items() if r.state == RUNNING}
        for name in changed | running:
            self.nodes[name].set_label(self.label(name))
        if self.shown is not None:
            tail = self.tails[self.shown]
            log = self.query_one("#log", Log)
            new = len(tail) - self.shown_count if self.shown_count <= len(tail) else 0
            if self.shown_count > len(tail) or len(tail) == TAIL_LINES and events:
                self.show(self.shown, force=True)
            elif new > 0:
                log.write_lines(list(tail)[-new:], scroll_end=self.follow)
                self.shown_count = len(tail)
        if changed:
            self.refresh_header()
            self.refresh_bindings()

    def show(self, name: str, force: bool = False) -> None:
        if name == self.shown and not force:
            return
        self.shown = name
        log = self.query_one("#log", Log)
        log.clear()
        tail = self.tails[name]
        log.write_lines(list(tail), scroll_end=True)
        self.shown_count = len(tail)
        r = self.scheduler.tasks[name]
        title = Text(f"log: {clean_line(name, False)}", style="bold")
        if r.logs:
            title.append(f"  attempt {r.attempts}  {r.logs[-1]}", style="dim")
        self.query_one("#logtitle", Static).update(title)
        if not tail and r.logs:
            self.load_from_disk(name)

    def load_from_disk(self, name: str) -> None:
        """A task finished before the dashboard saw its output (e.g. resumed): read its log's tail."""
        path = self.scheduler.tasks[name].logs[-1]
        try:
            with open(path, "rb") as f:
                f.seek(max(0, os.path.getsize(path) - 512 * 1024))
                data = f.read()
        except OSError:
            return
        lines = data.decode("utf-8", "replace").splitlines()[-TAIL_LINES:]
        self.tails[name].extend(clean_line(line, False) for line in lines)

    def refresh_header(self) -> None:
        s = self.scheduler
        counts = collections.Counter(r.state for r in s.tasks.values())
        t = Text()
        t.append(f" {clean_line(s.job.name, False)} ", style="bold reverse")
        t.append(f"  run {s.run_id or '…'}  {format_duration(time.monotonic() - self.t0)}  ")
        for state in (RUNNING, SUCCEEDED, FAILED, RETRYING, ABORTED, BLOCKED, PENDING):
            if counts.get(state):
                t.append(f"{GLYPH[state]} {counts[state]} {state}  ", style=STYLE[state])
        limit = s.limit or "∞"
        t.append(f"slots {s._running}/{limit}", style="bold")
        if s.paused:
            t.append("  PAUSED", style="bold yellow")
        if self.idle_code is not None and not s._running:
            t.append("  finished" if self.idle_code == 0 else "  stopped: press r on a failed task", style="bold")
        self.query_one("#header", Static).update(t)

    @on(Tree.NodeHighlighted)
    def highlighted(self, event: Tree.NodeHighlighted) -> None:
        if event.node.data:
            self.show(event.node.data)
            self.refresh_bindings()

    # ---- actions -----------------------------------------------------------------

    @property
    def selected(self) -> str | None:
        node = self.query_one("#dag", Tree).cursor_node
        return node.data if node is not None else None

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        name = self.selected
        state = self.scheduler.tasks[name].state if name else None
        if action == "retry":
            return True if state in (FAILED, ABORTED) else None
        if action == "abort":
            return True if state in (RUNNING, RETRYING) else None
        if action == "abort_all":
            return True if any(r.state in (RUNNING, RETRYING) for r in self.scheduler.tasks.values()) else None
        if action == "pager":
            return True if name and self.scheduler.tasks[name].logs else None
        return True

    def action_cursor(self, step: int) -> None:
        tree = self.query_one("#dag", Tree)
        if step > 0:
            tree.action_cursor_down()
        else:
            tree.action_cursor_up()

    def action_focus_log(self) -> None:
        self.query_one("#log", Log).focus()

    def action_retry(self) -> None:
        if self.selected:
            self.scheduler.retry(self.selected)
            self.flush()

    def action_abort(self) -> None:
        if self.selected:
            self.scheduler.abort(self.selected)

    async def action_restart(self) -> None:
        name = self.selected
        if not name:
            return
        affected = [name, *self.scheduler.job.downstream(name)]
        busy = [n for n in affected if self.scheduler.tasks[n].state in (RUNNING, RETRYING)]
        if busy and not await self.push_screen_wait(
            Confirm(f"Restart '{name}' and {len(affected) - 1} downstream? This aborts {', '.join(busy)}.")
        ):
            return
        self.run_worker(self.scheduler.restart(name), group="actions")

    def action_abort_all(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.scheduler.abort_all()

        self.push_screen(Confirm("Abort every running task?"), answered)

    def action_pause(self) -> None:
        if self.scheduler.paused:
            self.scheduler.resume()
        else:
            self.scheduler.pause()
        self.refresh_header()

    def action_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one("#log", Log)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self.notify("following the log" if self.follow else "not following the log", timeout=1.5)

    def action_pager(self) -> None:
        name = self.selected
        if not name or not self.scheduler.tasks[name].logs:
            return
        pager = shlex.split(os.environ.get("PAGER") or "less -R")
        with self.suspend():
            subprocess.run([*pager, self.scheduler.tasks[name].logs[-1]], check=False)

    def action_help(self) -> None:
        self.push_screen(Help(self.BINDINGS))

    def action_quit_app(self) -> None:
        running = [n for n, r in self.scheduler.tasks.items() if r.state in (RUNNING, RETRYING)]
        if not running:
            self.run_worker(self.stop(None), group="stop")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.stop(None), group="stop")

        self.push_screen(Confirm(f"{len(running)} task(s) running: abort them and quit?"), answered)

    async def stop(self, code: int | None) -> None:
        """End every running tree, write the checkpoint, leave with the run's exit code."""
        await self.scheduler.shutdown("aborted: dashboard quit" if code is None else "interrupted")
        self.exit(code if code is not None else self.scheduler.exit_code())


def run_dashboard(scheduler: Scheduler) -> int:
    """Run the dashboard until the operator quits; the exit code of the run."""
    app = Dashboard(scheduler)
    code = app.run()
    return 2 if code is None and app.return_code == 2 else (code if code is not None else 1)
