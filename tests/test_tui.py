"""The dashboard driven with Textual's pilot against real child processes: every key."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from jobflow_tui.engine import Scheduler
from jobflow_tui.jobdef import load_job
from jobflow_tui.tui.app import Dashboard
from jobflow_tui.tui.logview import LogView
from jobflow_tui.tui.screens import Confirm, Help
from jobflow_tui.tui.tasklist import TaskList

from .conftest import alive, await_for, write


def dashboard(tmp_path: Path, text: str, **kw) -> Dashboard:
    job = load_job(str(write(tmp_path / "job.yaml", text)))
    return Dashboard(Scheduler(job, state_dir=str(tmp_path / "state")), keymap_path=str(tmp_path / "keys.toml"), **kw)


async def until(pilot, cond, timeout: float = 20, what: str = "condition") -> None:
    """Wait, letting the app run, until `cond()` holds (a deadline, not a guess)."""
    await await_for(cond, timeout, what)


def row(app: Dashboard, name: str) -> str:
    """The text of a task's row in the list."""
    return app.label(name).plain


def log_lines(app: Dashboard) -> list[str]:
    return list(app.query_one("#log", LogView).buffer.lines)


def cursor(app: Dashboard) -> str:
    return app.selected


async def quit_now(pilot, app: Dashboard) -> None:
    await pilot.press("q")
    if isinstance(app.screen, Confirm):
        await pilot.press("y")
    await until(pilot, lambda: not app.is_running, what="the app to exit")


GATE = """
    tasks:
      gate: {{command: 'test -f {tmp}/ok || {{ echo "not yet"; exit 3; }}'}}
      after: {{command: 'echo after', dependencies: [gate]}}
"""


async def test_retry_key_brings_back_a_failed_task_and_its_blocked_downstream(tmp_path: Path) -> None:
    app = dashboard(tmp_path, GATE.format(tmp=tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: row(app, "after").startswith("⊘"), what="the blocked row")
        assert row(app, "gate").startswith("✗ gate failed")
        assert "exit 3" in row(app, "gate")
        assert row(app, "after") == "⊘ after blocked"
        assert app.check_action("retry", ()) is True
        await until(pilot, lambda: log_lines(app) == ["not yet"], what="the log on the next refresh")
        (tmp_path / "ok").touch()
        await pilot.press("r")
        await until(pilot, lambda: row(app, "after").startswith("✓ after succeeded"))
        assert row(app, "gate").startswith("✓ gate succeeded")
        assert app.check_action("retry", ()) is None  # shown disabled on a succeeded task
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)
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
        await until(pilot, lambda: row(app, "one").startswith("■ one aborted"))
        assert not alive(pids[0]) and alive(pids[1])
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, Confirm), what="the quit question")
        await pilot.press("n")
        await pilot.pause(0.1)
        assert app.is_running and app.scheduler.tasks["two"].state == "running"
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, what="the app to exit")
    assert not alive(pids[1])
    assert app.scheduler.tasks["two"].state == "aborted"
    assert app.return_value == 1


async def test_x_aborts_and_A_asks_before_aborting_all(tmp_path: Path) -> None:
    app = dashboard(tmp_path, """
        tasks:
          one: {command: 'sleep 300'}
          two: {command: 'sleep 300'}
          three: {command: 'sleep 300'}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: all(r.pid for r in app.scheduler.tasks.values()))
        await pilot.press("x")
        await until(pilot, lambda: app.scheduler.tasks["one"].state == "aborted")
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("escape")  # Escape means no
        await pilot.pause(0.2)
        assert app.scheduler.tasks["two"].state == "running"
        pids = [app.scheduler.tasks[n].pid for n in ("two", "three")]
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("enter")  # Enter takes the highlighted choice: yes
        await until(pilot, lambda: all(app.scheduler.tasks[n].state == "aborted" for n in ("two", "three")))
        assert not any(alive(p) for p in pids)
        await quit_now(pilot, app)


async def test_R_restarts_a_task_and_everything_after_it(tmp_path: Path) -> None:
    app = dashboard(tmp_path, f"""
        tasks:
          a: {{command: 'echo a >> {tmp_path}/a'}}
          b: {{command: 'echo b >> {tmp_path}/b', dependencies: [a]}}
          c: {{command: 'echo c >> {tmp_path}/c; sleep 300', dependencies: [b]}}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["c"].pid)
        first_c = app.scheduler.tasks["c"].pid
        await pilot.press("R")  # c runs below a: the operator is asked first
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: (tmp_path / "c").read_text() == "c\nc\n", what="c to run again")
        assert (tmp_path / "a").read_text() == "a\na\n" and (tmp_path / "b").read_text() == "b\nb\n"
        assert not alive(first_c)
        await quit_now(pilot, app)


