"""The dashboard driven with Textual's pilot against real child processes."""

from __future__ import annotations

import time
from pathlib import Path

from textual.widgets import Log, Tree

from jobflow_tui.engine import Scheduler
from jobflow_tui.jobdef import load_job
from jobflow_tui.tui.app import Confirm, Dashboard, Help

from .conftest import alive, write


def dashboard(tmp_path: Path, text: str) -> Dashboard:
    job = load_job(str(write(tmp_path / "job.yaml", text)))
    return Dashboard(Scheduler(job, state_dir=str(tmp_path / "state")))


async def until(pilot, cond, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def row(app: Dashboard, name: str) -> str:
    return app.nodes[name].label.plain


async def test_retry_key_brings_back_a_failed_task_and_its_blocked_downstream(tmp_path: Path) -> None:
    app = dashboard(tmp_path, f"""
        tasks:
          gate: {{command: 'test -f {tmp_path}/ok || {{ echo "not yet"; exit 3; }}'}}
          after: {{command: 'echo after', dependencies: [gate]}}
    """)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: row(app, "after").startswith("⊘"), what="the blocked row")
        assert row(app, "gate").startswith("✗ gate  failed 1/1") and "exit 3" in row(app, "gate")
        assert row(app, "after").startswith("⊘ after  blocked")
        assert app.check_action("retry", ()) is True
        assert "not yet" in app.query_one("#log", Log).lines
        (tmp_path / "ok").touch()
        await pilot.press("r")
        await until(pilot, lambda: app.scheduler.tasks["after"].state == "succeeded")
        await pilot.pause(0.1)
        assert row(app, "gate").startswith("✓ gate  succeeded")
        assert app.check_action("retry", ()) is None  # disabled on a succeeded task
        await pilot.press("q")
    assert app.return_value == 0


async def test_abort_key_and_quit_with_confirmation_leave_nothing_running(tmp_path: Path) -> None:
    app = dashboard(tmp_path, """
        tasks:
          one: {command: 'echo one up; sleep 300'}
          two: {command: 'echo two up; sleep 300'}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: all(app.scheduler.tasks[n].pid for n in ("one", "two")))
        pids = [app.scheduler.tasks[n].pid for n in ("one", "two")]
        await pilot.press("a")  # the cursor starts on the first task
        await until(pilot, lambda: app.scheduler.tasks["one"].state == "aborted")
        assert not alive(pids[0]) and alive(pids[1])
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, Confirm), what="the quit question")
        await pilot.press("n")
        await pilot.pause(0.1)
        assert app.scheduler.tasks["two"].state == "running"
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert not alive(pids[1])
    assert app.scheduler.tasks["two"].state == "aborted"


async def test_j_k_move_and_the_log_pane_follows_the_cursor(tmp_path: Path) -> None:
    app = dashboard(tmp_path, """
        tasks:
          first: {command: 'echo from first'}
          second: {command: 'echo from second', dependencies: [first]}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["second"].state == "succeeded")
        await pilot.pause(0.1)
        assert app.query_one("#dag", Tree).cursor_node.data == "first"
        assert list(app.query_one("#log", Log).lines) == ["from first"]
        await pilot.press("j")
        assert app.query_one("#dag", Tree).cursor_node.data == "second"
        await pilot.pause(0.1)
        assert "from second" in app.query_one("#log", Log).lines
        await pilot.press("k")
        assert app.query_one("#dag", Tree).cursor_node.data == "first"
        await pilot.press("question_mark")
        assert isinstance(app.screen, Help)
        await pilot.press("escape")
        await pilot.press("q")


async def test_hostile_output_is_shown_as_plain_text(tmp_path: Path) -> None:
    app = dashboard(tmp_path, r"""
        tasks:
          evil: {command: 'printf "a\033]0;TITLE\007b\033]52;c;aGk=\007c\033[2Jd\302\233e\033[31mred\n"'}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["evil"].state == "succeeded")
        await pilot.pause(0.15)
        lines = list(app.query_one("#log", Log).lines)
        assert lines == ["abcdred"]  # C1 CSI swallows its final byte, as a terminal would
        await pilot.press("q")
