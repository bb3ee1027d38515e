"""The Textual dashboard; sits on the engine's run API and events."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ..engine import RUNNING, Scheduler

if TYPE_CHECKING:
    from ..control.client import RemoteRun


def run_dashboard(scheduler: Scheduler) -> int:
    """Run the dashboard, which owns `scheduler`, until the operator quits; the exit code."""
    from .app import Dashboard

    app = Dashboard(scheduler, on_hangup=scheduler.job.on_hangup)
    code = app.run()
    if app.session.handed_to is not None:
        print(f"jobflow-tui: detached: run {scheduler.run_id} goes on in the background "
              f"(pid {app.session.handed_to}).\njobflow-tui: attach: jobflow-tui attach {scheduler.job_path}")
        return 0
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


def run_attached(remote: RemoteRun) -> int:
    """The dashboard on a run another process owns, until the operator leaves; 0, or the
    run's exit code when the operator stopped it."""
    from .app import Dashboard

    app = Dashboard(remote, start_engine=False, attached=True)
    code = app.run()
    return code or 0
