"""Run a scheduler to its end: the dashboard on a terminal, plain lines otherwise. Shared
by the command line and flows built in code."""

from __future__ import annotations

import asyncio
import sys

from .engine import RunError, Scheduler


def launch(scheduler: Scheduler, headless: bool | None = None) -> int:
    """Run `scheduler` in the dashboard on a terminal, else headless; the exit code.

    `headless=None` decides by the terminal: stdout and stdin must both be TTYs.
    """
    if headless is None:
        headless = not (sys.stdout.isatty() and sys.stdin.isatty())
    if not headless:
        from .tui import run_dashboard

        return run_dashboard(scheduler)
    from .headless import run_headless

    try:
        return asyncio.run(run_headless(scheduler))
    except RunError as e:
        print(f"jobflow-tui: {e}", file=sys.stderr)
        return 2
