"""The checkpoint: one JSON file, replaced atomically, never half-written."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

FORMAT = 1


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
