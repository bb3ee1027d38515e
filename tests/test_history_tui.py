"""The dashboard and earlier runs: past durations on the rows, the run's expected end in
the header, and `H`, the past runs read-only. Real runs make the history; the snapshots
read one written by hand, with fixed times."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobflow_tui.engine import Scheduler
from jobflow_tui.engine.checkpoint import iso
from jobflow_tui.history import History
from jobflow_tui.jobdef import load_job
from jobflow_tui.tui.app import Dashboard
from jobflow_tui.tui.estimate import about, longest_chain, time_left, work_left
from jobflow_tui.tui.logview import LogView
from jobflow_tui.tui.pastruns import RunsScreen, TaskLogScreen, TasksScreen

from .conftest import await_for, cli, write

# ---- the estimate, alone ---------------------------------------------------------


def task(state: str, deps=(), started: float | None = None, selected: bool = True) -> SimpleNamespace:
    return SimpleNamespace(state=state, dependencies=list(deps), started_at=started, selected=selected)


def test_the_longest_chain_of_work_is_what_is_left() -> None:
    order = ["a", "b", "c", "d"]
    deps = {"b": ["a"], "c": ["a"], "d": ["b", "c"]}
    assert longest_chain(order, deps, {"a": 1, "b": 5, "c": 2, "d": 1}) == 7  # a, b, d
    assert longest_chain(order, deps, {"c": 2}) == 2  # done ones weigh nothing
    assert longest_chain([], {}, {}) == 0


def test_work_left_counts_running_tasks_less_what_they_ran_and_skips_what_will_not_run() -> None:
    now = 100.0
    tasks = {
        "done": task("succeeded"),
        "run": task("running", started=97.0),
        "late": task("running", started=50.0),
        "wait": task("pending", ["run"]),
        "again": task("retrying"),
        "blocked": task("blocked"),
        "unknown": task("pending"),
        "skipped": task("pending", selected=False),
    }
    last = {"done": 9, "run": 5, "late": 5, "wait": 2, "again": 4, "blocked": 8, "skipped": 7}
    assert work_left(tasks, last, now) == {"run": 2.0, "late": 0.0, "wait": 2, "again": 4}
    assert time_left(list(tasks), tasks, last, now) == 4.0  # run (2) then wait (2); again alone is 4
    assert work_left(tasks, {"done": 9, "blocked": 3}, now) is None  # nothing left is known


def test_about_is_short() -> None:
    assert [about(0.42), about(12.4), about(80)] == ["0.4s", "12s", "1m20s"]


# ---- a real history --------------------------------------------------------------

JOB = """
    tasks:
      slow: {{command: '{slow}'}}
      check: {{command: 'sleep 0.2; if [ -f {tmp}/ok ]; then echo fine; else echo "not yet"; exit 3; fi',
              dependencies: [slow]}}
