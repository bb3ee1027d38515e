"""The checkpoint: one JSON file, replaced atomically, never half-written."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

FORMAT = 1


class CheckpointError(Exception):
    """The checkpoint cannot be used (corrupt, or another job's)."""


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix."""
    directory = os.path.dirname(path) or "."
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)  # the rename itself must survive a power cut
    finally:
        os.close(dfd)


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
