"""`jobflow-tui history` on a state dir holding 10,000 recorded runs, beside `sqlite3`'s own
shell answering the same question, and the time to rebuild the index from the run folders.

    python bench/history_bench.py [--runs 10000] [--tasks 20] [--rounds 5] [--exe jobflow-tui]
                                  [--out bench/results]

The index is filled through the same code a runner uses (one run_start, one attempt per
task, one run_end per run; 10,000 runs of 20 tasks: 200,000 attempts). Timed, per round,
from process start to exit: `jobflow-tui history JOB` (the newest 20 runs), `--limit
10000 --json` (every run), and `sqlite3 DB "SELECT ... LIMIT 20"` when the sqlite3 shell
is installed. Then `history --rebuild` of 1,000 run folders with their trails. Medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from results_file import timed, write_result  # noqa: E402 (the bench folder is first on sys.path)

from jobflow_tui.history import History  # noqa: E402
from jobflow_tui.history.trail import TrailWriter  # noqa: E402


def records(job: str, run: int, tasks: int, t0: float) -> list[dict]:
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t0 + run * 60)) + f"-{run:04x}"
    start = t0 + run * 60
    out = [{"event": "run_start", "time": start, "job": job, "run_id": run_id, "params": {}, "host": "bench"}]
    for i in range(tasks):
        out.append({"event": "state", "time": start + i + 1, "job": job, "run_id": run_id, "task": f"t{i}",
                    "attempt": 1, "state": "succeeded" if run % 10 else "failed", "previous": "running",
                    "exit_code": 0 if run % 10 else 1, "started_at": start + i, "reason": ""})
    out.append({"event": "run_end", "time": start + tasks + 1, "job": job, "run_id": run_id,
                "state": "succeeded" if run % 10 else "failed", "exit_code": 0 if run % 10 else 1,
                "counts": {"succeeded": tasks}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--exe", default=shutil.which("jobflow-tui") or "jobflow-tui")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "job.yaml").write_text("config: {name: nightly}\ntasks:\n  t0: {command: 'true'}\n")
        state = os.path.join(tmp, ".jobflow")
        os.makedirs(state)
        history = History(state)
        t0 = time.time() - args.runs * 60
        filled = time.perf_counter()
        with closing(history.connect()) as db:
            history.apply(db, (("", r) for n in range(args.runs) for r in records("nightly", n, args.tasks, t0)))
        filled = time.perf_counter() - filled
        size = os.path.getsize(history.path)
        sqlite = shutil.which("sqlite3")
        results: dict[str, list[float]] = {"history": [], "history --limit all --json": [], "sqlite3 shell": []}
        for _ in range(args.rounds):
            results["history"].append(timed([args.exe, "history", "job.yaml"], tmp))
            results["history --limit all --json"].append(
                timed([args.exe, "history", "job.yaml", "--limit", str(args.runs), "--json"], tmp))
            if sqlite:
                results["sqlite3 shell"].append(timed([sqlite, history.path, "SELECT run_id, state FROM runs WHERE "
                                                       "job = 'nightly' ORDER BY started_at DESC LIMIT 20"], tmp))
        # Rebuild: 1,000 run folders with their trails.
        for n in range(1000):
            run = records("nightly", n, args.tasks, t0)
            folder = os.path.join(state, "nightly", "runs", run[0]["run_id"])
            os.makedirs(folder)
            w = TrailWriter(os.path.join(folder, "events.jsonl"))
            for r in run:
                w.add(r)
            w.close()
        rebuild = [timed([args.exe, "history", "job.yaml", "--rebuild"], tmp) for _ in range(args.rounds)]
    med = {k: statistics.median(v) for k, v in results.items() if v}
    report = {
        "runs": args.runs, "tasks_per_run": args.tasks, "database_bytes": size, "fill_seconds": filled,
        "median_seconds": med, "rebuild_1000_runs_median_seconds": statistics.median(rebuild),
        "all_seconds": {**results, "rebuild": rebuild},
    }
    path = write_result(args.out, "history", report)
    for k, v in med.items():
        print(f"{k:32} {v:.3f} s")
    print(f"{'history --rebuild (1,000 runs)':32} {report['rebuild_1000_runs_median_seconds']:.3f} s")
    print(f"database: {size / 1e6:.1f} MB for {args.runs} runs x {args.tasks} tasks; wrote {path}")


if __name__ == "__main__":
    main()
