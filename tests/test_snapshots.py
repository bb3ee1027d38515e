"""What the screen shows, as SVG snapshots. The states are set, not run, and the clock is
fixed, so every picture is the same on every machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobflow_tui.engine import Scheduler
from jobflow_tui.jobdef import load_job
from jobflow_tui.tui.app import Dashboard

from .conftest import write

T0 = 1_795_348_800.0  # 2026-11-22 02:00:00 UTC

JOB = """
config: {name: nightly-etl, max_concurrency: 2}
tasks:
  prepare: {command: 'true'}
  extract-users: {command: 'true', dependencies: [prepare]}
  extract-orders: {command: 'true', dependencies: [prepare], max_attempts: 3}
  transform: {command: 'true', dependencies: [extract-users, extract-orders]}
  approve: {command: 'true', dependencies: [transform]}
  load: {command: 'true', dependencies: [approve]}
  report: {command: 'true', dependencies: [load]}
"""

# name: (state, attempts, started after T0, duration or None while running, exit code)
MID_RUN = {
    "prepare": ("succeeded", 1, 0, 0.4, 0),
    "extract-users": ("running", 1, 1, None, None),
    "extract-orders": ("retrying", 1, 1, 0.5, 75),
}
FAILED = {
    "prepare": ("succeeded", 1, 0, 0.4, 0),
    "extract-users": ("succeeded", 1, 1, 1.2, 0),
    "extract-orders": ("succeeded", 2, 1, 0.5, 0),
    "transform": ("succeeded", 1, 3, 1.0, 0),
    "approve": ("failed", 1, 4, 0.1, 1),
    "load": ("blocked", 0, None, None, None),
    "report": ("blocked", 0, None, None, None),
}


def frozen_run(tmp_path: Path, states: dict = FAILED, job: str = JOB) -> Scheduler:
    """A scheduler never started, its states set by hand."""
    s = Scheduler(load_job(str(write(tmp_path / "job.yaml", job))), state_dir=str(tmp_path / "state"))
    s.run_id = "20261122T020000-demo"
    s.started_at = T0
    for name, (state, attempts, start, duration, code) in states.items():
        r = s.tasks[name]
        r.state, r.attempts, r.exit_code = state, attempts, code
        if start is not None:
            r.started_at = T0 + start
            r.finished_at = None if duration is None else T0 + start + duration
    return s


def frozen(tmp_path: Path, states: dict, logs: dict[str, list[str]]) -> Dashboard:
    s = frozen_run(tmp_path, states)
    for name, (_, attempts, _, _, _) in states.items():
        r = s.tasks[name]
        r.logs = [str(tmp_path / f"{name}.{i}.log") for i in range(1, attempts + 1)]
        for path in r.logs:
            Path(path).write_text("")
    s._running = sum(1 for r in s.tasks.values() if r.state == "running")
    app = Dashboard(s, start_engine=False, clock=lambda: T0 + 42, keymap_path=str(tmp_path / "none.toml"))
    for name, lines in logs.items():
        app.buffers[name].extend(lines)
        app.merged.add_block("\n".join(lines).encode(), app.prefix[name])
    return app


USERS = [f"users: page {i}/8" for i in range(1, 6)] + ["\x1b[32mok\x1b[0m batch 5 written"]
APPROVE = ["checking approval file",
           "\x1b[31mnot approved yet\x1b[0m: run  echo me > /srv/etl/.jobflow/etl/approved  then retry this task (r)"]


def test_overview_mid_run(snap_compare, tmp_path: Path) -> None:
    """Mid-run at 100x30: prepare ✓ succeeded, extract-users ▶ running with its log
    streaming on the right (colour kept), extract-orders ↻ retrying with exit 75, the rest
    · pending; header counts per state; gauge 'running 1/2'; footer keys."""
    app = frozen(tmp_path, MID_RUN, {"extract-users": USERS})

    async def select(pilot) -> None:
        await pilot.press("j")

    assert snap_compare(app, terminal_size=(100, 30), run_before=select)


def test_failed_task_with_its_log(snap_compare, tmp_path: Path) -> None:
    """The approve step ✗ failed (exit 1) is selected and its log shows why; load and
    report are ⊘ blocked; 'retry' is enabled in the footer, the header says stopped."""
    app = frozen(tmp_path, FAILED, {"approve": APPROVE})

    async def select(pilot) -> None:
        await pilot.press("j", "j", "j", "j")

    assert snap_compare(app, terminal_size=(100, 30), run_before=select)


def test_help_screen(snap_compare, tmp_path: Path) -> None:
    """The help screen lists every key with what it does, generated from the bindings, in
    two columns that fit 80x24 without scrolling."""
    app = frozen(tmp_path, FAILED, {})
    assert snap_compare(app, terminal_size=(80, 24), press=["question_mark"])


def test_narrow_80x24(snap_compare, tmp_path: Path) -> None:
    """At 80x24 the task list, the gauge, the log pane and the footer all fit."""
    app = frozen(tmp_path, FAILED, {"approve": APPROVE})

    async def select(pilot) -> None:
        await pilot.press("j", "j", "j", "j")

    assert snap_compare(app, terminal_size=(80, 24), run_before=select)


def test_no_color(snap_compare, tmp_path: Path, monkeypatch) -> None:
    """With NO_COLOR set, states still read from glyphs and words."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = frozen(tmp_path, FAILED, {"approve": APPROVE})
    assert snap_compare(app, terminal_size=(80, 24))


COCKPIT_VIEWS = {
    # name: (keys after selecting approve, what the picture shows)
    "zoomed": (["z"], "the log pane alone, full width: the long line wraps over fewer rows"),
    "merged": (["L"], "every task's lines as 'TASK | line', the title says 'all tasks'"),
    "marking": (["v", "up"], "two lines marked (reversed), the title says 'marking 2 line(s)'"),
    "unwrapped": (["w"], "wrap off: the long line is cut at the pane's edge, to scroll sideways"),
}
LOGS = {"approve": APPROVE, "prepare": ["workspace ready at /srv/etl/.jobflow/etl"],
        "extract-users": USERS}


@pytest.mark.parametrize("colour", ["colour", "no-colour"])
@pytest.mark.parametrize("view", sorted(COCKPIT_VIEWS))
def test_cockpit_views_at_80x24(snap_compare, tmp_path: Path, monkeypatch, view: str, colour: str) -> None:
    """Each view of the cockpit at 80x24, with colour and with NO_COLOR (see COCKPIT_VIEWS)."""
    if colour == "no-colour":
        monkeypatch.setenv("NO_COLOR", "1")
    app = frozen(tmp_path, FAILED, LOGS)
    keys, _ = COCKPIT_VIEWS[view]
    assert snap_compare(app, terminal_size=(80, 24), press=["j", "j", "j", "j", *keys])
