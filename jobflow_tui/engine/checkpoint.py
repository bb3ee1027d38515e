"""The checkpoint: one JSON file, replaced atomically, never half-written, kept in step
with the run by a background writer that survives a full disk."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .events import RUNNING, Notice

FORMAT = 1
SAVE_INTERVAL = 0.05  # at most this often a write; changes in between coalesce
WRITE_SHARE = 0.1  # and writing takes at most this share of the time (a big job's checkpoint is big)
RETRY_INTERVAL = 1.0  # seconds between tries of a write that failed
RESERVE = 64 * 1024  # bytes kept aside (at least) so the next write fits on a full disk


class CheckpointError(Exception):
    """The checkpoint cannot be used (corrupt, or another job's)."""


def write_atomic(path: str, data: bytes, reserve: str | None = None) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix.

    `reserve`: a file of space set aside by an earlier call (see `reserve_space`), written
    over in place, so that a full disk does not stop the write. On failure the temp file
    is removed and the old file left as it was.
    """
    directory = os.path.dirname(path) or "."
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    if reserve is not None:
        try:
            os.rename(reserve, tmp)  # its blocks are allocated already
        except OSError:
            pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            view, offset = memoryview(data), 0
            while offset < len(data):
                offset += os.pwrite(fd, view[offset:], offset)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            if reserve is not None:
                os.rename(tmp, reserve)  # keep what it holds for the next try
            else:
                os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)  # the rename itself must survive a power cut
    finally:
        os.close(dfd)


def reserve_space(path: str, size: int) -> bool:
    """Set `size` bytes aside in file `path` for the next write; False if there is no room."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size < size:
            os.posix_fallocate(fd, 0, size)
        return True
    except OSError:
        os.close(fd)
        fd = -1
        try:
            os.unlink(path)
        except OSError:
            pass
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def iso(t: float | None) -> str | None:
    """A time as the checkpoint writes it (UTC, milliseconds)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_iso(s: Any) -> float | None:
    """A time from the checkpoint, or None if it is not one."""
    try:
        return datetime.fromisoformat(s).timestamp() if isinstance(s, str) else None
    except ValueError:
        return None


def count(entry: dict, key: str) -> int:
    """A non-negative whole number from a checkpoint entry (0 when absent or not one)."""
    value = entry.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def read_checkpoint(path: str, job_name: str | None = None) -> dict[str, Any] | None:
    """The checkpoint at `path`, None if there is none; CheckpointError if unusable."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e.strerror}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: the checkpoint is not valid JSON ({e}); move it away to start afresh") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("tasks"), dict)
        or not isinstance(data.get("job"), dict)
        or not all(isinstance(t, dict) for t in data["tasks"].values())
    ):
        raise CheckpointError(f"{path}: not a jobflow-tui checkpoint; move it away to start afresh")
    if job_name is not None and data["job"].get("name") != job_name:
        raise CheckpointError(
            f"{path}: the checkpoint belongs to job {data['job'].get('name')!r}, not {job_name!r}"
        )
    return data


def run_head(s: Any) -> dict[str, Any]:
    """The checkpoint's head: the job, the run, its parameters and shared dict (`s`: the Scheduler)."""
    return {
        "format": FORMAT,
        "job": {"name": s.job.name, "path": s.job.path, "hash": s.job.hash},
        "run_id": s.run_id,
        "started_at": iso(s.started_at),
        "updated_at": iso(time.time()),
        "completed": s.states.succeeded == len(s.tasks),
        "params": s.params,
        "limit": s.limit,
        "paused": s.paused if s.paused_for_hand_off is None else s.paused_for_hand_off,
        "shared_dict": s.shared_dict,
    }


def task_entry(r: Any, job_dir: str) -> dict[str, Any]:
    """A task's entry in the checkpoint (`r`: its TaskRun); log paths relative to `job_dir`."""
    return {
        "state": r.state,
        "attempts": r.attempts,
        "attempt": r.attempt,
        "max_attempts": r.spec.max_attempts,
        "exit_code": r.exit_code,
        "reason": r.reason,
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
        "retry_at": iso(r.retry_at) if r.retry_at else None,
        "pid": r.pid if r.state == RUNNING else None,
        "create_time": r.create_time if r.state == RUNNING else None,
        "logs": [os.path.relpath(p, job_dir) for p in r.logs],
        "outputs": r.outputs,
        "fingerprint": r.spec.fingerprint(),
        "selected": r.selected,
    }