async def test_R_on_a_finished_subtree_does_not_ask(tmp_path: Path) -> None:
    app = dashboard(tmp_path, f"tasks:\n  a: {{command: 'echo a >> {tmp_path}/a'}}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["a"].state == "succeeded")
        await pilot.press("R")
        await until(pilot, lambda: (tmp_path / "a").read_text() == "a\na\n")
        assert not isinstance(app.screen, Confirm)
        await quit_now(pilot, app)


async def test_p_pauses_launching_and_resumes(tmp_path: Path) -> None:
    app = dashboard(tmp_path, f"""
        tasks:
          first: {{command: 'while [ ! -f {tmp_path}/go ]; do sleep 0.05; done'}}
          second: {{command: 'echo second', dependencies: [first]}}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["first"].state == "running")
        await pilot.press("p")
        assert app.scheduler.paused
        (tmp_path / "go").touch()
        await until(pilot, lambda: app.scheduler.tasks["first"].state == "succeeded")
        await pilot.pause(0.3)
        assert app.scheduler.tasks["second"].state == "pending"
        assert "PAUSED" in str(app.query_one("#header").render())
        await pilot.press("p")
        await until(pilot, lambda: app.scheduler.tasks["second"].state == "succeeded")
        await quit_now(pilot, app)


async def test_j_k_enter_escape_and_the_log_pane_follows_the_cursor(tmp_path: Path) -> None:
    app = dashboard(tmp_path, """
        tasks:
          first: {command: 'echo from first'}
          second: {command: 'echo from second', dependencies: [first]}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["second"].state == "succeeded")
        await until(pilot, lambda: log_lines(app) == ["from first"])
        assert cursor(app) == "first"
        await pilot.press("j")
        assert cursor(app) == "second"
        await until(pilot, lambda: log_lines(app) == ["from second"])
        await pilot.press("k")
        assert cursor(app) == "first"
        await pilot.press("down")
        assert cursor(app) == "second"
        await pilot.press("enter")
        assert app.focused is app.query_one("#log", LogView)
        await pilot.press("escape")
        assert app.focused is app.query_one("#dag", TaskList)
        await quit_now(pilot, app)


async def test_flood_scroll_up_stops_following_and_f_resumes(tmp_path: Path) -> None:
    app = dashboard(tmp_path, f"""
        tasks:
          flood: {{command: 'i=0; while [ ! -f {tmp_path}/stop ]; do i=$((i+1)); echo "line $i"; done'}}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one("#log", LogView)
        await until(pilot, lambda: view.buffer.total > 20000, what="a flood of lines")
        assert len(view.buffer.lines) <= view.buffer.limit * 1.25  # the tail stays bounded
        await pilot.press("enter", "pageup", "pageup")
        await until(pilot, lambda: not view.follow and view.unseen > 0, what="new lines counted")
        assert "new lines" in str(app.query_one("#logtitle").render())
        top = view.scroll_y
        await pilot.pause(0.2)
        assert abs(view.scroll_y - top) <= 2 or view.scroll_y < top  # the view does not jump to the end
        await pilot.press("f")
        await until(pilot, lambda: view.follow and view.unseen == 0)
        (tmp_path / "stop").touch()
        await until(pilot, lambda: app.scheduler.tasks["flood"].state == "succeeded")
        await pilot.pause(0.2)
        assert view.scroll_y == view.max_scroll_y
        await quit_now(pilot, app)


async def test_search_next_and_previous(tmp_path: Path) -> None:
    app = dashboard(tmp_path, "tasks:\n  t: {command: 'for i in $(seq 1 300); do echo row $i; done; echo NEEDLE one; echo x; echo needle two'}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["t"].state == "succeeded")
        await until(pilot, lambda: len(log_lines(app)) == 303)
        view = app.query_one("#log", LogView)
        await pilot.press("slash")
        assert app.query_one("#search", Input).has_focus
        await pilot.press(*"needle", "enter")
        assert [m - view.buffer.dropped for m in view.matches] == [300, 302]
        assert view.match_index == 0
        assert "/needle 1/2" in str(app.query_one("#logtitle").render())
        await pilot.press("n")
        assert view.match_index == 1
        await pilot.press("N")
        assert view.match_index == 0
        await pilot.press("slash", *"absent", "enter")
        assert view.matches == []
        await quit_now(pilot, app)


async def test_brackets_show_earlier_attempts(tmp_path: Path) -> None:
    app = dashboard(tmp_path, "tasks:\n  t: {command: 'echo attempt $JOBFLOW_ATTEMPT; test $JOBFLOW_ATTEMPT -ge 3', max_attempts: 3}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["t"].state == "succeeded")
        await until(pilot, lambda: "attempt 3" in log_lines(app))
        await pilot.press("left_square_bracket")
        assert log_lines(app) == ["attempt 2"]
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert log_lines(app) == ["attempt 1"]
        assert "attempt 1/3 (earlier)" in str(app.query_one("#logtitle").render())
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert log_lines(app)[-1] == "attempt 3"
        await quit_now(pilot, app)


async def test_help_lists_every_key_and_honours_remapping(tmp_path: Path) -> None:
    write(tmp_path / "keys.toml", '[keys]\nretry = "t"\n')
    app = dashboard(tmp_path, GATE.format(tmp=tmp_path))
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["after"].state == "blocked")
        await pilot.press("question_mark")
        assert isinstance(app.screen, Help)
        text = str(app.screen.query_one("Static").render())
        for words in ("retry", "restart", "abort all running", "pause", "follow", "search", "$PAGER", "quit",
                      "earlier attempt"):
            assert words in text
        assert " t        retry a failed task" in text
        await pilot.press("escape")
        (tmp_path / "ok").touch()
        await pilot.press("t")  # the remapped retry key
        await until(pilot, lambda: app.scheduler.tasks["after"].state == "succeeded")
        await quit_now(pilot, app)


async def test_bad_keys_file_is_reported_and_defaults_apply(tmp_path: Path) -> None:
    write(tmp_path / "keys.toml", "[keys\nretry = \n")
    app = dashboard(tmp_path, GATE.format(tmp=tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["after"].state == "blocked")
        assert any("keys.toml" in n.message for n in app._notifications)
        (tmp_path / "ok").touch()
        await pilot.press("r")
        await until(pilot, lambda: app.scheduler.tasks["after"].state == "succeeded")
        await quit_now(pilot, app)


async def test_command_palette_runs_a_task_action(tmp_path: Path) -> None:
    app = dashboard(tmp_path, GATE.format(tmp=tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["after"].state == "blocked")
        (tmp_path / "ok").touch()
        await pilot.press("ctrl+p")
        await pilot.press(*"retry gate")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: app.scheduler.tasks["after"].state == "succeeded")
        await quit_now(pilot, app)


async def test_hostile_output_and_markup_names_are_shown_as_plain_text(tmp_path: Path) -> None:
    app = dashboard(tmp_path, r"""
        tasks:
          "[bold]x[/x]": {command: 'printf "a\033]0;TITLE\007b\033]52;c;aGk=\007c\033[2Jd\302\233e\033[31mred\n"'}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["[bold]x[/x]"].state == "succeeded")
        await until(pilot, lambda: log_lines(app) != [])
        # What is drawn: C1 CSI swallows its final byte, as a terminal would; colour stays
        view = app.query_one("#log", LogView)
        drawn = "".join(segment.text for segment in view.render_line(0)).rstrip()
        assert drawn == "abcdred"  # (colour itself shows in the snapshot tests)
        assert row(app, "[bold]x[/x]").startswith("✓ [bold]x[/x] succeeded")
        await quit_now(pilot, app)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_resize_keeps_every_task_visible(tmp_path: Path, size: tuple[int, int]) -> None:
    app = dashboard(tmp_path, "tasks:\n" + "".join(f"  t{i}: {{command: 'true'}}\n" for i in range(5)))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: all(r.state == "succeeded" for r in app.scheduler.tasks.values()))
        await pilot.resize_terminal(*size)
        await pilot.pause(0.2)
        tasks = app.query_one("#dag", TaskList)
        assert tasks.size.height >= 5 and tasks.size.width >= 20
        await quit_now(pilot, app)