"""
GATED = "while [ ! -f {tmp}/go ]; do sleep 0.05; done"


@pytest.fixture(autouse=True)
def gate_opens_at_the_end(tmp_path: Path):
    """Whatever a test asserted, the gated task ends with it (and leaves no process behind)."""
    yield
    (tmp_path / "go").touch()


def history(tmp_path: Path) -> list[str]:
    """Two headless runs of the job: the first fails, the second succeeds; their ids, oldest first."""
    write(tmp_path / "job.yaml", JOB.format(slow="sleep 0.3", tmp=tmp_path))
    assert cli("job.yaml", cwd=tmp_path).returncode == 1
    (tmp_path / "ok").touch()
    assert cli("job.yaml", cwd=tmp_path).returncode == 0
    return sorted(os.listdir(tmp_path / ".jobflow" / "job" / "runs"))


def dashboard(tmp_path: Path) -> Dashboard:
    """The same job, its first task waiting for `go`, with the state (and history) of the runs before."""
    job = load_job(str(write(tmp_path / "job.yaml", JOB.format(slow=GATED.format(tmp=tmp_path), tmp=tmp_path))))
    return Dashboard(Scheduler(job, state_dir=str(tmp_path / ".jobflow")), keymap_path=str(tmp_path / "keys.toml"))


def row(app: Dashboard, name: str) -> str:
    return app.label(name).plain


def head(app: Dashboard) -> str:
    return app.header.render().plain  # type: ignore[union-attr]


def options(screen) -> list[str]:
    return [str(o.prompt) for o in screen.list.options]


async def finish(pilot, app: Dashboard, tmp_path: Path) -> None:
    (tmp_path / "go").touch()
    await await_for(lambda: app.scheduler.tasks["check"].state == "succeeded", what="the run to end")
    await pilot.press("q")
    await await_for(lambda: not app.is_running, what="the app to exit")


async def test_rows_show_the_last_duration_and_the_header_the_expected_end(tmp_path: Path) -> None:
    history(tmp_path)
    app = dashboard(tmp_path)
    async with app.run_test(size=(100, 24)) as pilot:
        await await_for(lambda: "~" in row(app, "check"), what="the past durations")
        assert app.scheduler.tasks["slow"].state == "running"
        assert re.match(r"▶ slow running \S+s/~\d+\.\ds$", row(app, "slow")), row(app, "slow")  # ran/took last time
        assert re.match(r"· check pending ~\d+\.\ds$", row(app, "check")), row(app, "check")
        assert set(app.past) == {"slow", "check"} and app.past["check"] >= 0.2
        await await_for(lambda: " left" in head(app), what="the expected end in the header")
        assert app.scheduler.run_id in head(app)
        await pilot.resize_terminal(80, 24)  # at 80 columns the task list is 38 wide: the facts stay
        await pilot.pause()
        slow = app.label("slow", 38).plain
        assert slow.startswith("▶ slow running") and len(slow) <= 38
        (tmp_path / "go").touch()
        await await_for(lambda: "done" in head(app), what="the run to end")
        assert " left" not in head(app)
        assert "~" not in row(app, "check")  # finished rows keep their own duration only
        await pilot.press("q")
        await await_for(lambda: not app.is_running, what="the app to exit")


async def test_H_lists_past_runs_and_reads_their_tasks_and_logs_without_acting(tmp_path: Path) -> None:
    first, second = history(tmp_path)
    app = dashboard(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await await_for(lambda: app.scheduler.tasks["slow"].state == "running")
        index = History(str(tmp_path / ".jobflow"))
        await await_for(lambda: len(index.runs("job")) == 3, what="the index to have this run")
        await pilot.press("H")
        assert isinstance(app.screen, RunsScreen)
        runs = app.screen
        await await_for(lambda: len(runs.runs) == 3, what="the runs listed")
        assert [r.run_id for r in runs.runs] == [app.scheduler.run_id, second, first]  # newest first
        lines = options(runs)
        assert "this run" in lines[0] and "succeeded" in lines[1] and "failed" in lines[2]
        assert "✓2" in lines[1] and "✓1 ✗1" in lines[2]
        assert all(len(line) <= 78 for line in lines)
        await pilot.press("a", "A", "r")  # the dashboard's keys do nothing here
        await pilot.pause(0.1)
        assert app.screen is runs and app.scheduler.tasks["slow"].state == "running"

        await pilot.press("down", "down", "enter")  # the failed run
        assert isinstance(app.screen, TasksScreen)
        tasks = app.screen
        await await_for(lambda: tasks.tasks, what="its tasks")
        slow, check = options(tasks)
        assert slow.startswith("✓ slow") and "succeeded" in slow
        assert check.startswith("✗ check") and "failed" in check and check.rstrip().endswith("3")

        await pilot.press("down", "enter")
        assert isinstance(app.screen, TaskLogScreen)
        view = app.screen.query_one(LogView)
        await await_for(lambda: list(view.buffer.lines) == ["not yet"], what="its log")
        await pilot.press("escape")
        assert app.screen is tasks
        await pilot.press("escape")
        assert app.screen is runs
        await pilot.press("up", "up", "enter")  # this run: its tasks as they are now
        await await_for(lambda: app.screen.tasks, what="this run's tasks")
        assert "running" in options(app.screen)[0]
        await pilot.press("escape", "escape")
        assert app.screen is app.screen_stack[0]
        await finish(pilot, app, tmp_path)


async def test_a_run_that_crashed_says_it_has_no_checkpoint(tmp_path: Path) -> None:
    first, second = history(tmp_path)
    os.unlink(tmp_path / ".jobflow" / "job" / "runs" / second / "checkpoint.json")
    app = dashboard(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await await_for(lambda: app.scheduler.run_id)
        await pilot.press("H")
        runs = app.screen
        await await_for(lambda: len(runs.runs) >= 2, what="the runs listed")
        index = [r.run_id for r in runs.runs].index(second)
        await pilot.press(*["down"] * index, "enter")
        await await_for(lambda: app.screen.message.startswith(f"run {second} left no final checkpoint"))
        await pilot.press("escape", "escape")
        await finish(pilot, app, tmp_path)


async def test_a_spoilt_index_leaves_the_dashboard_working_without_estimates(tmp_path: Path) -> None:
    history(tmp_path)
    db = tmp_path / ".jobflow" / "history.sqlite3"
    db.write_bytes(b"this is not a database\n" * 100)
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    app = dashboard(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await await_for(lambda: app.scheduler.tasks["slow"].state == "running")
        await await_for(lambda: app.past_asked)
        await await_for(lambda: not app.workers or all(w.is_finished for w in app.workers if w.group == "history"),
                        what="the durations read")
        await pilot.pause(0.1)
        assert not app.past and "~" not in row(app, "check") and " left" not in head(app)
        await pilot.press("H")
        runs = app.screen
        await await_for(lambda: runs.message.startswith("the history index cannot be read"))
        await pilot.press("escape")
        await finish(pilot, app, tmp_path)


# ---- snapshots: a history written by hand ------------------------------------------

T0 = 1_795_348_800.0  # 2026-11-22 12:00:00 UTC
DAY = 86_400.0
SNAP_JOB = """
config: {name: nightly-etl}
tasks:
  prepare: {command: 'true'}
  extract-orders-from-the-legacy-warehouse-with-currencies: {command: 'true', dependencies: [prepare],
                                                              max_attempts: 3}
  load: {command: 'true', dependencies: [extract-orders-from-the-legacy-warehouse-with-currencies]}