class CheckpointWriter:
    """Writes a run's checkpoint after changes: `changed(task)` marks, `run()` (a background
    task) writes within SAVE_INTERVAL, bursts coalesced. Only the tasks that changed are
    encoded again, so a write of a 10,000-task job costs a join, not 10,000 encodings.

    A write that fails (a full disk) leaves the last good checkpoint in place; it is
    reported once through `notify` and tried again every RETRY_INTERVAL until it succeeds.
    Space for the next write is kept in reserve beside the checkpoint.
    """

    def __init__(self, path: str, order: list[str], head: Callable[[], dict[str, Any]],
                 entry: Callable[[str], dict[str, Any]], notify: Callable[[Notice], None]) -> None:
        self.path = path
        self._order = order
        self._head = head
        self._entry = entry
        self._notify = notify
        self._encoded: dict[str, str] = {}  # task -> its entry as JSON, key included
        self._stale: set[str] = set(order)
        self._version = 0  # bumped on every change; what is on disk is _written
        self._written = -1
        self._failing = False  # reported once until a write succeeds again
        self._dirty: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None

    def changed(self, task: str | None = None) -> None:
        """Something changed (in `task`, or in the run): write it soon."""
        if task is not None:
            self._stale.add(task)
        self._version += 1
        if self._dirty is not None:
            self._dirty.set()

    def document(self) -> bytes:
        """The checkpoint as it stands; only the tasks that changed are encoded again."""
        stale, self._stale = self._stale, set()
        for name in stale:
            self._encoded[name] = json.dumps(name) + ": " + json.dumps(self._entry(name), default=str)
        head = json.dumps(self._head(), default=str)
        tasks = ",\n".join([self._encoded[n] for n in self._order])
        return f'{head[:-1]}, "tasks": {{\n{tasks}}}}}\n'.encode()

    def write_now(self, everything: bool = False) -> None:
        """Write at once, without the event loop; OSError if it cannot be written."""
        if everything:
            self._stale.update(self._order)
        version = self._version
        self._store(self.document())
        self._written = version

    def _store(self, data: bytes) -> None:
        spare = self.path + ".spare"
        write_atomic(self.path, data, spare)
        reserve_space(spare, max(RESERVE, 2 * len(data))) or reserve_space(spare, len(data) + 4096)
        if self._failing:
            self._failing = False
            self._notify(Notice(f"the checkpoint is written again: {self.path}", "information"))

    def _failed(self, e: OSError) -> None:
        if not self._failing:
            self._failing = True
            self._notify(Notice(f"{self.cannot_write(e)}, and the write is tried again", "error"))

    def cannot_write(self, e: OSError) -> str:
        return (f"cannot write the checkpoint {self.path}: {e.strerror} "
                f"(in {os.path.dirname(self.path)}); the last good one is kept")

    async def run(self) -> None:
        """The background writer; returns once `close()` was called and all is written
        (or, failing that, tried once more)."""
        self._dirty, self._closing = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        while True:
            if self._written == self._version:
                if self._closing.is_set():
                    return
                await self._dirty.wait()
            self._dirty.clear()
            began = time.monotonic()
            version, data = self._version, self.document()
            pause = SAVE_INTERVAL
            try:
                await loop.run_in_executor(None, self._store, data)
                self._written = version
                pause = max(SAVE_INTERVAL, (time.monotonic() - began) * (1 / WRITE_SHARE - 1))
            except OSError as e:
                self._failed(e)
                if self._closing.is_set():
                    return
                pause = RETRY_INTERVAL
            if not self._closing.is_set():
                try:  # coalesce: the next write waits for `pause`, or for close()
                    await asyncio.wait_for(self._closing.wait(), pause)
                except TimeoutError:
                    pass

    def close(self) -> None:
        """Ask `run()` to write what is left and stop (it is not cancelled: a write in
        flight would then race a newer one)."""
        if self._closing is not None:
            self._closing.set()
        self.changed()

    def finish(self) -> None:
        """After `run()` ended: the last write, if one is still due."""
        if self._written != self._version:
            try:
                self.write_now()
            except OSError as e:
                self._failed(e)
