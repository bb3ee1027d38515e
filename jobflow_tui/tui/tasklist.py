"""The task list: one row per task in dependency order, drawn with the line API.

Only visible rows are rendered, and a row is rendered again only when its task changes,
so a 10,000-task job opens as fast as a 10-task one. Runs of three or more consecutive
tasks whose names share a prefix (`shard-01` … `shard-12`) form a group that folds into
one summary row (space).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

_PREFIX = re.compile(r"^(.*[-_.:/])[^-_.:/]+$")
MIN_GROUP = 3


@dataclass
class Group:
    """Consecutive tasks sharing a name prefix."""

    prefix: str
    members: list[str] = field(default_factory=list)
    folded: bool = False


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
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.names = names
        self.label = label
        self.group_label = group_label or (lambda g: Text(f"▾ {g.prefix}… ({len(g.members)})"))
        self.groups = find_groups(names)
        self.group_of = {n: g for g in self.groups for n in g.members}
        self.rows: list[str | Group] = []
        self.row_of: dict[str, int] = {}
        self._strips: dict[int, Strip] = {}  # row -> rendered strip (without the cursor style)
        self.moved_by_operator = False  # a key or a click moved the cursor (not the app)
        self._layout()

    # ---- rows --------------------------------------------------------------------

    def _layout(self) -> None:
        """Work out the visible rows from the names and which groups are folded."""
        rows: list[str | Group] = []
        starts = {g.members[0]: g for g in self.groups}
        for name in self.names:
            group = starts.get(name)
            if group is not None:
                rows.append(group)
            g = self.group_of.get(name)
            if g is None or not g.folded:
                rows.append(name)
        self.rows = rows
        self.row_of = {r: i for i, r in enumerate(rows) if isinstance(r, str)}
        self._strips.clear()
        self.virtual_size = Size(0, len(rows))

    @property
    def selected(self) -> str | None:
        if not self.rows:
            return None
        row = self.rows[min(self.cursor, len(self.rows) - 1)]
        return row if isinstance(row, str) else None

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
            if group is not None:
                dirty.add(self.rows.index(group))
        for row in dirty:
            self._strips.pop(row, None)
            if top <= row < bottom:
                self.refresh_line(row - top)

    def move_to(self, name: str) -> None:
        group = self.group_of.get(name)
        if group is not None and group.folded:
            group.folded = False
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
                member = item in self.group_of  # members sit under their group's row
                text = self.label(item, width - 2 if member else width)
                if member:
                    text = Text("  ") + text
            else:
                text = self.group_label(item)
            strip = Strip([Segment(s.text, base + s.style if s.style else base) for s in text.render(self.app.console)])
            self._strips[row] = strip
        strip = strip.crop_extend(0, width, base)
        if row == self.cursor:  # the whole row, so the cursor reads without colour too
            cursor_style = self.get_component_rich_style("tasklist--cursor")
            strip = Strip([Segment(s.text, (s.style or Style()) + cursor_style) for s in strip])
        return strip

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
        """Fold or unfold the group under the cursor (or the one the task belongs to)."""
        item = self.rows[self.cursor] if self.rows else None
        group = item if isinstance(item, Group) else self.group_of.get(item) if item else None
        if group is None:
            return
        group.folded = not group.folded
        self._layout()
        self.cursor = self.rows.index(group)
