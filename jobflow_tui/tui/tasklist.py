"""The task list: one row per task in dependency order, drawn with the line API.

Only visible rows are rendered, and a row is rendered again only when its task changes,
so a 10,000-task job opens as fast as a 10-task one.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


class TaskList(ScrollView, can_focus=True):
    """Rows of tasks with a cursor; the app supplies each row's text."""

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
    ]

    cursor: reactive[int] = reactive(0, always_update=True)
    """Row index of the highlighted task."""

    class Highlighted(Message):
        """The cursor moved to `task`."""

        def __init__(self, task: str) -> None:
            super().__init__()
            self.task = task

    class Selected(Message):
        """Enter was pressed on `task`."""

        def __init__(self, task: str) -> None:
            super().__init__()
            self.task = task

    def __init__(self, names: list[str], label: Callable[[str], Text], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        self.label = label
        self._rows: dict[int, Strip] = {}  # row -> rendered strip (without the cursor style)
        self.virtual_size = Size(0, len(names))

    @property
    def selected(self) -> str | None:
        return self.names[self.cursor] if self.names else None

    def relabel(self, names) -> None:
        """These tasks changed: draw their rows again (only if visible)."""
        top = int(self.scroll_y)
        bottom = top + self.size.height
        for name in names:
            row = self.index[name]
            self._rows.pop(row, None)
            if top <= row < bottom:
                self.refresh_line(row - top)

    def move_to(self, name: str) -> None:
        self.cursor = self.index[name]

    def render_line(self, y: int) -> Strip:
        row = int(self.scroll_y) + y
        width = self.size.width
        base = self.rich_style
        if row >= len(self.names):
            return Strip.blank(width, base)
        strip = self._rows.get(row)
        if strip is None:
            text = self.label(self.names[row])
            strip = Strip([Segment(s.text, base + s.style if s.style else base) for s in text.render(self.app.console)])
            self._rows[row] = strip
        strip = strip.crop_extend(0, width, base)
        if row == self.cursor:  # the whole row, so the cursor reads without colour too
            cursor_style = self.get_component_rich_style("tasklist--cursor")
            strip = Strip([Segment(s.text, (s.style or Style()) + cursor_style) for s in strip])
        return strip

    def watch_cursor(self, old: int, new: int) -> None:
        if not self.names:
            return
        new = max(0, min(new, len(self.names) - 1))
        if new != self.cursor:
            self.cursor = new
            return
        self.scroll_to_region(Region(0, new, 1, 1), animate=False, immediate=True)
        self.refresh()
        self.post_message(self.Highlighted(self.names[new]))

    def action_move(self, step: int) -> None:
        self.cursor = max(0, min(len(self.names) - 1, self.cursor + step))

    def action_page(self, step: int) -> None:
        self.action_move(step * max(1, self.size.height - 1))

    def action_jump(self, row: int) -> None:
        self.cursor = row % len(self.names) if self.names else 0

    def action_select(self) -> None:
        if self.selected is not None:
            self.post_message(self.Selected(self.selected))
