"""Subflows on screen: in the task list a subflow is a group (its row, its tasks indented
under it without its prefix, folded with space), in the graph one node until opened."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult

from jobflow_tui.engine import Scheduler
from jobflow_tui.jobdef import load_job
from jobflow_tui.tui.app import Dashboard
from jobflow_tui.tui.graphgroups import Collapsed, aggregate_state
from jobflow_tui.tui.graphview import GraphScreen, GraphView
from jobflow_tui.tui.rows import group_row, task_row
from jobflow_tui.tui.tasklist import Group, TaskList

from .conftest import await_for, write

T0 = 1_795_348_800.0  # 2026-11-22 02:00:00 UTC
UNSET = object()

# Tasks named as a run with subflows names them: the subflows are given by hand.
JOB = """
config: {name: nightly-etl}
tasks:
  prepare: {command: 'true'}
  etl/extract: {command: 'true', dependencies: [prepare]}
  etl/checks/schema: {command: 'true', dependencies: [etl/extract]}
  etl/checks/quality: {command: 'true', dependencies: [etl/extract]}
  etl/load: {command: 'true', dependencies: [etl/checks/schema, etl/checks/quality]}
  report: {command: 'true', dependencies: [etl/load]}
"""
SUBFLOWS = {
    "etl": ["etl/extract", "etl/checks/schema", "etl/checks/quality", "etl/load"],
    "etl/checks": ["etl/checks/schema", "etl/checks/quality"],
}
# name: (state, started after T0, duration or None while running, exit code)
STATES = {
    "prepare": ("succeeded", 0, 0.4, 0),
    "etl/extract": ("succeeded", 1, 1.2, 0),
    "etl/checks/schema": ("succeeded", 3, 0.5, 0),
    "etl/checks/quality": ("running", 3, None, None),
}


def frozen_run(tmp_path: Path, job: str = JOB, states: dict = STATES, subflows: dict | None = SUBFLOWS) -> Scheduler:
    """A scheduler never started, its states (and, if given, its subflows) set by hand."""
    s = Scheduler(load_job(str(write(tmp_path / "job.yaml", job))), state_dir=str(tmp_path / "state"))
    s.started_at = T0
    if subflows is not None:
        s.subflows = subflows
    for name, (state, start, duration, code) in states.items():
        r = s.tasks[name]
        r.state, r.attempts, r.exit_code = state, 1, code
        r.started_at = T0 + start
        r.finished_at = None if duration is None else T0 + start + duration
    return s


class ListHost(App[None]):
    """The task list alone, with the row functions the dashboard gives it."""

    def __init__(self, run: Scheduler) -> None:
        super().__init__()
        self.job_run = run
        self.position = {n: i for i, n in enumerate(run.order)}

    def compose(self) -> ComposeResult:
        yield TaskList(self.job_run.order, self.label, self.group_label, subflows=self.job_run.subflows, id="dag")

    def label(self, name: str, width: int | None = None) -> Text:
        return task_row(name, self.job_run.tasks[name], T0 + 42, self.position, width)

    def group_label(self, group: Group) -> Text:
        return group_row(group.prefix, group.members, group.folded, self.job_run.tasks, name=group.name)


class GraphHost(App[None]):
    """The graph screen over nothing; keeps what it was dismissed with."""

    def __init__(self, run: Scheduler, selected: str | None = None) -> None:
        super().__init__()
        self.job_run, self.selected = run, selected
        self.result: object = UNSET

    def on_mount(self) -> None:
        self.push_screen(GraphScreen(self.job_run, T0 + 42, self.selected), self.chosen)

    def chosen(self, name: str | None) -> None:
        self.result = name


def lines(tasks: TaskList) -> list[str]:
    """The task list's rows as drawn (the visible ones), without trailing blanks."""
    return ["".join(s.text for s in tasks.render_line(y)).rstrip() for y in range(tasks.size.height)]


