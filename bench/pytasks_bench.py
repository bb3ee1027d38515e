"""Per-task cost of Python tasks: 1000 trivial tasks at concurrency 8, side by side with
1000 `true` command tasks and the same job in Flowmancer, interleaved round by round.

    python bench/pytasks_bench.py [--runs 5] [--exe jobflow-tui] [--flowmancer-python PY]

PY is a Python with flowmancer installed (sh bench/run.sh makes one in
/tmp/jobflow-bench/venv); without it the Flowmancer column is left out.
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

N, C = 1000, 8

OURS = "from jobflow_tui import Task, task\n\n\n@task\nclass Trivial(Task):\n    def run(self):\n        return None\n"
THEIRS = "from flowmancer.task import Task, task\n\n\n@task\nclass Trivial(Task):\n    def run(self):\n        pass\n"
MAIN = "import sys\nfrom flowmancer import Flowmancer\n\nif __name__ == '__main__':\n    sys.exit(Flowmancer().start())\n"


def setup(root: Path) -> dict[str, Path]:
    py = root / "py"
    (py / "tasks").mkdir(parents=True)
    (py / "tasks" / "trivial.py").write_text(OURS)
    (py / "job.yaml").write_text(f"config: {{name: py, max_concurrency: {C}}}\ntasks:\n"
                                 + "".join(f"  t{i:04d}: {{task: Trivial}}\n" for i in range(N)))
    cmd = root / "cmd"
    cmd.mkdir()
    (cmd / "job.yaml").write_text(f"config: {{name: cmd, max_concurrency: {C}}}\ntasks:\n"
                                  + "".join(f"  t{i:04d}: {{command: 'true'}}\n" for i in range(N)))
    fm = root / "fm"
    (fm / "tasks").mkdir(parents=True)
    (fm / "tasks" / "__init__.py").write_text("")
    (fm / "tasks" / "trivial.py").write_text(THEIRS)
    (fm / "main.py").write_text(MAIN)
    (fm / "job.yaml").write_text(f"version: 0.1\nconfig:\n  name: fm\n  max_concurrency: {C}\ntasks:\n"
                                 + "".join(f"  t{i:04d}:\n    task: Trivial\n" for i in range(N)))
    return {"py": py, "cmd": cmd, "fm": fm}


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"{cmd} failed in {cwd}: {r.stderr[-2000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--exe", default=shutil.which("jobflow-tui") or "jobflow-tui")
    default_fm = "/tmp/jobflow-bench/venv/bin/python"
    ap.add_argument("--flowmancer-python", default=default_fm if os.path.exists(default_fm) else None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # Each round in fresh folders, nothing deleted until the end: on a journal-less ext4
        # (this VM's), creating files soon after deleting thousands costs up to a millisecond
        # each, which would charge the harness's clean-up to whichever tool runs next.
        def plans(dirs: dict[str, Path]) -> dict[str, tuple[list[str], Path]]:
            out = {
                "jobflow python tasks": ([a.exe, "--headless", "job.yaml"], dirs["py"]),
                "jobflow command tasks": ([a.exe, "--headless", "job.yaml"], dirs["cmd"]),
            }
            if a.flowmancer_python:
                out["flowmancer python tasks"] = ([a.flowmancer_python, "main.py", "-j", "job.yaml"], dirs["fm"])
            return out

        for cmd, cwd in plans(setup(Path(tmp) / "warm-up")).values():
            timed(cmd, cwd)
        samples: dict[str, list[float]] = {}
        for i in range(a.runs):
            for name, (cmd, cwd) in plans(setup(Path(tmp) / f"round{i}")).items():
                samples.setdefault(name, []).append(timed(cmd, cwd))
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "tasks": N, "concurrency": C, "runs": a.runs,
        "median_s": {k: round(statistics.median(v), 3) for k, v in samples.items()},
        "per_task_ms": {k: round(statistics.median(v) / N * 1000, 2) for k, v in samples.items()},
        "samples": samples,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"pytasks-{result['date']}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("median_s", "per_task_ms")}, indent=2))


if __name__ == "__main__":
    main()
