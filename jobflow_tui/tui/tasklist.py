"""The task list: one row per task in dependency order, drawn with the line API.

Only visible rows are rendered, and a row is rendered again only when its task changes,
so a 10,000-task job opens as fast as a 10-task one. Runs of three or more consecutive
tasks whose names share a prefix (`shard-01` … `shard-12`) form a group that folds into
one summary row (space). A job with subflows is grouped by them instead: each subflow's
row stands before its tasks, which are indented under it (nested ones further) and
shown without the subflow's prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..sanitize import clean_line

_PREFIX = re.compile(r"^(.*[-_.:/])[^-_.:/]+$")
MIN_GROUP = 3


@dataclass(eq=False)  # compared and hashed by identity: rows find their group in dicts
class Group:
    """Consecutive tasks sharing a name prefix, or a subflow's tasks (every level)."""

    prefix: str
    members: list[str] = field(default_factory=list)
    folded: bool = False
    name: str | None = None  # a subflow's title, within the subflow around it; None: a prefix group
    depth: int = 0  # subflows around it
    parent: Group | None = None


def find_groups(names: list[str]) -> list[Group]:
    """Runs of at least MIN_GROUP consecutive names with the same prefix."""
    groups: list[Group] = []
    run: Group | None = None
    for name in names:
        m = _PREFIX.match(name)
        prefix = m.group(1) if m else None
        if run is not None and prefix == run.prefix:
            run.members.append(name)
            continue
        if run is not None and len(run.members) >= MIN_GROUP:
            groups.append(run)
        run = Group(prefix, [name]) if prefix else None
    if run is not None and len(run.members) >= MIN_GROUP:
        groups.append(run)
    return groups


def subflow_groups(names: Iterable[str], subflows: Mapping[str, list[str]]) -> list[Group]:
    """A group per subflow with tasks among `names`, outer ones before the subflows inside them."""
    position = {n: i for i, n in enumerate(names)}
    flows = {f: sorted((n for n in members if n in position), key=position.__getitem__)
             for f, members in subflows.items()}
    # An outer subflow holds every task of the ones inside it, and its name is shorter.
    ordered = sorted((f for f in flows if flows[f]), key=lambda f: (-len(flows[f]), len(f), f))
    groups: dict[str, Group] = {}
    for f in ordered:
        parent = next((groups[p] for p in reversed(groups) if f.startswith(p + "/")
                       and set(flows[f]) <= set(groups[p].members)), None)
        title = f[len(parent.prefix):] if parent else f
        groups[f] = Group(f + "/", flows[f], name=title, depth=parent.depth + 1 if parent else 0, parent=parent)
    return list(groups.values())


