"""The graph screen (g): the DAG laid out with each task once, edges and arrows where a
reader looks for them, the critical path marked, and the keys that move and choose."""

from __future__ import annotations

import random
import re
from pathlib import Path

from rich.style import Style
from textual.app import App
from textual.binding import Binding

from jobflow_tui.engine import Scheduler
from jobflow_tui.tui.graphlayout import _LIGHT, ARROW_CHAR, HORIZONTAL, VERTICAL, GraphLayout, critical_path
from jobflow_tui.tui.graphview import GraphScreen, GraphView

from .conftest import await_for
from .test_snapshots import FAILED, T0, frozen_run

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
UNSET = object()


# ---- helpers -------------------------------------------------------------------------


def layout(deps: dict[str, list[str]]) -> GraphLayout:
    return GraphLayout(list(deps), deps)


def picture(g: GraphLayout) -> list[str]:
    """The layout as plain text, each task written as 'o NAME'."""
    rows = []
    for r in range(g.height):
        line = list(g.row_text(r))
        for name in g.row_tasks(r):
            p = g.places[name]
            line[p.x:p.x + p.width] = ("o " + name).ljust(p.width)[:p.width]
        rows.append("".join(line).rstrip())
    return rows


def arrow_into(g: GraphLayout, name: str) -> tuple[int, int]:
    p = g.places[name]
    return p.row, p.x - 2


def drawn(g: GraphLayout, source: str, target: str) -> bool:
    """The edge has cells, all of them drawn, and it ends at the arrow before the target."""
    cells = g.edge_cells(source, target)
    return bool(cells) and all(g.row_text(r)[x] != " " for r, x, _ in cells) \
        and cells[-1][:2] == arrow_into(g, target) and g.row_text(cells[-1][0])[cells[-1][1]] == ARROW_CHAR


class Host(App[None]):
    """Pushes the graph screen over nothing, and keeps what it was dismissed with; `r` is
    one of its own keys, as the dashboard's retry is."""

    BINDINGS = [Binding("r", "retry", "retry")]

    def __init__(self, job_run: Scheduler, selected: str | None) -> None:
        super().__init__()
        self.job_run, self.selected = job_run, selected
        self.result: object = UNSET
        self.retried = False

    def action_retry(self) -> None:
        self.retried = True

    def on_mount(self) -> None:
        self.push_screen(GraphScreen(self.job_run, T0 + 42, self.selected), self.chosen)

    def chosen(self, name: str | None) -> None:
        self.result = name


def graph_text(view: GraphView) -> str:
    """Every row of the graph as drawn, whole (not only what the window shows)."""
    width = view.graph.width
    return "\n".join("".join(s.text for s in view._draw(r, 0, width, Style())) for r in range(view.graph.height))


def visible_text(view: GraphView) -> list[str]:
    return ["".join(s.text for s in view.render_line(y)) for y in range(view.size.height)]


async def opened(pilot, app: Host) -> GraphView:
    await await_for(lambda: isinstance(app.screen, GraphScreen) and app.screen.view.size.height > 0,
                    what="the graph screen")
    await pilot.pause()
    return app.screen.view


# ---- layout --------------------------------------------------------------------------


def test_diamond_has_three_columns_and_both_edges_arrive_at_the_join() -> None:
    g = layout(DIAMOND)
    assert g.columns == [["a"], ["b", "c"], ["d"]]
    text = "\n".join(picture(g))
    assert all(text.count(f"o {n}") == 1 for n in "abcd"), text
    assert drawn(g, "b", "d") and drawn(g, "c", "d"), text
    # Both lines reach the one arrow before d, on d's row.
    row, x = arrow_into(g, "d")
    assert picture(g)[row][x - 2:x + 3] == "┬─→ o", text
    assert g.edge_cells("a", "d") == []  # no such edge


def test_a_task_many_depend_on_is_drawn_once() -> None:
    deps = {"base": [], **{f"user-{i:02d}": ["base"] for i in range(30)}}
    g = layout(deps)
    text = "\n".join(picture(g))
    assert text.count("o base") == 1
    assert len(g.columns) == 2 and len(g.columns[1]) == 30
    assert all(drawn(g, "base", f"user-{i:02d}") for i in range(30))


