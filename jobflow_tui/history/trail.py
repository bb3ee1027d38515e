"""A run's trail: `events.jsonl` in its folder, one JSON object a line (the run's start
and end, every state change). Written and synced at most every `SYNC_EVERY` seconds and at
the end, so a burst of changes costs one write and one fsync; a crash loses at most the
last fraction of a second and leaves at worst a torn last line, which readers skip."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

SYNC_EVERY = 0.2  # seconds


class TrailWriter:
    """Appends records to one trail. `add` only queues the record: a background thread
    encodes what waits, writes it in one go and syncs it, at most every SYNC_EVERY seconds,
    so a run of a thousand quick tasks pays next to nothing for its trail."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._dirty = threading.Event()
        self._closed = False
        self.failed: str | None = None  # why writing stopped (a full disk), once
        self._thread = threading.Thread(target=self._sync_loop, name="trail-sync", daemon=True)
        self._thread.start()

    def add(self, record: dict[str, Any]) -> None:
        """Queue a record (not changed afterwards by the caller)."""
        with self._lock:
            if self._closed or self.failed:
                return
            self._pending.append(record)
        self._dirty.set()

    def _sync_loop(self) -> None:
        while True:
            self._dirty.wait()
            if self._closed:
                return
            time.sleep(SYNC_EVERY)  # what comes meanwhile rides on the same write and fsync
            self._dirty.clear()
            with self._lock:
                if self._closed:
                    return
                self._write()

    def _write(self) -> None:
        """Write and sync what waits (the lock held)."""
        batch, self._pending = self._pending, []
        if not batch or self.failed:
            return
        data = "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in batch).encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as e:
            self.failed = f"cannot write {self.path}: {e.strerror}"

    def flush(self) -> None:
        """Write and sync what waits, now (from any thread)."""
        with self._lock:
            if not self._closed:
                self._write()

    def close(self) -> None:
        """Write, sync and close (what was added is on disk when this returns)."""
        with self._lock:
            if self._closed:
                return
            self._write()
            self._closed = True
            os.close(self._fd)
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
