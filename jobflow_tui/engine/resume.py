"""Taking over from a runner that stopped: keep what succeeded, adopt what still runs,
settle what ended meanwhile, and never start anything a second time.

What was started is read from the run's folder (an attempt's log exists before its code
runs), not only from the checkpoint: a runner killed a moment after starting an attempt
may not have recorded it there yet.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..jobdef.model import JobDef
from ..journal import AttemptFiles
from .attempt import TaskRun
from .checkpoint import CheckpointError, count, from_iso, read_checkpoint
from .events import ABORTED, BLOCKED, FAILED, PENDING, RETRYING, RUNNING, SUCCEEDED
from .executor import Execution, Executor
from .outputs import recorded_outcome
from .statedir import RunError, StateDir, attempt_files, attempts_on_disk, launched, new_run_id, safe_name

# At most how long an attempt whose log exists may take to record its pid (each executor
# says how long within this): one started a moment before its runner died is still on its
# way. A shell takes milliseconds, but a hundred started at once on a loaded machine can
# leave the last waiting for the CPU past a second, and taking it for never started would
# run it twice.
START_GRACE = 5.0


@dataclass
class Adopted:
    """An attempt of the previous runner that still runs: to be watched to its end."""

    run: TaskRun
    files: AttemptFiles
    execution: Execution
    again: bool  # its task changed since: it runs again once this attempt ends


@dataclass
class Restored:
    run_id: str
    started_at: float
    shared_dict: dict[str, Any]
    adopted: list[Adopted] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    paused: bool = False
    retrying: list[TaskRun] = field(default_factory=list)  # to be retried at their retry_at
    params: dict[str, str] | None = None  # the run's parameters and limit, when taken over exactly
    limit: int | None = None


def _entry(prev: dict, name: str) -> dict:
    t = prev["tasks"].get(name)
    return t if isinstance(t, dict) else {}


def _last_attempts(prev: dict, tasks: dict[str, TaskRun], run_dir: str) -> dict[str, tuple[int, bool]]:
    """Task -> (its last attempt, whether that attempt may still run)."""
    on_disk = attempts_on_disk(run_dir)
    found = {}
    for name in tasks:
        t = _entry(prev, name)
        recorded = count(t, "attempts")
        last = max(recorded, on_disk.get(safe_name(name), 0))
        if last:
            found[name] = (last, t.get("state") == RUNNING or last > recorded)
    return found


def _await_unrecorded_starts(candidates: list[tuple[AttemptFiles, Executor]]) -> None:
    """Give attempts started a moment before their runner died the time to say so: wait
    (once, for all of them, at most their executor's start_grace) until each noted as
    launched has recorded its pid or its end, or is known never to have started."""
    started = launched(os.path.dirname(candidates[0][0].base)) if candidates else set()
    waiting = [(f, e) for f, e in candidates if f.key in started or os.path.exists(f.log)]
    begun = time.monotonic()
    while waiting:
        waited = time.monotonic() - begun
        waiting = [(f, e) for f, e in waiting if waited < min(START_GRACE, e.start_grace)
                   and f.read_pid() is None and f.read_status() is None]
        if waiting:
            maybe: set[str] = set()
            for executor in {id(e): e for _, e in waiting}.values():
                maybe |= executor.starting([f for f, e in waiting if e is executor])
            waiting = [(f, e) for f, e in waiting if f.key in maybe]
        if waiting:
            time.sleep(0.01)


def settle(executor: Executor, files: AttemptFiles, pid: int | None, created: float | None
           ) -> tuple[Execution | None, int | None]:
    """How an attempt of a runner that died stands, from one consistent reading: (its live
    execution, None) while it runs, else (None, its recorded exit status, or None when it
    died without one).

    Liveness is looked at first and the journal read after it: an attempt that ends
    between the two looks ended (its exit record is written before it exits), never
    killed-without-status, which would start it again.
    """
    execution = executor.reattach(files, pid, created)
    code = files.read_status()
    return (None, code) if code is not None else (execution, None)


def refuse_if_alive(prev: dict, tasks: dict[str, TaskRun], run_dir: str, pick: Callable[[TaskRun], Executor]) -> None:
    """RunError if an attempt of the previous run still runs (a fresh run must not start
    beside it)."""
    last = _last_attempts(prev, tasks, run_dir)
    files = {n: attempt_files(run_dir, n, a) for n, (a, _) in last.items()}
    _await_unrecorded_starts([(files[n], pick(tasks[n])) for n, (_, maybe) in last.items() if maybe])
    for name, f in files.items():
        t = _entry(prev, name)
        if settle(pick(tasks[name]), f, t.get("pid"), t.get("create_time"))[0] is not None:
            raise RunError(
                f"task '{name}' of the previous run is still running (pid {f.read_pid()}); "
                "use --resume to adopt it, or stop it first"
            )


def restore(prev: dict, job: JobDef, tasks: dict[str, TaskRun], job_dir: str, run_dir: str,
            pick: Callable[[TaskRun], Executor], exact: bool = False) -> Restored:
    """Take over a previous run: what succeeded stays, what still runs is adopted, the
    rest (and what changed since, with its downstream) goes back to pending.

    `exact`: go on as if nothing happened (a run handed over to another process): failed,
    aborted and blocked tasks stay so, retries keep their budget and their time, the
    selection and the pause are kept.
    """
    shared = prev.get("shared_dict")
    restored = Restored(
        run_id=str(prev.get("run_id") or ""),
        started_at=from_iso(prev.get("started_at")) or time.time(),
        shared_dict=shared if isinstance(shared, dict) else {},
    )
    changed = {n for n, t in prev["tasks"].items()
               if n in tasks and isinstance(t, dict) and t.get("fingerprint") != tasks[n].spec.fingerprint()}
    rerun = set(changed)
    for n in changed:
        rerun.update(job.downstream(n))
    last = _last_attempts(prev, tasks, run_dir)
    _await_unrecorded_starts([(attempt_files(run_dir, n, a), pick(tasks[n])) for n, (a, maybe) in last.items() if maybe])
    for name, run in tasks.items():
        t = prev["tasks"].get(name)
        if not isinstance(t, dict):
            continue
        run.attempts = count(t, "attempts")
        run.logs = [os.path.join(job_dir, p) for p in t.get("logs") or [] if isinstance(p, str)]
        run.outputs = t.get("outputs") if isinstance(t.get("outputs"), dict) else {}
        run.exit_code = t.get("exit_code") if isinstance(t.get("exit_code"), int) else None
        run.started_at = from_iso(t.get("started_at"))
        run.finished_at = from_iso(t.get("finished_at"))
        # The try within its retry budget, as it was: the budget began `attempt` tries ago.
        within = count(t, "attempt") if 0 < count(t, "attempt") <= run.attempts else 1
        state = t.get("state")
        if exact:
            run.selected = t.get("selected") is not False
            run.reason = str(t.get("reason") or "")
        newest = last.get(name, (0, False))[0]
        if newest > run.attempts:
            # The runner died between starting an attempt and recording it.
            run.logs += [attempt_files(run_dir, name, n).log for n in range(run.attempts + 1, newest + 1)]
            run.attempts = newest
            state = RUNNING
        if state == RUNNING and run.attempts:
            files = attempt_files(run_dir, name, run.attempts)
            execution, code = settle(pick(run), files, t.get("pid"), t.get("create_time"))
            if execution is not None:
                run.pid, run.create_time = execution.pid, execution.create_time
                run.budget_start = max(0, run.attempts - within)
                restored.adopted.append(Adopted(run, files, execution, again=name in rerun))
                continue
            run.exit_code = code
            run.finished_at = run.finished_at or time.time()
            if code is not None:
                run.outputs.update(recorded_outcome(files, code).outputs)
            state = SUCCEEDED if code == 0 else FAILED
        if state == SUCCEEDED and name not in rerun:
            run.state = SUCCEEDED
        elif exact and state in (FAILED, ABORTED, BLOCKED, RETRYING) and t.get("state") == state:
            run.state, run.budget_start = state, max(0, run.attempts - within)
            if state == RETRYING:
                run.retry_at = from_iso(t.get("retry_at")) or time.time()
                restored.retrying.append(run)
        else:
            if name in rerun:
                run.outputs = {}
            run.budget_start = run.attempts
            run.state = PENDING
    if exact:
        restored.paused = prev.get("paused") is True
        params, limit = prev.get("params"), prev.get("limit")
        restored.params = {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else None
        restored.limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 else None
    if changed:
        restored.notes.append(
            "changed since the last run, so run again with what depends on them: " + ", ".join(sorted(changed)))
    return restored


def take_over(job: JobDef, tasks: dict[str, TaskRun], state: StateDir, resume: bool,
              pick: Callable[[TaskRun], Executor], exact: bool = False) -> Restored:
    """With `resume`, take over the last run (unless it completed; `exact`: as it was, see
    `restore`); else start a new one, refused while an attempt of the last run still runs.
    RunError if the run cannot start."""
    try:
        prev = read_checkpoint(state.checkpoint_path, job.name)
    except CheckpointError as e:
        raise RunError(str(e)) from None
    if resume and prev and not prev.get("completed"):
        run_dir = state.run_dir(str(prev.get("run_id") or ""))
        return restore(prev, job, tasks, state.job_dir, run_dir, pick, exact)
    fresh = Restored(new_run_id(), time.time(), {})
    if resume and prev:
        fresh.notes.append("the last run finished with every task succeeded: starting a new run")
    if prev:
        refuse_if_alive(prev, tasks, state.run_dir(str(prev.get("run_id", ""))), pick)
    return fresh


def take_over_run(s: Any) -> list[Adopted]:
    """`take_over` for Scheduler `s`, whose state it sets; the attempts to adopt."""
    taken = take_over(s.job, s.tasks, s.state, s.resume_requested, s.executors.pick_for_run, s.handed_over)
    s.run_id, s.started_at, s.shared_dict = taken.run_id, taken.started_at, taken.shared_dict
    s.notes += taken.notes
    s.paused = s.paused or taken.paused
    if taken.params is not None:
        s.params = taken.params
    if taken.limit is not None:
        s.limit = taken.limit
    s.states.recount()
    for run in taken.retrying:
        s.states.retry_later(run)
    s.has_outputs = any(r.outputs for r in s.tasks.values())
    return taken.adopted
