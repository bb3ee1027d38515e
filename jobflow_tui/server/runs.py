"""The runs a server can show: the live runs of its jobs (whoever started them: a shell, a
dashboard, this server), the last run of each job, from its checkpoint, and the runs
before it, from the copy of the final checkpoint each run's folder keeps."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from ..control.client import ControlError, NoLiveRun, request
from ..control.place import live_runs
from ..engine.checkpoint import CheckpointError, iso, read_checkpoint
from ..engine.statedir import RUN_ID
from .catalog import Catalog, ServedJob


@dataclass
class RunRef:
    """A run of a served job: `about` is what its live owner says of it (None: it is over)."""

    run_id: str
    job: ServedJob
    job_dir: str
    about: dict[str, Any] | None = None

    @property
    def live(self) -> bool:
        return self.about is not None

    def checkpoint(self) -> dict[str, Any] | None:
        """The run's checkpoint: the job's own while it is the last run, else its folder's copy."""
        for path in (os.path.join(self.job_dir, "checkpoint.json"),
                     os.path.join(self.job_dir, "runs", self.run_id, "checkpoint.json")):
            try:
                cp = read_checkpoint(path, self.job.name)
            except CheckpointError:
                continue
            if cp is not None and cp.get("run_id") == self.run_id:
                return cp
        return None


def past_runs(job: ServedJob) -> list[str]:
    """Ids of the job's runs whose folders keep a final checkpoint, newest first."""
    try:
        names = os.listdir(os.path.join(job.job_dir, "runs"))
    except OSError:
        return []
    return sorted((n for n in names if RUN_ID.match(n)
                   and os.path.exists(os.path.join(job.job_dir, "runs", n, "checkpoint.json"))), reverse=True)


def find_runs(catalog: Catalog, past: int = 0) -> list[RunRef]:
    """Every run of a served job there is to show: the live ones, the last of each job, and
    the `past` newest runs before it of each job."""
    refs: dict[str, RunRef] = {}
    jobs = catalog.jobs()
    by_file = {os.path.realpath(j.path): j for j in jobs}
    for about in live_runs():
        job = by_file.get(os.path.realpath(str(about.get("path", ""))))
        if job is not None and isinstance(about.get("run_id"), str):
            refs[about["run_id"]] = RunRef(about["run_id"], job, str(about["state_dir"]), about)
    for job in jobs:
        try:
            cp = read_checkpoint(os.path.join(job.job_dir, "checkpoint.json"), job.name)
        except CheckpointError:
            continue
        if cp is not None and isinstance(cp.get("run_id"), str) and cp["run_id"] not in refs:
            refs[cp["run_id"]] = RunRef(cp["run_id"], job, job.job_dir)
        for run_id in past_runs(job)[:past] if past else []:
            refs.setdefault(run_id, RunRef(run_id, job, job.job_dir))
    return list(refs.values())


def find_run(catalog: Catalog, run_id: str) -> RunRef | None:
    found = next((r for r in find_runs(catalog) if r.run_id == run_id), None)
    if found is None and RUN_ID.match(run_id):
        found = next((RunRef(run_id, job, job.job_dir) for job in catalog.jobs()
                      if os.path.exists(os.path.join(job.job_dir, "runs", run_id, "checkpoint.json"))), None)
    return found


def counts_of(tasks: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in tasks.values():
        state = str(t.get("state"))
        counts[state] = counts.get(state, 0) + 1
    return counts


def outcome(cp: dict[str, Any]) -> str:
    """succeeded, failed or stopped: how a run that is over ended."""
    states = [t.get("state") for t in cp["tasks"].values() if t.get("selected", True) is not False]
    if all(s == "succeeded" for s in states):
        return "succeeded"
    if "failed" in states or "blocked" in states:
        return "failed"
    return "stopped"


async def ask(ref: RunRef, op: str, **fields: Any) -> Any:
    """One request to the owner of a live run (NoLiveRun, ControlError as the client raises)."""
    return await asyncio.to_thread(request, ref.job_dir, op, 60.0, **fields)


async def describe(ref: RunRef) -> dict[str, Any] | None:
    """A run as `GET /api/runs` lists it (None: it ended while we looked)."""
    about = ref.about
    if about is not None:
        try:
            snap = await ask(ref, "snapshot")
        except (NoLiveRun, ControlError, OSError, ValueError):
            about = None
        else:
            return {"run_id": ref.run_id, "job": ref.job.name, "path": ref.job.path, "live": True,
                    "pid": about.get("pid"), "kind": about.get("kind"),
                    "started_at": iso(float(about["started_at"])) if isinstance(about.get("started_at"), int | float)
                    else None, "state": "live", "counts": counts_of(snap["tasks"])}
    cp = ref.checkpoint()
    if cp is None:
        return None
    return {"run_id": ref.run_id, "job": ref.job.name, "path": ref.job.path, "live": False, "pid": None,
            "kind": None, "started_at": cp.get("started_at"), "state": outcome(cp), "counts": counts_of(cp["tasks"])}
