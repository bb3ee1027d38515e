"""Run a job without a screen: `TASK | line` output, one line per state change, a summary.

For cron and CI. Output is sanitised like the dashboard's; colour only on a terminal
without NO_COLOR.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .control.detached import tell, wait_for_exit
from .control.place import PlaceError
from .control.server import ControlServer
from .engine import (
    ABORTED,
    BLOCKED,
    FAILED,
    PENDING,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    Event,
    Notice,
    Output,
    RunError,
    Scheduler,
    StateChanged,
)
from .format import SUMMARY_ORDER, format_duration, format_exit
from .sanitize import clean_block, clean_line

if TYPE_CHECKING:
    from .engine.run import Run

STATE_SGR = {
    PENDING: "2", RUNNING: "36", SUCCEEDED: "32", FAILED: "31;1",
    ABORTED: "35", RETRYING: "33", BLOCKED: "2;31",
}
FLUSH_DELAY = 0.02  # seconds: how long a printed line may wait in the buffer
BULK = 64 * 1024  # bytes of output written past the text layer
EXIT_ON_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set (any value)."""
    return "NO_COLOR" not in os.environ and stream.isatty()


class Reporter:
    """A listener of a run that prints its events as plain lines."""

    def __init__(self, run: Run, out: TextIO = sys.stdout, colour: bool | None = None) -> None:
        self.run = run
        self.out = out
        self.colour = use_colour(out) if colour is None else colour
        self._flush_pending = False
        run.subscribe(self)

    def paint(self, text: str, state: str) -> str:
        return f"\x1b[{STATE_SGR[state]}m{text}\x1b[0m" if self.colour else text

    def __call__(self, event: Event) -> None:
        try:
            self._print(event)
        except OSError:
            self._out_gone()

    def _out_gone(self) -> None:
        # The terminal or pipe went away (SIGHUP, a closed reader): the run goes on and
        # every byte is still in the log files.
        self.out = open(os.devnull, "w")  # noqa: SIM115

    def _print(self, event: Event) -> None:
        if isinstance(event, Output):
            # Exactly `TASK | line` (no padding), so scripts can split on the first " | ".
            # One join and one write per chunk of lines: per-line work costs more than the lines.
            prefix = (clean_line(event.task, False) + " | ").encode()
            data = b"".join((prefix, clean_block(event.data, self.colour).replace(b"\n", b"\n" + prefix), b"\n"))
            buffer = getattr(self.out, "buffer", None)
            if buffer is not None and len(data) > BULK:
                # Big blocks skip the text layer (no decode and encode of a megabyte);
                # what it holds goes first, to keep the order.
                self.out.flush()
                buffer.write(data)
            else:
                self.out.write(data.decode())
            self._flush_soon()
        elif isinstance(event, StateChanged):
            self.out.write(self.describe(event) + "\n")
            self._flush_soon()
        elif isinstance(event, Notice):
            try:
                print(f"jobflow-tui: {clean_line(event.message, False)}", file=sys.stderr, flush=True)
            except OSError:
                pass

    def _flush_soon(self) -> None:
        # A flush per state change is a write per change; a job of many short tasks makes
        # thousands. Within FLUSH_DELAY is as live as a person or a CI log can tell.
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.out.flush()
            return
        self._flush_pending = True
        loop.call_later(FLUSH_DELAY, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        try:
            self.out.flush()
        except OSError:
            self._out_gone()

    def describe(self, e: StateChanged) -> str:
        name = clean_line(e.task, False)
        parts = []
        if e.state in (RUNNING, FAILED, RETRYING, SUCCEEDED) and e.attempt:
            parts.append(f"attempt {e.attempt}/{e.max_attempts}")
        if e.state in (FAILED, ABORTED, SUCCEEDED, RETRYING) and e.started_at and e.finished_at:
            parts.append(format_duration(e.finished_at - e.started_at))
        if e.reason:
            parts.append(clean_line(e.reason, False))
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"{name} -> {self.paint(e.state, e.state)}{detail}"

    def summary(self, elapsed: float) -> str:
        run = self.run
        rows = [("TASK", "STATE", "ATTEMPTS", "DURATION", "EXIT")]
        for name in run.order:
            t = run.tasks[name]
            if not t.selected and t.state == PENDING:
                continue
            rows.append((
                clean_line(name, False), t.state, f"{t.attempt}/{t.max_attempts}" if t.attempts else "0",
                format_duration(t.duration) if t.started_at else "-", format_exit(t.exit_code),
            ))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = []
        for i, row in enumerate(rows):
            cells = [row[j].ljust(widths[j]) for j in range(5)]
            if i:
                cells[1] = self.paint(cells[1], row[1])
            lines.append("  ".join(cells).rstrip())
        counts: dict[str, int] = {}
        for t in run.tasks.values():
            if t.selected:
                counts[t.state] = counts.get(t.state, 0) + 1
        tally = ", ".join(f"{counts[k]} {k}" for k in SUMMARY_ORDER if counts.get(k))
        lines.append(f"job {run.job_name}: {tally} in {format_duration(elapsed)} (run {run.run_id})")
        return "\n".join(lines)


async def run_headless(scheduler: Scheduler, out: TextIO = sys.stdout, *, serve: str | None = "headless",
                       ready: Callable[[dict], None] | None = None, restart: Sequence[str] = ()) -> int:
    """Run to the end, printing as it goes; SIGINT/SIGTERM/SIGHUP stop it cleanly.

    `serve`: the kind of owner this is, named on the control socket it serves (None: no
    socket). `ready`: told once the run started (its id and this pid). `restart`: tasks
    put back to run again (with what depends on them) as the run starts.
    """
    reporter = Reporter(scheduler, out)
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    stop: dict[str, int | None] = {}
    stopping: list[asyncio.Task] = []

    def stop_run(code: int | None, reason: str) -> None:
        if stop:
            scheduler.kill_now()  # asked again: no more grace
            return
        stop["code"] = code
        stopping.append(asyncio.ensure_future(scheduler.shutdown(reason)))

    def on_signal(sig: signal.Signals) -> None:
        if not stop:
            try:
                print(f"jobflow-tui: {sig.name}: stopping running tasks (again to kill at once)", file=sys.stderr)
            except OSError:
                pass
        stop_run(EXIT_ON_SIGNAL[sig], f"interrupted by {sig.name}")

    for sig in EXIT_ON_SIGNAL:
        loop.add_signal_handler(sig, on_signal, sig)
    server = None
    try:
        await scheduler.start()
        for name in restart:
            await scheduler.restart(name)
        if serve:
            server = await serve_run(scheduler, serve, lambda: stop_run(None, "stopped from the command line"))
        if ready is not None:
            ready({"run_id": scheduler.run_id, "pid": os.getpid()})
        for note in scheduler.notes:
            print(f"jobflow-tui: {note}", file=sys.stderr)
        idle = asyncio.ensure_future(scheduler.wait_idle())
        while not idle.done() and not stopping:
            await asyncio.wait([idle], timeout=0.2)
        if stopping:
            idle.cancel()
            await stopping[0]
        else:
            await scheduler.close()
    finally:
        for sig in EXIT_ON_SIGNAL:
            loop.remove_signal_handler(sig)
        if server is not None:
            await server.close(scheduler.exit_code())
    try:
        reporter.out.write(reporter.summary(time.monotonic() - t0) + "\n")
        reporter.out.flush()
    except OSError:
        pass
    code = stop.get("code")
    return scheduler.exit_code() if code is None else code


async def serve_run(scheduler: Scheduler, kind: str, stop: Callable[[], Any]) -> ControlServer | None:
    """Serve the run on its control socket; None (and a warning) if that cannot be."""
    server = ControlServer(scheduler, scheduler.job_dir, kind, stop)
    try:
        await server.start()
    except (PlaceError, OSError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        print(f"jobflow-tui: the run cannot be reached from other processes: {reason}", file=sys.stderr)
        return None
    return server


def run_detached(scheduler: Scheduler, tell_fd: int, after: int | None, restart: Sequence[str] = ()) -> int:
    """The life of a detached runner: no screen, no output (its diagnostics go to
    `runner.log` in the job's state folder), the run served on its socket."""
    if after is not None:
        wait_for_exit(after)  # the process handing its run over has let go of it
    try:
        os.makedirs(scheduler.job_dir, exist_ok=True)
        log = os.open(os.path.join(scheduler.job_dir, "runner.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 2)
        os.close(log)
    except OSError:
        pass
    print(f"jobflow-tui: detached runner {os.getpid()} for {scheduler.job_path} at {time.ctime()}", file=sys.stderr)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to lose
    try:
        with open(os.devnull, "w") as out:
            return asyncio.run(run_headless(scheduler, out, serve="detached", ready=lambda m: tell(tell_fd, m),
                                            restart=restart))
    except RunError as e:
        tell(tell_fd, {"error": str(e)})
        print(f"jobflow-tui: {e}", file=sys.stderr)
        return 2
