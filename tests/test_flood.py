"""Memory stays flat however much a task prints: a 200 MB flood through the headless
runner and through the dashboard, every line delivered, and memory bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from jobflow_tui.engine import Scheduler
from jobflow_tui.jobdef import load_job

from .conftest import PeakRSS, await_for, write

LINE = b"2026-11-30 01:23:45 INFO worker-3 processed a batch of rows and wrote them all out fine ok\n"
LINES = 2_000_000  # about 190 MB
# Written ahead and printed with cat, which ends long before the runner has read it all:
# the rest of the log must still be read in bounded pieces.
FLOOD = "cat flood.txt; echo the-very-last-line"


def make_flood(folder: Path) -> None:
    block = LINE * 10_000
    with open(folder / "flood.txt", "wb") as f:
        for _ in range(LINES // 10_000):
            f.write(block)


def test_headless_runner_memory_stays_flat_and_every_line_arrives(tmp_path: Path) -> None:
    make_flood(tmp_path)
    write(tmp_path / "job.yaml", f"""
        tasks:
          flood: {{command: "{FLOOD}"}}
    """)
    runner = subprocess.Popen(
        [sys.executable, "-m", "jobflow_tui", "job.yaml", "--headless"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    assert runner.stdout is not None
    peak = PeakRSS(runner.pid)
    count, tail = 0, b""
    while chunk := runner.stdout.read(1 << 20):
        # The last few bytes carried over: a prefix cut by the chunk's end is still counted.
        data = tail[-7:] + chunk
        count += data.count(b"flood | ")
        tail = data[-4096:]
    assert runner.wait(timeout=120) == 0
    assert count == LINES + 1
    assert b"flood | the-very-last-line\n" in tail
    assert 0 < peak.kb() < 100 * 1024, f"peak RSS {peak.kb() / 1024:.0f} MB"


async def test_dashboard_memory_stays_flat_and_shows_the_last_line(tmp_path: Path) -> None:
    from jobflow_tui.tui.app import Dashboard

    make_flood(tmp_path)
    write(tmp_path / "job.yaml", f"""
        tasks:
          flood: {{command: "{FLOOD}"}}
    """)
    s = Scheduler(load_job(str(tmp_path / "job.yaml")), state_dir=str(tmp_path / "state"))
    app = Dashboard(s)
    async with app.run_test(size=(120, 40)) as pilot:
        before = psutil.Process().memory_info().rss
        reset_peak_rss()
        await await_for(lambda: app.idle_code is not None, 120, "the flood to end")
        await pilot.pause(0.2)
        view = app.logview
        assert view.buffer.lines[-1] == "the-very-last-line"
        assert view.buffer.total == LINES + 1
        assert len(view.buffer.lines) <= view.buffer.limit * 1.25
        peak = peak_rss()
    await s.close()
    assert peak - before < 100 * 1024 * 1024, f"grew by {(peak - before) / 1e6:.0f} MB"


def reset_peak_rss() -> None:
    """Start this process's high-water mark of memory afresh (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss() -> int:
    """This process's peak resident memory since the last reset, in bytes (VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
