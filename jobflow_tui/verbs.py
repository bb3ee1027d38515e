"""Commands on a live run, from any shell of its user: attach, ps, stop, retry, restart,
abort, pause, unpause. They speak to the run's owner over its control socket.

Exit codes: 0 done; 1 no live run, or a task not in a state that allows the action (the
message says which); 2 an unknown job or task.
"""

from __future__ import annotations

import json
import sys
import time

from .control.client import ControlError, NoLiveRun, RemoteRun, request
from .control.detached import runner_argv, start_runner, wait_for_exit
from .control.place import live_runs
from .jobfile import job_dir_of, load_or_exit

VERBS = ("attach", "ps", "stop", "retry", "restart", "abort", "pause", "unpause")


def _no_live_run(job, job_dir: str) -> int:
    from .engine.checkpoint import CheckpointError, read_checkpoint

    try:
        cp = read_checkpoint(f"{job_dir}/checkpoint.json", job.name)
    except CheckpointError:
        cp = None
    if cp is None:
        where = "it has not run yet"
    else:
        counts: dict[str, int] = {}
        for t in cp["tasks"].values():
            counts[str(t.get("state"))] = counts.get(str(t.get("state")), 0) + 1
        where = f"the last run ({cp.get('run_id')}): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"jobflow-tui: no live run of job '{job.name}'; {where}", file=sys.stderr)
    return 1


def cmd_attach(args) -> int:
    """The dashboard on the live run, whoever owns it."""
    job = load_or_exit(args.job)
    job_dir = job_dir_of(args, job)
    try:
        remote = RemoteRun.fetch(job_dir)
    except (NoLiveRun, ControlError):
        return _no_live_run(job, job_dir)
    from .tui import run_attached

    return run_attached(remote)


def cmd_ps(args) -> int:
    """This user's live runs on this machine."""
    rows = []
    for about in live_runs():
        try:
            snap = request(about["state_dir"], "snapshot", timeout=5)
        except (NoLiveRun, ControlError, OSError, ValueError, KeyError):
            continue
        counts: dict[str, int] = {}
        for t in snap["tasks"].values():
            counts[t["state"]] = counts.get(t["state"], 0) + 1
        rows.append({"job": about["job"], "path": about["path"], "run_id": about["run_id"], "pid": about["pid"],
                     "kind": about["kind"], "started_at": time.strftime("%Y-%m-%d %H:%M:%S",
                                                                       time.localtime(about["started_at"])),
                     "counts": counts})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no live runs")
        return 0
    table = [("JOB", "RUN", "PID", "KIND", "STARTED", "TASKS", "FILE")]
    for r in rows:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(r["counts"].items()))
        table.append((r["job"], r["run_id"], str(r["pid"]), r["kind"], r["started_at"], counts, r["path"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_stop(args) -> int:
    """End the live run as abort-all and quit would, and wait for its owner to finish."""
    job = load_or_exit(args.job)
    job_dir = job_dir_of(args, job)
    try:
        about = request(job_dir, "hello")
        request(job_dir, "stop")
    except NoLiveRun:
        return _no_live_run(job, job_dir)
    grace = max((t.kill_grace for t in job.tasks.values()), default=5.0)
    if not wait_for_exit(int(about["pid"]), timeout=grace + 30):
        print(f"jobflow-tui: run {about['run_id']} is still stopping (pid {about['pid']})", file=sys.stderr)
        return 1
    print(f"stopped run {about['run_id']} of job '{job.name}'")
    return 0


def cmd_pause(args, op: str) -> int:
    job = load_or_exit(args.job)
    job_dir = job_dir_of(args, job)
    try:
        result = request(job_dir, op)
    except NoLiveRun:
        return _no_live_run(job, job_dir)
    print(f"job '{job.name}': {'paused: running tasks go on, no new ones start' if result['paused'] else 'launching'}")
    return 0


def cmd_act(args, op: str) -> int:
    """retry, restart or abort named tasks of the live run; with no live run, retry and
    restart resume the last run in a detached runner with those tasks put back."""
    job = load_or_exit(args.job)
    unknown = [t for t in args.tasks if t not in job.tasks and t not in job.subflows]
    if unknown:
        print(f"jobflow-tui: no task named {', '.join(map(repr, unknown))} in job '{job.name}'", file=sys.stderr)
        return 2
    job_dir = job_dir_of(args, job)
    code = 0
    for name in args.tasks:
        try:
            grace = max(job.tasks[n].kill_grace for n in job.subflows.get(name, [name]))
            r = request(job_dir, op, task=name, timeout=max(60.0, grace + 30))
        except NoLiveRun:
            if op == "abort":
                return _no_live_run(job, job_dir)
            return _resume_detached(args, job, op)
        except ControlError as e:
            print(f"jobflow-tui: {e}", file=sys.stderr)
            return 2 if e.unknown else 1
        if r["done"]:
            print(f"{name}: {r['before']} -> {r['state']}")
        else:
            print(f"{name}: not {op}ed: it is {r['state']}", file=sys.stderr)
            code = 1
    return code


def _resume_detached(args, job, op: str) -> int:
    argv = runner_argv(job.path, state_dir=args.state_dir, resume=True,
                       restart=args.tasks if op == "restart" else None, paused=args.follow)
    said = start_runner(argv)
    if "error" in said:
        print(f"jobflow-tui: {said['error']}", file=sys.stderr)
        return 2
    print(f"no live run of job '{job.name}': resumed run {said['run_id']} in the background (pid {said['pid']}) "
          f"with {', '.join(args.tasks)} {'restarted' if op == 'restart' else 'put back'}")
    if not args.follow:
        print(f"follow it: jobflow-tui attach {job.path}")
        return 0
    return follow(job_dir_of(args, job))


def follow(job_dir: str) -> int:
    """Print a live run's output and states as headless does, until it ends; its exit code."""
    import asyncio

    from .headless import Reporter

    async def watch() -> int:
        remote = RemoteRun.fetch(job_dir)
        reporter = Reporter(remote, sys.stdout)
        t0 = time.monotonic()
        await remote.start()
        if remote.paused:
            remote.unpause()  # started paused for us: nothing ran before we listened
        assert remote.ended is not None
        code = await remote.ended
        sys.stdout.write(reporter.summary(time.monotonic() - t0) + "\n")
        return remote.exit_code() if code is None else code

    try:
        return asyncio.run(watch())
    except NoLiveRun:
        return 1