def test_a_long_edge_runs_through_the_middle_columns_on_one_track() -> None:
    """a feeds b and three tasks two layers further: one line leaves a through the middle
    column, not three."""
    deps = {"a": [], "b": ["a"], "c": ["b"], "z1": ["a", "c"], "z2": ["a", "c"], "z3": ["a", "c"]}
    g = layout(deps)
    assert g.layer == {"a": 0, "b": 1, "c": 2, "z1": 3, "z2": 3, "z3": 3}
    for k in (1, 2):
        x, w = g.col_x[k], g.col_width[k]
        through = [r for r in range(g.height) if g.row_text(r)[x:x + w] == "─" * w]
        assert len(through) == 1, "\n".join(picture(g))
    assert all(drawn(g, "a", z) and drawn(g, "c", z) for z in ("z1", "z2", "z3"))


def test_two_chains_lie_straight_without_crossing() -> None:
    """Listed interleaved, so the job's order alone would cross them."""
    deps = {"a1": [], "b1": [], "b2": ["b1"], "a2": ["a1"], "b3": ["b2"], "a3": ["a2"]}
    g = layout(deps)
    assert g.row["a1"] == g.row["a2"] == g.row["a3"]
    assert g.row["b1"] == g.row["b2"] == g.row["b3"]
    assert not set("".join(g.row_text(r) for r in range(g.height))) & set("│┼┬┴┐┘┌└")


def test_a_random_dag_of_1000_tasks_places_every_task_once() -> None:
    rnd = random.Random(7)
    names = [f"task-{i:04d}" for i in range(1000)]
    deps = {n: rnd.sample(names[:i], min(i, rnd.randint(0, 3))) for i, n in enumerate(names)}
    g = GraphLayout(names, deps)
    on_rows = [n for r in range(g.height) for n in g.row_tasks(r)]
    assert sorted(on_rows) == names
    assert len({(p.row, p.x) for p in g.places.values()}) == 1000
    assert all(g.layer[n] > max((g.layer[d] for d in deps[n]), default=-1) for n in names)
    edges = [(d, n) for n in names[::10] for d in deps[n]]
    assert edges and all(g.edge_cells(d, n)[-1][:2] == arrow_into(g, n) for d, n in edges)


def test_every_edge_is_drawn_whole_in_random_dags() -> None:
    """Each cell an edge runs through shows the directions it goes (or is a crossing, where
    the lane passes under another line), and it ends at its target's arrow."""
    for seed in range(40):
        rnd = random.Random(seed)
        names = [f"t{i}" for i in range(rnd.randint(2, 60))]
        window = rnd.choice([3, 10, 60])
        deps = {n: rnd.sample(names[max(0, i - window):i], min(i - max(0, i - window), rnd.randint(0, 3)))
                for i, n in enumerate(names)}
        g = GraphLayout(names, deps)
        for n in names:
            for d in deps[n]:
                *line, _ = g.edge_cells(d, n)
                for r, x, bits in line:
                    base = _LIGHT.get(g.row_text(r)[x], 0)
                    assert not bits & ~base or (base, bits) == (HORIZONTAL, VERTICAL), (seed, d, n, r, x)
                assert drawn(g, d, n), (seed, d, n)


def test_moving_between_tasks() -> None:
    g = layout(DIAMOND)
    assert g.step("b", "down") == "c" and g.step("c", "up") == "b" and g.step("b", "up") is None
    assert g.step("a", "right") == "b" and g.step("c", "right") == "d" and g.step("d", "left") == "b"
    assert g.step("a", "left") is None and g.step("d", "right") is None
    p = g.places["c"]
    assert g.task_at(p.row, p.x + 2) == "c" and g.task_at(p.row, p.x - 1) is None


def test_critical_path_is_the_chain_with_the_most_seconds() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}
    assert critical_path(list(deps), deps, {"a": 1, "b": 2, "c": 5, "d": 1, "e": 6}) == ["a", "c", "d"]
    # A tie goes to the task earlier in the order; a task not started adds nothing.
    assert critical_path(list(deps), deps, {"a": 1, "b": 3, "c": 3}) == ["a", "b"]
    assert critical_path(list(deps), deps, {"e": 9, "a": 4, "d": 5}) == ["a", "b", "d"]
    assert critical_path(list(deps), deps, {}) == []


# ---- the screen ----------------------------------------------------------------------


async def test_arrows_move_and_enter_returns_the_task(tmp_path: Path) -> None:
    app = Host(frozen_run(tmp_path), "prepare")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app)
        assert view.cursor == "prepare"
        await pilot.press("right")
        assert view.cursor == "extract-users"
        await pilot.press("down")
        assert view.cursor == "extract-orders"
        await pilot.press("l", "h", "j", "k")  # hjkl too: transform, nearest to the left, ...
        assert view.cursor == "extract-users"
        await pilot.press("down", "enter")
        await await_for(lambda: app.result is not UNSET, what="the screen to close")
        assert app.result == "extract-orders"


