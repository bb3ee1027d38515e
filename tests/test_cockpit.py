"""The operator's cockpit, driven with the pilot against real child processes: follow that
always shows the newest line, wrap and zoom, the cursor that finds the failure, marking and
copying lines, the failure report, the merged log, and a screen that fits 80x24."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobflow_tui.tui.keybar import KeyBar
from jobflow_tui.tui.screens import Help

from .test_tui import dashboard, quit_now, row, until


def visible(app) -> list[str]:
    """The log pane's rows as the operator sees them."""
    view = app.logview
    return [view.render_line(y).text.rstrip() for y in range(view.scrollable_content_region.height)]


def shows(app, text: str) -> bool:
    return any(text in line for line in visible(app))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_follow_shows_the_newest_line_after_bursts_at_start_middle_and_end(tmp_path: Path, size) -> None:
    app = dashboard(tmp_path, f"""
        tasks:
          burst:
            command: |
              seq -f 'start %g' 50
              while [ ! -f {tmp_path}/mid ]; do sleep 0.05; done
              seq -f 'middle %g' 50
              while [ ! -f {tmp_path}/end ]; do sleep 0.05; done
              seq -f 'end %g' 50
    """)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: shows(app, "start 50"), what="the first burst's last line in view")
        assert app.logview.follow
        (tmp_path / "mid").touch()
        await until(pilot, lambda: shows(app, "middle 50"), what="the second burst's last line in view")
        (tmp_path / "end").touch()
        await until(pilot, lambda: app.scheduler.tasks["burst"].state == "succeeded")
        await until(pilot, lambda: shows(app, "end 50"), what="the last burst's last line in view")
        assert not shows(app, "end 1 ") and visible(app)[-1] == "end 50"
        await quit_now(pilot, app)


LONG = "x" * 150 + " THE-END-OF-IT"