"""
LONG = "extract-orders-from-the-legacy-warehouse-with-currencies"
LIVE = "20261122T120000-demo"
# run id: (start, {task: (state, attempts, started after start, took, exit)}, run state or None: never ended)
PAST = {
    "20261119T120000-a1b2": (T0 - 3 * DAY, {"prepare": ("succeeded", 1, 0, 0.4, 0),
                                            LONG: ("succeeded", 1, 1, 61.5, 0),
                                            "load": ("succeeded", 1, 63, 9.0, 0)}, "succeeded"),
    "20261120T120000-c3d4": (T0 - 2 * DAY, {"prepare": ("succeeded", 1, 0, 0.5, 0),
                                            LONG: ("failed", 3, 1, 2.0, 75),
                                            "load": ("blocked", 0, None, None, None)}, "failed"),
    "20261121T120000-e5f6": (T0 - DAY, {"prepare": ("succeeded", 1, 0, 0.4, 0)}, None),
}


def hand_made(tmp_path: Path) -> Dashboard:
    """A frozen dashboard (run LIVE, its tasks pending) over three past runs: succeeded,
    failed, and one whose runner died (no end, no checkpoint)."""
    state = tmp_path / "state"
    job_dir = state / "nightly-etl"
    index = History(str(state))
    records = []
    for run_id, (start, tasks, outcome) in PAST.items():
        run_dir = job_dir / "runs" / run_id
        run_dir.mkdir(parents=True)
        base = {"job": "nightly-etl", "run_id": run_id}
        records.append((str(run_dir), {**base, "event": "run_start", "time": start, "started_at": start}))
        entries, end = {}, start
        for name, (st, attempts, after, took, code) in tasks.items():
            began = None if after is None else start + after
            done = None if took is None else began + took
            end = max(end, done or end)
            logs = [f"runs/{run_id}/{name}.{n}.log" for n in range(1, attempts + 1)]
            for n, path in enumerate(logs, 1):
                (job_dir / path).write_text(f"{name}: attempt {n}\n")
            entries[name] = {"state": st, "attempts": attempts, "attempt": attempts, "max_attempts": 3 if name == LONG
                             else 1, "exit_code": code, "reason": "", "started_at": iso(began), "finished_at": iso(done),
                             "logs": logs}
            if began is not None:
                records.append((str(run_dir), {**base, "event": "state", "task": name, "attempt": attempts,
                                               "state": st, "previous": "running", "started_at": began,
                                               "time": done, "exit_code": code}))
        if outcome:
            counts: dict[str, int] = {}
            for st, *_ in tasks.values():
                counts[st] = counts.get(st, 0) + 1
            records.append((str(run_dir), {**base, "event": "run_end", "time": end, "state": outcome,
                                           "exit_code": int(outcome != "succeeded"), "counts": counts}))
            (run_dir / "checkpoint.json").write_text(json.dumps({"run_id": run_id, "tasks": entries}))
    live_dir = job_dir / "runs" / LIVE
    live_dir.mkdir(parents=True)
    records.append((str(live_dir), {"job": "nightly-etl", "run_id": LIVE, "event": "run_start", "time": T0,
                                    "started_at": T0}))
    db = index.connect()
    index.apply(db, records)
    db.close()
    job = load_job(str(write(tmp_path / "job.yaml", SNAP_JOB)))
    s = Scheduler(job, state_dir=str(state))
    s.run_id, s.run_dir, s.started_at = LIVE, str(live_dir), T0
    return Dashboard(s, start_engine=False, clock=lambda: T0 + 42, keymap_path=str(tmp_path / "none.toml"))


@pytest.fixture
def utc(monkeypatch):
    """Local times in the pictures read the same on every machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def open_runs(pilot) -> None:
    app = pilot.app
    await await_for(lambda: app.past, what="the past durations")
    await pilot.press("H")
    await await_for(lambda: len(app.screen.runs) == 4, what="the runs listed")
    await pilot.pause()


