"""Follow a growing log file: read new bytes in chunks and split them into lines."""

from __future__ import annotations

import asyncio
import os

from .lines import LineSplitter

CHUNK = 65536
# Read at most this much per call so that one firehose cannot starve the other tasks.
MAX_PER_READ = 4 * 1024 * 1024


class LogTail:
    """Incremental reader of one attempt's log file."""

    def __init__(self, path: str, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.splitter = LineSplitter()
        self._file = None
        self._lock = asyncio.Lock()

    def has_new(self) -> bool:
        try:
            return os.stat(self.path).st_size > self.offset
        except OSError:
            return False

    async def read(self, final: bool = False) -> list[str]:
        """New complete lines; with `final`, everything left including a partial line."""
        async with self._lock:
            lines: list[str] = []
            if self.has_new():
                if self._file is None:
                    import aiofiles  # here: a run whose tasks print nothing never needs it

                    self._file = await aiofiles.open(self.path, "rb")
                    await self._file.seek(self.offset)
                got = 0
                while final or got < MAX_PER_READ:
                    chunk = await self._file.read(CHUNK)
                    if not chunk:
                        break
                    got += len(chunk)
                    self.offset += len(chunk)
                    lines.extend(self.splitter.feed(chunk))
            if final:
                lines.extend(self.splitter.flush())
                await self.close()
            return lines

    async def close(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            await f.close()
