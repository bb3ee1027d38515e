"""A bounded tail of one task's output: what the dashboard keeps in memory.

The full log is on disk; this keeps the last lines only, so memory stays flat however
much a task prints. Lines are kept as the task wrote them (decoded); the log view
sanitises the ones it draws.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..engine.lines import pieces

TAIL_LINES = 10_000
TAIL_CHARS = 4_000_000  # long lines count by size, so a few 200 KB lines cannot hog memory


class TailBuffer:
    """The last lines of output, raw (sanitise before showing).

    Output arrives as blocks of lines (`add_block`, cheap: called for every read of a
    flooding task) and is split into lines only when `lines` is read (at most 20 times a
    second, by the view). Blocks beyond what the buffer keeps are dropped whole, their
    lines only counted, so memory stays flat however fast a task prints.
    """

    def __init__(self, limit: int = TAIL_LINES, max_chars: int = TAIL_CHARS) -> None:
        self.limit = limit
        self.max_chars = max_chars
        self._lines: list[str] = []
        self._blocks: list[tuple[bytes, bytes]] = []  # (prefix, block) added, not yet split
        self._block_chars = 0
        self.dropped = 0  # lines removed from the front so far
        self.chars = 0

    @property
    def lines(self) -> list[str]:
        if self._blocks:
            blocks, self._blocks, self._block_chars = self._blocks, [], 0
            prefix, last = blocks[-1]
            if len(last) > self.max_chars // 4:
                # A flood: of its last block, only the lines the buffer keeps are split.
                head, *tail = last.rsplit(b"\n", self.limit)
                if len(tail) == self.limit:
                    earlier = sum(count_lines(b) for _, b in blocks[:-1])
                    self.dropped += len(self._lines) + count_lines(head) + earlier
                    self._lines, self.chars, blocks = [], 0, [(prefix, b"\n".join(tail))]
            for prefix, block in blocks:
                split = pieces(block.decode("utf-8", "replace"))
                if prefix:
                    tag = prefix.decode("utf-8", "replace")
                    split = [tag + x for x in split]
                self.extend(split)
        return self._lines

    @property
    def total(self) -> int:
        """Lines ever added (dropped ones included)."""
        kept = len(self.lines)  # first: splitting what waits may drop lines
        return self.dropped + kept

    def add_block(self, data: bytes, prefix: bytes = b"") -> None:
        """Raw lines joined by b"\\n", decoded and split when shown; `prefix` goes before
        each of them then (so lines that are dropped unseen never cost it)."""
        self._blocks.append((prefix, data))
        self._block_chars += len(data)
        if self._block_chars > self.max_chars and len(self._blocks) > 1:
            # What is already split would be pushed out by what waits: drop it now.
            self.dropped += len(self._lines)
            self._lines, self.chars = [], 0
            while self._block_chars - len(self._blocks[0][1]) > self.max_chars:
                _, old = self._blocks.pop(0)
                self._block_chars -= len(old)
                self.dropped += count_lines(old)

    def extend(self, lines: Iterable[str]) -> None:
        added = lines if isinstance(lines, list) else list(lines)
        self._lines.extend(added)
        self.chars += sum(map(len, added))
        # Trim in batches: deleting from the front of a list is O(n), so not on every line.
        if len(self._lines) > self.limit + self.limit // 4 or self.chars > self.max_chars:
            cut = max(0, len(self._lines) - self.limit)
            removed = sum(len(x) for x in self._lines[:cut])
            while self.chars - removed > self.max_chars and cut < len(self._lines) - 1:
                removed += len(self._lines[cut])
                cut += 1
            self.chars -= removed
            del self._lines[:cut]
            self.dropped += cut

    def clear(self) -> None:
        self.dropped += len(self.lines)
        self._lines = []
        self.chars = 0


_ALL_BUT_NEWLINE = bytes(b for b in range(256) if b != 0x0A)


def count_lines(block: bytes) -> int:
    """Lines in a block (newlines + 1): deleting every other byte in C is twice as fast
    as bytes.count, which calls memchr once per line."""
    return len(block.translate(None, _ALL_BUT_NEWLINE)) + 1


def read_tail(path: str, limit: int = TAIL_LINES, max_bytes: int = 2 * 1024 * 1024, upto: int | None = None
              ) -> TailBuffer:
    """The last lines of a log file on disk (for earlier attempts and resumed runs), or of
    its first `upto` bytes."""
    buf = TailBuffer(limit)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size if upto is None else upto
            f.seek(max(0, size - max_bytes))
            data = f.read(min(size, max_bytes))
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