class TaskList(ScrollView, can_focus=True):
    """Rows of tasks (and foldable groups) with a cursor; the app supplies the row text."""

    DEFAULT_CSS = """
    TaskList {
        background: $surface;
        overflow-x: hidden;
        overflow-y: auto;
    }
    TaskList > .tasklist--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    """
    COMPONENT_CLASSES = {"tasklist--cursor"}
    BINDINGS = [
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "jump(0)", "first", show=False),
        Binding("end", "jump(-1)", "last", show=False),
        Binding("enter", "select", "log", show=False),
        Binding("space", "fold", "fold group", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True)
    """Index of the highlighted row."""

    class Highlighted(Message):
        """The cursor moved to `task` (None on a group's row)."""

        def __init__(self, task: str | None) -> None:
            super().__init__()
            self.task = task

    class Selected(Message):
        """Enter was pressed on `task`."""

        def __init__(self, task: str) -> None:
            super().__init__()
            self.task = task

    def __init__(
        self,
        names: list[str],
        label: Callable[[str, int], Text],
        group_label: Callable[[Group], Text] | None = None,
        *,
        subflows: Mapping[str, list[str]] | None = None,
        id: str | None = None,
    ) -> None:
        """`label(name, width)`: a task's row, its glyph then its name; `group_label(group)`:
        a group's row; `subflows`: each subflow's tasks (every level). When given, the groups
        are the subflows, not runs of alike names."""
        super().__init__(id=id)
        self.names = names
        self.label = label
        self.group_label = group_label or (lambda g: Text(f"▾ {g.name or g.prefix + '…'} ({len(g.members)})"))
        self.groups = subflow_groups(names, subflows) if subflows else find_groups(names)
        self.group_of: dict[str, Group] = {}  # task -> the innermost group holding it
        for g in sorted(self.groups, key=lambda g: g.depth):
            self.group_of.update(dict.fromkeys(g.members, g))
        self.rows: list[str | Group] = []
        self.row_of: dict[str, int] = {}
        self.group_row_of: dict[Group, int] = {}
        self._strips: dict[int, Strip] = {}  # row -> rendered strip (without the cursor style)
        self.moved_by_operator = False  # a key or a click moved the cursor (not the app)
        self._layout()

    # ---- rows --------------------------------------------------------------------

    def _layout(self) -> None:
        """Work out the visible rows from the names and which groups are folded."""
        rows: list[str | Group] = []
        starts: dict[str, list[Group]] = {}
        shut: dict[Group | None, bool] = {None: False}  # folded, or inside a folded group
        for g in sorted(self.groups, key=lambda g: g.depth):  # outer ones first
            starts.setdefault(g.members[0], []).append(g)
            shut[g] = g.folded or shut[g.parent]
        for name in self.names:
            rows += (g for g in starts.get(name, ()) if not shut[g.parent])
            if not shut[self.group_of.get(name)]:
                rows.append(name)
        self.rows = rows
        self.row_of = {r: i for i, r in enumerate(rows) if isinstance(r, str)}
        self.group_row_of = {r: i for i, r in enumerate(rows) if isinstance(r, Group)}
        self._strips.clear()
        self.virtual_size = Size(0, len(rows))

    @property
    def selected(self) -> str | None:
        if not self.rows:
            return None
        row = self.rows[min(self.cursor, len(self.rows) - 1)]
        return row if isinstance(row, str) else None

    @property
    def selected_subflow(self) -> str | None:
        """The subflow whose group row the cursor is on (None on a task or another group)."""
        if not self.rows:
            return None
        row = self.rows[min(self.cursor, len(self.rows) - 1)]
        return row.prefix[:-1] if isinstance(row, Group) and row.name is not None else None

    def relabel(self, names) -> None:
        """These tasks changed: draw their rows (and their groups' rows) again if visible."""
        top = int(self.scroll_y)
        bottom = top + self.size.height
        dirty: set[int] = set()
        for name in names:
            row = self.row_of.get(name)
            if row is not None:
                dirty.add(row)
            group = self.group_of.get(name)
            while group is not None:  # every subflow around it counts it
                row = self.group_row_of.get(group)
                if row is not None:
                    dirty.add(row)
                group = group.parent
        for row in dirty:
            self._strips.pop(row, None)
            if top <= row < bottom:
                self.refresh_line(row - top)

    def move_to(self, name: str) -> None:
        """Put the cursor on a task, unfolding the groups around it."""
        group, unfolded = self.group_of.get(name), False
        while group is not None:
            unfolded |= group.folded
            group.folded = False
            group = group.parent
        if unfolded:
            self._layout()
        self.cursor = self.row_of[name]

    # ---- drawing -----------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        row = int(self.scroll_y) + y
        width = self.size.width
        base = self.rich_style
        if row >= len(self.rows):
            return Strip.blank(width, base)
        strip = self._strips.get(row)
        if strip is None:
            item = self.rows[row]
            if isinstance(item, str):
                text = self._task_text(item, width)
            else:
                text = self.group_label(item)
                if item.depth:
                    text = Text("  " * item.depth) + text
            strip = Strip([Segment(s.text, base + s.style if s.style else base) for s in text.render(self.app.console)])
            self._strips[row] = strip
        strip = strip.crop_extend(0, width, base)
        if row == self.cursor:  # the whole row, so the cursor reads without colour too
            cursor_style = self.get_component_rich_style("tasklist--cursor")
            strip = Strip([Segment(s.text, (s.style or Style()) + cursor_style) for s in strip])
        return strip

    def _task_text(self, name: str, width: int) -> Text:
        """A task's row, under its group's row; in a subflow without the subflow's prefix."""
        group = self.group_of.get(name)
        if group is None:
            return self.label(name, width)
        indent = 2 * (group.depth + 1)
        if group.name is None:
            return Text(" " * indent) + self.label(name, width - indent)
        prefix = clean_line(group.prefix, False)
        # Asked for as much more room as the prefix takes, so the rest fits once it goes.
        text = self.label(name, width - indent + cell_len(prefix))
        at = text.plain.find(prefix, 0, len(prefix) + 4)  # after the glyph
        if at >= 0:
            text = text[:at] + text[at + len(prefix):]
        return Text(" " * indent) + text

    def on_resize(self) -> None:
        self._strips.clear()  # rows fit their facts to the width

    def on_click(self, event) -> None:
        offset = event.get_content_offset(self)  # None on the border
        row = int(self.scroll_y) + offset.y if offset is not None else -1
        if 0 <= row < len(self.rows):
            self.moved_by_operator = True
            self.cursor = row

    # ---- movement ----------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        if not self.rows:
            return
        clamped = max(0, min(new, len(self.rows) - 1))
        if clamped != new:
            self.cursor = clamped
            return
        self.scroll_to_region(Region(0, new, 1, 1), animate=False, immediate=True)
        self.refresh()
        self.post_message(self.Highlighted(self.selected))

    def action_move(self, step: int) -> None:
        self.moved_by_operator = True
        self.cursor = max(0, min(len(self.rows) - 1, self.cursor + step))

    def action_page(self, step: int) -> None:
        self.action_move(step * max(1, self.size.height - 1))

    def action_jump(self, row: int) -> None:
        self.moved_by_operator = True
        self.cursor = row % len(self.rows) if self.rows else 0

    def action_select(self) -> None:
        if self.selected is not None:
            self.post_message(self.Selected(self.selected))
        else:
            self.action_fold()

    def action_fold(self) -> None:
        """Fold or unfold the group under the cursor (or the innermost one the task belongs to)."""
        item = self.rows[self.cursor] if self.rows else None
        group = item if isinstance(item, Group) else self.group_of.get(item) if item else None
        if group is None:
            return
        group.folded = not group.folded
        self._layout()
        self.cursor = self.group_row_of[group]
