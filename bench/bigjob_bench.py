"""How jobflow-tui scales with the number of tasks: jobs of 1,000 / 10,000 / 100,000
trivial `true` commands at concurrency 8.

    python bench/bigjob_bench.py [--sizes 1000,10000,100000] [--runs 1] [--exe jobflow-tui] [--note TEXT]

For each size: `validate` wall time, a full headless run's wall time, the runner's peak
RSS (its own process, polled, not the tasks'), its CPU time, and the run's wall time per
task. Each run gets fresh folders. Writes results/bigjob-DATE.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

C = 8


def write_job(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    job = folder / "job.yaml"
    with open(job, "w") as f:
        f.write(f"config: {{name: big{n}, max_concurrency: {C}}}\ntasks:\n")
        f.writelines(f"  t{i:06d}: {{command: 'true'}}\n" for i in range(n))
    return job


def _hwm(pid: int) -> int:
    """The kernel's own peak RSS of `pid` in bytes (0 where /proc has none)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def watched(cmd: list[str], cwd: Path) -> dict:
    """Run `cmd` to its end: wall seconds, the process's peak RSS and CPU seconds."""
    with open(cwd / "stderr.txt", "w+") as errors:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        ps = psutil.Process(proc.pid)
        peak = cpu = 0.0
        while proc.poll() is None:
            try:
                with ps.oneshot():
                    peak = max(peak, ps.memory_info().rss, _hwm(proc.pid))
                    t = ps.cpu_times()
                    cpu = t.user + t.system
            except psutil.Error:
                pass  # ended between poll() and the reading
            time.sleep(0.05)
        seconds = time.monotonic() - t0
        errors.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd} failed ({proc.returncode}) in {cwd}: {errors.read()[-2000:]}")
    return {"wall_s": seconds, "peak_rss_mb": peak / 2**20, "cpu_s": cpu}


def measure(exe: str, root: Path, n: int) -> dict:
    job = write_job(root, n)
    validate = watched([exe, "validate", str(job)], root)
    run = watched([exe, str(job), "--headless", "--state-dir", str(root / "state")], root)
    return {
        "validate_s": validate["wall_s"], "validate_peak_rss_mb": validate["peak_rss_mb"],
        "run_s": run["wall_s"], "run_peak_rss_mb": run["peak_rss_mb"], "run_cpu_s": run["cpu_s"],
        "per_task_ms": run["wall_s"] / n * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--exe", default=shutil.which("jobflow-tui") or "jobflow-tui")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--note", default="", help="recorded with the results (e.g. which code ran)")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    samples: dict[int, list[dict]] = {n: [] for n in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.runs):
            for n in sizes:
                samples[n].append(measure(a.exe, Path(tmp) / f"run{r}-{n}", n))
    keys = ["validate_s", "validate_peak_rss_mb", "run_s", "run_peak_rss_mb", "run_cpu_s", "per_task_ms"]
    medians = {n: {k: round(statistics.median(s[k] for s in samples[n]), 3) for k in keys} for n in sizes}
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "load_at_start": os.getloadavg()[0], "note": a.note,
        "concurrency": C, "runs": a.runs, "median": medians, "samples": samples,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bigjob-{result['date']}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'tasks':>8} {'validate s':>11} {'run s':>8} {'run RSS MB':>11} {'run CPU s':>10} {'ms/task':>8}")
    for n in sizes:
        m = medians[n]
        print(f"{n:>8} {m['validate_s']:>11.2f} {m['run_s']:>8.1f} {m['run_peak_rss_mb']:>11.1f} "
              f"{m['run_cpu_s']:>10.1f} {m['per_task_ms']:>8.2f}")


if __name__ == "__main__":
    main()
