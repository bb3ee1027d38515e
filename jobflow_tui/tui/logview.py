"""The log pane: shows a TailBuffer with the line API, so only visible rows cost anything.

Lines arrive already sanitised (SGR colour at most); they are turned into Rich text only
when drawn, and cached. Scrolling up stops following and counts the lines that arrive
meanwhile; reaching the end (End, or `f`) follows again.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..sanitize import clean_line
from .buffer import TailBuffer

MATCH_STYLE = Style(reverse=True, bold=True)


class LogView(ScrollView, can_focus=True):
    """A scrollable view of one task's output tail."""

    DEFAULT_CSS = """
    LogView {
        background: $surface;
        color: $foreground;
        overflow-y: auto;
        overflow-x: auto;
    }
    """

    follow: reactive[bool] = reactive(True)
    """Keep the end of the log in view as lines arrive."""

    unseen: reactive[int] = reactive(0)
    """Lines that arrived while not following."""

    class Status(Message):
        """The follow state, unseen count or search position changed."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.buffer = TailBuffer()
        self._seen = 0  # buffer.total at the last refresh
        self._dropped_seen = 0
        self._width = 0
        self._cache: LRUCache[int, Strip] = LRUCache(2048)
        self.search_term = ""
        self.matches: list[int] = []  # absolute line numbers
        self.match_index = -1

    # ---- content -----------------------------------------------------------------

    def show(self, buffer: TailBuffer) -> None:
        """Display another buffer, from its end."""
        self.buffer = buffer
        self._seen, self._dropped_seen = buffer.total, buffer.dropped
        self._cache.clear()
        self._width = max(map(len, buffer.lines[-2000:]), default=0)
        self.matches, self.match_index = [], -1
        self.unseen = 0
        self.follow = True
        self._resize()
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def update(self) -> None:
        """The buffer grew (or was trimmed): refresh once for all new lines."""
        buf = self.buffer
        new = buf.total - self._seen
        if new <= 0:
            return
        shift = buf.dropped - self._dropped_seen  # lines that left the top meanwhile
        self._seen, self._dropped_seen = buf.total, buf.dropped
        self._width = max(self._width, max(map(len, buf.lines[-new:]), default=0))
        self._cache.clear()
        self._resize()
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.unseen += new
            if shift > 0:  # keep the same text in view
                self.scroll_to(y=max(0, self.scroll_y - shift), animate=False, immediate=True)
        if self.search_term:
            self._find_new(new)
        self.refresh()

    def _resize(self) -> None:
        self.virtual_size = Size(self._width + 1, len(self.buffer.lines))

    # ---- drawing -----------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        style = self.rich_style
        width = self.size.width
        if index >= len(self.buffer.lines):
            return Strip.blank(width, style)
        absolute = self.buffer.dropped + index
        strip = self._cache.get(absolute)
        if strip is None:
            line = clean_line(self.buffer.lines[index])  # the buffer keeps task output raw
            text = Text.from_ansi(line, no_wrap=True) if "\x1b" in line else Text(line, no_wrap=True)
            if self.search_term:
                text.highlight_words([self.search_term], MATCH_STYLE, case_sensitive=False)
            segments = [Segment(s.text, style + s.style if s.style else style) for s in text.render(self.app.console)]
            strip = Strip(segments).simplify()
            self._cache[absolute] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_offsets(scroll_x, index)

    # ---- following ---------------------------------------------------------------

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
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.post_message(self.Status())

    def watch_unseen(self) -> None:
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
            top = base + int(self.scroll_y)
            after = [i for i, m in enumerate(self.matches) if m >= top]
            self._goto(after[0] if after else 0)
        self.refresh()
        self.post_message(self.Status())
        return len(self.matches)

    def _find_new(self, new: int) -> None:
        low = self.search_term.lower()
        start = len(self.buffer.lines) - new
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
        row = self.matches[i] - self.buffer.dropped
        self.follow = False
        self.scroll_to(y=max(0, row - self.size.height // 2), animate=False, immediate=True)