async def test_the_app_keys_wait_while_the_graph_is_shown(tmp_path: Path) -> None:
    """The dashboard's keys act on its task list, hidden under the graph: they do nothing
    there (j moves in the graph instead)."""
    app = Host(frozen_run(tmp_path), "extract-users")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app)
        await pilot.press("r", "j")
        assert not app.retried and view.cursor == "extract-orders"
        await pilot.press("escape")
        await await_for(lambda: app.result is not UNSET, what="the screen to close")
        await pilot.press("r")
        assert app.retried


async def test_escape_g_and_q_return_nothing(tmp_path: Path) -> None:
    for key in ("escape", "g", "q"):
        app = Host(frozen_run(tmp_path / key), "approve")
        async with app.run_test(size=(80, 24)) as pilot:
            await opened(pilot, app)
            await pilot.press(key)
            await await_for(lambda: app.result is not UNSET, what="the screen to close")  # noqa: B023
            assert app.result is None, key


async def test_every_task_is_drawn_once_and_the_cursor_stays_in_view(tmp_path: Path) -> None:
    app = Host(frozen_run(tmp_path), "prepare")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app)
        text = graph_text(view)
        for name in FAILED:
            assert len(re.findall(rf"(?<![\w-]){name}(?![\w-])", text)) == 1, name
        assert "✓ prepare" in visible_text(view)[0]
        await pilot.press("right", "right", "right", "right", "right")
        assert view.cursor == "report"
        assert view.scroll_x > 0
        assert any("⊘ report" in line for line in visible_text(view))


async def test_critical_path_is_named_and_drawn_heavy(tmp_path: Path) -> None:
    app = Host(frozen_run(tmp_path), None)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app)
        screen = app.screen
        assert screen.path == ["prepare", "extract-users", "transform", "approve"]
        title = str(screen.heading.content)
        assert "critical path 2.70s: prepare → extract-users → transform → approve" in title
        first = graph_text(view).splitlines()[0]
        assert "━" in first  # prepare to extract-users, in heavy line
        row = view.graph.row["extract-orders"]
        assert "━" not in graph_text(view).splitlines()[row].split("extract-orders")[1]


async def test_states_refresh_without_a_new_layout(tmp_path: Path) -> None:
    run = frozen_run(tmp_path)
    app = Host(run, "load")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app)
        graph = view.graph
        assert "⊘ load" in graph_text(view)
        run.tasks["approve"].state, run.tasks["approve"].finished_at = "succeeded", T0 + 50
        run.tasks["load"].state, run.tasks["load"].started_at = "running", T0 + 50
        app.screen.refresh_states(T0 + 60)
        assert "▶ load" in graph_text(view)
        assert view.graph is graph
        assert app.screen.path[-2:] == ["approve", "load"]
        await pilot.pause()
        assert any("▶ load" in line for line in visible_text(view))


async def test_a_click_selects_a_task(tmp_path: Path) -> None:
    app = Host(frozen_run(tmp_path), "prepare")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app)
        p = view.graph.places["extract-orders"]
        await pilot.click(GraphView, offset=(p.x + 3, p.row))
        assert view.cursor == "extract-orders"


async def test_names_are_shown_as_text_never_markup(tmp_path: Path) -> None:
    job = """
    tasks:
      '[red]boom[/red]': {command: 'true'}
      after: {command: 'true', dependencies: ['[red]boom[/red]']}
    """
    app = Host(frozen_run(tmp_path, {}, job), None)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await opened(pilot, app)
        assert "· [red]boom[/red] " in graph_text(view)


# ---- pictures ------------------------------------------------------------------------


class Frozen(App[None]):
    """The graph of the failed run, opened on `approve`."""

    def __init__(self, job_run: Scheduler) -> None:
        super().__init__()
        self.job_run = job_run

    def on_mount(self) -> None:
        self.push_screen(GraphScreen(self.job_run, T0 + 42, "approve"))


def test_graph_80x24(snap_compare, tmp_path: Path) -> None:
    """At 80x24: prepare fans out to both extracts, which join into transform; the
    critical path prepare → extract-users → transform → approve in heavy yellow lines and
    underlined names, named with its 2.70s in the title; approve ✗ under the cursor, load
    and report ⊘ blocked further right (scrolled into view); the keys on the last line."""
    assert snap_compare(Frozen(frozen_run(tmp_path)), terminal_size=(80, 24))


def test_graph_no_color(snap_compare, tmp_path: Path, monkeypatch) -> None:
    """With NO_COLOR the path still reads: heavy lines, bold underlined names, the cursor reversed."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(Frozen(frozen_run(tmp_path)), terminal_size=(80, 24))