async def test_long_lines_wrap_by_default_and_w_switches_to_sideways_scrolling(tmp_path: Path) -> None:
    app = dashboard(tmp_path, f"tasks:\n  t: {{command: 'echo first; echo \"{LONG}\"; echo last'}}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["t"].state == "succeeded")
        await until(pilot, lambda: shows(app, "THE-END-OF-IT"), what="the end of the long line, wrapped")
        rows = visible(app)
        assert rows.index("last") - rows.index("first") > 2  # the long line takes several rows
        await pilot.press("w")
        assert not app.logview.wrap
        await until(pilot, lambda: not shows(app, "THE-END-OF-IT") and shows(app, "last"))
        await pilot.press("enter", "end")  # sideways: End goes to the end of the longest line
        await pilot.press("w")
        await until(pilot, lambda: shows(app, "THE-END-OF-IT") and shows(app, "first"))
        await quit_now(pilot, app)


async def test_z_zooms_the_log_pane_and_back(tmp_path: Path) -> None:
    app = dashboard(tmp_path, "tasks:\n  t: {command: 'echo hello'}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        narrow = app.logview.size.width
        await pilot.press("z")
        await until(pilot, lambda: app.logview.size.width >= 76, what="the log pane full width")
        assert not app.query_one("#left").display and app.focused is app.logview
        await pilot.press("z")
        await until(pilot, lambda: app.logview.size.width == narrow)
        await pilot.press("z", "escape")  # Esc leaves the zoom too, back to the tasks
        await until(pilot, lambda: app.logview.size.width == narrow)
        assert app.focused is app.tasklist
        await quit_now(pilot, app)


FAILURES = """
    tasks:
      ok: {{command: 'true'}}
      first-bad: {{command: 'echo broken; exit 3', dependencies: [ok]}}
      fine: {{command: 'true', dependencies: [ok]}}
      second-bad: {{command: 'while [ ! -f {tmp}/go ]; do sleep 0.05; done; exit 4', dependencies: [ok]}}
      last: {{command: 'true', dependencies: [fine]}}
"""


async def test_cursor_goes_to_the_first_failure_and_e_walks_the_failures(tmp_path: Path) -> None:
    app = dashboard(tmp_path, FAILURES.format(tmp=tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.selected == "first-bad", what="the cursor on the failure, with no key")
        (tmp_path / "go").touch()
        await until(pilot, lambda: app.scheduler.tasks["second-bad"].state == "failed")
        await pilot.pause(0.2)
        assert app.selected == "first-bad"  # the first failure keeps the cursor
        await pilot.press("e")
        assert app.selected == "second-bad"
        await pilot.press("e")
        assert app.selected == "first-bad"  # round the end
        await quit_now(pilot, app)


async def test_the_cursor_stays_where_the_operator_put_it(tmp_path: Path) -> None:
    app = dashboard(tmp_path, FAILURES.format(tmp=tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.selected == "first-bad")
        await pilot.press("j")
        chosen = app.selected
        (tmp_path / "go").touch()
        await until(pilot, lambda: app.scheduler.tasks["second-bad"].state == "failed")
        await pilot.pause(0.2)
        assert app.selected == chosen
        await quit_now(pilot, app)


async def test_e_with_no_failure_says_so(tmp_path: Path) -> None:
    app = dashboard(tmp_path, "tasks:\n  t: {command: 'true'}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["t"].state == "succeeded")
        await pilot.press("e")
        assert any("no task has failed" in str(n.message) for n in app._notifications)
        await quit_now(pilot, app)


async def test_v_marks_lines_and_y_copies_them_to_the_clipboard_and_a_file(tmp_path: Path) -> None:
    app = dashboard(tmp_path, "tasks:\n  t: {command: 'for i in $(seq 1 30); do printf \"\\\\033[31mline %s\\\\033[0m\\\\n\" $i; done'}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["t"].state == "succeeded")
        await until(pilot, lambda: shows(app, "line 30"))
        assert app.check_action("copy", ()) is None  # nothing marked yet
        await pilot.press("v")
        assert app.focused is app.logview and app.logview.marked() == ["line 30"]
        await pilot.press("up", "k")
        assert "marking 3 line(s)" in str(app.query_one("#logtitle").render())
        await pilot.press("y")
        copied = "line 28\nline 29\nline 30\n"  # plain text: the colours stay behind
        assert app.clipboard == copied
        saved = Path(app.scheduler.run_dir) / "copied.txt"
        assert saved.read_text() == copied
        assert any(str(saved) in str(n.message) for n in app._notifications)
        assert app.logview.mark is None
        await pilot.press("v", "escape")  # Esc stops marking, copies nothing
        assert app.logview.mark is None and app.focused is app.logview
        await quit_now(pilot, app)


async def test_E_writes_and_copies_a_failure_report(tmp_path: Path) -> None:
    app = dashboard(tmp_path, """
        config: {env: {API_TOKEN: s3cr3t-value}}
        tasks:
          load:
            command: 'for i in $(seq 1 80); do echo "row $i"; done; echo "db refused" >&2; exit 3'
            env: {MODE: full}
            max_attempts: 2
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["load"].state == "failed")
        await pilot.press("E")
        report = Path(app.scheduler.run_dir) / "report-load.txt"
        await until(pilot, report.exists, what="the report file")
        text = report.read_text()
        assert app.clipboard == text
        assert "command:  for i in $(seq 1 80)" in text
        assert "state:    failed, exit 3" in text
        assert "attempt:  2 of 2" in text
        assert "env:      API_TOKEN, MODE" in text and "s3cr3t" not in text  # names, never values
        tail = text.split("--- last 50 lines of attempt 2 ---\n")[1].splitlines()
        assert len(tail) == 50 and tail[-1] == "db refused" and tail[0] == "row 32"
        await quit_now(pilot, app)


async def test_L_merges_every_task_s_output_with_search(tmp_path: Path) -> None:
    app = dashboard(tmp_path, """
        tasks:
          alpha: {command: 'echo one from alpha; echo needle in alpha'}
          beta: {command: 'echo one from beta', dependencies: [alpha]}
    """)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["beta"].state == "succeeded")
        await pilot.press("L")
        lines = [line for line in visible(app) if line]
        assert "alpha | one from alpha" in lines and "beta | one from beta" in lines
        assert lines.index("alpha | needle in alpha") < lines.index("beta | one from beta")
        assert "alpha | ── succeeded (exit 0) ──" in lines
        assert "all tasks" in str(app.query_one("#logtitle").render())
        await pilot.press("slash", *"needle", "enter")
        assert len(app.logview.matches) == 1
        await pilot.press("L")
        assert [x for x in visible(app) if x] == ["one from alpha", "needle in alpha"]
        await quit_now(pilot, app)


async def test_help_shows_every_key_at_80x24_without_scrolling(tmp_path: Path) -> None:
    from jobflow_tui.tui.actions import ACTIONS

    app = dashboard(tmp_path, "tasks:\n  t: {command: 'true'}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, Help)
        box = app.screen.query_one("#help")
        assert box.max_scroll_y == 0 and box.region.bottom <= 24
        text = str(box.query_one("Static").render())
        for a in ACTIONS:
            assert a.description in text, a.description
        await pilot.press("escape")
        await quit_now(pilot, app)


@pytest.mark.parametrize("width", [80, 200])
async def test_footer_and_header_fit_their_width(tmp_path: Path, width: int) -> None:
    app = dashboard(tmp_path, "config: {name: a-rather-long-job-name-for-a-header}\ntasks:\n  t: {command: 'exit 2'}\n")
    async with app.run_test(size=(width, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["t"].state == "failed")
        await pilot.pause(0.1)
        footer = str(app.query_one(KeyBar).render())
        assert len(footer) <= width and "? help" in footer and "q quit" in footer and "r retry" in footer
        if width == 200:
            assert "A abort all" in footer and "d detach" in footer
        head = str(app.header.render())
        assert len(head) <= width and app.scheduler.run_id in head
        await quit_now(pilot, app)


async def test_rows_keep_their_facts_at_80_columns(tmp_path: Path) -> None:
    name = "extract-orders-from-the-upstream-api-of-the-shop"
    app = dashboard(tmp_path, f"tasks:\n  {name}: {{command: 'exit 3', max_attempts: 2}}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks[name].state == "failed")
        width = app.tasklist.size.width
        text = app.tasklist.render_line(0).text.rstrip()
        assert len(text) <= width
        assert text.startswith("✗ extract-o") and "…" in text
        assert text.endswith("failed 2/2 " + row(app, name).split(" 2/2 ")[1])  # duration and exit whole
        assert "exit 3" in text
        await quit_now(pilot, app)


async def test_a_click_selects_a_task(tmp_path: Path) -> None:
    app = dashboard(tmp_path, "tasks:\n  one: {command: 'echo 1'}\n  two: {command: 'echo 2'}\n  three: {command: 'echo 3'}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["three"].state == "succeeded")
        await pilot.click("#dag", offset=(4, 3))  # the border, then rows one, two, three
        assert app.selected == "three"
        await quit_now(pilot, app)


async def test_g_shows_the_graph_live_and_enter_goes_to_the_task(tmp_path: Path) -> None:
    from jobflow_tui.tui.graphview import GraphScreen

    app = dashboard(tmp_path, f"""
        tasks:
          setup: {{command: 'true'}}
          left: {{command: 'true', dependencies: [setup]}}
          right: {{command: 'while [ ! -f {tmp_path}/go ]; do sleep 0.05; done', dependencies: [setup]}}
          join: {{command: 'true', dependencies: [left, right]}}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["right"].state == "running")
        await pilot.press("g")
        assert isinstance(app.screen, GraphScreen)
        view = app.screen.view
        text = lambda: "\n".join(view.render_line(y).text for y in range(view.size.height))  # noqa: E731
        assert "▶ right" in text() and "· join" in text()
        (tmp_path / "go").touch()
        await until(pilot, lambda: "✓ join" in text(), what="the graph following the run")
        await pilot.press("right", "down", "right", "enter")
        assert not isinstance(app.screen, GraphScreen)
        assert app.selected == "join" and app.shown == "join"
        await quit_now(pilot, app)


async def test_the_graph_of_a_1000_task_job_opens_and_scrolls(tmp_path: Path) -> None:
    from jobflow_tui.tui.graphview import GraphScreen

    tasks = "\n".join(f"  t{i:04d}: {{command: 'true', dependencies: [t{(i * 7) % i:04d}]}}" if i else
                      "  t0000: {command: 'true'}" for i in range(1000))
    app = dashboard(tmp_path, f"tasks:\n{tasks}\n", start_engine=False)  # nothing needs to run
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        assert isinstance(app.screen, GraphScreen)
        await pilot.press("end", "pagedown", "down", "down", "right")
        assert app.screen.view.cursor != "t0000"
        await pilot.press("escape")
        await quit_now(pilot, app)


async def test_a_line_of_tabs_wraps_whole(tmp_path: Path) -> None:
    app = dashboard(tmp_path, "tasks:\n  t: {command: 'printf \"a\\\\t%.0s\" $(seq 1 20); echo END'}\n")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.scheduler.tasks["t"].state == "succeeded")
        await until(pilot, lambda: shows(app, "END"), what="the end of a line of tabs, wrapped")
        rows = visible(app)
        end = next(i for i, row in enumerate(rows) if "END" in row)
        assert end >= 3 and rows[0].startswith("a ")  # 160 cells of tabs over several rows, none cut
        await quit_now(pilot, app)