async def open_failed_run(pilot) -> None:
    await open_runs(pilot)
    await pilot.press("down", "down", "enter")
    await await_for(lambda: getattr(pilot.app.screen, "tasks", None), what="its tasks")
    await pilot.pause()


async def test_the_frozen_dashboard_shows_estimates(tmp_path: Path, utc) -> None:
    """The live run's rows, pending, each with its last duration; the header sums the chain."""
    app = hand_made(tmp_path)
    async with app.run_test(size=(100, 24)) as pilot:
        await await_for(lambda: app.past, what="the past durations")
        assert row(app, "prepare") == "· prepare pending ~0.4s"
        assert row(app, "load") == "· load pending ~9.0s"
        assert app.time_left() == pytest.approx(0.4 + 61.5 + 9.0)
        await pilot.pause()
        assert "~1m10s left" in head(app)


def test_past_runs_80x24(snap_compare, tmp_path: Path, utc) -> None:
    """H at 80x24: this run first, then succeeded, failed, and 'interrupted' (its runner
    died), newest first, with local start times, durations and counts per state."""
    assert snap_compare(hand_made(tmp_path), terminal_size=(80, 24), run_before=open_runs)


def test_past_runs_no_color(snap_compare, tmp_path: Path, utc, monkeypatch) -> None:
    """The same with NO_COLOR: the states read as words, the cursor row reversed."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(hand_made(tmp_path), terminal_size=(80, 24), run_before=open_runs)


def test_a_past_runs_tasks_80x24(snap_compare, tmp_path: Path, utc) -> None:
    """Enter on the failed run: its tasks with state, tries, duration and exit; the long
    task name is cut, its facts stay."""
    assert snap_compare(hand_made(tmp_path), terminal_size=(80, 24), run_before=open_failed_run)


def test_dashboard_with_estimates_80x24(snap_compare, tmp_path: Path, utc) -> None:
    """prepare ▶ running '0.20s/~0.4s' (ran/took last time), load · pending '~9.0s'; the
    long-named task keeps its facts and drops its estimate; the header says '~1m10s left'."""
    app = hand_made(tmp_path)
    r = app.scheduler.tasks["prepare"]
    r.state, r.started_at, r.attempts = "running", T0 + 41.8, 1
    app.scheduler._running = 1

    async def estimates(pilot) -> None:
        await await_for(lambda: app.past, what="the past durations")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=estimates)