async def test_space_folds_a_group_of_alike_tasks(tmp_path: Path) -> None:
    shards = "".join(f"  shard-{i:02d}: {{command: 'true'}}\n" for i in range(1, 6))
    app = dashboard(tmp_path, "tasks:\n  setup: {command: 'true'}\n" + shards + "  merge: {command: 'true'}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: all(r.state == "succeeded" for r in app.scheduler.tasks.values()))
        tasks = app.query_one("#dag", TaskList)
        assert len(tasks.rows) == 8  # setup, the group's row, 5 shards, merge
        await pilot.press("j")  # onto the group's row
        assert app.label(tasks.rows[1].members[0]).plain.startswith("✓ shard-01")
        assert app.group_label(tasks.rows[1]).plain == "▾ shard-… (5)  ✓5"
        await pilot.press("space")
        assert len(tasks.rows) == 3 and app.group_label(tasks.rows[1]).plain.startswith("▸ shard-… (5)")
        await pilot.press("j")
        assert app.selected == "merge"
        app.run_task_action("show", "shard-03")  # reaching a folded task unfolds its group
        await pilot.pause(0.1)
        assert app.selected == "shard-03" and len(tasks.rows) == 8
        await quit_now(pilot, app)


async def test_dialogs_over_a_running_job_do_not_disturb_it(tmp_path: Path) -> None:
    app = dashboard(tmp_path, f"""
        tasks:
          chatty: {{command: 'while [ ! -f {tmp_path}/stop ]; do echo tick; sleep 0.01; done'}}
          later: {{command: 'echo later', dependencies: [chatty]}}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(log_lines(app)) > 5)
        await pilot.press("question_mark")
        await pilot.pause(0.5)  # output and state changes keep arriving under the help screen
        (tmp_path / "stop").touch()
        await until(pilot, lambda: app.scheduler.tasks["later"].state == "succeeded")
        await pilot.pause(0.2)
        assert app.is_running and isinstance(app.screen, Help)
        await pilot.press("escape")
        assert row(app, "later").startswith("✓ later succeeded")
        await quit_now(pilot, app)


PYTASKS = '''
import os, sys, time
from jobflow_tui import Task, task

@task
class Gate(Task):
    path: str
    def run(self):
        print("checking", self.path)
        if not os.path.exists(self.path):
            raise RuntimeError("the gate is closed")
        return {"opened": True}

@task
class Waits(Task):
    def on_abort(self):
        print("told to stop", flush=True)
    def run(self):
        print("waiting", flush=True)
        time.sleep(300)
'''


async def test_python_tasks_stream_abort_and_retry_from_the_keys(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "gates.py", PYTASKS)
    app = dashboard(tmp_path, f"""
        tasks:
          waits: {{task: Waits}}
          gate: {{task: Gate, parameters: {{path: {tmp_path}/ok}}}}
          after: {{command: 'echo after', dependencies: [gate]}}
    """)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: cursor(app) == "gate", what="the cursor on the failed gate")
        await pilot.press("home")
        await until(pilot, lambda: log_lines(app) == ["waiting"], what="the Python task's line in the log pane")
        pid = app.scheduler.tasks["waits"].pid
        await pilot.press("a")
        await until(pilot, lambda: row(app, "waits").startswith("■ waits aborted"))
        await until(pilot, lambda: "told to stop" in log_lines(app), what="on_abort's line")
        assert pid is not None and not alive(pid)
        await until(pilot, lambda: row(app, "after").startswith("⊘"), what="the gate to fail")
        await pilot.press("j")
        await until(pilot, lambda: any("RuntimeError: the gate is closed" in line for line in log_lines(app)),
                    what="the traceback in the log pane")
        (tmp_path / "ok").touch()
        await pilot.press("r")
        await until(pilot, lambda: row(app, "after").startswith("✓ after succeeded"))
        assert app.scheduler.tasks["gate"].outputs == {"opened": True}
        await quit_now(pilot, app)
