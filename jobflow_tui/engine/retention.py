"""`config.retention`: older run folders of a job go when a new run starts."""

from __future__ import annotations

import os
import shutil
import time

from ..jobdef.runend import Retention


def prune(state_dir: str, job_dir: str, keep_run: str, retention: Retention) -> list[str]:
    """Remove the run folders beyond `retention` (never `keep_run`, the one starting);
    the run ids removed. The newest are those last written to."""
    if retention.runs is None and retention.days is None:
        return []
    runs_dir = os.path.join(job_dir, "runs")
    try:
        ids = sorted((n for n in os.listdir(runs_dir) if n != keep_run), key=lambda n: _written(runs_dir, n),
                     reverse=True)
    except OSError:
        return []
    old: list[str] = []
    if retention.runs is not None:
        old += ids[max(0, retention.runs - 1):]  # the run starting counts as one kept
    if retention.days is not None:
        limit = time.time() - retention.days * 86400
        for n in ids:
            try:
                if n not in old and _written(runs_dir, n)[0] < limit:
                    old.append(n)
            except OSError:
                pass
    gone = []
    for n in old:
        shutil.rmtree(os.path.join(runs_dir, n), ignore_errors=True)
        if not os.path.exists(os.path.join(runs_dir, n)):
            gone.append(n)
    return gone


def _written(runs_dir: str, run_id: str) -> tuple[float, str]:
    """When a run folder was last written to (its trail, else the folder), then its id."""
    for path in (os.path.join(runs_dir, run_id, "events.jsonl"), os.path.join(runs_dir, run_id)):
        try:
            return os.stat(path).st_mtime, run_id
        except OSError:
            continue
    return 0.0, run_id
