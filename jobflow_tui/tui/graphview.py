"""The DAG drawn as a graph (`g`): each task once in its layer's column, coloured by
state, the run's critical path in heavy lines; Enter goes to the task. A subflow is one
node (its tasks' worst state) until Enter opens it; Backspace closes it again.

The layout (`graphlayout`) is made once per subflow opened or closed, since the DAG never
changes; the widget draws only the rows on screen with the line API, so a job of 1,000
tasks opens at once.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from ..engine.run import Run
from ..format import format_duration
from ..sanitize import clean_line
from .graphgroups import Collapsed
from .graphlayout import ARROW_CHAR, GraphLayout, critical_path, heavy
from .rows import GLYPH, STYLE

LEGEND = "arrows/hjkl move · enter go to task · click select · g/Esc back"
LEGEND_SUBFLOWS = "arrows/hjkl move · enter go to task or open ▸ · backspace close · g/Esc back"


class GraphView(ScrollView, can_focus=True):
    """A laid-out DAG with a cursor on one task; the owner supplies each task's label
    (a glyph, a space, the name) and the critical path."""

    DEFAULT_CSS = """
    GraphView {
        background: $surface;
        overflow-x: auto;
        overflow-y: auto;
    }
    GraphView > .graphview--line {
        color: $text-muted;
    }
    GraphView > .graphview--critical {
        color: $warning;
        text-style: bold;
    }
    GraphView > .graphview--critical-task {
        color: $warning;
        text-style: bold underline;
    }
    GraphView > .graphview--cursor {
        text-style: reverse bold;
    }
    """
    COMPONENT_CLASSES = {"graphview--line", "graphview--critical", "graphview--critical-task", "graphview--cursor"}
    BINDINGS = [
        Binding("up,k", "move('up')", "up", show=False),
        Binding("down,j", "move('down')", "down", show=False),
        Binding("left,h", "move('left')", "left", show=False),
        Binding("right,l", "move('right')", "right", show=False),
        Binding("enter", "select", "go to task", show=False),
    ]

    cursor: reactive[str | None] = reactive(None)
    """The highlighted task."""

    class Selected(Message):
        """Enter (or a double click) on `task` (a node: a task or a closed subflow)."""

        def __init__(self, task: str) -> None:
            super().__init__()
            self.task = task

    def __init__(self, graph: GraphLayout, label: Callable[[str], Text], selected: str | None = None,
                 *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graph = graph
        self.label = label
        self.critical: set[str] = set()
        self._critical_cells: dict[int, list[tuple[int, int]]] = {}  # row -> (x, directions on the path)
        self._strips: LRUCache[tuple[int, int, int], Strip] = LRUCache(1024)  # (row, scroll x, width)
        self.virtual_size = Size(graph.width, graph.height)
        self.set_reactive(GraphView.cursor, selected if selected in graph.places else
                          next(iter(graph.order), None))

    def on_mount(self) -> None:
        self.call_after_refresh(self.scroll_to_cursor)

    # ---- content -----------------------------------------------------------------

    def set_graph(self, graph: GraphLayout, cursor: str | None) -> None:
        """Draw another layout of the DAG (a subflow opened or closed), the cursor on `cursor`."""
        self.graph = graph
        self.critical = set()
        self._critical_cells = {}
        self._strips.clear()
        self.virtual_size = Size(graph.width, graph.height)
        self.set_reactive(GraphView.cursor, cursor if cursor in graph.places else next(iter(graph.order), None))
        self.refresh()
        self.call_after_refresh(self.scroll_to_cursor)  # once the new size is known

    def set_critical(self, path: Sequence[str]) -> None:
        """Mark the chain `path` (tasks and the edges between them)."""
        cells: dict[int, dict[int, int]] = {}
        for a, b in zip(path, path[1:], strict=False):
            for row, x, bits in self.graph.edge_cells(a, b):
                line = cells.setdefault(row, {})
                line[x] = line.get(x, 0) | bits
        self.critical = set(path)
        self._critical_cells = {row: sorted(line.items()) for row, line in cells.items()}
        self.redraw()

    def redraw(self) -> None:
        """Labels changed (states): draw the visible rows again."""
        self._strips.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()  # a theme changed the colours the rows were drawn with

    # ---- drawing -----------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if row >= self.graph.height:
            return Strip.blank(width, base)
        key = (row, scroll_x, width)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._draw(row, scroll_x, scroll_x + width, base)
        return strip

    def _draw(self, row: int, x0: int, x1: int, base: Style) -> Strip:
        """Cells x0 to x1 of a row: its lines, and over them the tasks and the critical path."""
        text = self.graph.row_text(row)
        line_style = base + self.get_component_rich_style("graphview--line")
        critical_style = base + self.get_component_rich_style("graphview--critical")
        overlays: list[tuple[int, int, list[Segment]]] = []
        for name in self.graph.row_tasks(row, x0, x1):
            place = self.graph.places[name]
            label = self.label(name)
            label.truncate(place.width, overflow="ellipsis", pad=True)
            if name in self.critical:
                label.stylize(self.get_component_rich_style("graphview--critical-task", partial=True), 2)
            if name == self.cursor:  # reverse and bold: the cursor reads without colour too
                label.stylize(self.get_component_rich_style("graphview--cursor", partial=True))
            segments = [Segment(s.text, base + s.style if s.style else base)
                        for s in label.render(self.app.console) if s.text]
            overlays.append((place.x, place.width, segments))
        path = self._critical_cells.get(row, [])
        for x, route in path[bisect_left(path, (x0, 0)):bisect_left(path, (x1, 0))]:
            char = text[x] if text[x] == ARROW_CHAR else heavy(text[x], route)
            if char != text[x] or char == ARROW_CHAR:  # a path passing under another line leaves it be
                overlays.append((x, 1, [Segment(char, critical_style)]))
        overlays.sort(key=lambda o: o[0])
        start = min(x0, overlays[0][0]) if overlays else x0
        end = max(x1, overlays[-1][0] + overlays[-1][1]) if overlays else x1
        segments = []
        at = start
        for x, w, segs in overlays:
            if x > at:
                segments.append(Segment(text[at:x], line_style))
            segments += segs
            at = x + w
        if at < end:
            segments.append(Segment(text[at:end].ljust(end - at), line_style))
        return Strip(segments, end - start).crop_extend(x0 - start, x1 - start, base)

    # ---- the cursor --------------------------------------------------------------

    def watch_cursor(self) -> None:
        self._strips.clear()  # the few rows on screen are drawn again; cheaper than finding them
        self.scroll_to_cursor()
        self.refresh()

    def scroll_to_cursor(self) -> None:
        if self.cursor is None:
            return
        p = self.graph.places[self.cursor]
        # The arrow into the task too, so one sees where it comes from.
        left = max(0, p.x - 4)
        self.scroll_to_region(Region(left, p.row, p.x + p.width - left, 1), animate=False, immediate=True)

    def action_move(self, direction: str) -> None:
        if self.cursor is not None:
            self.cursor = self.graph.step(self.cursor, direction) or self.cursor

    def action_select(self) -> None:
        if self.cursor is not None:
            self.post_message(self.Selected(self.cursor))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        name = self.graph.task_at(offset.y + int(self.scroll_y), offset.x + int(self.scroll_x))
        if name is not None:
            self.cursor = name
            if event.chain > 1:
                self.post_message(self.Selected(name))


class GraphScreen(Screen[str | None]):
    """The run's DAG as a graph over the dashboard; dismissed with the chosen task's name
    (Enter) or None (Escape, g, q)."""

    DEFAULT_CSS = """
    GraphScreen {
        background: $surface;
    }
    GraphScreen > #graph-title {
        height: 1;
        background: $panel;
    }
    GraphScreen > GraphView {
        height: 1fr;
    }
    GraphScreen > #graph-keys {
        height: 1;
        color: $text-muted;
    }
    """
    BINDINGS = [
        Binding("escape,g,q", "close", "back"),
        Binding("o,space", "toggle_subflow", "open or close a subflow", show=False),
        Binding("backspace", "close_subflow", "close the subflow", show=False),
    ]

    def __init__(self, run: Run, now: float, selected: str | None) -> None:
        super().__init__()
        self.run = run
        self.now = now
        self.subflows: dict[str, list[str]] = dict(getattr(run, "subflows", None) or {})
        self._inside = {f: set(names) for f, names in self.subflows.items()}
        self.opened: set[str] = set()  # subflows drawn as their tasks
        self._deps = {n: run.tasks[n].dependencies for n in run.order}
        self.graph = self._layout()
        self.view = GraphView(self.graph, self.label, self.nodes.node_of.get(selected or "", selected))
        self.heading = Static(id="graph-title")
        self.path: list[str] = []
        self._states: list[str] = []
        self._title = ""

    def _layout(self) -> GraphLayout:
        """The nodes with the subflows opened so far, laid out."""
        self.nodes = Collapsed(self.run.order, self._deps, self.subflows, self.opened)
        return GraphLayout(self.nodes.order, self.nodes.deps, width_of=lambda node: cell_len(self._title_of(node)))

    @property
    def is_modal(self) -> bool:
        """The dashboard's keys (retry, abort...) act on its list, which is hidden here:
        only this screen's keys apply."""
        return True

    def compose(self) -> ComposeResult:
        yield self.heading
        yield self.view
        legend = LEGEND_SUBFLOWS if self.subflows else LEGEND
        yield Static(Text(legend, no_wrap=True, overflow="ellipsis"), id="graph-keys")

    def on_mount(self) -> None:
        self.refresh_states(self.now)
        self.view.focus()

    def _title_of(self, node: str) -> str:
        """What a node reads after its glyph: a task's name, or a closed subflow's and its size."""
        if self.nodes.is_flow(node):
            return f"▸ {clean_line(node, False)} ({len(self.nodes.members[node])})"
        return clean_line(node, False)

    def label(self, node: str) -> Text:
        state = self.nodes.state(node, lambda name: self.run.tasks[name].state)
        t = Text(no_wrap=True)
        t.append(GLYPH[state], style=STYLE[state])
        t.append(" ")
        t.append(self._title_of(node))
        return t

    def refresh_states(self, now: float) -> None:
        """States or durations changed: recolour the nodes and find the critical path again
        over what is drawn (the layout stays: the DAG does not change)."""
        self.now = now
        tasks = self.run.tasks
        spans = {n: (t.started_at, t.finished_at or now) for n in self.run.order if (t := tasks[n]).started_at}
        seconds = {n: end - start for n, (start, end) in spans.items()}
        nodes = self.nodes
        for flow in nodes.flows:  # from its first task's start to its last one's end
            seconds[flow] = nodes.seconds(flow, spans)
        path = critical_path(nodes.order, nodes.deps, seconds)
        states = [nodes.state(n, lambda name: tasks[name].state) for n in nodes.order]
        if path != self.path:
            self.path = path
            self._states = states
            self.view.set_critical(path)
        elif states != self._states:
            self._states = states
            self.view.redraw()
        title = self.title_line(sum(seconds.get(n, 0.0) for n in path))
        if title.plain != self._title:  # an update costs a layout: only when the words change
            self._title = title.plain
            self.heading.update(title, layout=False)

    def title_line(self, total: float) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" graph ", style="bold reverse")
        t.append(f" {clean_line(self.run.job_name, False)} · ")
        if not self.path:
            t.append("critical path: none yet", style="dim")
            return t
        t.append(f"critical path {format_duration(total)}: ")  # the time first: a long path is cut
        names = []
        for name in self.path:  # a title shows ~100 cells: no need to join 1,000 names
            names.append(clean_line(name, False))
            if sum(map(len, names)) > 200:
                names.append("…")
                break
        t.append(" → ".join(names), style="bold")
        return t

    @on(GraphView.Selected)
    def go(self, event: GraphView.Selected) -> None:
        if self.nodes.is_flow(event.task):
            self.open_subflow(event.task)
        else:
            self.dismiss(event.task)

    def open_subflow(self, flow: str) -> None:
        """Draw a closed subflow's tasks (its own subflows closed), the cursor on its first."""
        self.opened.add(flow)
        self._relayout(self.nodes.members[flow][0])

    def action_toggle_subflow(self) -> None:
        """Open the subflow under the cursor, or close the one it is in."""
        node = self.view.cursor
        if node is not None and self.nodes.is_flow(node):
            self.open_subflow(node)
        else:
            self.action_close_subflow()

    def action_close_subflow(self) -> None:
        """Close the innermost open subflow around the cursor: one node again, under the cursor."""
        node = self.view.cursor
        if node is None:
            return
        first = self.nodes.members[node][0]
        around = [f for f in self.opened if f != node and first in self._inside[f]]
        if around:
            self.opened.discard(min(around, key=lambda f: len(self._inside[f])))
            self._relayout(first)

    def _relayout(self, task: str) -> None:
        """Lay out what is drawn now, the cursor on the node standing for `task`."""
        self.graph = self._layout()
        self.view.set_graph(self.graph, self.nodes.node_of.get(task, task))
        self.path, self._states = [], []
        self.refresh_states(self.now)

    def action_close(self) -> None:
        self.dismiss(None)
