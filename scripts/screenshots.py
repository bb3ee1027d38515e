"""Write the README's screenshots: the dashboard on real runs of the example jobs.

    python scripts/screenshots.py            # writes screenshots/*.svg
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobflow_tui.engine import Scheduler  # noqa: E402
from jobflow_tui.jobdef import load_job  # noqa: E402
from jobflow_tui.tui.app import Dashboard  # noqa: E402

OUT = ROOT / "screenshots"


async def until(pilot, cond, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the run to reach the pictured state")
        await pilot.pause(0.05)


async def shoot(work: Path, name: str, size: tuple[int, int], ready, keys=()) -> None:
    job = load_job(str(work / "demo.yaml"))
    app = Dashboard(Scheduler(job, state_dir=str(work / f".state-{name}")), keymap_path=str(work / "none.toml"))
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: ready(app))
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.3)
        app.save_screenshot(str(OUT / f"{name}.svg"))
        await pilot.press("q")
        if app.is_running:
            await pilot.press("y")
    print(f"wrote screenshots/{name}.svg")


def states(app: Dashboard) -> dict[str, str]:
    return {n: r.state for n, r in app.scheduler.tasks.items()}


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "jobdefs"
        shutil.copytree(ROOT / "jobdefs", work)
        await shoot(work, "overview-mid-run", (110, 30),
                    lambda a: states(a)["extract-orders"] == "retrying" and len(a.buffers["extract-users"].lines) >= 4,
                    keys=["j"])
        failed = lambda a: states(a)["report"] == "blocked"  # noqa: E731
        # The cursor goes to the failure by itself: no key needed.
        await shoot(work, "failed-task-log", (110, 30), failed)
        await shoot(work, "help", (80, 24), lambda a: states(a)["prepare"] == "succeeded", keys=["question_mark"])
        await shoot(work, "narrow-80x24", (80, 24), failed)
        await shoot(work, "graph-80x24", (80, 24), failed, keys=["g"])
        await shoot(work, "merged-log", (110, 30), failed, keys=["L"])
        await shoot(work, "zoomed-log", (80, 24), failed, keys=["z"])


if __name__ == "__main__":
    asyncio.run(main())
