"""Follow a growing log file: read new bytes in bounded chunks and split them into lines."""

from __future__ import annotations

import asyncio
import os

from .lines import LineSplitter

CHUNK = 4 * 1024 * 1024
# Read at most this much per call (one hop to a thread each: fewer, larger reads follow a
# flood faster): one firehose neither starves the other tasks nor holds
# more than this in memory at once, however much it printed.
MAX_PER_READ = 4 * 1024 * 1024


class LogTail:
    """Incremental reader of one attempt's log file."""

    def __init__(self, path: str, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.splitter = LineSplitter()
        self.more = False  # the last read stopped at its limit, not at the end of the file
        self.done = False  # read to the end with `final`: closed, nothing more will come
        self._given = offset
        self._file = None
        self._lock = asyncio.Lock()

    @property
    def emitted(self) -> int:
        """Bytes of the file already given out as lines. Moved only when `read` returns:
        while a read waits for more of the file, what it has taken in is not given out yet
        (a viewer that asks then must not count it, or it would see those lines twice)."""
        return self._given

    def has_new(self) -> bool:
        try:
            return os.stat(self.path).st_size > self.offset
        except OSError:
            return False

    async def read(self, final: bool = False) -> bytes | None:
        """New complete lines, as one raw block joined by b"\\n" (None: no new line), from at
        most MAX_PER_READ bytes (`more` says whether the file held more). With `final`,
        once the end is reached: the last partial line too, and the file is closed
        (`done`). Call again while `more` to drain a backlog."""
        async with self._lock:
            if self.done:
                return None
            blocks: list[bytes] = []
            got = 0
            if self.has_new():
                if self._file is None:
                    import aiofiles  # here: a run whose tasks print nothing never needs it

                    self._file = await aiofiles.open(self.path, "rb")
                    await self._file.seek(self.offset)
                while got < MAX_PER_READ:
                    chunk = await self._file.read(min(CHUNK, MAX_PER_READ - got))
                    if not chunk:
                        break
                    got += len(chunk)
                    self.offset += len(chunk)
                    block = self.splitter.feed_block(chunk)
                    if block is not None:
                        blocks.append(block)
            self.more = got >= MAX_PER_READ
            if final and not self.more:
                rest = self.splitter.flush_block()
                if rest is not None:
                    blocks.append(rest)
                await self.close()
                self.done = True
            self._given = self.offset - self.splitter.held
            if len(blocks) > 1:
                return b"\n".join(blocks)
            return blocks[0] if blocks else None

    async def close(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            await f.close()
