"""Turn a byte stream into lines: blocks of whole lines, bounded line length, UTF-8 text."""

from __future__ import annotations

MAX_LINE = 16 * 1024  # bytes; a line still growing past this is let out in pieces


class LineSplitter:
    """Feed chunks of bytes, get back the lines they complete.

    `feed_block` gives them as one block of raw bytes (whole lines joined by b"\\n", no
    final newline): a gigabyte of output is then a few thousand objects, not millions,
    and each reader decodes or splits only what it needs. UTF-8 never has a newline byte
    inside a character, so a block decodes on its own. A partial last line is held back
    until more bytes arrive or `flush_block()` is called; one that grows past `max_line`
    is let out in pieces (cut between characters), so memory stays bounded.

    `feed` and `flush` give decoded lines instead (invalid UTF-8 as U+FFFD), long lines
    cut into pieces of `max_line` characters.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._partial = b""

    @property
    def held(self) -> int:
        """Bytes of a partial line held back, not yet let out."""
        return len(self._partial)

    def feed_block(self, chunk: bytes) -> bytes | None:
        """The lines completed by `chunk`, joined by b"\\n" (None: no line completed)."""
        end = chunk.rfind(b"\n")
        if end < 0:
            self._partial += chunk
            return self._cut_partial()
        # One copy: the held-back start of the first line, then the chunk up to its last newline.
        block = b"".join((self._partial, memoryview(chunk)[:end]))
        self._partial = chunk[end + 1 :]
        if len(self._partial) > self.max_line:
            block += b"\n" + self._cut_partial()  # type: ignore[operator]
        return block

    def flush_block(self) -> bytes | None:
        """The rest, at the end of the stream (None: nothing left)."""
        rest, self._partial = self._partial, b""
        return rest or None

    def _cut_partial(self) -> bytes | None:
        # A line still growing past max_line: let whole pieces out, keep the remainder.
        if len(self._partial) <= self.max_line:
            return None
        out: list[bytes] = []
        data = self._partial
        while len(data) > self.max_line:
            cut = self.max_line
            # Not inside a character: back off over UTF-8 continuation bytes (at most 3).
            while cut > self.max_line - 3 and 0x80 <= data[cut] < 0xC0:
                cut -= 1
            out.append(data[:cut])
            data = data[cut:]
        self._partial = data
        return b"\n".join(out)

    def feed(self, chunk: bytes) -> list[str]:
        return pieces(decode(self.feed_block(chunk)), self.max_line)

    def flush(self) -> list[str]:
        """The rest, at the end of the stream."""
        return pieces(decode(self.flush_block()), self.max_line)


def decode(block: bytes | None) -> str | None:
    """A block as text: invalid UTF-8 becomes U+FFFD."""
    return None if block is None else block.decode("utf-8", "replace")


def pieces(block: str | None, max_line: int = MAX_LINE) -> list[str]:
    """A block's lines, each longer than `max_line` cut into pieces of that length."""
    if block is None:
        return []
    lines = block.split("\n")
    if len(block) > max_line and max(map(len, lines)) > max_line:
        lines = [line[i : i + max_line] for line in lines for i in range(0, max(len(line), 1), max_line)]
    return lines
