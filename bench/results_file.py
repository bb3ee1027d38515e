"""What the newer benchmark scripts share: timing a command, the machine's description, and
where a result goes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def write_result(out: str, name: str, report: dict[str, Any]) -> str:
    """`report` with the date and machine, as `<out>/<name>-<date>.json`; its path."""
    report = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), **report}
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{name}-{report['date']}.json")
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
    return path


def timed(argv: list[str], cwd: str) -> float:
    """Seconds `argv` takes from start to exit (its output thrown away); exits if it fails."""
    t = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    took = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr[-2000:]}")
    return took
