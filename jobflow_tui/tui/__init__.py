"""The Textual dashboard; sits on the engine's run API and events."""

from __future__ import annotations

import sys

from ..engine import RUNNING, Scheduler


def run_dashboard(scheduler: Scheduler) -> int:
    """Run the dashboard, which owns `scheduler`, until the operator quits; the exit code."""
    from .app import Dashboard

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
