"""A run's trail: `events.jsonl` in its folder, one JSON object a line (the run's start
and end, every state change). Appended as events come; synced to disk at most every
`SYNC_EVERY` seconds and at the end, so a burst of changes costs one fsync, and a crash
leaves at worst a torn last line, which readers skip."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

SYNC_EVERY = 0.2  # seconds


class TrailWriter:
    """Appends records to one trail. `add` is cheap (a write to the file's buffer); a
    background thread syncs what was written, coalesced."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._closed = False
        self.failed: str | None = None  # why writing stopped (a full disk), once
        self._thread = threading.Thread(target=self._sync_loop, name="trail-sync", daemon=True)
        self._thread.start()

    def add(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
        with self._lock:
            if self._closed or self.failed:
                return
            try:
                self._file.write(line)
                self._file.flush()  # to the kernel at once: a killed runner loses nothing written
            except OSError as e:
                self.failed = f"cannot write {self.path}: {e.strerror}"
                return
        self._dirty.set()

    def _sync_loop(self) -> None:
        while not self._closed:
            self._dirty.wait()
            if self._closed:
                return
            time.sleep(SYNC_EVERY)  # what comes meanwhile rides on the same fsync
            self._dirty.clear()
            self._sync()

    def _sync(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            fd = self._file.fileno()
        try:
            os.fsync(fd)
        except (OSError, ValueError):
            pass  # closed meanwhile, or a full disk: the lines are in the kernel's hands

    def close(self) -> None:
        """Sync and close (what was added is on disk when this returns)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError:
                pass
            self._file.close()
        self._dirty.set()  # lets the thread see it is over


def read_trail(path: str) -> Iterator[dict[str, Any]]:
    """The records of a trail; a line that does not parse (torn by a crash) is skipped."""
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError:
        return
    with f:
        for line in f:
            if not line.endswith("\n"):
                return  # a last line without its end: torn
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("event"), str):
                yield record
