"""A bounded tail of one task's output: what the dashboard keeps in memory.

The full log is on disk; this keeps the last lines only, so memory stays flat however
much a task prints. Lines are kept as the task wrote them (decoded); the log view
sanitises the ones it draws.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

TAIL_LINES = 10_000
TAIL_CHARS = 4_000_000  # long lines count by size, so a few 200 KB lines cannot hog memory


class TailBuffer:
    """The last lines of output, raw (sanitise before showing)."""

    def __init__(self, limit: int = TAIL_LINES, max_chars: int = TAIL_CHARS) -> None:
        self.limit = limit
        self.max_chars = max_chars
        self.lines: list[str] = []
        self.dropped = 0  # lines removed from the front so far
        self.chars = 0

    @property
    def total(self) -> int:
        """Lines ever added (dropped ones included)."""
        return self.dropped + len(self.lines)

    def extend(self, lines: Iterable[str]) -> None:
        added = lines if isinstance(lines, list) else list(lines)
        self.lines.extend(added)
        self.chars += sum(map(len, added))
        # Trim in batches: deleting from the front of a list is O(n), so not on every line.
        if len(self.lines) > self.limit + self.limit // 4 or self.chars > self.max_chars:
            cut = max(0, len(self.lines) - self.limit)
            removed = sum(len(x) for x in self.lines[:cut])
            while self.chars - removed > self.max_chars and cut < len(self.lines) - 1:
                removed += len(self.lines[cut])
                cut += 1
            self.chars -= removed
            del self.lines[:cut]
            self.dropped += cut

    def clear(self) -> None:
        self.dropped += len(self.lines)
        self.lines = []
        self.chars = 0


def read_tail(path: str, limit: int = TAIL_LINES, max_bytes: int = 2 * 1024 * 1024) -> TailBuffer:
    """The last lines of a log file on disk (for earlier attempts and resumed runs)."""
    buf = TailBuffer(limit)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError as e:
        buf.extend([f"(cannot read {path}: {e.strerror})"])
        return buf
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if size > max_bytes:
        lines = lines[1:]  # the first one is cut
    if lines and lines[-1] == "":
        lines.pop()
    buf.extend(lines[-limit:])
    return buf
