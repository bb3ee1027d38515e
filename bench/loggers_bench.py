"""The cost of loggers to a run: the same job headless with no loggers, with a well-behaved
one (JsonLinesLogger), with one that raises on every event, one that sleeps 5 s per event
(asyncio.sleep), one that blocks 5 s per event (time.sleep), and the three bad ones at once.
Any `loggers:` section costs the runner the import of pydantic (a fixed ~0.25 s here),
however its loggers behave; beside the well-behaved one is what a bad one adds.

    python bench/loggers_bench.py [--rounds 5] [--tasks 40] [--exe jobflow-tui] [--out bench/results]

The job: 40 tasks (--tasks), 4 at a time, each printing 2,000 lines and sleeping 0.2 s (about
2.5 s of wall time, 80,000 lines and 160 state changes for the loggers). Variants are
interleaved in each round; wall time from process start to exit; medians, and the ratios
of each to the run without loggers and to the run with the well-behaved one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from results_file import timed, write_result  # the bench folder is first on sys.path

LOGGERS = '''
import asyncio, time
from jobflow_tui.loggers import Logger, logger

@logger
class Raises(Logger):
    async def update(self, evt):
        raise ValueError("broken on purpose")

@logger
class Sleeps(Logger):
    async def update(self, evt):
        await asyncio.sleep(5)

@logger
class Blocks(Logger):
    async def update(self, evt):
        time.sleep(5)
'''
VARIANTS = {
    "none": "",
    "good": "loggers:\n  file: {logger: JsonLinesLogger, parameters: {path: all.jsonl}}\n",
    "raises": "loggers:\n  bad: {logger: Raises}\n",
    "sleeps 5 s": "loggers:\n  slow: {logger: Sleeps}\n",
    "blocks 5 s": "loggers:\n  stuck: {logger: Blocks}\n",
    "all three": "loggers:\n  bad: {logger: Raises}\n  slow: {logger: Sleeps}\n  stuck: {logger: Blocks}\n",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=40, help="tasks in the job (40: a run of about 2.5 s)")
    ap.add_argument("--exe", default=shutil.which("jobflow-tui") or "jobflow-tui")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    tasks = "".join(f"  t{i}: {{command: 'seq -f \"line %g of t{i}\" 2000; sleep 0.2'}}\n" for i in range(args.tasks))
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "loggers").mkdir()
        Path(tmp, "loggers", "bad.py").write_text(LOGGERS)
        for name, section in VARIANTS.items():
            slug = name.replace(" ", "-")
            Path(tmp, f"{slug}.yaml").write_text(f"config: {{max_concurrency: 4}}\n{section}tasks:\n{tasks}")
        for _ in range(args.rounds):
            for name in VARIANTS:
                slug = name.replace(" ", "-")
                shutil.rmtree(os.path.join(tmp, ".jobflow"), ignore_errors=True)
                times[name].append(timed([args.exe, f"{slug}.yaml", "--headless"], tmp))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: med[k] / med["none"] for k in med}
    # Any `loggers:` costs the runner pydantic's import (about 0.25 s here), however they behave:
    # beside a well-behaved logger is what a bad one adds.
    to_good = {k: med[k] / med["good"] for k in med}
    report = {
              "median_seconds": med, "ratio_to_none": ratios, "ratio_to_good": to_good, "all_seconds": times}
    path = write_result(args.out, f"loggers-{args.tasks}-tasks", report)
    for k in VARIANTS:
        print(f"{k:12} {med[k]:.3f} s  x{ratios[k]:.3f} of none  x{to_good[k]:.3f} of good")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
