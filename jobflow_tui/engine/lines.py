"""Turn a byte stream into text lines: incremental UTF-8, bounded line length."""

from __future__ import annotations

import codecs

MAX_LINE = 16 * 1024  # characters; longer lines are cut into pieces, nothing is dropped


class LineSplitter:
    """Feed chunks of bytes, get back complete lines (without the newline).

    Invalid UTF-8 becomes U+FFFD; a line longer than `max_line` is emitted in pieces so a
    200 KB line neither raises nor loses data; a partial last line is held back until
    more bytes arrive or `flush()` is called.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, chunk: bytes) -> list[str]:
        text = self._partial + self._decoder.decode(chunk)
        lines = text.split("\n")
        self._partial = lines.pop()
        if len(self._partial) > self.max_line:
            cut = len(self._partial) - len(self._partial) % self.max_line
            lines.append(self._partial[:cut])
            self._partial = self._partial[cut:]
        if lines and max(map(len, lines)) > self.max_line:
            lines = [piece for line in lines for piece in self._pieces(line)]
        return lines

    def flush(self) -> list[str]:
        """The rest, at the end of the stream."""
        text = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        if not text:
            return []
        return list(self._pieces(text))

    def _pieces(self, line: str):
        if len(line) <= self.max_line:
            yield line
            return
        for i in range(0, len(line), self.max_line):
            yield line[i : i + self.max_line]