async def shown(app: App) -> TaskList:
    tasks = app.query_one("#dag", TaskList)
    await await_for(lambda: tasks.size.height > 0, what="the task list")
    return tasks


async def graph(pilot, app: App) -> GraphView:
    await await_for(lambda: isinstance(app.screen, GraphScreen) and app.screen.view.size.height > 0,
                    what="the graph screen")
    await pilot.pause()
    return app.screen.view


def nodes(view: GraphView) -> list[str]:
    return view.graph.order


# ---- the task list -------------------------------------------------------------------


async def test_a_subflow_is_a_group_with_its_tasks_indented_under_it(tmp_path: Path) -> None:
    app = ListHost(frozen_run(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        tasks = await shown(app)
        await pilot.pause()
        text = lines(tasks)
        assert text[0].startswith("✓ prepare succeeded")
        assert text[1] == "▾ etl (4)  ▶1  ✓2  ·1"
        assert text[2].startswith("  ✓ extract succeeded 1.20s")
        assert text[3] == "  ▾ checks (2)  ▶1  ✓1"
        assert text[4].startswith("    ✓ schema succeeded")
        assert text[5].startswith("    ▶ quality running 39.00s")
        assert text[6].startswith("  · load pending  ← etl/checks/schema, etl/checks/quality")
        assert text[7].startswith("· report pending")
        assert [r if isinstance(r, str) else r.name for r in tasks.rows] == [
            "prepare", "etl", "etl/extract", "checks", "etl/checks/schema", "etl/checks/quality", "etl/load",
            "report"]


async def test_space_folds_the_innermost_subflow_then_the_outer_one(tmp_path: Path) -> None:
    app = ListHost(frozen_run(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        tasks = await shown(app)
        tasks.move_to("etl/checks/quality")
        await pilot.press("space")  # on a task: its innermost subflow folds
        assert [r for r in tasks.rows if isinstance(r, str)] == ["prepare", "etl/extract", "etl/load", "report"]
        assert tasks.cursor == 3 and tasks.selected is None  # on the folded group's row
        await pilot.pause()
        assert lines(tasks)[3] == "  ▸ checks (2)  ▶1  ✓1"
        await pilot.press("up", "up", "space")  # the outer group's row: everything inside goes
        assert len(tasks.rows) == 3 and tasks.cursor == 1
        await pilot.pause()
        assert lines(tasks)[:4] == ["✓ prepare succeeded 0.40s", "▸ etl (4)  ▶1  ✓2  ·1", "· report pending", ""]
        await pilot.press("space")  # unfolded again: the inner one stays folded
        assert [r for r in tasks.rows if isinstance(r, str)] == ["prepare", "etl/extract", "etl/load", "report"]
        await pilot.press("space", "down")
        assert tasks.selected == "report"
        tasks.move_to("etl/checks/schema")  # reaching a task unfolds every group around it
        await pilot.pause()
        assert len(tasks.rows) == 8 and tasks.selected == "etl/checks/schema"
        assert not any(g.folded for g in tasks.groups)


async def test_enter_on_a_group_row_folds_it(tmp_path: Path) -> None:
    app = ListHost(frozen_run(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        tasks = await shown(app)
        await pilot.press("down", "enter")
        assert len(tasks.rows) == 3 and tasks.rows[1].folded


async def test_a_task_changing_redraws_the_rows_of_every_subflow_around_it(tmp_path: Path) -> None:
    run = frozen_run(tmp_path)
    app = ListHost(run)
    async with app.run_test(size=(80, 24)) as pilot:
        tasks = await shown(app)
        await pilot.pause()
        assert lines(tasks)[1] == "▾ etl (4)  ▶1  ✓2  ·1"
        r = run.tasks["etl/checks/quality"]
        r.state, r.exit_code, r.finished_at = "failed", 1, T0 + 4
        run.tasks["etl/load"].state = "blocked"
        tasks.relabel(["etl/checks/quality", "etl/load"])
        await pilot.pause()
        text = lines(tasks)
        assert text[1] == "▾ etl (4)  ✗1  ⊘1  ✓2"
        assert text[3] == "  ▾ checks (2)  ✗1  ✓1"
        assert text[5].startswith("    ✗ quality failed 1.00s exit 1")
        tasks.move_to("etl/extract")
        await pilot.press("space")  # folded, its row still counts what changes inside
        run.tasks["etl/load"].state = "pending"
        tasks.relabel(["etl/load"])
        await pilot.pause()
        assert lines(tasks)[1] == "▸ etl (4)  ✗1  ✓2  ·1"


async def test_without_subflows_alike_names_still_group(tmp_path: Path) -> None:
    shards = "".join(f"  shard-{i:02d}: {{command: 'true'}}\n" for i in range(1, 5))
    run = frozen_run(tmp_path, "tasks:\n" + shards, {}, {})
    app = ListHost(run)
    async with app.run_test(size=(80, 24)) as pilot:
        tasks = await shown(app)
        await pilot.pause()
        assert lines(tasks)[:2] == ["▾ shard-… (4)  ·4", "  · shard-01 pending"]


async def test_a_long_name_in_a_narrow_list_keeps_its_facts(tmp_path: Path) -> None:
    job = JOB.replace("etl/extract", "etl/extract-every-order-of-the-last-ninety-days")
    subflows = {f: [n.replace("etl/extract", "etl/extract-every-order-of-the-last-ninety-days") for n in names]
                for f, names in SUBFLOWS.items()}
    app = ListHost(frozen_run(tmp_path, job, {}, subflows))
    async with app.run_test(size=(30, 12)) as pilot:
        tasks = await shown(app)
        await pilot.pause()
        assert lines(tasks)[2] == "  · extract-every-ord… pending"  # all 30 cells


# ---- the graph -----------------------------------------------------------------------


def test_collapsed_nodes_take_the_edges_of_their_tasks() -> None:
    order = ["prepare", *SUBFLOWS["etl"], "report"]
    deps = {"etl/extract": ["prepare"], "etl/checks/schema": ["etl/extract"], "etl/checks/quality": ["etl/extract"],
            "etl/load": ["etl/checks/schema", "etl/checks/quality"], "report": ["etl/load", "prepare"]}
    closed = Collapsed(order, deps, SUBFLOWS)
    assert closed.order == ["prepare", "etl", "report"]
    assert closed.deps == {"prepare": [], "etl": ["prepare"], "report": ["etl", "prepare"]}
    half = Collapsed(order, deps, SUBFLOWS, {"etl"})
    assert half.order == ["prepare", "etl/extract", "etl/checks", "etl/load", "report"]
    assert half.deps["etl/load"] == ["etl/checks"] and half.flows == {"etl/checks"}
    # An inner subflow opened inside a closed one stays hidden in it.
    assert Collapsed(order, deps, SUBFLOWS, {"etl/checks"}).order == closed.order
    spans = {"etl/extract": (1.0, 2.0), "etl/checks/schema": (3.0, 6.5)}
    assert closed.seconds("etl", spans) == 5.5 and closed.seconds("report", spans) == 0.0


def test_a_subflow_shows_the_state_that_needs_the_reader_most() -> None:
    assert aggregate_state({"succeeded", "failed", "running"}) == "failed"
    assert aggregate_state({"succeeded", "retrying", "blocked"}) == "running"
    assert aggregate_state({"blocked", "aborted", "pending"}) == "blocked"
    assert aggregate_state({"aborted", "succeeded"}) == "aborted"
    assert aggregate_state({"succeeded"}) == "succeeded"
    assert aggregate_state({"succeeded", "pending"}) == "pending"


async def test_a_subflow_is_one_node_until_opened(tmp_path: Path) -> None:
    app = GraphHost(frozen_run(tmp_path), "etl/checks/quality")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await graph(pilot, app)
        g = view.graph
        assert nodes(view) == ["prepare", "etl", "report"]
        assert view.cursor == "etl"  # the selected task is inside it
        assert view.label("etl").plain == "▶ ▸ etl (4)"
        assert g.edge_cells("prepare", "etl") and g.edge_cells("etl", "report")
        assert "backspace close" in str(app.screen.query_one("#graph-keys").content)
        await pilot.press("enter")  # opens it: its own subflow stays closed
        assert nodes(view) == ["prepare", "etl/extract", "etl/checks", "etl/load", "report"]
        assert view.cursor == "etl/extract" and app.result is UNSET
        assert view.label("etl/checks").plain == "▶ ▸ etl/checks (2)"
        await pilot.press("right", "o")
        assert "etl/checks/quality" in nodes(view) and view.cursor == "etl/checks/schema"
        await pilot.press("backspace")  # closes the innermost open one around the cursor
        assert view.cursor == "etl/checks" and "etl/checks/schema" not in nodes(view)
        await pilot.press("space")
        assert view.cursor == "etl/checks/schema"
        await pilot.press("down", "enter")  # an ordinary task: the screen closes with it
        await await_for(lambda: app.result is not UNSET, what="the screen to close")
        assert app.result == "etl/checks/quality"


async def test_closing_from_inside_and_from_the_top(tmp_path: Path) -> None:
    app = GraphHost(frozen_run(tmp_path), "prepare")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await graph(pilot, app)
        await pilot.press("backspace", "space")  # nothing is open: nothing to close
        assert nodes(view) == ["prepare", "etl", "report"] and view.cursor == "prepare"
        await pilot.press("right", "space", "right", "enter", "backspace", "backspace")
        assert nodes(view) == ["prepare", "etl", "report"] and view.cursor == "etl"


async def test_the_critical_path_runs_over_what_is_drawn(tmp_path: Path) -> None:
    app = GraphHost(frozen_run(tmp_path), "prepare")
    async with app.run_test(size=(80, 24)) as pilot:
        await graph(pilot, app)
        screen = app.screen
        # etl: from extract's start (1s) to quality still running at 42s.
        assert screen.path == ["prepare", "etl"]
        assert "critical path 41.40s: prepare → etl" in str(screen.heading.content)
        await pilot.press("right", "enter")
        assert screen.path == ["prepare", "etl/extract", "etl/checks"]


async def test_without_subflows_the_legend_is_unchanged(tmp_path: Path) -> None:
    app = GraphHost(frozen_run(tmp_path, subflows={}), "prepare")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await graph(pilot, app)
        assert "etl/checks/schema" in nodes(view)
        assert "backspace" not in str(app.screen.query_one("#graph-keys").content)
        await pilot.press("space", "backspace")
        assert view.cursor == "prepare"


# ---- a real job file -----------------------------------------------------------------


MAIN = """
config: {name: nightly}
tasks:
  prepare: {command: 'true'}
  etl: {job: etl.yaml, dependencies: [prepare]}
  report: {command: 'true', dependencies: [etl]}
"""
ETL = """
tasks:
  extract: {command: 'true'}
  checks: {job: checks.yaml, dependencies: [extract]}
  load: {command: 'true', dependencies: [checks]}
"""
CHECKS = """
tasks:
  schema: {command: 'true'}
  quality: {command: 'true', dependencies: [schema]}
"""


def real_run(tmp_path: Path) -> Scheduler:
    write(tmp_path / "etl.yaml", ETL)
    write(tmp_path / "checks.yaml", CHECKS)
    return frozen_run(tmp_path, MAIN, {"etl/checks/schema": ("failed", 2, 0.3, 2)}, subflows=None)


async def test_a_job_file_with_nested_subflows(tmp_path: Path) -> None:
    run = real_run(tmp_path)
    assert set(run.subflows) == {"etl", "etl/checks"}
    app = ListHost(run)
    async with app.run_test(size=(80, 24)) as pilot:
        tasks = await shown(app)
        await pilot.pause()
        assert lines(tasks)[1:5] == ["▾ etl (4)  ✗1  ·3", "  · extract pending", "  ▾ checks (2)  ✗1  ·1",
                                     "    ✗ schema failed 0.30s exit 2"]
    app = GraphHost(run, None)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await graph(pilot, app)
        assert nodes(view) == ["prepare", "etl", "report"]
        assert view.label("etl").plain == "✗ ▸ etl (4)"


# ---- pictures ------------------------------------------------------------------------


def test_task_list_with_a_nested_subflow_80x24(snap_compare, tmp_path: Path) -> None:
    """The task list alone at 80x24: `▾ etl (4)` with its counts, extract and load indented
    under it without the `etl/` prefix, `▾ checks (2)` further in with schema and quality
    further still; the cursor on quality (running)."""
    app = ListHost(frozen_run(tmp_path))

    async def select(pilot) -> None:
        app.query_one(TaskList).move_to("etl/checks/quality")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=select)


def test_graph_with_a_collapsed_subflow_80x24(snap_compare, tmp_path: Path) -> None:
    """The graph at 80x24: prepare → `▶ ▸ etl (4)` (running: quality runs inside) → report;
    the critical path prepare → etl heavy; the legend names enter and backspace."""
    assert snap_compare(GraphHost(frozen_run(tmp_path), "etl"), terminal_size=(80, 24))


# ---- in the dashboard ----------------------------------------------------------------


async def test_the_dashboard_groups_and_draws_subflows(tmp_path: Path) -> None:
    app = Dashboard(real_run(tmp_path), start_engine=False, clock=lambda: T0 + 42,
                    keymap_path=str(tmp_path / "keys.toml"))
    async with app.run_test(size=(80, 24)) as pilot:
        tasks = await shown(app)
        await pilot.pause()
        assert lines(tasks)[1:4] == ["▾ etl (4)  ✗1  ·3", "  · extract pending", "  ▾ checks (2)  ✗1  ·1"]
        await pilot.press("g")
        view = await graph(pilot, app)
        assert nodes(view) == ["prepare", "etl", "report"] and view.cursor == "prepare"
        await pilot.press("right", "enter", "right", "enter", "right", "enter")  # into etl, into checks, quality
        await await_for(lambda: not isinstance(app.screen, GraphScreen), what="the graph to close")
        assert app.selected == "etl/checks/quality"


async def test_r_and_R_on_a_subflow_s_group_row_act_on_the_whole_subflow(tmp_path: Path) -> None:
    from .test_tui import dashboard, quit_now, until

    write(tmp_path / "sub.yaml", f"""
        tasks:
          prepare: {{command: 'echo prepared'}}
          gate: {{command: 'test -e {tmp_path}/open && echo open', dependencies: [prepare]}}
    """)
    app = dashboard(tmp_path, """
        tasks:
          first: {command: 'echo first'}
          checks: {job: sub.yaml, dependencies: [first]}
          last: {command: 'echo last', dependencies: [checks]}
    """)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.selected == "checks/gate", what="the cursor on the failure")
        await pilot.press("k", "k")  # prepare, then the subflow's own row
        assert app.tasklist.selected_subflow == "checks" and app.selected is None
        assert app.check_action("retry", ()) is True and app.check_action("abort", ()) is None
        (tmp_path / "open").touch()
        await pilot.press("r")
        await until(pilot, lambda: app.scheduler.tasks["last"].state == "succeeded")
        await pilot.press("R")  # nothing runs: no question, the whole subflow and what follows run again
        await until(pilot, lambda: app.scheduler.tasks["last"].attempts == 2 and
                    app.scheduler.tasks["last"].state == "succeeded")
        assert app.scheduler.tasks["checks/prepare"].attempts == 2 and app.scheduler.tasks["first"].attempts == 1
        await quit_now(pilot, app)
