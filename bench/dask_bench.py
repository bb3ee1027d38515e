"""Tasks on a Dask cluster beside the same tasks run locally: the per-task overhead of 200
trivial commands on `dask:local` (a LocalCluster of worker processes started for the
run) against `local`, and 100,000 lines from a task on a worker arriving complete in its
log file.

    python bench/dask_bench.py [--rounds 3] [--exe jobflow-tui] [--out bench/results]

Wall time from process start to exit, interleaved rounds, medians. `dask:local` includes
starting and stopping the cluster (timed alone too, with one trivial task).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from results_file import timed, write_result  # the bench folder is first on sys.path


def run(exe: str, job: str, cwd: str) -> float:
    shutil.rmtree(os.path.join(cwd, ".jobflow"), ignore_errors=True)
    return timed([exe, job, "--headless"], cwd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--exe", default=shutil.which("jobflow-tui") or "jobflow-tui")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    tasks = "".join(f"  t{i}: {{command: 'true'}}\n" for i in range(200))
    jobs = {
        "200 x true, local": f"config: {{max_concurrency: 8}}\ntasks:\n{tasks}",
        "200 x true, dask:local": f"config: {{max_concurrency: 8, executor: 'dask:local'}}\ntasks:\n{tasks}",
        "1 x true, dask:local (the cluster's start and stop)":
            "config: {executor: 'dask:local'}\ntasks:\n  t: {command: 'true'}\n",
        "100,000 lines, dask:local": "config: {executor: 'dask:local'}\ntasks:\n  flood: {command: 'seq 1 100000'}\n",
    }
    times: dict[str, list[float]] = {k: [] for k in jobs}
    complete = True
    with tempfile.TemporaryDirectory() as tmp:
        for n, text in enumerate(jobs.values()):
            Path(tmp, f"j{n}.yaml").write_text(text)
        for _ in range(args.rounds):
            for n, name in enumerate(jobs):
                times[name].append(run(args.exe, f"j{n}.yaml", tmp))
                if name.startswith("100,000"):
                    [log] = Path(tmp, ".jobflow").glob("*/runs/*/flood.1.log")
                    complete &= log.read_text().splitlines() == [str(i) for i in range(1, 100001)]
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = (med["200 x true, dask:local"] - med["1 x true, dask:local (the cluster's start and stop)"]
                - med["200 x true, local"]) / 200
    report = {
              "median_seconds": med, "dask_overhead_per_task_seconds": overhead,
              "flood_complete_every_round": complete, "all_seconds": times}
    path = write_result(args.out, "dask", report)
    for k, v in med.items():
        print(f"{k:52} {v:.3f} s")
    print(f"per-task overhead on dask:local beside local (cluster start excluded): {overhead * 1000:.1f} ms")
    print(f"100,000 lines complete and in order every round: {complete}; wrote {path}")


if __name__ == "__main__":
    main()
