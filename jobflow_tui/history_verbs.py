"""Past runs from the command line: `jobflow-tui history JOB [--limit N] [--json]`,
`history --rebuild`, and which run `status` and `logs` read (`--run ID`)."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from typing import Any

from .jobfile import load_or_exit, state_dir_of


def cmd_history(args) -> int:
    from .engine import StateDir
    from .format import format_duration
    from .history import History, HistoryError

    job = load_or_exit(args.job)
    root = state_dir_of(args, job)
    history = History(root)
    if not os.path.isdir(root):
        print(f"no run of job '{job.name}' recorded in {root}")
        return 0
    try:
        if args.rebuild or not os.path.exists(history.path):
            found = history.rebuild()
            if args.rebuild:
                print(f"rebuilt {history.path} from {found} run folder(s)")
                return 0
        rows = history.runs(job.name, limit=args.limit)
    except (HistoryError, sqlite3.Error, OSError) as e:
        print(f"jobflow-tui: {e}; `jobflow-tui history {args.job} --rebuild` remakes it from the run folders",
              file=sys.stderr)
        return 1
    state = StateDir(root, job.name)
    live = _live_run(state)
    for r in rows:
        if r.state == "running" and r.run_id != live:
            r.state = "interrupted"  # its runner went away without ending it
    if args.json:
        print(json.dumps([{"run_id": r.run_id, "job": r.job, "state": r.state, "exit_code": r.exit_code,
                           "started_at": _iso(r.started_at), "ended_at": _iso(r.ended_at), "duration": r.duration,
                           "counts": r.counts, "params": r.params, "run_dir": r.run_dir} for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no run of job '{job.name}' recorded in {root}")
        return 0
    table = [("RUN", "STARTED", "STATE", "DURATION", "TASKS")]
    for r in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started_at)) if r.started_at else "-"
        counts = ", ".join(f"{n} {s}" for s, n in sorted(r.counts.items(), key=lambda x: -x[1]))
        table.append((r.run_id, started, r.state, format_duration(r.duration), counts))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("  ".join(row[i].ljust(widths[i]) for i in range(5)).rstrip())
    return 0


def _live_run(state) -> str | None:
    from .engine.checkpoint import CheckpointError, read_checkpoint

    if not state.runner_alive():
        return None
    try:
        cp = read_checkpoint(state.checkpoint_path)
    except CheckpointError:
        return None
    return cp.get("run_id") if cp else None


def _iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def checkpoint_of_run(job_dir: str, run_id: str, last: dict[str, Any] | None) -> dict[str, Any]:
    """The checkpoint of run `run_id`: the job's own if it is the last run, else the copy
    its folder keeps; exits 2 (no such run) or 1 (the run never ended: no copy)."""
    if last is not None and last.get("run_id") == run_id:
        return last
    from .engine.checkpoint import CheckpointError, read_checkpoint
    from .engine.statedir import RUN_ID

    run_dir = os.path.join(job_dir, "runs", run_id)
    if not RUN_ID.match(run_id) or not os.path.isdir(run_dir):
        print(f"jobflow-tui: no run {run_id!r} in {os.path.join(job_dir, 'runs')}", file=sys.stderr)
        sys.exit(2)
    try:
        data = read_checkpoint(os.path.join(run_dir, "checkpoint.json"))
    except CheckpointError as e:
        print(f"jobflow-tui: {e}", file=sys.stderr)
        sys.exit(1)
    if data is None:
        print(f"jobflow-tui: run {run_id} did not end normally, so its folder has no final checkpoint; its trail "
              f"is {os.path.join(run_dir, 'events.jsonl')}", file=sys.stderr)
        sys.exit(1)
    return data
