"""The log pane: shows a TailBuffer with the line API, so only visible rows cost anything.

Lines arrive raw; they are sanitised and turned into Rich text only when drawn, and cached.
Long lines wrap at the pane's edge (`wrap`, on by default; off, they scroll sideways).
Scrolling up stops following and counts the lines that arrive meanwhile; reaching the end
(End, or `f`) follows again. A line cursor (`start_marking`) marks lines to copy.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..sanitize import clean_line
from .buffer import TailBuffer

MATCH_STYLE = Style(reverse=True, bold=True)
MARK_STYLE = Style(reverse=True)


def line_text(raw: str) -> Text:
    """A raw output line as it is drawn: sanitised, colours kept, tabs expanded."""
    line = clean_line(raw)
    text = Text.from_ansi(line, no_wrap=True) if "\x1b" in line else Text(line, no_wrap=True)
    if "\t" in line:
        text.expand_tabs(8)
    return text


def cells(raw: str) -> int:
    """The width of a raw line as drawn (the common printable-ASCII case costs nothing)."""
    if raw.isascii() and raw.isprintable():
        return len(raw)
    return line_text(raw).cell_len


class LogView(ScrollView, can_focus=True):
    """A scrollable view of one task's output tail."""

    DEFAULT_CSS = """
    LogView {
        background: $surface;
        color: $foreground;
        overflow-y: auto;
        overflow-x: auto;
        scrollbar-size-vertical: 1;
    }
    LogView.-wrap {
        overflow-x: hidden;
        scrollbar-gutter: stable;
    }
    """
    BINDINGS = [
        Binding("up", "line(-1)", "up", show=False),
        Binding("down", "line(1)", "down", show=False),
        # Only while marking (else these keys go on to the dashboard's own bindings).
        Binding("k", "mark_move(-1)", "up", show=False),
        Binding("j", "mark_move(1)", "down", show=False),
        Binding("escape", "unmark", "stop marking", show=False),
    ]

    follow: reactive[bool] = reactive(True)
    """Keep the end of the log in view as lines arrive."""

    unseen: reactive[int] = reactive(0)
    """Lines that arrived while not following."""

    wrap: reactive[bool] = reactive(True)
    """Long lines continue on the next rows (else the pane scrolls sideways)."""

    class Status(Message):
        """The follow state, unseen count, search position or marked lines changed."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.buffer = TailBuffer()
        self._seen = 0  # buffer.total at the last refresh
        self._dropped_seen = 0
        self._width = 0  # the widest line seen (not wrapping)
        self._cache: LRUCache[int, Strip] = LRUCache(2048)
        self._rows: list[int] = []  # wrapping: rows each buffer line takes
        self._starts: list[int] = [0]  # wrapping: the first row of each line, and the total
        self._wrap_width = 0
        self.search_term = ""
        self.matches: list[int] = []  # absolute line numbers
        self.match_index = -1
        self.mark: tuple[int, int] | None = None  # absolute lines: where marking began, the cursor

    def on_mount(self) -> None:
        self.set_class(self.wrap, "-wrap")

    # ---- content -----------------------------------------------------------------

    def show(self, buffer: TailBuffer) -> None:
        """Display another buffer, from its end."""
        self.buffer = buffer
        self._seen, self._dropped_seen = buffer.total, buffer.dropped
        self._width = max(map(len, buffer.lines[-2000:]), default=0)
        self.matches, self.match_index = [], -1
        self.mark = None
        self.unseen = 0
        self.follow = True
        self._rewrap()
        self._stick_to_end()
        self.refresh()

    def update(self) -> None:
        """The buffer grew (or was trimmed): refresh once for all new lines."""
        buf = self.buffer
        new = buf.total - self._seen
        if new <= 0:
            return
        lines = buf.lines
        shift = buf.dropped - self._dropped_seen  # lines that left the top meanwhile
        self._seen, self._dropped_seen = buf.total, buf.dropped
        fresh = lines[-new:] if new < len(lines) else lines
        self._width = max(self._width, max(map(len, fresh), default=0))
        gone = shift  # rows of the lines that left the top
        if self.wrap:
            keep = len(lines) - len(fresh)
            gone = sum(self._rows[: max(0, len(self._rows) - keep)])
            del self._rows[: max(0, len(self._rows) - keep)]
            w = self._wrap_width
            self._rows += [1 if len(x) <= w and x.isascii() and x.isprintable() else -(-cells(x) // w) or 1 for x in fresh]
            self._starts = [0, *itertools.accumulate(self._rows)]
        self._resize()
        if self.follow:
            self._stick_to_end()
        else:
            self.unseen += new
            if gone > 0:  # keep the same text in view
                self.scroll_to(y=max(0, self.scroll_y - gone), animate=False, immediate=True)
        if self.search_term:
            self._find_new(new)
        self.refresh()

    def _rewrap(self) -> None:
        """Work out the rows of every line again (the width or the wrap setting changed)."""
        self._cache.clear()
        if self.wrap:
            # Before the first layout the pane has no size yet: guess, and wrap again on resize.
            w = self._wrap_width = self.scrollable_content_region.width or 80
            self._rows = [1 if len(x) <= w and x.isascii() and x.isprintable() else -(-cells(x) // w) or 1 for x in self.buffer.lines]
            self._starts = [0, *itertools.accumulate(self._rows)]
        self._resize()

    def _resize(self) -> None:
        if self.wrap:
            self.virtual_size = Size(self._wrap_width, self._starts[-1])
        else:
            self.virtual_size = Size(self._width + 1, len(self.buffer.lines))

    def _row_of(self, index: int) -> int:
        """The first row of the buffer's line `index`."""
        if not self.wrap:
            return index
        return self._starts[min(index, len(self._starts) - 1)]

    def _line_at(self, row: int) -> tuple[int, int]:
        """The buffer line drawn on `row`, and which of its pieces."""
        if not self.wrap:
            return row, 0
        index = bisect_right(self._starts, row) - 1
        return index, row - self._starts[index]

    def on_resize(self) -> None:
        if self.wrap and self.scrollable_content_region.width != self._wrap_width:
            top, _ = self._line_at(int(self.scroll_y))
            self._rewrap()
            if not self.follow:
                self.scroll_to(y=self._row_of(top), animate=False, immediate=True)
        if self.follow:
            self._stick_to_end()

    def watch_wrap(self, wrap: bool) -> None:
        self.set_class(wrap, "-wrap")
        top, _ = self._line_at(int(self.scroll_y))
        self._rewrap()
        self.scroll_to(x=0, y=self._row_of(top), animate=False, immediate=True)
        if self.follow:
            self._stick_to_end()
        self.refresh()

    # ---- drawing -----------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        style = self.rich_style
        width = self.size.width
        index, piece = self._line_at(scroll_y + y)
        if index >= len(self.buffer.lines):
            return Strip.blank(width, style)
        absolute = self.buffer.dropped + index
        strip = self._cache.get(absolute)
        if strip is None:
            text = line_text(self.buffer.lines[index])  # the buffer keeps task output raw
            if self.search_term:
                text.highlight_words([self.search_term], MATCH_STYLE, case_sensitive=False)
            segments = [Segment(s.text, style + s.style if s.style else style) for s in text.render(self.app.console)]
            strip = Strip(segments).simplify()
            self._cache[absolute] = strip
        if self.wrap:
            start = piece * self._wrap_width
            strip = strip.crop_extend(start, start + self._wrap_width, style).extend_cell_length(width, style)
            offset = start
        else:
            strip = strip.crop_extend(scroll_x, scroll_x + width, style)
            offset = scroll_x
        if self.mark is not None and min(self.mark) <= absolute <= max(self.mark):
            strip = Strip([Segment(s.text, (s.style or Style()) + MARK_STYLE) for s in strip])
        return strip.apply_offsets(offset, index)

    # ---- following ---------------------------------------------------------------

    def _stick_to_end(self) -> None:
        """Show the newest line now, and again once the layout is done: a burst that comes
        before the pane has its size (or with the first scrollbar) must end in view too."""
        # force: the scrollbar that makes scrolling allowed appears only at the next layout.
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self.call_after_refresh(self._end_if_following)

    def _end_if_following(self) -> None:
        if self.follow and self.scroll_y < self.max_scroll_y:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        at_end = new >= self.max_scroll_y
        if at_end and not self.follow:
            self.follow = True
        elif new < old and not at_end:
            self.follow = False

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.unseen = 0
            self._stick_to_end()
        self.post_message(self.Status())

    def watch_unseen(self) -> None:
        self.post_message(self.Status())

    # ---- marking lines -----------------------------------------------------------

    def start_marking(self) -> None:
        """A line cursor on the last line in view; up/down move it and extend the marks."""
        lines = self.buffer.lines
        if not lines:
            return
        bottom = int(self.scroll_y) + self.scrollable_content_region.height - 1
        index = min(len(lines) - 1, self._line_at(max(0, bottom))[0])
        line = self.buffer.dropped + index
        self.mark = (line, line)
        self._cache.clear()
        self.refresh()
        self.post_message(self.Status())

    def stop_marking(self) -> None:
        if self.mark is not None:
            self.mark = None
            self._cache.clear()
            self.refresh()
            self.post_message(self.Status())

    def marked(self) -> list[str]:
        """The marked lines as plain text (no colour, no control characters)."""
        if self.mark is None:
            return []
        base = self.buffer.dropped
        lo, hi = max(min(self.mark) - base, 0), max(self.mark) - base
        return [clean_line(x, False) for x in self.buffer.lines[lo:hi + 1]]

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("mark_move", "unmark"):
            return self.mark is not None
        return True

    def action_unmark(self) -> None:
        self.stop_marking()

    def action_mark_move(self, step: int) -> None:
        self.action_line(step)

    def action_line(self, step: int) -> None:
        """Up/down: move the line cursor while marking, else scroll."""
        if self.mark is None:
            self.scroll_to(y=self.scroll_y + step, animate=False, immediate=True)
            return
        base, last = self.buffer.dropped, self.buffer.dropped + len(self.buffer.lines) - 1
        start, cursor = self.mark
        cursor = max(base, min(last, cursor + step))
        self.mark = (max(start, base), cursor)
        self.follow = False
        index = cursor - base
        top, height = int(self.scroll_y), self.scrollable_content_region.height
        if self._row_of(index) < top:
            self.scroll_to(y=self._row_of(index), animate=False, immediate=True)
        elif self._row_of(index + 1) > top + height:
            self.scroll_to(y=self._row_of(index + 1) - height, animate=False, immediate=True)
        self.refresh()
        self.post_message(self.Status())

    # ---- search ------------------------------------------------------------------

    def search(self, term: str) -> int:
        """Find `term` (case-insensitive); jump to the first match after the view's top."""
        self.search_term = term
        self._cache.clear()
        low = term.lower()
        base = self.buffer.dropped
        self.matches = [
            base + i for i, line in enumerate(self.buffer.lines) if term and low in clean_line(line, False).lower()
        ]
        self.match_index = -1
        if self.matches:
            top = base + self._line_at(int(self.scroll_y))[0]
            after = [i for i, m in enumerate(self.matches) if m >= top]
            self._goto(after[0] if after else 0)
        self.refresh()
        self.post_message(self.Status())
        return len(self.matches)

    def _find_new(self, new: int) -> None:
        low = self.search_term.lower()
        start = max(0, len(self.buffer.lines) - new)
        base = self.buffer.dropped
        self.matches = [m for m in self.matches if m >= base]
        self.matches += [
            base + start + i for i, line in enumerate(self.buffer.lines[start:]) if low in clean_line(line, False).lower()
        ]

    def next_match(self, step: int) -> None:
        if self.matches:
            self._goto((self.match_index + step) % len(self.matches))
            self.post_message(self.Status())

    def _goto(self, i: int) -> None:
        self.match_index = i
        row = self._row_of(self.matches[i] - self.buffer.dropped)
        self.follow = False
        self.scroll_to(y=max(0, row - self.size.height // 2), animate=False, immediate=True)
